"""The command line answers without torch (issue 31): `--help`, the listings and every analysis' `--help`
import no torch, torchvision, matplotlib, pandas or method implementation; the catalog they read is fresh."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analyses.registry import ANALYSES
from methods.catalog import live_catalog, read_catalog

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "torchvision", "matplotlib", "pandas", "sklearn")
#: run `main(argv)` of a module, then print which heavy modules it imported
PROBE = """
import importlib, json, sys
import methods
module, argv = sys.argv[1], sys.argv[2:]
try:
    importlib.import_module(module).main(argv)
except SystemExit:
    pass
print(json.dumps(sorted([m for m in {heavy!r} if m in sys.modules]
                        + [m for m in sys.modules if m.split(".")[-1] in methods.BUILTIN])))
""".format(heavy=HEAVY)
COMMANDS = [["--help"], ["list"], ["weights"], ["weights", "pfenet"], ["datasets"], ["datasets", "pascal5i"],
            ["prepare", "--help"], ["verify", "--help"], ["run", "--help"], ["train", "--help"],
            ["check", "--help"], ["report", "--help"]]


def imported(module, argv):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PROBE, module, *argv], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_commands_import_no_torch(argv):
    assert imported("bench.cli.commands", argv) == []


@pytest.mark.parametrize("name", list(ANALYSES))
def test_analysis_help_imports_no_torch(name):
    assert imported(f"analyses.{name}", ["--help"]) == []


def test_importtime_of_help_shows_no_torch():
    """The issue's acceptance check, as written: `python -X importtime -m bench --help`."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "bench", "--help"], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 0 and "usage:" in done.stdout
    assert not [line for line in done.stderr.splitlines() if line.rstrip().endswith(("| torch", "| torchvision"))]


def test_catalog_is_fresh():
    """methods/catalog.json is what the registries hold: after changing a method, `python -m methods.catalog`."""
    assert read_catalog() == json.loads(json.dumps(live_catalog())), "stale: run `python -m methods.catalog`"


@pytest.mark.parametrize("argv", [["list"], ["weights"], ["weights", "hsnet"]], ids=" ".join)
def test_listings_from_the_catalog_are_the_live_ones(argv):
    """A fresh process answers from the catalog; one that loaded the methods first, from the live registries
    (both fresh: registrations made by other tests in this process must not count)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    live = "import sys, methods; methods.load_builtin(); from bench.cli.commands import main; sys.exit(main(sys.argv[1:]))"
    light, loaded = (subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
                     for command in ([sys.executable, "-m", "bench", *argv], [sys.executable, "-c", live, *argv]))
    assert light.returncode == 0 and loaded.returncode == 0, light.stderr + loaded.stderr
    assert light.stdout == loaded.stdout  # (plugins: tests/test_plugins.py)
