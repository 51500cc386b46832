"""Strict registries: names to builders (backbones; the harness's datasets) and names to method cards.

A method registers a `MethodCard` with `@register_method(name, trainable=..., profiles=..., ...)` on
its class or factory: what the harness needs to know of it (whether it trains, its entry per training
profile, the paper it reproduces, a one-line summary) is declared there, once. Registering a name twice,
or asking for a name that does not exist, is an error that lists the known names (unlike timm's
warn-and-overwrite).

A registry may be given a `loader` (`set_loader`): the implementations that register into it, imported the
first time the registry is read or written. Naming a registry is light; reading it loads the implementations
(the methods' modules import torch), so `--help` and the listings never do (`methods.BUILTIN`).
"""
from __future__ import annotations

import fnmatch
import hashlib
import re
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional


#: a registered name: it names files and folders (cells, checkpoints, run directories), so it is a plain name
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
NAME_RULE = "letters, digits and . _ + -, starting with a letter or digit, without '__'"


def is_method_name(name: object) -> bool:
    """Whether `name` may be registered (see NAME_RULE); also how names read back from files are checked."""
    return isinstance(name, str) and bool(NAME.match(name)) and "__" not in name and len(name) <= 100


class MethodError(Exception):
    """A problem with a method, its options or its weights, reported as one line by the harness."""


class RegistryError(MethodError, KeyError):
    """Unknown or duplicate method name."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class MethodCard:
    """What the harness knows of a registered method."""

    name: str
    builder: Callable
    summary: str
    trainable: bool = False
    #: per training profile: {"recipe": {...profile fields...}, "options": {...builder options...}}
    profiles: Mapping[str, Mapping] = field(default_factory=dict)
    citation: str = ""
    #: sha256 of the source file of the module that registered it (None: no file, e.g. typed in a session)
    code_sha256: Optional[str] = None

    @property
    def takes_backbone(self) -> bool:
        """Whether the harness builds it with the profile's backbone: learned methods, and training-free ones
        whose builder says so (`takes_backbone`, as `BackboneMethod`)."""
        return self.trainable or bool(getattr(self.builder, "takes_backbone", False))

    def build(self, **options):
        return self.builder(**options)


class LazilyFilled:
    """A registry whose entries are registered by modules imported on its first use (`set_loader`)."""

    _loader: Optional[Callable[[], None]] = None

    def set_loader(self, loader: Callable[[], None]) -> None:
        """`loader()` imports what registers into this registry (idempotent); it runs on first use."""
        self._loader = loader

    def _load(self) -> None:
        if self._loader is not None:
            self._loader()


class Registry(LazilyFilled):
    """Maps names to builders or entries; strict about duplicates and unknown names (backbones, datasets,
    methods, published weights)."""

    def __init__(self, kind: str, plural: Optional[str] = None):
        self.kind, self.plural = kind, plural or f"{kind}s"
        self._entries: Dict[str, Callable] = {}

    def register(self, name: str) -> Callable[[Callable], Callable]:
        """Decorator: `@BACKBONES.register("resnet50")` on a class or factory."""

        def decorate(builder: Callable) -> Callable:
            self._add(name, builder)
            return builder

        return decorate

    def _add(self, name: str, entry) -> None:
        self._load()
        if not is_method_name(name):
            raise RegistryError(f"{self.kind} name {name!r} is not a plain name ({NAME_RULE}, at most 100 "
                                "characters): it names files and folders")
        if name in self._entries:
            raise RegistryError(f"{self.kind} '{name}' is already registered; known {self.plural}: {', '.join(self.names())}")
        self._entries[name] = entry

    def get(self, name: str):
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(f"unknown {self.kind} '{name}'; known {self.plural}: {', '.join(self.names())}") from None

    def names(self, pattern: str = "*") -> List[str]:
        self._load()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def expand(self, patterns: List[str]) -> List[str]:
        """Names, shell-style patterns ('simpropnet*') and 'all' -> registered names, in the order given
        (a pattern's matches sorted), each once; a name or a pattern that matches nothing is a RegistryError."""
        out: List[str] = []
        for pattern in patterns:
            if pattern == "all":
                matched = self.names()
            elif any(ch in pattern for ch in "*?["):
                matched = self.names(pattern)
                if not matched:
                    raise RegistryError(f"no {self.kind} matches '{pattern}'; known {self.plural}: {', '.join(self.names())}")
            else:
                self.get(pattern)
                matched = [pattern]
            out.extend(matched)
        return list(dict.fromkeys(out))

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries

    def __len__(self) -> int:
        self._load()
        return len(self._entries)


class MethodRegistry(Registry):
    """Maps method names to their cards."""

    def __init__(self) -> None:
        super().__init__("method")

    def register(self, name: str, *, trainable: bool = False, profiles: Optional[Mapping] = None,
                 summary: Optional[str] = None, citation: str = "") -> Callable[[Callable], Callable]:
        """Decorator on a class or factory; `summary` defaults to the first line of its docstring."""

        def decorate(builder: Callable) -> Callable:
            module = sys.modules[builder.__module__]
            doc = summary or builder.__doc__ or module.__doc__ or ""
            self._add(name, MethodCard(name, builder, (doc.strip().splitlines() or [""])[0], trainable,
                                       dict(profiles or {}), citation, module_sha256(module)))
            return builder

        return decorate

    def card(self, name: str) -> MethodCard:
        return self.get(name)


def module_sha256(module) -> Optional[str]:
    """sha256 of a module's source file (a plugin file, or the built-in method's own file in `methods/`);
    None for a module without one."""
    path = getattr(module, "__file__", None)
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except (TypeError, OSError):
        return None


METHODS = MethodRegistry()
register_method = METHODS.register


def build_method(name: str, **options):
    """Instantiate the registered method `name` with keyword options."""
    return METHODS.card(name).build(**options)


def list_methods(pattern: str = "*") -> List[str]:
    return METHODS.names(pattern)
