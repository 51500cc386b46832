"""`--executor slurm`: every training pair and evaluation cell is one Slurm job, submitted through submitit.

The driver submits the missing checkpoints' training as one job array, waits for it, then the pending
evaluation cells as a second array (`--array-parallelism` of each running at once), with one progress bar
and a log line per finished job. Each job calls a module-level function with a JSON payload (the run's
configuration with absolute paths, the cell's key, hashes): it opens its own session and writes the cell's
files into the run directory through `CellRunner` and `RunDir`, exactly as the local and Ray executors do,
so the driver then gathers the results as always. `--out`, `--checkpoints`, the data and `--plugin` files
must be on a filesystem every node mounts at the same path, and fss-bench installed where the jobs run.

Resuming: a job that fails (or is killed, or runs past `--time-limit`) leaves its cell unfinished, and the
driver ends with one line naming it; re-running the same command submits only the cells (and checkpoints)
that are still missing. Every attempt leaves a marker `<key>.<attempt>` in `<out>/.attempts/` (or
`<checkpoints>/.attempts/` for `bench train`), kept until a grid has finished, so the attempt recorded in a
cell's meta counts the re-runs. An interrupted driver cancels the jobs it submitted.

`FSS_BENCH_SLURM_CLUSTER=local` runs the jobs as local processes through submitit's local executor (a
try-out without Slurm; the tests), `debug` in the driver's process; unset, submitit submits with sbatch.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from bench.core.errors import BenchError
from bench.core.log import log
from bench.core.progress import GridProgress
from bench.runs.cells import Cell
from bench.runs.executors.base import (Executor, Pairs, TaskHook, begin_attempt, count_retries, evaluate_cell,
                                       missing_checkpoints, pairs_to_train, train_key, train_pair, worker_payload)
from bench.runs.rundir import RunDir
from bench.runs.session import Session

INSTALL_HINT = 'pip install "fss-bench[slurm]"'
CLUSTER_ENV = "FSS_BENCH_SLURM_CLUSTER"
POLL_S = 1.0  # seconds between looks at the jobs' states

#: one job: (key, kind "train" or "evaluate", its JSON arguments)
Job = Tuple[str, str, str]


def require_submitit():
    """The submitit module, or a one-line BenchError saying how to install it."""
    try:
        import submitit
    except ImportError:
        raise BenchError(f"--executor slurm needs submitit, which is not installed: {INSTALL_HINT}") from None
    return submitit


def cluster_name() -> str:
    """submitit's cluster: slurm, or local / debug from $FSS_BENCH_SLURM_CLUSTER."""
    name = os.environ.get(CLUSTER_ENV) or "slurm"
    if name not in ("slurm", "local", "debug"):
        raise BenchError(f"${CLUSTER_ENV}={name!r}: use slurm, local (jobs as local processes) or debug (in process)")
    return name


class SlurmExecutor(Executor):
    """`--executor slurm`: job arrays through submitit."""

    name = "slurm"

    def check(self, train_seeds: int, command: str) -> None:
        require_submitit()
        if cluster_name() == "slurm" and shutil.which("sbatch") is None:
            raise BenchError(f"--executor slurm submits with sbatch, which is not on PATH here (on a machine without "
                             f"Slurm, {CLUSTER_ENV}=local runs the jobs as local processes)")
        super().check(train_seeds, command)

    def describe_threads(self, threads: int) -> str:
        return f"evaluation uses {self.runtime.cpus_per_task} threads per Slurm job (--cpus-per-task)"

    def train_grid(self, session: Session, pairs: Pairs, hook: Optional[TaskHook] = None) -> None:
        self._run_jobs(session, train_jobs(missing_checkpoints(session, pairs)), session.models.root,
                       "training cells", hook)

    def evaluate_grid(self, session: Session, run_dir: RunDir, manifest_hashes: Dict[str, str], todo: List[Cell],
                      hook: Optional[TaskHook] = None) -> None:
        """The missing checkpoints (one array), then the pending cells (another)."""
        if not todo:
            return
        self._run_jobs(session, train_jobs(pairs_to_train(session, todo)), run_dir.path, "training cells", hook,
                       keep_markers=True)
        jobs = [(cell.key, "evaluate", json.dumps({"manifest_sha256": manifest_hashes[cell.manifest],
                                                    "checkpoint_id": session.checkpoint_id(cell)}))
                for cell in todo]
        self._run_jobs(session, jobs, run_dir.path, "cells", hook)

    def _run_jobs(self, session: Session, jobs: List[Job], root: Path, desc: str, hook: Optional[TaskHook],
                  keep_markers: bool = False) -> None:
        """Submit the jobs as one array and wait for them; a BenchError naming the first that failed."""
        if not jobs:
            return
        runtime = session.config.runtime
        markers = root / ".attempts"
        folder = Path(runtime.slurm_logs) if runtime.slurm_logs else root / ".submitit"
        executor = self._submitit(folder.absolute())
        payload = worker_payload(session)
        keys = [key for key, _, _ in jobs]
        n = len(jobs)
        submitted = executor.map_array(run_job, [kind for _, kind, _ in jobs], [payload] * n, keys,
                                       [spec for _, _, spec in jobs], [str(markers.absolute())] * n,
                                       [runtime.cpus_per_task] * n, [hook or TaskHook()] * n)
        log(f"{desc}: {n} jobs submitted ({', '.join(sorted({str(j.job_id).split('_')[0] for j in submitted}))}; "
            f"submitit's files in {folder})")
        failures = wait(dict(zip(keys, submitted)), markers, desc, runtime.quiet)
        if failures:
            key, reason = next(iter(failures.items()))
            raise BenchError(f"{len(failures)} of {n} {desc} failed ({key}: {reason}); finished cells are saved, "
                             f"re-run the same command to run the others (submitit's logs: {folder})")
        if not keep_markers:
            shutil.rmtree(markers, ignore_errors=True)

    def _submitit(self, folder: Path):
        submitit = require_submitit()
        runtime = self.runtime
        executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster_name())
        executor.update_parameters(name="fss-bench", timeout_min=runtime.time_limit,
                                   cpus_per_task=runtime.cpus_per_task, gpus_per_node=runtime.gpus_per_task,
                                   slurm_partition=runtime.partition,
                                   slurm_array_parallelism=runtime.array_parallelism)
        return executor


EXECUTOR = SlurmExecutor


def train_jobs(pairs: Pairs) -> List[Job]:
    return [(train_key(name, split), "train", json.dumps({"method": name, "split": split})) for name, split in pairs]


def wait(jobs: Dict, markers: Path, desc: str, quiet: bool) -> Dict[str, str]:
    """Wait for the jobs with one progress bar; the failed ones' keys with a one-line reason. An interrupted
    driver cancels the jobs still pending or running."""
    progress = GridProgress(len(jobs), desc, quiet)
    pending, failures = dict(jobs), {}
    try:
        while pending:
            for key, job in list(pending.items()):
                if not job.done():
                    continue
                del pending[key]
                try:
                    job.result()
                    progress.update(done=1)
                    log(f"{desc} {progress.done + progress.failed}/{len(jobs)}: {key} finished")
                except Exception as exc:  # submitit's FailedJobError (a raised error), UncompletedJobError (killed)
                    failures[key] = failure_reason(exc)
                    progress.update(failed=1)
                    log(f"{desc} {progress.done + progress.failed}/{len(jobs)}: {key} failed")
            progress.update(retries=count_retries(markers))
            if pending:
                time.sleep(POLL_S)
    finally:
        progress.close()
        for job in pending.values():
            job.cancel(check=False)
    return failures


def failure_reason(exc: Exception) -> str:
    """The last line of a failed job's error (its traceback's last line: the exception raised in the job)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


# ---- in the jobs ----

def run_job(kind: str, payload: str, key: str, spec: str, markers: str, cpus: int, hook: TaskHook) -> None:
    """One Slurm job: a training pair or an evaluation cell, from JSON arguments."""
    attempt = begin_attempt(Path(markers), key, cpus, hook)
    args = json.loads(spec)
    if kind == "train":
        train_pair(payload, args["method"], args["split"], key, attempt, hook)
    else:
        evaluate_cell(payload, key, args["manifest_sha256"], args["checkpoint_id"], "slurm", attempt, hook)
