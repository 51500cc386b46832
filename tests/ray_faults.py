"""Faults for the Ray and Slurm executors' tests, injected through their TaskHook (production code has none).

`Faults(kill_first_attempt=[keys], delay_s=s)`: every attempt sleeps `delay_s`; the first attempt of an
evaluation task in `kill_first_attempt` writes half of its CSV (no JSON beside it) and SIGKILLs its
worker, that of a training task `train__<method>__split<k>` SIGKILLs its worker after its first epoch.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

from bench.cli.arguments import build
from bench.cli.commands import build_parser
from bench.cli.guard import exit_status
from bench.cli.train import train_command
from bench.runs.config import RunConfig
from bench.runs.executors.base import TaskHook
from bench.runs.run import run


class Faults(TaskHook):
    def __init__(self, kill_first_attempt: Sequence[str] = (), delay_s: float = 0.0):
        self.kill, self.delay_s = list(kill_first_attempt), delay_s

    def start(self, key: str, attempt: int) -> None:
        time.sleep(self.delay_s)

    def before_write(self, key: str, attempt: int, csv_path: Path, rows) -> None:
        if attempt == 1 and key in self.kill:
            data = rows.to_csv(index=False, lineterminator="\n").encode()
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            csv_path.write_bytes(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)

    def after_epoch(self, key: str, attempt: int, epoch: int) -> None:
        if attempt == 1 and key in self.kill:
            os.kill(os.getpid(), signal.SIGKILL)


def main_with(hook: Optional[TaskHook], argv: List[str]) -> int:
    """`python -m bench run|train ARGV` with `hook` in the Ray tasks (the CLI's exit codes and error lines)."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers need not import tests/
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return exit_status(lambda: run(build(RunConfig, args), hook))
    return exit_status(lambda: train_command(build(RunConfig, args), hook))


if __name__ == "__main__":  # a driver process for the interrupted-driver test: `python -m tests.ray_faults DELAY ARGV...`
    sys.exit(main_with(Faults(delay_s=float(sys.argv[1])), sys.argv[2:]))
