"""Command line: `python -m bench run|train|report|compare|check|verify|weights|datasets|prepare|list`.

This module is light: parsing, `--help`, `list`, `weights` and `datasets` import no torch (the options are
dataclasses of light modules, the methods' names and cards come from `methods.catalog`). Each command imports
its implementation inside its function, after the arguments are parsed (the layering rule allows that in the
command-line layer only: tests/test_layers.py).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import List, Optional

from analyses.registry import ANALYSES
from bench.cli.arguments import RESAMPLES, TOLERANCE, Parser, add_options, build, number, path_type
from bench.cli.datasets import datasets_command
from bench.cli.guard import exit_status
from bench.cli.prepare import add_prepare_parser, prepare_command
from bench.cli.reproduce import add_reproduce_parser, reproduce_command
from bench.cli.weights import weights_command
from bench.core.environment import package_versions
from bench.core.errors import BenchError
from bench.data.catalog import DATASETS
from bench.runs.config import RunConfig
from bench.training.options import TrainingOptions
from bench.training.profiles import PROFILES
from methods.catalog import method_summaries, weights_entries
from methods.plugins import has_installed_plugins, load_plugins

#: the `bench run` fields that `bench train` takes (its training options included)
TRAIN_FIELDS = ("methods", "plugin", "splits", "dataset", "fold_convention", "data_root", "lists", "device", "quiet",
                "log_file", "executor", "address", "connect_timeout", "cpus_per_task", "threads", "train_jobs",
                "partition", "time_limit", "gpus_per_task", "array_parallelism", "slurm_logs",
                *(f.name for f in fields(TrainingOptions)))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="fss-bench" if Path(sys.argv[0]).name == "fss-bench" else "python -m bench",
        description="Few-shot segmentation benchmark harness.",
        epilog="analyses (each with --help):\n" + "\n".join(f"  python -m analyses.{name}" for name in ANALYSES))
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_versions()['fss-bench']}")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="evaluate methods on fixed-seed episode sets")
    add_options(run_parser, RunConfig, required=("methods",))
    train_parser = sub.add_parser("train", help="train learned methods, one checkpoint per split")
    add_options(train_parser, RunConfig, names=TRAIN_FIELDS, required=("methods",))
    check_parser = sub.add_parser("check", help="regression check of a run's mIoU against a committed baseline")
    check_parser.add_argument("--run", required=True, help="finished run directory")
    check_parser.add_argument("--baseline", required=True, type=path_type("file"), help="baseline JSON (reports/baselines/*.json)")
    check_parser.add_argument("--tolerance", type=TOLERANCE, default=1.0, help="allowed drop in mIoU points (0 to 100)")
    check_parser.add_argument("--update", action="store_true", help="rewrite the baseline from the run (after showing the diff)")
    report_parser = sub.add_parser("report", help="render a run directory as one self-contained HTML page")
    which = report_parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="finished run directory (every method present)")
    which.add_argument("--runs", nargs="+", metavar="DIR", help="finished run directories of one protocol (identical "
                       "manifests), merged into one report (needs --out)")
    report_parser.add_argument("--out", help="output HTML file (default <run>/report.html)")
    report_parser.add_argument("--resamples", type=RESAMPLES, default=1000, help="bootstrap resamples (1 to 100000)")
    report_parser.add_argument("--reference", metavar="METHOD", help="the method of the paired comparisons (unset: "
                               "simpropnet, else the first learned method of the run)")
    report_parser.add_argument("--qualitative", type=number(int), default=3, metavar="N",
                               help="qualitative panels per class: best, worst, random, in that order (0 = none)")
    compare_parser = sub.add_parser("compare", help="paired comparison of two runs on identical episodes")
    compare_parser.add_argument("run_a", help="run directory A (e.g. before a change)")
    compare_parser.add_argument("run_b", help="run directory B (e.g. after it)")
    compare_parser.add_argument("--resamples", type=RESAMPLES, default=1000, help="bootstrap resamples (1 to 100000)")
    verify_parser = sub.add_parser("verify", help="a run's published-weights cells against the authors' reported "
                                   "mIoU / FB-IoU (exit 1 on a miss)")
    verify_parser.add_argument("--run", required=True, help="finished run directory (bench run --weights ...)")
    verify_parser.add_argument("--tolerance", type=TOLERANCE, default=1.0,
                               help="allowed difference in points, either way (0 to 100)")
    verify_parser.add_argument("--pipeline", choices=("authors", "shared"), default="authors",
                               help="the pipeline the cells must have been scored under where their method declares "
                               "an authors' one (`bench run --pipeline`); shared compares them as scored")
    weights_parser = sub.add_parser("weights", help="list registered published checkpoints (where to get them, "
                                    "reported numbers)")
    weights_parser.add_argument("pattern", nargs="?", help="fnmatch pattern on method.tag, or a substring")
    datasets_parser = sub.add_parser("datasets", help="list registered datasets (layout, sources, conventions)")
    datasets_parser.add_argument("name", nargs="?", help="show this dataset's whole card")
    add_prepare_parser(sub)
    add_reproduce_parser(sub)
    list_parser = sub.add_parser("list", help="list registered methods (plugins included), training profiles and "
                                 "datasets")
    add_options(list_parser, RunConfig, names=("plugin",))
    return parser


def cmd_run(args: argparse.Namespace) -> None:
    from bench.runs.run import run

    run(build(RunConfig, args))


def cmd_train(args: argparse.Namespace) -> None:
    from bench.cli.train import train_command

    train_command(build(RunConfig, args))


def cmd_list(args: argparse.Namespace) -> None:
    if args.plugin or has_installed_plugins():  # they register when loaded: the listings then read the registries
        load_plugins(args.plugin)
    summaries, entries = method_summaries(), weights_entries()
    print("methods:")
    for name, summary in summaries:
        print(f"  {name:<24}{summary}")
    print("training profiles:")
    for name in sorted(PROFILES):
        print(f"  {name}")
    print("datasets:")
    for name in DATASETS.names():
        print(f"  {name}")
    owners = sorted({e.method for e in entries})
    print(f"published weights: {len(entries)} checkpoints of {', '.join(owners) or 'no method'} "
          "(`python -m bench weights` lists them)")


def cmd_check(args: argparse.Namespace) -> int:
    from reports.check import check

    return check(args.run, args.baseline, args.tolerance, args.update)


def cmd_report(args: argparse.Namespace) -> None:
    if args.runs and not args.out:
        raise BenchError("--runs merges several runs: give the report's file with --out")
    from reports.render import render_report

    runs = list(dict.fromkeys(args.runs)) if args.runs else None
    print(f"report written to {render_report(runs or args.run, args.out, args.resamples, args.reference, args.qualitative)}")


def cmd_compare(args: argparse.Namespace) -> None:
    from reports.compare import compare_runs, print_comparison

    print_comparison(compare_runs(args.run_a, args.run_b, args.resamples), args.run_a, args.run_b)


def cmd_verify(args: argparse.Namespace) -> int:
    from bench.runs.verify import verify_command

    return verify_command(args.run, args.tolerance, args.pipeline)


def cmd_weights(args: argparse.Namespace) -> int:
    return weights_command(args.pattern)


def cmd_datasets(args: argparse.Namespace) -> int:
    return datasets_command(args.name)


COMMANDS = {"run": cmd_run, "train": cmd_train, "check": cmd_check, "report": cmd_report, "compare": cmd_compare,
            "verify": cmd_verify, "weights": cmd_weights, "datasets": cmd_datasets, "prepare": prepare_command,
            "reproduce": reproduce_command, "list": cmd_list}


def main(argv: Optional[List[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # a usage error: its one `error:` line is printed; --help and --version exit
        if exc.code == 0:
            raise
        return 2
    return exit_status(lambda: COMMANDS[args.command](args))
