"""`python -m bench prepare <dataset> ...`: dataset roots from the official archives (issue 15).

One sub-command per dataset whose card names a preparation step (`DatasetCard.prepare_step`: a module with
`STEP`, a `bench.data.prepare.step.PrepareStep`): its options come from the step, and the step runs it.
"""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Dict

from bench.cli.arguments import path_type
from bench.data.catalog import CARDS, DATASETS
from bench.data.prepare.step import PrepareStep

#: an archive that exists must be a regular file (a FIFO would block the reader, a device never ends)
ARCHIVE, FOLDER = path_type("file", Path), path_type("folder", Path)
TYPES = {"archive": ARCHIVE, "folder": FOLDER, "out": Path}


def prepare_steps() -> Dict[str, PrepareStep]:
    """dataset -> its preparation step, for every registered dataset whose card names one."""
    return {name: importlib.import_module(CARDS[name].prepare_step).STEP
            for name in DATASETS.names() if CARDS[name].prepare_step}


def add_prepare_parser(subparsers) -> argparse.ArgumentParser:
    """Register `prepare` with a sub-command per dataset that has a preparation step."""
    parser = subparsers.add_parser("prepare", help="build a dataset root from the official archives")
    kinds = parser.add_subparsers(dest="dataset", required=True)
    for name, step in prepare_steps().items():
        sub = kinds.add_parser(name, help=step.help)
        for option in step.options:
            sub.add_argument(option.flag, required=option.required, type=TYPES[option.kind], help=option.help)
        sub.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def prepare_command(args) -> int:
    """Run the chosen preparation and print its summary; BenchErrors propagate as one line to the caller."""
    print(prepare_steps()[args.dataset].run(args))
    return 0
