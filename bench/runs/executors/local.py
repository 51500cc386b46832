"""`--executor local`: the pending pairs and cells one after another in this process."""
from __future__ import annotations

from typing import Dict, List, Optional

from bench.core.environment import available_cores, resolve_device
from bench.core.progress import GridProgress
from bench.runs.cells import Cell
from bench.runs.executors.base import Executor, Pairs, TaskHook
from bench.runs.rundir import RunDir
from bench.runs.runner import CellRunner
from bench.runs.session import Session


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
        """Every training seed's checkpoint of each pair, trained here unless finished."""
        for seed in session.config.training.seeds():
            for name, split in pairs:
                session.models.for_seed(seed).get(name, split)

    def evaluate_grid(self, session: Session, run_dir: RunDir, manifest_hashes: Dict[str, str], todo: List[Cell],
                      hook: Optional[TaskHook] = None) -> None:
        runner = CellRunner(session)
        progress = GridProgress(len(todo), "cells", session.config.runtime.quiet)
        try:
            for cell in todo:
                runner.evaluate(run_dir, cell, manifest_hashes[cell.manifest], session.checkpoint_id(cell),
                                session.config.runtime.quiet)
                progress.update(done=1)
        finally:
            runner.close()
        progress.close()


EXECUTOR = LocalExecutor
