"""`python -m bench reproduce`: its command line, `--list` (the cards) and `--plan` (what a reproduction would run,
with an estimate of its time from recorded timings: the folder's own reproduction.json, else the committed
results of the same card and dataset under docs/results/; nothing is run). The running: `bench.cli.reproduce_run`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional

from bench.cli.reproduce_run import default_out, experiments_of, run_groups, uses_published
from bench.core.environment import home_path
from bench.core.errors import BenchError
from bench.core.log import format_seconds
from bench.papers.loader import card_names, load_card
from bench.runs.config import RunConfig

#: committed reproductions (`docs/results/<card>-<dataset>/reproduction.json`) in a source checkout
RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


def list_cards() -> None:
    for name in card_names():
        card = load_card(name)
        runs = sum(e.is_run for e in card.experiments)
        print(f"{name:<14}{card.title} ({card.dataset}): {runs} runs, {len(card.experiments) - runs} analyses, "
              f"{len(card.tables)} tables, {len(card.claims)} claims")


def recorded_timings(out: Path, card: str, dataset: str) -> Optional[Dict]:
    """The timings of the folder's reproduction.json, else of the committed one; None without either."""
    for path in (out / "reproduction.json", RESULTS / f"{card}-{dataset}" / "reproduction.json"):
        if path.is_file():
            try:
                record = json.loads(path.read_text())
                source = path.relative_to(RESULTS.parent.parent) if path.is_relative_to(RESULTS) else path
                return {**record["timings"], "source": str(source)}
            except (ValueError, KeyError, TypeError):
                continue
    return None


def _done_cells(run_dir: Path, method: str, experiment, checkpoints: Path) -> int:
    """How many of the experiment's cells of `method` the run directory holds and a run would keep: `RunDir.cell_done`
    with the manifest hash each cell recorded (the plan samples no manifests) and, where its checkpoint is in
    `checkpoints`, that checkpoint's recorded hash (a retrained checkpoint's cells are redone)."""
    from bench.runs.cells import Cell
    from bench.runs.rundir import RunDir
    from bench.training.checkpoints import read_record

    folder = RunDir(run_dir)
    done = 0
    for cell in (Cell(method, split, shot, seed, train) for split in experiment.splits for shot in experiment.shots
                 for seed in experiment.seeds for train in experiment.cell_train_seeds):
        try:
            meta = folder.cell_meta(cell)
            record = read_record(checkpoints / meta["checkpoint"] / "best.pt") if meta.get("checkpoint") else None
        except (BenchError, KeyError, TypeError, OSError):
            continue  # absent or damaged: the run redoes it
        done += folder.cell_done(cell, meta.get("manifest_sha256"), meta.get("checkpoint"),
                                 record["sha256"] if record else None)
    return done


def print_plan(args: argparse.Namespace) -> None:
    from bench.training.profiles import default_profile
    from methods import METHODS

    card = load_card(args.card)
    everything, experiments = experiments_of(card, args)
    out = Path(args.out) if args.out else default_out(card, args.dataset)
    timings = recorded_timings(out, card.name, args.dataset)
    checkpoints = Path(args.checkpoints) if args.checkpoints else home_path("checkpoints")
    seconds, unknown, trained = 0.0, [], set()
    print(f"{card.name}: {card.title}; on {args.dataset}" + ("" if args.dataset == card.dataset else
                                                              f" (the paper's: {card.dataset})") + f"; into {out}")
    print(f"training profile: {args.profile or default_profile(args.dataset)}"
          + (" (the card's for this dataset)" if card.profiles.get(args.dataset) == args.profile else ""))
    for group in run_groups(everything, experiments):
        run_dir = out / "runs" / group.name
        print(f"run {group.name} ({', '.join(e.name for e in group.experiments)}):")
        seen: List[str] = []
        for experiment in group.experiments:
            for method in [m for m in experiment.methods if m not in seen]:
                seen.append(method)
                cells = len(experiment.splits) * len(experiment.shots) * len(experiment.seeds) * len(experiment.train_seeds)
                pending = cells - _done_cells(run_dir, method, experiment, checkpoints)
                learned = METHODS.card(method).trainable and not uses_published(experiment, args)
                new = {(method, s, t) for s in experiment.splits for t in experiment.train_seeds} - trained
                trainings = len(new) if learned and pending else 0
                trained |= new if trainings else set()
                print(f"  {method:<22}{pending}/{cells} cells to evaluate"
                      + (f", {trainings} trainings unless their checkpoints exist" if trainings else ""))
                for count, kind in ((pending, "cell"), (trainings, "training")):
                    value = (timings or {}).get(kind, {}).get(method)
                    if count and value is None and f"{method} {kind}" not in unknown:
                        unknown.append(f"{method} {kind}")
                    seconds += count * (value or 0.0)
    for experiment in experiments:
        if not experiment.is_run:
            done = (out / "analyses" / experiment.name / "done.json").is_file()
            print(f"analysis {experiment.name}: python -m analyses.{experiment.analysis}"
                  + (" (done)" if done else ""))
            value = (timings or {}).get("analysis", {}).get(experiment.name)
            if not done and value is None:
                unknown.append(f"{experiment.name}")
            seconds += 0 if done else (value or 0.0)
    if not timings:
        print("estimate: unknown (no recorded timings: neither this folder's reproduction.json nor a committed one "
              f"for {card.name} on {args.dataset})")
        return
    print(f"estimate: {format_seconds(seconds)} (trainings at most; recorded timings of {timings['source']})"
          + (f"; not counted, no timing recorded: {', '.join(unknown)}" if unknown else ""))


#: the `bench run` options `bench reproduce` takes (the experiments set the grid; --out is the folder's)
REPRODUCE_FIELDS = ("plugin", "dataset", "fold_convention", "data_root", "lists", "device", "batch_size", "quiet",
                    "log_file", "executor", "address", "connect_timeout", "threads", "train_jobs", "cpus_per_task", "partition",
                    "time_limit", "gpus_per_task", "array_parallelism", "slurm_logs", "profile", "train_seeds",
                    "train_dataset", "train_data_root", "train_lists", "checkpoints", "no_train", "backbone_weights",
                    "weights")


def add_reproduce_parser(sub) -> None:
    """`bench reproduce CARD ...` and `bench reproduce --list`."""
    from bench.cli.arguments import RESAMPLES, add_options, field_type

    SEED, EPISODES = field_type(RunConfig, "seeds"), field_type(RunConfig, "episodes")

    parser = sub.add_parser("reproduce", help="run a paper card's experiments and check its tables and claims "
                            "(docs/paper-cards.md)")
    parser.add_argument("card", nargs="?", help="a card's name (`--list`) or the path of a card's .json file")
    parser.add_argument("--list", action="store_true", help="list the cards and exit")
    parser.add_argument("--plan", action="store_true", help="print what would run (trainings, cells, analyses) and "
                        "an estimate from recorded timings; run nothing")
    parser.add_argument("--no-run", action="store_true", help="write the reproduction files from what the folder "
                        "holds (an interrupted or partial reproduction); run nothing")
    parser.add_argument("--export", metavar="DIR", help="then copy the comparison and what resumes the reproduction "
                        "(run records, manifests, cells; analysis tables and figures) to DIR, e.g. "
                        "docs/results/<card>-<dataset> (docs/paper-cards.md)")
    parser.add_argument("--only", nargs="+", metavar="EXPERIMENT", help="run only these experiments of the card")
    parser.add_argument("--out", help="the reproduction folder (default runs/reproduce-<card>-<dataset>; re-running "
                        "resumes)")
    parser.add_argument("--seeds", nargs="+", type=SEED, metavar="S", help="replace every run experiment's episode "
                        "sets (a quicker, smaller reproduction: its protocol, and so its run directories, differ)")
    parser.add_argument("--episodes", type=EPISODES, metavar="N", help="replace every run experiment's episodes per "
                        "(split, shot, seed) (likewise)")
    parser.add_argument("--resamples", type=RESAMPLES, default=1000, help="bootstrap resamples of the intervals "
                        "(1 to 100000)")
    add_options(parser, RunConfig, names=REPRODUCE_FIELDS)


def reproduce_command(args: argparse.Namespace) -> int:
    if args.list:
        list_cards()
        return 0
    if not args.card:
        raise BenchError("bench reproduce: give a card (`python -m bench reproduce --list` lists them)")
    if not args.profile:  # the card's profile on this dataset, where it names one (its committed results')
        args.profile = load_card(args.card).profiles.get(args.dataset)
    if args.plan:
        print_plan(args)
        return 0
    from bench.cli.reproduce_run import reproduce

    reproduce(args)
    return 0
