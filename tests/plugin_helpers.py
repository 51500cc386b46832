"""Plugins in tests: a fixture that gives back the method registry and the plugin loader as they were."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import methods.plugins as plugins
from methods import METHODS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "plugin_method.py"


@pytest.fixture
def clean_registry(monkeypatch):
    """Methods registered and plugins loaded during the test are forgotten after it."""
    len(METHODS)  # the built-in methods registered first (the registry fills on first use), so that they are kept
    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))
    monkeypatch.setattr(plugins, "_loaded", {})
    monkeypatch.setattr(plugins, "_entry_points_done", False)


def write_plugin(path: Path, name: str, body: str = "") -> Path:
    """A plugin file registering a training-free method `name` (or running `body` instead)."""
    path.write_text(body or (
        "from methods import register_method\n"
        "from methods.support_copy import SupportCopy\n\n\n"
        f"@register_method({name!r})\n"
        "class Plugged(SupportCopy):\n"
        '    """A plugged-in copy of support-copy."""\n'))
    return path


def bench(*args, cwd=ROOT, env=None):
    """`python -m bench ARGS` in a subprocess, run from `cwd` on this checkout."""
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
