"""`--executor ray`: every independent cell of a grid is a Ray task, gathered into the same files.

Training cells (method x split) run first, as tasks that the evaluation cells of their split wait on;
evaluation cells (method x split x shot x seed) each write their files into the run directory through
`RunDir` (atomically, so a repeated attempt overwrites), exactly as the local executor does (`base.py`), and the
driver then writes `episodes.csv` and the summaries. Workers read the dataset, the checkpoints and the
run directory by path: on a cluster, `--out` and `--checkpoints` (and the data) must be on a shared
filesystem mounted at the same path on every node.

Faults: a task whose worker dies is retried by Ray (`max_retries`); every attempt leaves a marker file
in `<out>/.attempts/` (or `<checkpoints>/.attempts/` for `bench train`), from which the progress bar
counts retries. A `TaskHook` given by the caller runs in the workers at fixed points of each attempt;
the tests use one to kill workers mid-write and mid-training (`tests/ray_faults.py`).

Plugins: every task loads the installed plugins and the run's `--plugin` files (by absolute path, so on a
cluster they too must be on the shared filesystem) before it looks a method up.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from bench.core.errors import BenchError
from bench.core.log import log
from bench.core.progress import GridProgress
from bench.runs.cells import Cell
from bench.runs.executors.base import (Executor, Pairs, TaskHook, begin_attempt, count_retries, evaluate_cell,
                                       missing_checkpoints, pairs_to_train, train_key, train_pair, worker_payload)
from bench.runs.rundir import RunDir
from bench.runs.session import Session
from methods import MethodError

INSTALL_HINT = 'pip install "fss-bench[ray]"'
MAX_RETRIES = 3  # attempts after a worker died (or an OSError, e.g. a shared filesystem hiccup)
PASSED_ENV = ("FSS_BENCH_CACHE",)  # given to workers of a cluster joined with --address
def require_ray(address: Optional[str] = None, timeout: float = 10.0):
    """The ray module, or a one-line BenchError saying how to install it; with `address`, the cluster
    there must answer within `timeout` seconds (Ray itself would retry for many minutes)."""
    try:
        import ray
    except ImportError:
        raise BenchError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    if address:
        check_address(address, timeout)
    return ray


def check_address(address: str, timeout: float) -> None:
    """A TCP connection to `address` (HOST:PORT or ray://HOST:PORT; `auto` is left to Ray) within `timeout`
    seconds, else a one-line BenchError."""
    if address in ("auto", "local"):
        return
    target = address.split("://", 1)[1] if "://" in address else address
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BenchError(f"--address {address!r} is not HOST:PORT (or ray://HOST:PORT, or auto)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, socket.timeout) else (exc.strerror or str(exc))
        raise BenchError(f"cannot reach the Ray cluster at {address} within {timeout:g} s ({reason}); is it "
                         "running? (--connect-timeout sets the wait)") from None


@contextmanager
def cluster(address: Optional[str], quiet: bool = False) -> Iterator:
    """Connect to the cluster at `address`, or start a local one (a driver already connected is reused)."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    level = logging.WARNING if quiet else logging.INFO
    if address:
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        ray.init(address=address, runtime_env={"env_vars": env} if env else None, logging_level=level,
                 log_to_driver=not quiet)
    else:  # workers of a local cluster inherit this process's environment
        ray.init(address="local", include_dashboard=False, logging_level=level, log_to_driver=not quiet)
    try:
        yield ray
    finally:
        ray.shutdown()


@dataclass
class Task:
    """One Ray task: `func(*args, key=, attempt=, hook=)` in a worker, after the task `after` (a key) if given."""

    key: str
    func: Callable
    args: Tuple
    after: Optional[str] = None


def run_tasks(ray, cells: List[Task], markers: Path, cpus: int, gpus: float, desc: str, quiet: bool,
              hook: TaskHook) -> Dict:
    """Run the tasks with one progress bar; their results by key, or a BenchError if any failed."""
    shutil.rmtree(markers, ignore_errors=True)
    task = _remote(ray).options(num_cpus=cpus, num_gpus=gpus, max_retries=MAX_RETRIES, retry_exceptions=[OSError])
    refs: Dict[str, object] = {}
    for cell in cells:
        deps = [refs[cell.after]] if cell.after in refs else []
        refs[cell.key] = task.remote(cell.func, cell.args, cell.key, str(markers), cpus, hook, *deps)
    keys = {ref: key for key, ref in refs.items()}
    results, failures = {}, {}
    progress = GridProgress(len(cells), desc, quiet)
    pending = list(keys)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in ready:
                try:
                    results[keys[ref]] = ray.get(ref)
                    progress.update(done=1)
                    log(f"{desc} {progress.done + progress.failed}/{len(cells)}: {keys[ref]} finished")
                except ray.exceptions.RayError as exc:
                    failures[keys[ref]] = exc
                    progress.update(failed=1)
                    log(f"{desc} {progress.done + progress.failed}/{len(cells)}: {keys[ref]} failed")
            progress.update(retries=count_retries(markers))
    finally:
        progress.close()
    shutil.rmtree(markers, ignore_errors=True)
    if failures:
        raise BenchError(describe_failures(ray, failures, len(cells)))
    return results


def describe_failures(ray, failures: Dict, total: int) -> str:
    """One line naming the first failed cell and why; the traceback of an error in the code goes to stderr."""
    key, exc = next(iter(failures.items()))
    raised = isinstance(exc, ray.exceptions.RayTaskError)
    cause = exc.cause if raised else exc
    expected = isinstance(cause, (BenchError, MethodError))
    if raised and not expected:
        print(exc, file=sys.stderr)
    text = str(cause) if expected else f"{type(cause).__name__}: {cause}"
    reason = (text.strip().splitlines() or [type(cause).__name__])[0]
    return (f"{len(failures)} of {total} cells failed ({key}: {reason}); finished cells are saved, "
            "re-run the same command to retry the others")


def cluster_gpus(ray, device: str) -> float:
    """GPUs per task: one where the cluster has GPUs and the device allows it."""
    have = ray.cluster_resources().get("GPU", 0)
    if device.startswith("cuda") and not have:
        raise BenchError(f"--device {device} was asked for but the Ray cluster has no GPU")
    return 1 if have and device != "cpu" else 0


class RayExecutor(Executor):
    """`--executor ray`: every training pair and evaluation cell is a Ray task."""

    name = "ray"

    def check(self, train_seeds: int, command: str) -> None:
        require_ray(self.runtime.address, self.runtime.connect_timeout)
        super().check(train_seeds, command)

    def describe_threads(self, threads: int) -> str:
        return f"evaluation uses {self.runtime.cpus_per_task} threads per Ray task (--cpus-per-task)"

    def train_grid(self, session: Session, pairs: Pairs, hook: Optional[TaskHook] = None) -> None:
        runtime = session.config.runtime
        missing = missing_checkpoints(session, pairs)
        if not missing:
            return
        tasks = train_tasks(worker_payload(session), missing)
        with cluster(runtime.address, runtime.quiet) as ray:
            run_tasks(ray, tasks, session.models.root / ".attempts", runtime.cpus_per_task,
                      cluster_gpus(ray, runtime.device), "training cells", runtime.quiet, hook or TaskHook())

    def evaluate_grid(self, session: Session, run_dir: RunDir, manifest_hashes: Dict[str, str], todo: List[Cell],
                      hook: Optional[TaskHook] = None) -> None:
        """Missing checkpoints, then the pending cells, as Ray tasks (a cell after its split's training)."""
        if not todo:
            return
        runtime = session.config.runtime
        payload = worker_payload(session)
        trains = train_tasks(payload, pairs_to_train(session, todo))
        with cluster(runtime.address, runtime.quiet) as ray:
            waits = {task.key.split("__", 1)[1]: task.key for task in trains}
            tasks = trains + [Task(cell.key, _evaluate_task, (payload, cell.key, manifest_hashes[cell.manifest],
                                                              session.checkpoint_id(cell)),
                                   after=waits.get(f"{cell.method}__split{cell.split}")) for cell in todo]
            run_tasks(ray, tasks, run_dir.path / ".attempts", runtime.cpus_per_task, cluster_gpus(ray, runtime.device),
                      "cells", runtime.quiet, hook or TaskHook())


EXECUTOR = RayExecutor


def train_tasks(payload: str, pairs: Pairs) -> List[Task]:
    """Tasks that train the (method, split) pairs (`payload`: the session's, `worker_payload`)."""
    return [Task(train_key(name, split), _train_task, (payload, name, split)) for name, split in pairs]


# ---- in the workers ----

@lru_cache(maxsize=None)
def _remote(ray):
    return ray.remote(_task)


def _task(func: Callable, args: Tuple, key: str, markers: str, cpus: int, hook: TaskHook, *deps):
    """One attempt of a task in a worker: number it, call the hook, run it with `cpus` torch threads."""
    attempt = begin_attempt(Path(markers), key, cpus, hook)
    return func(*args, key=key, attempt=attempt, hook=hook)


def _train_task(payload: str, name: str, split: int, key: str, attempt: int, hook: TaskHook) -> str:
    return train_pair(payload, name, split, key, attempt, hook)


def _evaluate_task(payload: str, cell_key: str, manifest_sha256: str, checkpoint_id: Optional[str], key: str,
                   attempt: int, hook: TaskHook) -> Dict:
    return evaluate_cell(payload, cell_key, manifest_sha256, checkpoint_id, "ray", attempt, hook)
