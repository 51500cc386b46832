"""`--executor local`: the pending cells one after another in this process; their missing trainings too, or on a
CPU several at once in worker processes (`--train-jobs`)."""
from __future__ import annotations

import time
from typing import Dict, List, Optional, Set, Tuple

from bench.core.environment import available_cores, resolve_device
from bench.core.errors import BenchError
from bench.core.progress import GridProgress, WorkEstimate
from bench.runs.cells import Cell
from bench.runs.executors.base import Executor, Pairs, TaskHook
from bench.runs.executors.parallel import train_in_workers, training_jobs
from bench.runs.rundir import RunDir
from bench.runs.runner import CellRunner
from bench.runs.session import Session
from bench.training.models import is_trainable


class LocalExecutor(Executor):
    """Trains and evaluates in this process, with --threads torch threads (under torchrun, one training on
    several processes); the hook is not called (it is for workers)."""

    name = "local"
    in_process = True

    def check(self, train_seeds: int, command: str) -> None:
        resolve_device(self.runtime.device)  # with other executors, each task resolves the device of its machine

    def describe_threads(self, threads: int) -> str:
        return f"evaluation uses {threads} threads (--threads; {available_cores()} cores available)"

    def train_grid(self, session: Session, pairs: Pairs, hook: Optional[TaskHook] = None) -> None:
        """Every training seed's checkpoint of each pair, trained here (or in worker processes, `--train-jobs`)
        unless finished."""
        seeds = session.config.training.seeds()
        trainings = [(name, split, None if len(seeds) == 1 else seed) for seed in seeds for name, split in pairs
                     if is_trainable(name) and session.models.for_seed(seed).checkpoint_sha256(name, split) is None]
        jobs = training_jobs(session, trainings, self.runtime.train_jobs, torch_threads_now())
        if jobs > 1 and not session.config.training.no_train:
            for _ in train_in_workers(session, trainings, jobs):
                pass
        for seed in seeds:
            for name, split in pairs:
                session.models.for_seed(seed).get(name, split)

    def evaluate_grid(self, session: Session, run_dir: RunDir, manifest_hashes: Dict[str, str], todo: List[Cell],
                      hook: Optional[TaskHook] = None) -> None:
        """The cells in order, each after its checkpoint's training if that is missing (timed apart, for the
        ETA: `WorkEstimate`)."""
        runner = CellRunner(session)
        missing = missing_trainings(session, todo)
        estimate = work_estimate(run_dir, todo, missing)
        progress = GridProgress(len(todo), "cells", session.config.runtime.quiet, estimate)
        order = [(c.method, c.split, c.train_seed) for c in todo]
        trainings = sorted(missing, key=order.index)
        jobs = training_jobs(session, trainings, self.runtime.train_jobs, torch_threads_now())
        if jobs > 1 and not session.config.training.no_train:
            for (method, _, _), seconds in train_in_workers(session, trainings, jobs):
                estimate.finished("training", method, seconds)
                progress.update()
            missing = set()
        try:
            for cell in todo:
                if (cell.method, cell.split, cell.train_seed) in missing:
                    start = time.perf_counter()
                    runner.model(cell.method, cell.split, cell.train_seed)  # trains it, kept loaded for the cell
                    estimate.finished("training", cell.method, time.perf_counter() - start)
                    missing.discard((cell.method, cell.split, cell.train_seed))
                    progress.update()
                start = time.perf_counter()
                runner.evaluate(run_dir, cell, manifest_hashes[cell.manifest], session.checkpoint_id(cell),
                                session.config.runtime.quiet)
                estimate.finished("cell", cell.method, time.perf_counter() - start)
                progress.update(done=1)
        finally:
            runner.close()
        progress.close()


def torch_threads_now() -> int:
    import torch

    return torch.get_num_threads()


def missing_trainings(session: Session, todo: List[Cell]) -> Set[Tuple[str, int, Optional[int]]]:
    """(method, split, train seed) of the learned cells whose checkpoint is not trained yet."""
    keys = {(c.method, c.split, c.train_seed) for c in todo if is_trainable(c.method)}
    return {(method, split, seed) for method, split, seed in keys  # each checkpoint hashed once, not per cell
            if session.models.for_seed(seed).checkpoint_sha256(method, split) is None}


def work_estimate(run_dir: RunDir, todo: List[Cell], missing: Set[Tuple[str, int, Optional[int]]]) -> WorkEstimate:
    """The grid's work left (trainings, cells), timed by the run's recorded cells and their trainings (a
    damaged record times nothing: its cell is among those redone)."""
    metas = []
    for path in run_dir.finished_cells():
        try:
            metas.append(run_dir.cell_meta(Cell.from_key(path.stem)))
        except BenchError:
            continue
    trainings = {(m["method"], m.get("checkpoint")): m.get("checkpoint_train_seconds") for m in metas}
    estimate = WorkEstimate([("cell", m["method"], m["seconds"]) for m in metas if m.get("seconds") is not None]
                            + [("training", method, s) for (method, _), s in trainings.items() if s is not None])
    for cell in todo:
        estimate.add("cell", cell.method)
    for method, _, _ in missing:
        estimate.add("training", method)
    return estimate


EXECUTOR = LocalExecutor
