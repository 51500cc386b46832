"""What a dataset's preparation step declares: the options of `bench prepare <dataset>` and how to run it.

A dataset whose root is built from official archives names its step's module on its card
(`DatasetCard.prepare_step`, e.g. "bench.data.prepare.pascal"); that module holds `STEP`, a `PrepareStep`.
`bench prepare` (bench/cli/prepare.py) makes one sub-command per card that names a step, with these
options (their kinds typed by the command line), and runs `STEP.run(args)`, printing the line it returns.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Tuple

#: what an option holds: an archive (an existing one must be a regular file), a folder (an existing one must
#: be a folder), or a path the step creates
KINDS = ("archive", "folder", "out")


@dataclass(frozen=True)
class Option:
    flag: str  # e.g. "--voc"
    kind: str  # one of KINDS
    help: str
    required: bool = True


@dataclass(frozen=True)
class PrepareStep:
    help: str  # the sub-command's one-line help
    options: Tuple[Option, ...]  # `--quiet` (no progress bar) is added to every step
    run: Callable[..., str]  # (parsed arguments) -> the summary line printed when done


def summary_line(what: str, summary: dict) -> str:
    """`<what> ready at <root>: key value, ...` of a preparation's summary (its 'root' and counts)."""
    return f"{what} ready at {summary['root']}: " + ", ".join(f"{k} {v}" for k, v in summary.items() if k != "root")
