"""`--executor ray`: every independent cell of a grid is a Ray task, gathered into the same files.

Training cells (method x split) run first, as tasks that the evaluation cells of their split wait on;
evaluation cells (method x split x shot x seed) each write their files into the run directory through
`RunDir` (atomically, so a repeated attempt overwrites), exactly as the local executor does, and the
driver then writes `episodes.csv` and the summaries. Workers read the dataset, the checkpoints and the
run directory by path: on a cluster, `--out` and `--checkpoints` (and the data) must be on a shared
filesystem mounted at the same path on every node.

Faults: a task whose worker dies is retried by Ray (`max_retries`); every attempt leaves a marker file
in `<out>/.attempts/` (or `<checkpoints>/.attempts/` for `bench train`), from which the progress bar
counts retries. `FSS_BENCH_FAULTS` names a JSON file for tests: `{"delay_s": 0.5}` slows every cell,
`{"kill_first_attempt": ["<method>__<cell>", "train__<method>__split<k>"]}` makes the first attempt of
an evaluation cell write half its CSV, and that of a training cell save its first epoch, then SIGKILL
its own worker.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from bench.core.errors import BenchError
from bench.core.progress import GridProgress
from methods import MethodError

INSTALL_HINT = 'pip install "fss-bench[ray]"'
FAULTS_ENV = "FSS_BENCH_FAULTS"
MAX_RETRIES = 3  # attempts after a worker died (or an OSError, e.g. a shared filesystem hiccup)
PASSED_ENV = ("FSS_BENCH_CACHE", FAULTS_ENV)  # given to workers of a cluster joined with --address


def require_ray():
    """The ray module, or a one-line BenchError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise BenchError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


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
class Cell:
    """One task: `func(*args, attempt=, kill=)` in a worker, after the cell `after` (a key) if given."""

    key: str
    func: Callable
    args: Tuple
    after: Optional[str] = None


def run_cells(ray, cells: List[Cell], markers: Path, cpus: int, gpus: float, desc: str, quiet: bool) -> Dict:
    """Run the cells as Ray tasks with one progress bar; their results by key, or a BenchError if any failed."""
    shutil.rmtree(markers, ignore_errors=True)
    task = _remote(ray).options(num_cpus=cpus, num_gpus=gpus, max_retries=MAX_RETRIES, retry_exceptions=[OSError])
    refs: Dict[str, object] = {}
    for cell in cells:
        deps = [refs[cell.after]] if cell.after in refs else []
        refs[cell.key] = task.remote(cell.func, cell.args, cell.key, str(markers), cpus, *deps)
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
                except ray.exceptions.RayError as exc:
                    failures[keys[ref]] = exc
                    progress.update(failed=1)
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
    return {"name": dataset.name, "data_root": _absolute(data_root), "lists": _absolute(lists)}


def _absolute(path: Optional[str]) -> Optional[str]:
    return str(Path(path).absolute()) if path else None


def train_cells(models, pairs, opts, device: str) -> List[Cell]:
    """Cells for the (method, split) pairs whose checkpoint is missing or unfinished."""
    spec = dataset_spec(models.dataset, opts.data_root, opts.lists)
    root = Path(opts.checkpoints).absolute()
    return [Cell(f"train__{name}__split{split}", _train_cell, (spec, models.request(name, split), str(root), device))
            for name, split in dict.fromkeys(pairs) if not checkpoint_complete(models, name, split)]


def checkpoint_complete(models, name: str, split: int) -> bool:
    return models.checkpoint_sha256(name, split) is not None


def train_grid(models, pairs: List[Tuple[str, int]], opts) -> None:
    """`bench train --executor ray`: train the missing checkpoints of (method, split) pairs as Ray tasks."""
    cells = train_cells(models, pairs, opts, opts.device)
    if not cells:
        return
    with cluster(opts.address, opts.quiet) as ray:
        run_cells(ray, cells, Path(opts.checkpoints) / ".attempts", opts.cpus_per_task, cluster_gpus(ray, opts.device),
                  "training cells", opts.quiet)


def evaluate_grid(config, run_dir, manifest_hashes: Dict[str, str], models, todo: List[Tuple[str, str]]) -> None:
    """`bench run --executor ray`: missing checkpoints, then the pending (method, cell) pairs, as Ray tasks."""
    from bench.training.models import is_trainable
    from bench.runs.run import cell_split

    if not todo:
        return
    pairs = [(name, cell_split(cell)) for name, cell in todo if is_trainable(name)]
    if config.no_train:
        missing = [p for p in dict.fromkeys(pairs) if not checkpoint_complete(models, *p)]
        if missing:
            raise BenchError(f"no trained checkpoint for {missing[0][0]} split {missing[0][1]} under "
                             f"{config.checkpoints} (run without --no-train to train it)")
    spec = dataset_spec(models.dataset, config.data_root, config.lists)
    worker = replace(config, data_root=spec["data_root"], lists=spec["lists"], quiet=True,
                     out=str(Path(config.out).absolute()), checkpoints=str(Path(config.checkpoints).absolute()),
                     backbone_weights=_absolute(models.backbone_options()["backbone_weights"]))
    payload = {"config": worker.to_dict()}
    with cluster(config.address, config.quiet) as ray:
        trains = train_cells(models, pairs, config, config.device)
        waits = {cell.key.split("__", 1)[1]: cell.key for cell in trains}
        cells = trains + [Cell(f"{name}__{cell}", _evaluate_cell, (payload, name, cell, manifest_hashes[cell]),
                               after=waits.get(f"{name}__split{cell_split(cell)}")) for name, cell in todo]
        run_cells(ray, cells, run_dir.path / ".attempts", config.cpus_per_task, cluster_gpus(ray, config.device),
                  "cells", config.quiet)


# ---- in the workers ----

_RUNNER: Dict = {}  # this worker's CellRunner for the last payload: decoded images, feature cache, model


@lru_cache(maxsize=None)
def _remote(ray):
    return ray.remote(_task)


def _task(func: Callable, args: Tuple, key: str, markers: str, cpus: int, *deps):
    """One attempt of a cell in a worker: number it, apply test faults, run it with `cpus` torch threads."""
    import torch

    torch.set_num_threads(cpus)
    attempt = _attempt(Path(markers), key)
    return func(*args, attempt=attempt, kill=_fault(key, attempt))


def _attempt(markers: Path, key: str) -> int:
    markers.mkdir(parents=True, exist_ok=True)
    attempt = 1
    while True:
        try:
            os.close(os.open(markers / f"{key}.{attempt}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return attempt
        except FileExistsError:
            attempt += 1


def _fault(key: str, attempt: int) -> bool:
    """Apply the test faults of FSS_BENCH_FAULTS: sleep, and whether this attempt must kill its worker."""
    path = os.environ.get(FAULTS_ENV)
    if not path or not Path(path).is_file():
        return False
    spec = json.loads(Path(path).read_text())
    time.sleep(spec.get("delay_s", 0))
    return attempt == 1 and key in spec.get("kill_first_attempt", [])


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _die_mid_write(csv_path: Path, rows) -> None:
    """Test fault: half of the cell's CSV written (no JSON beside it), then this worker killed."""
    data = rows.to_csv(index=False, lineterminator="\n").encode()
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    csv_path.write_bytes(data[:len(data) // 2])
    _die()


def _train_cell(spec: Dict, request, root: str, device: str, attempt: int, kill: bool) -> str:
    from bench.data.catalog import open_dataset
    from bench.core.environment import resolve_device
    from bench.training.train import train

    after_epoch = (lambda epoch: _die()) if kill else None
    return str(train(open_dataset(**spec), request, Path(root), resolve_device(device), quiet=True,
                     after_epoch=after_epoch))


def _evaluate_cell(payload: Dict, name: str, cell: str, manifest_sha256: str, attempt: int, kill: bool) -> Dict:
    from bench.runs.rundir import RunDir

    runner = _runner(payload)
    return runner.evaluate(RunDir(Path(runner.config.out)), name, cell, manifest_sha256, quiet=True,
                           extra_meta={"executor": "ray", "attempt": attempt},
                           before_write=_die_mid_write if kill else None)


def _runner(payload: Dict):
    key = json.dumps(payload, sort_keys=True)
    if _RUNNER.get("key") != key:
        from bench.runs.config import RunConfig
        from bench.data.catalog import open_dataset
        from bench.core.environment import resolve_device
        from bench.training.models import ModelProvider
        from bench.training.profiles import get_profile
        from bench.runs.run import CellRunner

        _RUNNER.clear()
        config = RunConfig(**payload["config"])
        dataset = open_dataset(config.dataset, config.data_root, config.lists)
        device = resolve_device(config.device)
        models = ModelProvider(dataset, get_profile(config.profile, config.dataset), Path(config.checkpoints),
                               backbone_weights=config.backbone_weights, backbone=config.backbone,
                               seed=config.train_seed, select_on=config.select_on, epochs=config.epochs,
                               no_train=True, device=device, quiet=True)
        _RUNNER.update(key=key, runner=CellRunner(config, dataset, models, device))
    return _RUNNER["runner"]
