"""Shorter training recipes against the profile's, judged on held-out images of the training classes only: for
each candidate, the held-out validation mIoU after every epoch, the best epoch and the training time. Prints
figures and writes them to a JSON and a CSV; asserts nothing. Resumable: each candidate trains into its own checkpoint
folder under --out (a finished one is read back, an interrupted one resumes after its last epoch).

    python -m bench.benchmarks.recipe --method simpropnet --split 1 --out runs/recipe \
        --candidate epochs=6,lr=0.02 --candidate epochs=6,lr=0.02,schedule=poly [--threads 1]

A candidate overrides fields of the method's profile (`TrainProfile`: epochs, lr, schedule, optimizer,
batch_size, episodes_per_epoch, momentum, weight_decay); the profile itself is always trained too, as the
reference. No test class is looked at: choosing a recipe from these figures is not tuning on test classes.
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, List

import torch

from bench.cli.arguments import build
from bench.cli.commands import build_parser
from bench.core.errors import BenchError
from bench.runs.config import RunConfig
from bench.runs.session import open_session
from bench.training.checkpoints import read_checkpoint
from bench.training.train import train

TUNABLE = {"epochs": int, "lr": float, "schedule": str, "optimizer": str, "batch_size": int,
           "episodes_per_epoch": int, "momentum": float, "weight_decay": float}


def parse_candidate(text: str) -> Dict:
    """`epochs=6,lr=0.02` -> {"epochs": 6, "lr": 0.02}; an unknown field or a bad value is a BenchError."""
    overrides = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key not in TUNABLE or not value:
            raise BenchError(f"bad candidate '{text}': each part is FIELD=VALUE with FIELD one of {', '.join(TUNABLE)}")
        try:
            overrides[key] = TUNABLE[key](value)
        except ValueError:
            raise BenchError(f"bad candidate '{text}': {key} needs a {TUNABLE[key].__name__}") from None
    return overrides


def label(overrides: Dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(overrides.items())) or "profile"


def study(args: argparse.Namespace) -> List[Dict]:
    config = build(RunConfig, build_parser().parse_args(
        ["train", "--methods", args.method, "--dataset", args.dataset, "--splits", str(args.split), "--quiet"]
        + (["--profile", args.profile] if args.profile else [])))
    session = open_session(config, "cpu", quiet=True)
    base = session.models.request(args.method, args.split)
    results = []
    for overrides in [{}] + [parse_candidate(c) for c in args.candidate]:
        request = replace(base, profile=replace(base.profile, **overrides))
        start = time.perf_counter()
        best = train(session.models.dataset, request, Path(args.out), "cpu", quiet=True)
        meta = read_checkpoint(best)["meta"]
        history = [round(100 * h["val_miou"], 2) for h in meta["history"]]
        row = {"candidate": label(overrides), "steps": request.profile.epochs * (
                   (request.profile.episodes_per_epoch or 0) // request.profile.batch_size),
               "train_seconds": meta["train_seconds"], "best_epoch": meta["best_epoch"],
               "best_val_miou": round(100 * meta["val_miou"], 2), "val_miou_by_epoch": history,
               "this_session_seconds": round(time.perf_counter() - start, 1)}
        results.append(row)
        print(f"{row['candidate']:<40} {row['steps']:>5} steps {row['train_seconds']:>7.1f} s  best {row['best_val_miou']:.2f} "
              f"at epoch {row['best_epoch']}  by epoch {history}", flush=True)
    record = {"method": args.method, "dataset": args.dataset, "split": args.split, "threads": torch.get_num_threads(),
              "selection": "held-out images of the training classes", "results": results}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    stem = Path(args.out) / f"recipe-{args.method}-split{args.split}"
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    with stem.with_suffix(".csv").open("w", newline="") as handle:  # for a generated table in the docs
        writer = csv.writer(handle)
        writer.writerow(["candidate", "steps", "train_seconds", "best_epoch", "best_val_miou", "val_miou_by_epoch"])
        for row in results:
            writer.writerow([row["candidate"], row["steps"], row["train_seconds"], row["best_epoch"],
                             row["best_val_miou"], " ".join(f"{v:.2f}" for v in row["val_miou_by_epoch"])])
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.benchmarks.recipe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="simpropnet")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--split", type=int, default=1)
    parser.add_argument("--profile", help="the reference profile (default: the dataset's)")
    parser.add_argument("--candidate", action="append", default=[], help="FIELD=VALUE,... (repeatable)")
    parser.add_argument("--out", required=True, help="checkpoint folder of the candidates (resumable)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        study(args)
    except BenchError as exc:
        print(f"error: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
