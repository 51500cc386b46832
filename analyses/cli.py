"""The analyses' command lines: their shared options and `cli`, light (no torch: `--help` answers at once).

Each `analyses/<name>.py` builds its parser from these and imports its implementation (`analyses/impl/`)
only after the arguments are parsed.
"""
from __future__ import annotations

import argparse
import importlib
from typing import Callable, List, Optional

from bench.cli.arguments import add_options, field_type, number
from bench.cli.guard import exit_status
from bench.core.errors import BenchError
from bench.core.log import log_session
from bench.runs.config import RunConfig
from methods.registry import MethodError

#: the options of `bench run` the analyses share (the same flags, defaults and help)
SHARED_OPTIONS = ("plugin", "dataset", "data_root", "lists", "train_dataset", "train_data_root", "profile", "backbone",
                  "backbone_weights", "checkpoints", "no_train", "device", "quiet", "log_file")


#: the analyses' own numeric options, bounded as `bench run`'s (the same fields) or as their cost allows
EPISODES, SHOTS, SEED = (field_type(RunConfig, name) for name in ("episodes", "shots", "seeds"))
PAIRS = number(int, 1, 100_000)  # image pairs (or images) encoded by the backbone: 100,000 is hours


def add_arguments(parser: argparse.ArgumentParser, *, methods: str = "none", splits: str = "one") -> None:
    """Dataset, split(s), method(s), checkpoint and output options shared by the analyses.

    methods: "none", "one" (--method) or "many" (--methods); splits: "one" (--split) or "many" (--splits).
    """
    add_options(parser, RunConfig, names=SHARED_OPTIONS)
    if splits == "one":
        parser.add_argument("--split", type=number(int), default=1, help="split 1..4 (paper numbering)")
    else:
        parser.add_argument("--splits", nargs="+", type=number(int), default=[1, 2, 3, 4], metavar="K",
                            help="splits 1..4 (paper numbering)")
    if methods == "one":
        parser.add_argument("--method", required=True, help="registered method (see `python -m bench list`)")
    elif methods == "many":
        parser.add_argument("--methods", nargs="+", required=True, metavar="M",
                            help="registered methods (see `python -m bench list`)")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of the analysis' sampling")
    parser.add_argument("--out", help="output folder (default: <run>/analyses/<name> with --run, else runs/analyses/...)")
    parser.add_argument("--run", help="a run directory to write the outputs into (under analyses/)")


def cli(build_parser: Callable[[], argparse.ArgumentParser], body: Callable[[argparse.Namespace], None],
        argv: Optional[List[str]] = None) -> int:
    """Run an analysis command: BenchError or MethodError -> one `error:` line and exit status 2. Its log
    lines (generating, pretraining, training, evaluating) go to stderr in a batch job and to --log-file."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error: its one `error:` line is printed; --help exits
        if exc.code == 0:
            raise
        return 2

    def logged():
        with log_session(args.log_file, args.quiet, parser.prog, (BenchError, MethodError)):
            return body(args)

    return exit_status(logged, interrupted="interrupted")


def command(build_parser: Callable[[], argparse.ArgumentParser], implementation: str):
    """`(run, main, __getattr__)` of an analysis command whose implementation (the module `implementation`, with
    a `run(args)`) is imported only once its arguments are parsed: `--help` and a usage error answer without
    torch; the implementation's functions are also attributes of the command's module."""
    def run(args: argparse.Namespace):
        return importlib.import_module(implementation).run(args)

    def main(argv: Optional[List[str]] = None) -> int:
        return cli(build_parser, run, argv)

    def module_attribute(name: str):
        return getattr(importlib.import_module(implementation), name)

    return run, main, module_attribute
