"""Command line: `python -m bench run|list ...`."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from bench.runs.config import EXECUTORS, RunConfig
from bench.core.errors import BenchError
from bench.training.profiles import PROFILES
from methods import MethodError


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--methods", nargs="+", required=True, metavar="M", help="registered method names (see `bench list`)")
    parser.add_argument("--dataset", default="synthetic", help="synthetic (default, generated locally), synthetic-tiny, pascal5i, fss1000")
    parser.add_argument("--data-root", help="dataset folder (synthetic: where to generate/cache it; default $FSS_BENCH_CACHE or ~/.cache/fss-bench)")
    parser.add_argument("--lists", help="folder of split lists laid out like the shipped ones (trn/fold0.txt .. val/fold3.txt)")
    parser.add_argument("--splits", nargs="+", type=int, default=[1, 2, 3, 4], metavar="K", help="splits 1..4 (paper numbering)")
    parser.add_argument("--shots", nargs="+", type=int, default=[1, 5], metavar="K", help="support images per episode")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], metavar="S", help="one episode set per seed (the paper's three random sets of test pairs)")
    parser.add_argument("--episodes", type=int, default=1000, help="episodes per (split, shot, seed)")
    parser.add_argument("--class-sampling", choices=["list", "uniform"], default="list",
                        help="list: queries follow the (image, class) list, as OSLSM/CANet/HSNet (default); uniform: class first, as PANet")
    parser.add_argument("--min-object-pixels", type=int, default=0,
                        help="drop (image, class) pairs with fewer object pixels (PFENet: 2048); 0 = off")
    parser.add_argument("--identical-input", action="store_true", help="identical-input test (paper Tables 2, 6): support = query with its ground truth")
    parser.add_argument("--input-size", type=int, help="side of the square method input (default: the dataset's, 128 synthetic / 321 PASCAL)")
    parser.add_argument("--eval-size", type=int, help="score at this square size instead of each label's original size (HSNet: 400)")
    parser.add_argument("--void-as-background", action="store_true",
                        help="score void (255) pixels as background, as OSLSM, instead of ignoring them")
    parser.add_argument("--episodes-from", nargs="+", metavar="FILE", help="replay saved manifests (CSV files or folders of them) exactly")
    parser.add_argument("--out", help="run directory (default runs/<dataset>-<config hash>; re-running resumes)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=16, help="episodes per forward pass (results do not depend on it)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a run directory that holds a different config (removes only the files the harness wrote)")
    parser.add_argument("--wait", action="store_true",
                        help="if another `bench run` is writing the same --out, wait for it instead of refusing")
    add_training_arguments(parser)
    parser.add_argument("--no-train", action="store_true", help="fail instead of training a missing checkpoint")
    parser.add_argument("--no-feature-cache", action="store_true",
                        help="encode every episode's images with the backbone again (slow; for checks and benchmarks)")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `run` (which trains missing checkpoints) and `train`."""
    parser.add_argument("--profile", help=f"training profile: {', '.join(sorted(PROFILES))} (default: the dataset's)")
    parser.add_argument("--epochs", type=int, help="override the profile's number of epochs")
    parser.add_argument("--train-seed", type=int, default=0, help="seed of training episodes and initialisation")
    parser.add_argument("--select-on", default="held-out", choices=["held-out", "test"],
                        help="checkpoint selection: held-out images of the training classes (default) or the "
                             "split's test classes (the paper's practice, recorded in the run)")
    parser.add_argument("--checkpoints", default="checkpoints", help="checkpoint root folder (default ./checkpoints)")
    parser.add_argument("--backbone", choices=["resnet50", "vgg16", "synthnet"],
                        help="override the profile's frozen backbone (e.g. vgg16, the original of PANet, SG-One, AMP, OSLSM, co-FCN)")
    parser.add_argument("--backbone-weights", metavar="PATH",
                        help="local backbone weights file (ResNet-50 state dict; default: torchvision IMAGENET1K_V1 from the torch hub cache)")
    add_executor_arguments(parser)


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the cells run: in this process (default) or as Ray tasks (`pip install "fss-bench[ray]"`)."""
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="local: one cell after another in this process (default); ray: every cell is a Ray task")
    parser.add_argument("--address", metavar="ADDR",
                        help="with --executor ray: join this cluster (head started with `ray start --head`); "
                             "default: start a local Ray cluster on this machine")
    parser.add_argument("--cpus-per-task", type=int, default=1, metavar="N",
                        help="with --executor ray: CPUs (and torch threads) per task (default 1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Few-shot segmentation benchmark harness.")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="evaluate methods on fixed-seed episode sets")
    add_run_arguments(run_parser)
    train_parser = sub.add_parser("train", help="train learned methods, one checkpoint per split")
    train_parser.add_argument("--methods", nargs="+", required=True, metavar="M")
    train_parser.add_argument("--splits", nargs="+", type=int, default=[1, 2, 3, 4], metavar="K")
    train_parser.add_argument("--dataset", default="synthetic")
    train_parser.add_argument("--data-root")
    train_parser.add_argument("--lists")
    train_parser.add_argument("--device", default="auto")
    train_parser.add_argument("--quiet", action="store_true")
    add_training_arguments(train_parser)
    check_parser = sub.add_parser("check", help="regression check of a run's mIoU against a committed baseline")
    check_parser.add_argument("--run", required=True, help="finished run directory")
    check_parser.add_argument("--baseline", required=True, help="baseline JSON (reports/baselines/*.json)")
    check_parser.add_argument("--tolerance", type=float, default=1.0, help="allowed drop in mIoU points (default 1.0)")
    check_parser.add_argument("--update", action="store_true", help="rewrite the baseline from the run (after showing the diff)")
    report_parser = sub.add_parser("report", help="render a run directory as one self-contained HTML page")
    report_parser.add_argument("--run", required=True, help="finished run directory")
    report_parser.add_argument("--out", help="output HTML file (default <run>/report.html)")
    report_parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    compare_parser = sub.add_parser("compare", help="paired comparison of two runs on identical episodes")
    compare_parser.add_argument("run_a", help="run directory A (e.g. before a change)")
    compare_parser.add_argument("run_b", help="run directory B (e.g. after it)")
    compare_parser.add_argument("--resamples", type=int, default=1000)
    sub.add_parser("list", help="list registered methods, training profiles and datasets")
    return parser


def cmd_run(args: argparse.Namespace) -> None:
    from bench.runs.run import run

    fields = {k: v for k, v in vars(args).items() if k != "command"}
    run(RunConfig(**fields))


def cmd_list(args: argparse.Namespace) -> None:
    from bench.data.catalog import DATASETS
    from methods import METHODS

    print("methods:")
    for name in METHODS.names():
        print(f"  {name:<24}{METHODS.card(name).summary}")
    print("training profiles:")
    for name in sorted(PROFILES):
        print(f"  {name}")
    print("datasets:")
    for name in DATASETS.names():
        print(f"  {name}")


def cmd_train(args: argparse.Namespace) -> None:
    from bench.cli.train import train_command

    train_command(args)


def cmd_check(args: argparse.Namespace) -> int:
    from reports.check import check

    return check(args.run, args.baseline, args.tolerance, args.update)


def cmd_report(args: argparse.Namespace) -> None:
    from reports.render import render_report

    print(f"report written to {render_report(args.run, args.out, args.resamples)}")


def cmd_compare(args: argparse.Namespace) -> None:
    from reports.compare import compare_runs, print_comparison

    print_comparison(compare_runs(args.run_a, args.run_b, args.resamples), args.run_a, args.run_b)


COMMANDS = {"run": cmd_run, "train": cmd_train, "check": cmd_check, "report": cmd_report, "compare": cmd_compare,
            "list": cmd_list}


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = COMMANDS[args.command](args)
    except (BenchError, MethodError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished cells are saved; re-run the same command to resume", file=sys.stderr)
        return 130
    return code or 0
