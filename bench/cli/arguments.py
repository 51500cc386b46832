"""Command-line options generated from the configuration dataclasses' fields.

Each field of `RunConfig`, `TrainingOptions`, `RuntimeOptions` and `ScoringProtocol` becomes the flag
`--<field-name>` with its type, default, choices and help text taken from the field: the options of
`bench run`, `bench train` and the analyses cannot drift apart. A list field without a default (files,
patterns: `--weights`, `--episodes-from`) may be repeated, its values adding up. Every parser of the
commands uses `Parser`, whose help shows each option's default, and whose usage errors are one `error:` line
(exit status 2). A numeric field's `minimum`/`maximum` are checked as the value is parsed (`number`), NaN
and infinities refused, and the help says the bounds.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
import typing
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Type

from bench.core.errors import BenchError
from bench.core.paths import kind_of


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; every option's help ends with its default (unless it is unset or off)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        unset = default is None or default is False or default is argparse.SUPPRESS or default == []
        if "(default" in text or unset or not action.option_strings:  # 0 is a default worth showing
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {str(shown).replace('%', '%%')})"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser with `HelpFormatter` (its sub-commands' parsers too); a usage error is one line."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        """`error: <message>` on stderr and exit status 2, as every other error of the harness."""
        bounded = re.fullmatch(r"argument (\S+?)(?:/\S+)?: (must be .*)", message, flags=re.S)
        line = f"{bounded.group(1)} {bounded.group(2)}" if bounded else message
        print(f"error: {' '.join(line.split())}", file=sys.stderr)
        raise SystemExit(2)


def number(kind: type = int, minimum=None, maximum=None):
    """An argparse `type`: an int or a finite float within [minimum, maximum] (None: that side is open)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


_PATH_KINDS = {"file": ("a regular file",), "folder": ("a directory",), "any": ("a regular file", "a directory")}


def path_type(kind: str = "file", convert: type = str):
    """An argparse `type` for a path that, when it exists, must be a regular file ("file"), a folder
    ("folder") or either ("any"): a FIFO, a device or the wrong one of the two is refused as parsed, without
    opening it. A missing path is left to the command (it may create it, or say where to get it). The value
    is returned as `convert(text)`."""
    wanted = _PATH_KINDS[kind]

    def parse(text: str) -> str:
        try:
            found = kind_of(Path(text).expanduser()) if text else "empty"
        except BenchError as exc:  # e.g. a folder on the way that cannot be searched
            raise argparse.ArgumentTypeError(f"must be readable: {exc}") from None
        if found is not None and found not in wanted:
            raise argparse.ArgumentTypeError(f"must be {' or '.join(wanted)}, got {text!r} ({found})")
        return convert(text)

    parse.__name__ = "path"
    return parse


#: bootstrap resamples (report, compare, analyses): each is a pass over every episode's scores; the bounds are
#: analyses.stats.check_resamples' (1 to MAX_RESAMPLES; that module needs pandas, so they are written here too)
RESAMPLES = number(int, 1, 100_000)
#: a tolerance in mIoU points (check, verify): NaN would pass every comparison
TOLERANCE = number(float, 0, 100)


def bounds_text(minimum, maximum) -> str:
    """The bounds as the help states them: ' (>= 1)', ' (0 to 3)', ''."""
    if minimum is not None and maximum is not None:
        return f" ({minimum} to {maximum})"
    if minimum is not None or maximum is not None:
        return f" ({'>= ' + str(minimum) if minimum is not None else '<= ' + str(maximum)})"
    return ""


def field_type(cls: Type, name: str):
    """The parsing `type` of the flag of field `name` of `cls` (nested groups searched): for an option
    declared elsewhere with the same meaning, e.g. an analysis' own --episodes default."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if is_dataclass(hints[f.name]):
            try:
                return field_type(hints[f.name], name)
            except KeyError:
                continue
        if f.name == name:
            return _parser_of(_unwrap(hints[f.name])[0], f)
    raise KeyError(name)


def _parser_of(base, f):
    if f.metadata.get("path"):
        return path_type(f.metadata["path"])
    if base in (int, float):
        return number(base, f.metadata.get("minimum"), f.metadata.get("maximum"))
    return base


class OffsetAlias(argparse.Action):
    """`--folds 0 1` stores `splits = [1, 2]`: another numbering of a list option, recorded as the option."""

    def __init__(self, option_strings, dest, offset: int = 0, **kwargs):
        self.offset = offset
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, [v + self.offset for v in values])


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _unwrap(kind):
    """(base type, is a list) of an annotation such as Optional[List[int]]."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) is typing.Union and len(args) == 1:
        kind = args[0]
    if typing.get_origin(kind) in (list, List):
        return typing.get_args(kind)[0], True
    return kind, False


def _default(f):
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else None


def add_options(parser: argparse.ArgumentParser, cls: Type, names: Optional[Iterable[str]] = None,
                required: Sequence[str] = ()) -> None:
    """Add a flag for each command-line field of `cls` (nested groups included), or only for `names`."""
    hints = typing.get_type_hints(cls)
    wanted = None if names is None else set(names)
    for f in fields(cls):
        kind = hints[f.name]
        if is_dataclass(kind):
            add_options(parser, kind, names, required)
            continue
        if not f.metadata.get("cli", True) or (wanted is not None and f.name not in wanted):
            continue
        base, many = _unwrap(kind)
        default = _default(f)
        help_text = f.metadata.get("help", "")
        if base in (int, float):
            help_text += bounds_text(f.metadata.get("minimum"), f.metadata.get("maximum"))
        kwargs = {"help": help_text, "dest": f.name}
        if f.name in required:
            kwargs["required"] = True
        if base is bool:
            parser.add_argument(_flag(f.name), action="store_true", **kwargs)
            continue
        if f.metadata.get("choices"):
            kwargs["choices"] = list(f.metadata["choices"])
        if f.metadata.get("metavar"):
            kwargs["metavar"] = f.metadata["metavar"]
        if many and default is None:  # a list without a default (files, patterns) grows when the flag repeats
            kwargs["action"] = "extend"
        alias = f.metadata.get("alias")
        target = parser.add_mutually_exclusive_group() if alias else parser
        target.add_argument(_flag(f.name), type=_parser_of(base, f), default=default, nargs="+" if many else None, **kwargs)
        if alias:  # the same option in another numbering, e.g. --folds 0..3 for --splits 1..4
            target.add_argument(_flag(alias["name"]), type=_parser_of(base, f), nargs="+", dest=f.name, default=argparse.SUPPRESS,
                                action=OffsetAlias, offset=alias["offset"], help=alias["help"],
                                metavar=kwargs.get("metavar"))


def build(cls: Type, args: argparse.Namespace, **overrides):
    """An instance of `cls` from parsed arguments (fields without a flag keep their defaults)."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in fields(cls):
        if f.name in overrides:
            values[f.name] = overrides[f.name]
        elif is_dataclass(hints[f.name]):
            values[f.name] = build(hints[f.name], args)
        elif hasattr(args, f.name):
            values[f.name] = getattr(args, f.name)
    return cls(**values)
