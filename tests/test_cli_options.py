"""The command line people expect: defaults and help on every option, --version, the fss-bench script,
the analyses in the epilog, --folds as the codebases' numbering of --splits, tables in --methods order."""
import argparse
import ast
import importlib
from pathlib import Path

import pandas as pd
import pytest

from analyses.registry import ANALYSES
from analyses.summary import format_table
from bench.cli.arguments import HelpFormatter, build
from bench.cli.commands import build_parser, main
from bench.runs.config import RunConfig

ROOT = Path(__file__).resolve().parent.parent


def parsers():
    """(name, parser) of every `bench` command and every analysis command."""
    found = [("bench", build_parser())]
    for name, parser in list(found):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                found += [(f"bench {sub}", p) for sub, p in action.choices.items()]
    return found + [(name, importlib.import_module(f"analyses.{name}").build_parser()) for name in ANALYSES]


def options(parser):
    return [a for a in parser._actions if a.option_strings and a.dest not in ("help", "version")]


@pytest.mark.parametrize("name, parser", parsers(), ids=[n for n, _ in parsers()])
def test_every_option_has_help_and_shows_its_default(name, parser):
    formatter = HelpFormatter(name)
    for action in options(parser):
        assert action.help, f"{name} {action.option_strings[0]} has no help"
        shown = formatter._get_help_string(action)
        unset = action.default in (None, [], argparse.SUPPRESS) or action.default is False
        assert unset or "(default" in shown, f"{name} {action.option_strings[0]}: {shown}"
    assert "%(default" not in parser.format_help()


def test_defaults_are_shown_in_the_help_text(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 1 2 3 4)" in text and "(default: 0)" in text and "(default: held-out)" in text


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip().startswith("python -m bench ")


def test_the_console_script_is_the_same_command():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["fss-bench"].partition(":")
    assert getattr(importlib.import_module(module), function) is main


def test_the_epilog_lists_every_analysis_command():
    commands = sorted(p.stem for p in (ROOT / "analyses").glob("*.py")
                      if any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)
                             for n in ast.parse(p.read_text()).body))
    assert commands and sorted(ANALYSES) == commands  # the registry (analyses.registry) names exactly these
    epilog = build_parser().format_help()
    assert all(f"python -m analyses.{name}" in epilog for name in commands)
    assert all(importlib.import_module(f"analyses.{name}").IMPLEMENTATION == f"analyses.impl.{name}"
               for name in commands)


@pytest.mark.parametrize("command", ["run", "train"])
def test_folds_are_the_splits_in_the_codebases_numbering(command):
    parser = build_parser()
    args = parser.parse_args([command, "--methods", "panet", "--folds", "0", "3"])
    assert args.splits == [1, 4] and not hasattr(args, "folds")
    assert parser.parse_args([command, "--methods", "panet"]).splits == [1, 2, 3, 4]
    if command == "run":
        assert build(RunConfig, args).splits == [1, 4] and "folds" not in build(RunConfig, args).to_dict()


def test_folds_and_splits_together_are_refused(capsys):
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["run", "--methods", "panet", "--folds", "0", "--splits", "1"])
    assert done.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_tables_follow_the_methods_order():
    rows = [dict(method=m, split=s, shot=1, miou_mean=50.0, miou_std=1.0, fbiou_mean=60.0, fbiou_std=1.0)
            for m in ("b-method", "a-method", "c-method") for s in ("1", "mean")]
    summary = pd.DataFrame(rows).sort_values("method")  # as summarize gives it: alphabetical
    lines = format_table(summary, "miou", ["c-method", "a-method"]).splitlines()[2:]
    assert [line.split()[0] for line in lines] == ["c-method", "a-method", "b-method"]
    assert [line.split()[0] for line in format_table(summary).splitlines()[2:]] == ["a-method", "b-method", "c-method"]
