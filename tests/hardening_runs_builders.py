"""Inputs of tests/test_hardening_runs.py: plugin files, damaged run files (config.json, cell records)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, List

from tests.bad_input_builders import Env

DEEP = "[" * 100_000 + "]" * 100_000  # deeper than Python's JSON parser recurses
CELL = "support-copy__split1_shot1_seed0"
PLUGIN_METHOD = "my-copy"


def plugin_source(name: str, body: str = "") -> str:
    """A plugin registering a training-free copy of support-copy as `name` (and running `body` first)."""
    return ("import sys\nfrom methods import register_method\nfrom methods.support_copy import SupportCopy\n"
            f"{body}\n\n@register_method({name!r})\nclass Plugged(SupportCopy):\n"
            '    """A plugged-in copy of support-copy."""\n')


def write_plugin(env: Env, source: str, name: str = "plugin.py") -> str:
    path = env.tmp / name
    path.write_text(source)
    return str(path)


def with_plugin(source: str, *extra: str) -> Callable[[Env], List[str]]:
    """`bench run` of the plugin's method into a new --out."""
    return lambda env: env.pascal("--methods", PLUGIN_METHOD, "--plugin", write_plugin(env, source), *extra)


class Raw(str):
    """What an edit returns to replace a JSON file's whole text."""


def edit_json(env: Env, relpath: str, edit: Callable[[dict], object]) -> Path:
    """Apply `edit` to a JSON file of the copied run (a `Raw` result replaces the file's text)."""
    path = env.run_dir() / relpath
    record = json.loads(path.read_text())
    result = edit(record)
    path.write_text(result if isinstance(result, Raw) else json.dumps(record))
    return env.run_dir()


def report(run: Path) -> List[str]:
    return ["report", "--run", str(run), "--resamples", "20"]


def damaged(relpath: str, edit: Callable[[dict], object], command: str = "report") -> Callable[[Env], List[str]]:
    """`command` on the copied run with `relpath` edited."""
    def build(env: Env) -> List[str]:
        run = edit_json(env, relpath, edit)
        if command == "compare":
            return ["compare", str(run), str(run), "--resamples", "20"]
        if command == "check":
            baseline = env.tmp / "baseline.json"
            baseline.write_text(json.dumps({"entries": []}))
            return ["check", "--run", str(run), "--baseline", str(baseline)]
        if command == "run":
            return env.pascal("--out", str(run), "--methods", "support-copy", "--episodes", "10")
        return report(run)
    return build


def grow(env: Env, source: str | None, *methods: str) -> List[str]:
    """`bench run` of `methods` into a copy of the run made with the plugin's method, with a plugin file of
    `source` (None: without --plugin)."""
    run = env.copy(env._run.parent / "plugged", "plugged")
    plugin = ["--plugin", write_plugin(env, source)] if source is not None else []
    return env.pascal("--out", str(run), "--methods", *methods, "--episodes", "10", *plugin)


def linked_folder(env: Env, name: str) -> List[str]:
    """The run's folder `name` replaced by a link to a user's folder elsewhere; the same command again."""
    run, elsewhere = env.run_dir(), env.tmp / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / f"{CELL}.csv").write_text("mine\n")
    if (run / name).exists():
        (run / name).rename(env.tmp / f"{name}-moved")
    (run / name).symlink_to(elsewhere)
    return env.pascal("--out", str(run), "--episodes", "10", "--overwrite")
