"""The README's first two commands are the contract that CI runs."""
import re
from pathlib import Path

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
