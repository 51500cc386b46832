"""Several trainings at once on one machine: each in a spawned worker process with its share of the threads, as
the Ray and Slurm executors' tasks (the same payload and training task), its epochs reported to the driver's log.

On a CPU, small networks use threads poorly (the synthetic SimPropNet step: 305 ms on 1 thread, 190 ms on 2),
so two 1-thread trainings finish sooner than two 2-thread ones in turn. A checkpoint does not depend on which
process trained it, only (in its last bits) on the threads it had.
"""
from __future__ import annotations

import json
import multiprocessing
import queue
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Iterator, List, Optional, Tuple

from bench.core.log import format_seconds, log
from bench.runs.executors.base import TaskHook, train_key, train_pair, worker_payload
from bench.runs.session import Session

Training = Tuple[str, int, Optional[int]]  # method, split, training seed (None: the run's one)


#: below this many optimisation steps a training is not worth a worker process's start (seconds of imports)
LONG_TRAINING_STEPS = 1000


def training_steps(session: Session, training: Training) -> Optional[int]:
    """Optimisation steps of a training (None: one pass over the training pairs per epoch, not counted here)."""
    request = session.models.for_seed(training[2]).request(training[0], training[1])
    profile = request.profile
    if not profile.episodes_per_epoch:
        return None
    return (request.epochs or profile.epochs) * (profile.episodes_per_epoch // profile.batch_size)


def training_jobs(session: Session, trainings: List[Training], requested: int, threads: int) -> int:
    """How many trainings run at once: `requested` (--train-jobs) when > 0; else (0) on a CPU one per thread when
    every training is long (LONG_TRAINING_STEPS), one otherwise and on a GPU; never more than there are trainings."""
    if requested > 0:
        jobs = requested
    elif session.device != "cpu" or len(trainings) < 2:
        jobs = 1
    else:
        steps = [training_steps(session, t) for t in trainings]
        jobs = threads if all(s is None or s >= LONG_TRAINING_STEPS for s in steps) else 1
    return max(1, min(jobs, len(trainings)))


class EpochReporter(TaskHook):
    """Sends (key, epoch) to the driver after each saved epoch."""

    def __init__(self, channel) -> None:
        self.channel = channel

    def after_epoch(self, key: str, attempt: int, epoch: int) -> None:
        self.channel.put((key, epoch))


def _start_worker(threads: int) -> None:
    import torch

    _die_with_parent()
    torch.set_num_threads(threads)


def _die_with_parent() -> None:
    """On Linux, SIGTERM this worker when the driver dies (even by SIGKILL): no training goes on orphaned."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the driver's own cleanup (`_stop`) still terminates them
        pass


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and terminate the workers (their trainings resume from the last saved epoch)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()


def _timed_train(payload: str, name: str, split: int, key: str, hook: TaskHook) -> float:
    start = time.perf_counter()
    train_pair(payload, name, split, key, 1, hook)
    return time.perf_counter() - start


def seed_payload(session: Session, seed: Optional[int]) -> str:
    """The workers' payload, trained with `seed` (None: the run's)."""
    payload = worker_payload(session)
    if seed is None:
        return payload
    config = json.loads(payload)
    config["training"].update(train_seed=seed, train_seeds=None)
    return json.dumps(config, sort_keys=True)


def train_in_workers(session: Session, trainings: List[Training], jobs: int) -> Iterator[Tuple[Training, float]]:
    """Train `trainings` `jobs` at a time; yield each with its seconds as it finishes (a failure is raised as the
    worker raised it, the others then stopped)."""
    threads = max(1, _threads() // jobs)
    requests = {t: session.models.for_seed(t[2]).request(t[0], t[1]) for t in trainings}
    epochs = {t: request.epochs or request.profile.epochs for t, request in requests.items()}
    each = f"{threads} thread{'s' if threads > 1 else ''} each"
    log(f"{len(trainings)} trainings, {jobs} at a time in worker processes ({each}; --train-jobs)")
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        channel = manager.Queue()
        keys = {}
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker, initargs=(threads,)) as pool:
            futures = {}
            for training in trainings:
                key = train_key(training[0], training[1]) + ("" if training[2] is None else f"__seed{training[2]}")
                keys[key] = training
                futures[pool.submit(_timed_train, seed_payload(session, training[2]), training[0], training[1], key,
                                    EpochReporter(channel))] = training
            try:
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=5, return_when=FIRST_COMPLETED)
                    _report_epochs(channel, keys, epochs)
                    for future in done:
                        training, seconds = futures[future], future.result()
                        log(f"training {training[0]} split {training[1]}: done in {format_seconds(seconds)}")
                        yield training, seconds
            except BaseException:
                _stop(pool)
                raise


def _report_epochs(channel, keys, epochs) -> None:
    while True:
        try:
            key, epoch = channel.get_nowait()
        except queue.Empty:
            return
        method, split, _ = keys[key]
        log(f"training {method} split {split}: epoch {epoch}/{epochs[keys[key]]} saved")


def _threads() -> int:
    import torch

    return torch.get_num_threads()
