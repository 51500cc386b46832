"""The executor interface, and what the executors that run work outside this process share.

An `Executor` runs the two grids of a command: `train_grid` (bench train: the (method, split) pairs whose
checkpoint is missing) and `evaluate_grid` (bench run: the pending cells, after the checkpoints they need).
Every implementation takes the same arguments: the command's `Session` (configuration, dataset, device,
models, identities), the run directory, the manifests' hashes, the cells to do, and an optional `TaskHook`.

Executors whose work runs in other processes (Ray tasks, Slurm jobs) send each worker only module-level
functions and a JSON payload: the run's configuration with absolute paths (`worker_payload`), a cell's key,
hashes. A worker opens its own session from the payload (`worker_session`, once per process) and writes
into the run directory through `CellRunner` and `RunDir`, as the local executor does; every attempt of a
task leaves a marker `<key>.<attempt>` in an `.attempts/` folder, from which progress counts retries.
"""
from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Dict, List, Optional, Tuple

import torch

from bench.core.errors import BenchError
from bench.runs.cells import Cell
from bench.runs.config import RunConfig, RuntimeOptions
from bench.runs.rundir import RunDir
from bench.runs.runner import CellRunner
from bench.runs.session import Session, open_session
from bench.training.models import is_trainable
from bench.training.published import PublishedOptions
from bench.training.train import train
from methods.plugins import load_plugins

Pairs = List[Tuple[str, int]]


class TaskHook:
    """Called in the worker at fixed points of every task attempt (Ray, Slurm); the default does nothing.

    A hook is pickled with each task, so it must be picklable (the tests register theirs by value).
    """

    def start(self, key: str, attempt: int) -> None:
        """Before the task's work."""

    def before_write(self, key: str, attempt: int, csv_path: Path, rows) -> None:
        """An evaluation task's rows exist, its files are not written yet."""

    def after_epoch(self, key: str, attempt: int, epoch: int) -> None:
        """A training task saved this epoch."""


class Executor(ABC):
    """Runs a command's grids; registered by name in `bench.runs.executors.EXECUTORS`."""

    name: ClassVar[str] = ""
    #: the work runs in this process: the driver resolves the device and sets the threads (--threads)
    in_process: ClassVar[bool] = False

    def __init__(self, runtime: RuntimeOptions):
        self.runtime = runtime

    def check(self, train_seeds: int, command: str) -> None:
        """Before anything is opened or written: optional dependencies, the cluster, the options
        (`train_seeds`: how many training seeds the command has; `command`: "run" or "train")."""
        if self.runtime.cpus_per_task < 1:
            raise BenchError(f"--cpus-per-task must be >= 1, got {self.runtime.cpus_per_task}")
        if train_seeds > 1:
            verb = "evaluates" if command == "run" else "trains"
            local = ", or run several seeds with the local executor" if command == "run" else ""
            raise BenchError(f"--executor {self.name} {verb} one training seed: give --train-seeds one seed at a "
                             f"time{local}")

    def describe_threads(self, threads: int) -> str:
        """The log line of the threads the work uses."""
        return f"evaluation uses {self.runtime.cpus_per_task} threads per {self.name} task (--cpus-per-task)"

    @abstractmethod
    def train_grid(self, session: Session, pairs: Pairs, hook: Optional[TaskHook] = None) -> None:
        """`bench train`: train the missing checkpoints of the (method, split) pairs."""

    @abstractmethod
    def evaluate_grid(self, session: Session, run_dir: RunDir, manifest_hashes: Dict[str, str], todo: List[Cell],
                      hook: Optional[TaskHook] = None) -> None:
        """`bench run`: the checkpoints the pending cells `todo` need, then the cells, written into `run_dir`."""


# ---- for the executors whose tasks run in other processes ----

def _absolute(path: Optional[str]) -> Optional[str]:
    return str(Path(path).absolute()) if path else None


def dataset_spec(dataset, data_root: Optional[str], lists: Optional[str]) -> Dict:
    """How a worker opens the driver's dataset: absolute paths (a synthetic one where the driver found it)."""
    if data_root is None and dataset.name.startswith("synthetic"):
        data_root = str(dataset.root)
    return {"name": dataset.name, "data_root": _absolute(data_root), "lists": _absolute(lists),
            "fold_convention": getattr(dataset, "fold_convention", None)}


def plugin_paths(plugins: Optional[List[str]]) -> Optional[List[str]]:
    """The --plugin files as absolute paths, for the workers."""
    return [_absolute(p) for p in plugins] if plugins else None


def worker_payload(session: Session) -> str:
    """The session's configuration as a worker opens it, JSON: absolute paths, the driver's resolved backbone
    weights and published checkpoints, quiet, no training but by a training task."""
    config, models = session.config, session.models
    runtime, training = config.runtime, config.training
    cross = models.dataset.name != config.dataset  # trained on another dataset (cross-domain)
    spec = ({"data_root": _absolute(config.data_root), "lists": _absolute(config.lists)} if cross
            else dataset_spec(models.dataset, config.data_root, config.lists))
    worker = replace(config, data_root=spec["data_root"], lists=spec["lists"], plugin=plugin_paths(config.plugin),
                     runtime=replace(runtime, quiet=True, out=_absolute(runtime.out)),
                     training=replace(training, no_train=True, checkpoints=str(models.root.absolute()),
                                      train_data_root=_absolute(training.train_data_root),
                                      backbone_weights=_absolute(models.backbone_options()["backbone_weights"])),
                     published=PublishedOptions(weights=models.published.arguments() or None)
                     if models.published is not None else PublishedOptions())
    return json.dumps(worker.to_dict(), sort_keys=True)


def missing_checkpoints(session: Session, pairs: Pairs) -> Pairs:
    """The (method, split) pairs, each once, whose checkpoint is missing or unfinished."""
    return [p for p in dict.fromkeys(pairs) if session.models.checkpoint_sha256(*p) is None]


def pairs_to_train(session: Session, todo: List[Cell]) -> Pairs:
    """The learned (method, split) pairs of the pending cells whose checkpoint is missing (with --no-train,
    one BenchError naming the first)."""
    missing = missing_checkpoints(session, [(c.method, c.split) for c in todo if is_trainable(c.method)])
    if missing and session.config.training.no_train:
        raise BenchError(f"no trained checkpoint for {missing[0][0]} split {missing[0][1]} under "
                         f"{session.models.root} (run without --no-train to train it)")
    return missing


def train_key(name: str, split: int) -> str:
    return f"train__{name}__split{split}"


def count_retries(markers: Path) -> int:
    """Attempts beyond each cell's first, from the marker files `<key>.<attempt>`."""
    names = [p.name for p in markers.iterdir()] if markers.is_dir() else []
    return len(names) - len({n.rsplit(".", 1)[0] for n in names})


# ---- in the workers ----

def begin_attempt(markers: Path, key: str, cpus: int, hook: TaskHook) -> int:
    """A task's attempt in a worker: `cpus` torch threads, its number (its marker written), the hook called."""
    torch.set_num_threads(cpus)
    markers.mkdir(parents=True, exist_ok=True)
    attempt = 1
    while True:
        try:
            os.close(os.open(markers / f"{key}.{attempt}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            break
        except FileExistsError:
            attempt += 1
    hook.start(key, attempt)
    return attempt


@lru_cache(maxsize=1)
def worker_session(payload: str) -> Session:
    """This worker's session of a run (its plugins loaded), opened once per payload."""
    config = RunConfig.from_dict(json.loads(payload))
    load_plugins(config.plugin)
    return open_session(config)


@lru_cache(maxsize=1)
def _runner(payload: str) -> CellRunner:
    """This worker's runner (decoded images, feature cache, loaded model), built once per run."""
    return CellRunner(worker_session(payload))


def train_pair(payload: str, name: str, split: int, key: str, attempt: int, hook: TaskHook) -> str:
    """A training task: the checkpoint of (name, split), trained in this worker; its best.pt."""
    session = worker_session(payload)
    models = session.models
    return str(train(models.dataset, models.request(name, split), models.root, session.device, quiet=True, after_epoch=lambda epoch: hook.after_epoch(key, attempt, epoch)))


def evaluate_cell(payload: str, cell_key: str, manifest_sha256: str, checkpoint_id: Optional[str], executor: str,
                  attempt: int, hook: TaskHook) -> Dict:
    """An evaluation task: one cell written into the run directory; its meta."""
    runner = _runner(payload)
    return runner.evaluate(RunDir(Path(runner.config.runtime.out)), Cell.from_key(cell_key), manifest_sha256,
                           checkpoint_id, quiet=True, extra_meta={"executor": executor, "attempt": attempt},
                           before_write=lambda path, rows: hook.before_write(cell_key, attempt, path, rows))
