"""The README's commands: the first two are the contract that CI runs; every other one parses as written, says
what must exist first, and the listings and the regression check run as written (issue 31)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_commands():
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [b.strip() for b in blocks[:2]]


def test_first_readme_command_installs_and_runs_the_main_job():
    main_command = readme_commands()[0]
    assert main_command.startswith("pip install") and "python -m bench run" in main_command


def test_ci_runs_the_readme_install_and_test_commands():
    install, _, test = readme_commands()[1].partition(" && ")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install in ci and test in ci
    assert ci.index(install) < ci.index(test)


def test_every_module_the_readme_runs_exists():
    import importlib.util

    modules = set(re.findall(r"python -m ([A-Za-z_][\w.]*)", (ROOT / "README.md").read_text())) - {"pip", "venv"}
    assert {"bench", "analyses.tsne"} <= modules
    missing = sorted(m for m in modules if importlib.util.find_spec(m) is None)
    assert not missing, missing


def test_the_readme_shows_the_example_plugin_as_it_is():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert (ROOT / "examples" / "plugin_method.py").read_text() in blocks


# --- every command the README shows (issue 31): it parses as written, a run directory it reads is made by a
# README command or its comment says where it comes from, and those that need no data run

def readme_command_lines():
    """(command, comment) of every `python -m bench|analyses...` line of the README's bash blocks (continuation
    lines joined) and of its inline code; `...` elisions and `[optional]` groups left out."""
    text = (ROOT / "README.md").read_text()
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in re.sub(r"\\\n\s*", "", block).splitlines():
            command, _, comment = line.strip().partition("  #")
            found.append((command.strip(), comment.strip()))
    found += [(m, "") for m in re.findall(r"`(python -m [^`]*)`", text.replace("\n", " "))]
    out = []
    for command, comment in found:
        command = re.sub(r"\s*\[[^\]]*\]", "", command)
        if re.match(r"python -m (bench|analyses\.\w+)( |$)", command) and "..." not in command:
            out.append((command, comment))
    return out


def parser_of(module):
    import importlib

    from bench.cli.commands import build_parser

    return build_parser() if module == "bench" else importlib.import_module(module).build_parser()


def placeholder(argv):
    """A single upper-case word (NAME, M, K) or <...> stands for a value the reader chooses."""
    return any(re.fullmatch(r"[A-Z]|[A-Z]{3,}", a) or "<" in a for a in argv)


def test_every_readme_command_parses_as_written():
    import shlex

    commands = readme_command_lines()
    assert len(commands) > 40
    for command, _ in commands:
        module, *argv = shlex.split(command)[2:]
        if placeholder(argv):
            continue
        try:
            parser_of(module).parse_args(argv or ["--help"])
        except SystemExit as exc:
            assert exc.code == 0, f"`{command}` is refused by its parser"


def run_directories_read(argv):
    """The run directories a command reads: --run, --runs, --episodes-from (its run), compare's two."""
    read = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--run", "--episodes-from")]
    return read + (argv[1:3] if argv[:1] == ["compare"] else [])


def test_every_run_directory_a_readme_command_reads_is_made_first_or_explained():
    """`runs/ci` was shown with nothing saying how it is made (issue 31)."""
    import shlex

    commands = readme_command_lines()
    made = {a[i + 1] for c, _ in commands for a in [shlex.split(c)] for i, x in enumerate(a[:-1]) if x == "--out"}
    for command, comment in commands:
        for folder in run_directories_read(shlex.split(command)[3:]):
            produced = any(folder == out or folder.startswith(out + "/") for out in made)
            assert produced or "--out" in comment or "printed" in comment or "..." in folder, \
                f"`{command}` reads {folder}: no README command makes it and its comment does not say where it comes from"


LISTINGS = {"list", "weights", "datasets"}


@pytest.mark.parametrize("command", sorted({c for c, _ in readme_command_lines()
                                           if c.split()[2:4] and c.split()[3:4] and c.split()[3] in LISTINGS
                                           and not placeholder(c.split()[4:])}))
def test_readme_listings_run(command, capsys):
    """The commands that need no data or earlier run answer as written (exit 0, output)."""
    import shlex

    from bench.cli.commands import main

    assert main(shlex.split(command)[3:]) == 0
    assert capsys.readouterr().out.strip()


@pytest.mark.slow
@pytest.mark.timeout(3600)  # every method trained: about 5 minutes on 2 idle cores, much longer on a busy machine
def test_the_readme_regression_check_runs_as_written(tmp_path):
    """The README's runs/ci block, as written (its runs/ folder moved under tmp_path): the baseline passes."""
    import os
    import shlex
    import subprocess
    import sys

    text = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S) if "--out runs/ci" in b)
    lines = [line.partition("  #")[0].strip() for line in re.sub(r"\\\n\s*", "", block).splitlines()]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.update(dict(pair.split("=", 1) for line in lines if line.startswith("export ") for pair in line.split()[1:]))
    for line in (line for line in lines if line.startswith("python -m")):
        argv = [a.replace("runs/", f"{tmp_path}/runs/", 1) if a.startswith("runs/") else a for a in shlex.split(line)]
        done = subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
