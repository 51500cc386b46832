"""The local executor: the pending cells one after another in this process."""
from __future__ import annotations

from typing import Dict, List

from bench.core.progress import GridProgress
from bench.runs.cells import Cell
from bench.runs.rundir import RunDir
from bench.runs.runner import CellRunner


def evaluate_cells(runner: CellRunner, run_dir: RunDir, manifest_hashes: Dict[str, str], todo: List[Cell],
                   quiet: bool) -> None:
    progress = GridProgress(len(todo), "cells", quiet)
    try:
        for cell in todo:
            runner.evaluate(run_dir, cell, manifest_hashes[cell.manifest], quiet)
            progress.update(done=1)
    finally:
        runner.close()
    progress.close()
