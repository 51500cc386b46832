"""Methods from outside the package: plugin files, installed plugins (entry points), the example plugin,
a `methods` folder that would hide ours, and training-free methods on the profile's backbone."""
import hashlib
import json
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

import methods.plugins as plugins
from bench.cli.commands import main
from bench.training.models import ModelProvider
from bench.training.options import TrainingOptions
from methods import METHODS, register_method
from methods.backbones import build_backbone
from methods.common import BackboneMethod
from tests.plugin_helpers import EXAMPLE, bench, clean_registry, write_plugin  # noqa: F401  (fixture)


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_a_plugin_file_registers_its_methods_once_per_process(clean_registry, tmp_path, capsys):
    path = write_plugin(tmp_path / "mine.py", "my-copy")
    assert main(["list", "--plugin", str(path)]) == 0
    assert "my-copy" in capsys.readouterr().out and "my-copy" in METHODS
    record = plugins.load_plugin_file(str(path))  # loaded again (a Ray worker's next task): nothing happens
    assert record["methods"] == ["my-copy"] and record["path"] == str(path.resolve())
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("body, says", [
    ("raise RuntimeError('boom')", "RuntimeError: boom"),
    ("import no_such_module_here", "ModuleNotFoundError"),
    ("from methods import register_method\nregister_method('support-copy')(lambda: None)",
     "method 'support-copy' is already registered"),
    ("x = 1", "registered no method"),
])
def test_a_broken_plugin_file_is_one_error_line_naming_it(clean_registry, tmp_path, capsys, body, says):
    path = write_plugin(tmp_path / "broken.py", "-", body)
    assert main(["list", "--plugin", str(path)]) == 2
    line = error_line(capsys)
    assert f"plugin {path}" in line and says in line


def test_a_plugin_that_is_no_python_file_is_refused(clean_registry, tmp_path, capsys):
    assert main(["run", "--methods", "support-copy", "--plugin", str(tmp_path / "missing.py")]) == 2
    assert "not a Python file" in error_line(capsys)


def test_plugins_load_before_method_names_are_checked(clean_registry, tmp_path, capsys):
    path = write_plugin(tmp_path / "mine.py", "my-trainee")
    assert main(["train", "--methods", "my-trainee", "--plugin", str(path), "--dataset", "synthetic-tiny"]) == 2
    assert "my-trainee has no parameters to train" in error_line(capsys)  # found: only then refused


def make_distribution(site, entry_points: str, module: str = ""):
    info = site / "fake_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[fss_bench.methods]\n" + entry_points)
    if module:
        (site / "fake_plugin_module.py").write_text(module)


def test_installed_plugins_register_through_entry_points(clean_registry, tmp_path, monkeypatch, capsys):
    make_distribution(tmp_path, "a-import = fake_plugin_module\nb-call = fake_plugin_module:more\n", (
        "from methods import register_method\nfrom methods.support_copy import SupportCopy\n"
        "register_method('ep-imported')(type('A', (SupportCopy,), {'__doc__': 'imported'}))\n"
        "def more():\n    register_method('ep-called')(type('B', (SupportCopy,), {'__doc__': 'called'}))\n"))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "ep-imported" in out and "ep-called" in out
    records = {r["entry_point"]: r for r in plugins.loaded_plugins()}
    assert records["b-call"]["methods"] == ["ep-called"] and records["b-call"]["distribution"] == "fake-plugin 1.0"


def test_a_broken_installed_plugin_is_one_error_line_naming_it(clean_registry, tmp_path, monkeypatch, capsys):
    make_distribution(tmp_path, "broken-one = no_such_plugin_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["list"]) == 2
    assert "plugin broken-one (no_such_plugin_module) failed to load" in error_line(capsys)


@pytest.mark.parametrize("shadow", ["methods/__init__.py", "methods.py"])
def test_a_methods_folder_in_the_working_directory_is_a_clear_error(tmp_path, shadow):
    (tmp_path / shadow).parent.mkdir(exist_ok=True)
    (tmp_path / shadow).write_text("")
    done = bench("list", cwd=tmp_path)
    assert done.returncode == 2
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: `import methods` finds") and "--plugin" in err[0], done.stderr


def test_training_free_methods_get_the_profiles_backbone(clean_registry):
    @register_method("free-on-backbone", profiles={"tiny": {"options": {"scale": 3}}})
    class Free(BackboneMethod):
        """Training-free, on the frozen backbone."""

    dataset = SimpleNamespace(name="synthetic-tiny")
    models = ModelProvider(dataset, TrainingOptions(profile="tiny", backbone_weights="/w/synthnet.pt"))
    assert models.untrained_options("free-on-backbone") == {"scale": 3, "backbone": "synthnet",
                                                            "backbone_weights": "/w/synthnet.pt"}
    assert models.untrained_options("support-copy") == {}  # takes no backbone: built as before
    assert [n for n in METHODS.names() if not METHODS.card(n).trainable and METHODS.card(n).takes_backbone] == [
        "free-on-backbone"]


def test_the_example_plugin_runs_on_synthetic_tiny(cache_env, tmp_path):
    torch.manual_seed(0)
    torch.save(build_backbone("synthnet").state_dict(), tmp_path / "synthnet.pt")  # no pretraining in the test
    out = tmp_path / "run"
    done = bench("run", "--plugin", "examples/plugin_method.py", "--methods", "support-copy", "example-prototypes",
                 "--dataset", "synthetic-tiny", "--profile", "tiny", "--folds", "0", "--seeds", "0", "--shots", "1",
                 "--episodes", "20", "--backbone-weights", tmp_path / "synthnet.pt", "--out", out, "--quiet")
    assert done.returncode == 0, done.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["splits"] == [1] and config["config"]["plugin"] == ["examples/plugin_method.py"]
    [record] = config["environment"]["plugins"]
    assert record["path"] == str(EXAMPLE) and record["methods"] == ["example-prototypes"]
    assert record["sha256"] == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    episodes = pd.read_csv(out / "episodes.csv")
    assert (episodes.method == "example-prototypes").sum() == 20
    meta = json.loads((out / "episodes" / "example-prototypes__split1_shot1_seed0.json").read_text())
    assert meta["options"]["backbone"] == "synthnet" and meta["options"]["scale"] == 10.0  # the tiny profile's
    assert meta["options"]["backbone_identity"]["sha256"] == hashlib.sha256((tmp_path / "synthnet.pt").read_bytes()).hexdigest()
    table = [line.split()[0] for line in done.stdout.splitlines() if line.startswith(("support-copy", "example-"))]
    assert table[:2] == ["support-copy", "example-prototypes"]  # the --methods order, not alphabetical
