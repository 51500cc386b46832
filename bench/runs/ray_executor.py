"""`--executor ray`: every independent cell of a grid is a Ray task, gathered into the same files.

Training cells (method x split) run first, as tasks that the evaluation cells of their split wait on;
evaluation cells (method x split x shot x seed) each write their files into the run directory through
`RunDir` (atomically, so a repeated attempt overwrites), exactly as the local executor does, and the
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

import json
import logging
import os
import shutil
import socket
import sys
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch

from bench.core.environment import resolve_device
from bench.core.errors import BenchError
from bench.core.log import log
from bench.core.progress import GridProgress
from bench.data.catalog import open_dataset
from bench.runs.cells import Cell
from bench.runs.config import RunConfig
from bench.runs.rundir import RunDir
from bench.runs.runner import CellRunner
from bench.training.models import ModelProvider, is_trainable, training_dataset
from bench.training.published import PublishedModels, PublishedOptions
from bench.training.train import train
from methods import MethodError
from methods.plugins import load_plugins

INSTALL_HINT = 'pip install "fss-bench[ray]"'
MAX_RETRIES = 3  # attempts after a worker died (or an OSError, e.g. a shared filesystem hiccup)
PASSED_ENV = ("FSS_BENCH_CACHE",)  # given to workers of a cluster joined with --address


class TaskHook:
    """Called in the worker at fixed points of every task attempt; the default does nothing.

    A hook is pickled with each task, so it must be picklable (the tests register theirs by value).
    """

    def start(self, key: str, attempt: int) -> None:
        """Before the task's work."""

    def before_write(self, key: str, attempt: int, csv_path: Path, rows) -> None:
        """An evaluation task's rows exist, its files are not written yet."""

    def after_epoch(self, key: str, attempt: int, epoch: int) -> None:
        """A training task saved this epoch."""


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


def count_retries(markers: Path) -> int:
    """Attempts beyond each cell's first, from the marker files `<key>.<attempt>`."""
    names = [p.name for p in markers.iterdir()] if markers.is_dir() else []
    return len(names) - len({n.rsplit(".", 1)[0] for n in names})


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


def dataset_spec(dataset, data_root: Optional[str], lists: Optional[str]) -> Dict:
    """How a worker opens the driver's dataset: absolute paths (a synthetic one where the driver found it)."""
    if data_root is None and dataset.name.startswith("synthetic"):
        data_root = str(dataset.root)
    return {"name": dataset.name, "data_root": _absolute(data_root), "lists": _absolute(lists),
            "fold_convention": getattr(dataset, "fold_convention", None)}


def _absolute(path: Optional[str]) -> Optional[str]:
    return str(Path(path).absolute()) if path else None


def plugin_paths(plugins: Optional[List[str]]) -> Optional[List[str]]:
    """The --plugin files as absolute paths, for the workers."""
    return [_absolute(p) for p in plugins] if plugins else None


def train_tasks(models: ModelProvider, pairs, data_root: Optional[str], lists: Optional[str], device: str,
                plugins: Optional[List[str]] = None) -> List[Task]:
    """Tasks for the (method, split) pairs whose checkpoint is missing or unfinished."""
    spec = dataset_spec(models.dataset, data_root, lists)
    return [Task(f"train__{name}__split{split}", _train_task,
                 (spec, models.request(name, split), str(models.root.absolute()), device, plugin_paths(plugins)))
            for name, split in dict.fromkeys(pairs) if models.checkpoint_sha256(name, split) is None]


def train_grid(models: ModelProvider, pairs: List[Tuple[str, int]], data_root: Optional[str], lists: Optional[str],
               device: str, address: Optional[str], cpus: int, quiet: bool, hook: Optional[TaskHook] = None,
               plugins: Optional[List[str]] = None) -> None:
    """`bench train --executor ray`: train the missing checkpoints of (method, split) pairs as Ray tasks."""
    tasks = train_tasks(models, pairs, data_root, lists, device, plugins)
    if not tasks:
        return
    with cluster(address, quiet) as ray:
        run_tasks(ray, tasks, models.root / ".attempts", cpus, cluster_gpus(ray, device), "training cells", quiet,
                  hook or TaskHook())


def evaluate_grid(config: RunConfig, run_dir: RunDir, manifest_hashes: Dict[str, str], models: ModelProvider,
                  todo: List[Cell], hook: Optional[TaskHook] = None) -> None:
    """`bench run --executor ray`: missing checkpoints, then the pending cells, as Ray tasks."""
    if not todo:
        return
    runtime, training = config.runtime, config.training
    pairs = [(cell.method, cell.split) for cell in todo if is_trainable(cell.method)]
    if training.no_train:
        missing = [p for p in dict.fromkeys(pairs) if models.checkpoint_sha256(*p) is None]
        if missing:
            raise BenchError(f"no trained checkpoint for {missing[0][0]} split {missing[0][1]} under "
                             f"{models.root} (run without --no-train to train it)")
    cross = models.dataset.name != config.dataset  # trained on another dataset (cross-domain)
    spec = ({"data_root": _absolute(config.data_root), "lists": _absolute(config.lists)} if cross
            else dataset_spec(models.dataset, config.data_root, config.lists))
    worker = replace(config, data_root=spec["data_root"], lists=spec["lists"], plugin=plugin_paths(config.plugin),
                     runtime=replace(runtime, quiet=True, out=str(Path(runtime.out).absolute())),
                     training=replace(training, no_train=True, checkpoints=str(models.root.absolute()),
                                      train_data_root=_absolute(training.train_data_root),
                                      backbone_weights=_absolute(models.backbone_options()["backbone_weights"])),
                     published=PublishedOptions(weights=models.published.arguments() or None)
                     if models.published is not None else PublishedOptions())
    payload = json.dumps(worker.to_dict(), sort_keys=True)
    with cluster(runtime.address, runtime.quiet) as ray:
        trains = train_tasks(models, pairs, training.train_data_root if cross else config.data_root,
                             None if cross else config.lists, runtime.device, config.plugin)
        waits = {task.key.split("__", 1)[1]: task.key for task in trains}
        tasks = trains + [Task(cell.key, _evaluate_task, (payload, cell, manifest_hashes[cell.manifest]),
                               after=waits.get(f"{cell.method}__split{cell.split}")) for cell in todo]
        run_tasks(ray, tasks, run_dir.path / ".attempts", runtime.cpus_per_task, cluster_gpus(ray, runtime.device),
                  "cells", runtime.quiet, hook or TaskHook())


# ---- in the workers ----

@lru_cache(maxsize=None)
def _remote(ray):
    return ray.remote(_task)


def _task(func: Callable, args: Tuple, key: str, markers: str, cpus: int, hook: TaskHook, *deps):
    """One attempt of a task in a worker: number it, call the hook, run it with `cpus` torch threads."""
    torch.set_num_threads(cpus)
    attempt = _attempt(Path(markers), key)
    hook.start(key, attempt)
    return func(*args, key=key, attempt=attempt, hook=hook)


def _attempt(markers: Path, key: str) -> int:
    markers.mkdir(parents=True, exist_ok=True)
    attempt = 1
    while True:
        try:
            os.close(os.open(markers / f"{key}.{attempt}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return attempt
        except FileExistsError:
            attempt += 1


def _train_task(spec: Dict, request, root: str, device: str, plugins: Optional[List[str]], key: str, attempt: int,
                hook: TaskHook) -> str:
    load_plugins(plugins)
    return str(train(open_dataset(**spec), request, Path(root), resolve_device(device), quiet=True,
                     after_epoch=lambda epoch: hook.after_epoch(key, attempt, epoch)))


def _evaluate_task(payload: str, cell: Cell, manifest_sha256: str, key: str, attempt: int, hook: TaskHook) -> Dict:
    runner = _runner(payload)
    return runner.evaluate(RunDir(Path(runner.config.runtime.out)), cell, manifest_sha256, quiet=True,
                           extra_meta={"executor": "ray", "attempt": attempt},
                           before_write=lambda path, rows: hook.before_write(key, attempt, path, rows))


@lru_cache(maxsize=1)
def _runner(payload: str) -> CellRunner:
    """This worker's runner for a run (decoded images, feature cache, loaded model), built once per run."""
    config = RunConfig.from_dict(json.loads(payload))
    load_plugins(config.plugin)
    dataset = open_dataset(config.dataset, config.data_root, config.lists, fold_convention=config.fold_convention)
    device = resolve_device(config.runtime.device)
    published = None
    if config.published.used:  # the driver's chosen checkpoints, as TAG=FILE with absolute paths
        published = PublishedModels(config.published, config.dataset)
        published.resolve(config.methods, config.splits, config.input_size)
    models = ModelProvider(training_dataset(config.training, dataset, config.methods), config.training, device=device,
                           quiet=True, published=published)
    return CellRunner(config, dataset, models, device)
