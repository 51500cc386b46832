"""`--executor ray` on a local 2-CPU Ray cluster: same files as the local executor, a killed worker's cell
retried, an interrupted driver resumed; and the one-line hint when Ray is missing."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.cli.commands import main
from methods.backbones import build_backbone
from tests.plugin_helpers import EXAMPLE, clean_registry  # noqa: F401  (fixture)
from tests.ray_faults import Faults, main_with

ROOT = Path(__file__).resolve().parent.parent
RESULT_FILES = ("episodes.csv", "summary.csv", "class_iou.csv")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A private dataset cache and a random synthnet backbone file (no pretraining)."""
    root = tmp_path_factory.mktemp("ray")
    patch = pytest.MonkeyPatch()
    patch.setenv("FSS_BENCH_CACHE", str(root / "cache"))
    torch.manual_seed(0)
    torch.save(build_backbone("synthnet").state_dict(), root / "synthnet.pt")
    yield root
    patch.undo()


@pytest.fixture(scope="module")
def ray_cluster(env):
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def grid(env, out, checkpoints, *extra, quiet=True):
    return ["run", "--methods", "support-copy", "canet", "--dataset", "synthetic-tiny", "--profile", "tiny",
            "--backbone-weights", str(env / "synthnet.pt"), "--splits", "1", "2", "--shots", "1", "5", "--seeds", "0",
            "--episodes", "12", "--checkpoints", str(checkpoints), "--out", str(out), *extra] + (["--quiet"] * quiet)


@pytest.fixture(scope="module")
def local_run(env):
    """The grid with the local executor, trained and evaluated with 1 torch thread, as each Ray task is
    (floating-point reductions in training depend on the thread count)."""
    assert main(grid(env, env / "local", env / "ck-local", "--threads", "1")) == 0
    return env / "local"


def cell_metas(out):
    return {p.name: p.read_bytes() for p in sorted((out / "episodes").glob("*.json"))}


def assert_same_results(out, reference):
    for name in RESULT_FILES:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    episodes = pd.read_csv(out / "episodes.csv")
    assert not episodes.duplicated(["method", "split", "shot", "seed", "episode"]).any()
    assert sorted(p.name for p in (out / "episodes").iterdir()) == sorted(p.name for p in (reference / "episodes").iterdir())
    assert not list(out.rglob("*.tmp")) and not (out / ".attempts").exists()


def same_checkpoints(a, b):
    files = sorted(p.relative_to(a) for p in a.rglob("best.pt"))
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("best.pt"))
    for rel in files:
        left, right = torch.load(a / rel, weights_only=False)["model"], torch.load(b / rel, weights_only=False)["model"]
        assert all(torch.equal(left[k], right[k]) for k in left), rel


def assert_like_local(out, checkpoints, local_out, local_checkpoints, executor):
    """Files and checkpoints as the local executor's; the cells record their executor and first attempt."""
    assert_same_results(out, local_out)
    same_checkpoints(checkpoints, local_checkpoints)
    meta = json.loads((out / "episodes" / "canet__split1_shot1_seed0.json").read_text())
    assert meta["executor"] == executor and meta["attempt"] == 1


def test_ray_run_trains_and_evaluates_like_the_local_executor(env, ray_cluster, local_run, tmp_path):
    assert main(grid(env, tmp_path / "ray", tmp_path / "ck", "--executor", "ray")) == 0
    assert_like_local(tmp_path / "ray", tmp_path / "ck", local_run, env / "ck-local", "ray")


def test_killed_worker_is_retried_without_lost_or_duplicated_rows(env, ray_cluster, local_run, tmp_path, capsys):
    killed = ["canet__split2_shot5_seed0", "train__canet__split1"]  # mid-write, and after the first epoch
    assert main_with(Faults(killed), grid(env, tmp_path / "ray", tmp_path / "ck", "--executor", "ray", quiet=False)) == 0
    assert "cells: 10/10 done, 0 failed, 2 retried attempts" in capsys.readouterr().err
    assert_same_results(tmp_path / "ray", local_run)
    meta = json.loads((tmp_path / "ray" / "episodes" / f"{killed[0]}.json").read_text())
    assert meta["attempt"] == 2 and meta["rows"] == 12
    same_checkpoints(tmp_path / "ck", env / "ck-local")


def test_a_cell_that_keeps_failing_is_reported_in_one_line(env, ray_cluster, local_run, tmp_path, monkeypatch,
                                                           capsys):
    monkeypatch.setattr("bench.runs.executors.ray.MAX_RETRIES", 0)
    faults = Faults(["support-copy__split1_shot5_seed0"])
    assert main_with(faults, grid(env, tmp_path / "ray", env / "ck-local", "--executor", "ray", "--no-train")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "1 of 8 cells failed (support-copy__split1_shot5_seed0: " in err
    assert len(cell_metas(tmp_path / "ray")) == 7  # the others are kept
    assert main(grid(env, tmp_path / "ray", env / "ck-local", "--executor", "ray", "--no-train")) == 0
    assert_same_results(tmp_path / "ray", local_run)


def test_interrupted_driver_resumes_from_finished_cells(env, ray_cluster, local_run, tmp_path):
    out = tmp_path / "ray"
    command = [sys.executable, "-m", "tests.ray_faults", "1.0",
               *grid(env, out, env / "ck-local", "--executor", "ray", "--no-train")]  # every cell takes 1 s more
    # a shell that starts background jobs (`cmd &`) ignores SIGINT in them, and Python then keeps ignoring it:
    # the driver gets the default disposition back so that it sees the interrupt wherever the tests run
    driver = subprocess.Popen(command, cwd=ROOT, env=os.environ,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while driver.poll() is None and len(cell_metas(out)) < 2 and time.time() < deadline:
        time.sleep(0.1)
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 130, err
    finished = cell_metas(out)
    assert 2 <= len(finished) < 8
    assert main(grid(env, out, env / "ck-local", "--executor", "ray", "--no-train")) == 0
    assert_same_results(out, local_run)
    after = cell_metas(out)
    assert all(after[name] == data for name, data in finished.items())  # kept, not recomputed


def test_ray_workers_load_the_runs_plugin_files(env, ray_cluster, clean_registry, tmp_path):
    def plugged(out, *extra):
        return ["run", "--plugin", str(EXAMPLE), "--methods", "example-prototypes", "--dataset", "synthetic-tiny",
                "--profile", "tiny", "--backbone-weights", str(env / "synthnet.pt"), "--splits", "1", "--shots", "1",
                "--seeds", "0", "--episodes", "12", "--out", str(out), "--quiet", *extra]

    assert main(plugged(tmp_path / "ray", "--executor", "ray")) == 0
    meta = json.loads((tmp_path / "ray" / "episodes" / "example-prototypes__split1_shot1_seed0.json").read_text())
    assert meta["executor"] == "ray"
    assert main(plugged(tmp_path / "local")) == 0
    assert (tmp_path / "ray" / "episodes.csv").read_bytes() == (tmp_path / "local" / "episodes.csv").read_bytes()


def test_train_command_with_ray_gives_the_local_checkpoints(env, ray_cluster, local_run, tmp_path, capsys):
    args = ["train", "--methods", "canet", "--dataset", "synthetic-tiny", "--profile", "tiny", "--splits", "1", "2",
            "--backbone-weights", str(env / "synthnet.pt"), "--checkpoints", str(tmp_path), "--quiet",
            "--executor", "ray"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "canet split 1:" in printed and "canet split 2:" in printed
    same_checkpoints(tmp_path, env / "ck-local")
    for steps in tmp_path.rglob("train_steps.csv"):
        reference = env / "ck-local" / steps.relative_to(tmp_path)
        assert steps.read_bytes() == reference.read_bytes()


@pytest.mark.parametrize("command", ["run", "train"])
def test_missing_ray_says_how_to_install_it(monkeypatch, tmp_path, capsys, command):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    args = [command, "--methods", "canet", "--dataset", "synthetic-tiny", "--executor", "ray",
            "--checkpoints", str(tmp_path / "ck")] + (["--out", str(tmp_path / "out")] if command == "run" else [])
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install "fss-bench[ray]"' in err
    assert not (tmp_path / "out").exists()
