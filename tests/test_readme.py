"""The README's commands: the first two are the contract that CI runs; the regression check of the docs runs as
written (issue 31). That every command of the README and of docs/ parses, says what must exist first, and that
the listings run: tests/test_docs.py."""
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


def test_the_guide_shows_the_example_plugin_as_it_is():
    text = (ROOT / "docs" / "guides" / "add-a-method.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert (ROOT / "examples" / "plugin_method.py").read_text() in blocks


def test_the_readme_stays_a_front_page():
    """The manual lives in docs/ (issue: "a house the next engineer finds their way in"); the README links it."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert "docs/README.md" in text and "CHANGELOG.md" in text


def test_the_readme_shows_commands_that_parse():
    """Its main commands are checked with every page's by tests/test_docs.py; here: that it shows them."""
    from tests.test_docs import command_lines

    shown = [c for c, _, page in command_lines() if page == "README.md"]
    assert len(shown) >= 10 and any(" report " in c for c in shown) and any("analyses." in c for c in shown)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # every method trained: about 5 minutes on 2 idle cores, much longer on a busy machine
def test_the_readme_regression_check_runs_as_written(tmp_path):
    """The regression check's runs/ci block (docs/regression-check.md), as written (its runs/ folder moved under
    tmp_path): the baseline passes."""
    import os
    import shlex
    import subprocess
    import sys

    text = (ROOT / "docs" / "regression-check.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S) if "--out runs/ci" in b)
    lines = [line.partition("  #")[0].strip() for line in re.sub(r"\\\n\s*", "", block).splitlines()]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.update(dict(pair.split("=", 1) for line in lines if line.startswith("export ") for pair in line.split()[1:]))
    for line in (line for line in lines if line.startswith("python -m")):
        argv = [a.replace("runs/", f"{tmp_path}/runs/", 1) if a.startswith("runs/") else a for a in shlex.split(line)]
        done = subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
