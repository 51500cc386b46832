"""`--train-jobs`: the local executor's missing trainings in worker processes, several at once; a checkpoint equals
the one trained in the driver with the same threads, and so do the run's counts."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.cli.commands import main
from bench.runs.executors import parallel
from bench.training.checkpoints import load_tensors


def run(tmp_path, name, threads, jobs):
    argv = ["run", "--methods", "panet", "support-copy", "--dataset", "synthetic-tiny", "--profile", "tiny",
            "--splits", "1", "2", "--shots", "1", "--seeds", "0", "--episodes", "6", "--threads", str(threads),
            "--train-jobs", str(jobs), "--checkpoints", str(tmp_path / f"ckpt-{name}"), "--out", str(tmp_path / name),
            "--quiet"]
    assert main(argv) == 0
    models = {p.parent.name: load_tensors(p)["model"] for p in (tmp_path / f"ckpt-{name}").rglob("best.pt")}
    episodes = pd.read_csv(tmp_path / name / "episodes.csv").sort_values(["method", "split", "shot", "seed", "episode"])
    return models, episodes.reset_index(drop=True)


def test_workers_train_what_the_driver_would(cache_env, tmp_path):
    driver_models, driver_rows = run(tmp_path, "driver", threads=1, jobs=1)
    worker_models, worker_rows = run(tmp_path, "workers", threads=2, jobs=2)  # two workers of one thread each
    assert sorted(driver_models) == sorted(worker_models) and len(driver_models) == 2
    for folder, state in driver_models.items():
        assert all(torch.equal(state[k], worker_models[folder][k]) for k in state)
    pd.testing.assert_frame_equal(driver_rows, worker_rows)


def test_auto_runs_only_long_trainings_in_parallel(cache_env, monkeypatch):
    from bench.cli.arguments import build
    from bench.cli.commands import build_parser
    from bench.runs.config import RunConfig
    from bench.runs.session import open_session

    config = build(RunConfig, build_parser().parse_args(
        ["run", "--methods", "panet", "--dataset", "synthetic-tiny", "--profile", "tiny", "--quiet"]))
    session = open_session(config, "cpu", quiet=True)
    two = [("panet", 1, None), ("panet", 2, None)]
    assert parallel.training_steps(session, two[0]) == 2 * (16 // 4)  # the tiny profile: short
    assert parallel.training_jobs(session, two, 0, threads=2) == 1
    assert parallel.training_jobs(session, two, 3, threads=2) == 2  # asked for, at most one per training
    monkeypatch.setattr(parallel, "LONG_TRAINING_STEPS", 8)
    assert parallel.training_jobs(session, two, 0, threads=2) == 2
    assert parallel.training_jobs(session, two[:1], 0, threads=2) == 1


@pytest.mark.slow
def test_bench_train_trains_in_workers_too(cache_env, tmp_path):
    argv = ["train", "--methods", "panet", "--dataset", "synthetic-tiny", "--profile", "tiny", "--splits", "1", "2",
            "--threads", "2", "--train-jobs", "2", "--checkpoints", str(tmp_path / "ckpt"), "--quiet"]
    assert main(argv) == 0
    assert len(list((tmp_path / "ckpt").rglob("best.json"))) == 2


def children_of(pid):
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")
def test_sigterm_stops_the_training_workers(cache_env, tmp_path):
    """The driver's SIGTERM ends its worker processes too: no training goes on orphaned."""
    log = tmp_path / "run.log"
    argv = [sys.executable, "-m", "bench", "run", "--methods", "panet", "--dataset", "synthetic-tiny", "--profile",
            "tiny", "--epochs", "500", "--splits", "1", "2", "--shots", "1", "--seeds", "0", "--episodes", "4",
            "--threads", "2", "--train-jobs", "2", "--checkpoints", str(tmp_path / "ckpt"), "--out",
            str(tmp_path / "run"), "--quiet", "--log-file", str(log)]
    driver = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, workers = time.time() + 120, set()
    while time.time() < deadline and "epoch 1/500 saved" not in (log.read_text() if log.is_file() else ""):
        time.sleep(0.5)
    workers = {p for p in children_of(driver.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()}
    assert len(workers) >= 2, "the two trainings did not start in worker processes"  # and the queue's manager
    driver.send_signal(signal.SIGTERM)
    assert driver.wait(60) == 143
    time.sleep(2)
    assert not [p for p in workers if Path(f"/proc/{p}").exists()
                and "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2]]
