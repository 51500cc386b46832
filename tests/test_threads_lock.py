"""`--threads N` (issue 31): set, recorded, logged, results unchanged; the run directory's lock is asked
before the expensive checks."""
import json

import pytest
import torch

import bench.runs.run as run_module
from bench.cli.commands import main
from bench.core.environment import available_cores, default_threads
from bench.runs.rundir import RunDir


def args(voc_root, out, *extra):
    return ["run", "--methods", "support-copy", "--dataset", "pascal5i", "--data-root", str(voc_root),
            "--lists", str(voc_root / "lists"), "--splits", "1", "--shots", "1", "--seeds", "0", "--episodes", "8",
            "--out", str(out), "--quiet", *extra]


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_are_set_recorded_and_logged(voc_root, tmp_path, restore_threads):
    log = tmp_path / "run.log"
    before = torch.get_num_threads()
    assert main(args(voc_root, tmp_path / "one", "--threads", "1", "--log-file", str(log))) == 0
    assert torch.get_num_threads() == before  # restored for whoever called the run in-process
    assert main(args(voc_root, tmp_path / "two", "--threads", "2")) == 0
    env = json.loads((tmp_path / "one" / "config.json").read_text())["environment"]
    assert env["torch_threads"] == 1 and env["cores_available"] == available_cores()
    assert "evaluation uses 1 threads (--threads;" in log.read_text()
    assert json.loads((tmp_path / "two" / "config.json").read_text())["environment"]["torch_threads"] == 2
    # not in the identity: the same run, the same scores
    assert ((tmp_path / "one" / "episodes.csv").read_bytes() == (tmp_path / "two" / "episodes.csv").read_bytes())
    one, two = (json.loads((tmp_path / d / "config.json").read_text())["identity"] for d in ("one", "two"))
    assert one == two


def test_default_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads() == available_cores() >= 1


def test_threads_bounds(capsys):
    assert main(["run", "--methods", "support-copy", "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err


def test_a_held_lock_is_refused_before_any_image_is_read(voc_root, tmp_path, monkeypatch, capsys):
    out = tmp_path / "busy"

    def no_reading(*_args, **_kwargs):
        raise AssertionError("the images were read before the lock was asked")

    monkeypatch.setattr(run_module, "check_episode_data", no_reading)
    monkeypatch.setattr("bench.runs.session.training_dataset", no_reading)  # the session opens it
    with RunDir(out).lock():
        assert main(args(voc_root, out)) == 2  # a BenchError: one line
    assert "is in use by process" in capsys.readouterr().err
    assert not (out / "config.json").exists() and not (out / "manifests").exists()
