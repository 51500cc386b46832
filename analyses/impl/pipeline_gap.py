"""The shared-vs-authors pipeline gap: the implementation of `python -m analyses.pipeline_gap`."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Dict, List

import pandas as pd

from analyses.common import Analysis, checked_methods, run_config
from analyses.metrics import COUNT_COLUMNS
from analyses.stats import miou_estimate, paired_difference
from bench.data.catalog import open_dataset
from bench.runs.results import load_results
from bench.runs.run import run as bench_run

PIPELINES = ("shared", "authors")
KEYS = ["method", "split", "shot", "seed", "episode", "class_id", "query"]


def count_changes(shared: pd.DataFrame, authors: pd.DataFrame) -> Dict[str, float]:
    """Episodes whose four counts differ, and the largest count difference in percent of the episode's
    scored pixels (fg_union + bg_inter: true and false positives and negatives, each pixel once)."""
    both = shared.merge(authors, on=KEYS, suffixes=("_s", "_a"))
    diff = pd.concat([(both[f"{c}_a"] - both[f"{c}_s"]).abs() for c in COUNT_COLUMNS], axis=1).max(axis=1)
    pixels = (both["fg_union_s"] + both["bg_inter_s"]).clip(lower=1)
    return {"episodes": len(both), "episodes_differing": int((diff > 0).sum()),
            "largest_difference_pct": float((100.0 * diff / pixels).max()) if len(both) else 0.0}


def gap_rows(runs: Dict[str, pd.DataFrame], resamples: int) -> List[dict]:
    rows = []
    shared, authors = runs["shared"], runs["authors"]
    for (method, split, shot), part in shared.groupby(["method", "split", "shot"], sort=False):
        other = authors[(authors.method == method) & (authors.split == split) & (authors.shot == shot)]
        paired = paired_difference(other, part, resamples=resamples)
        rows.append({"method": method, "split": split, "shot": shot, "miou_shared": miou_estimate(part),
                     "miou_authors": miou_estimate(other), "difference": paired["difference"],
                     "lower": paired["lower"], "upper": paired["upper"], "significant": paired["significant"],
                     "clusters": paired["clusters"], **count_changes(part, other)})
    return rows


def run(args: argparse.Namespace) -> pd.DataFrame:
    checked_methods(args)
    out = Path(args.out or (Path(args.run) / "analyses" / "pipeline_gap" if args.run else
                            Path("runs") / "analyses" / f"pipeline-gap-{args.dataset}-split{args.split}"))
    base = run_config(args, out, splits=[args.split], shots=list(args.shots), seeds=list(args.seeds),
                      episodes=args.episodes, input_size=args.input_size)
    dataset = open_dataset(args.dataset, args.data_root, args.lists)
    dataset.check_split(args.split)
    runs = {}
    for name in PIPELINES:
        config = replace(base, scoring=replace(base.scoring, pipeline=name, eval_size=args.eval_size),
                         runtime=replace(base.runtime, out=str(out / name)))
        runs[name] = load_results(bench_run(config)).episodes
    result = pd.DataFrame(gap_rows(runs, args.resamples))
    writer = Analysis("pipeline_gap", args, dataset, None, out, "cpu")
    writer.save_table(result, "pipeline_gap")
    writer.save_figure(plot(result, f"authors' minus shared pipeline, {args.dataset} split {args.split}"),
                       "pipeline_gap")
    shown = ["method", "shot", "miou_shared", "miou_authors", "difference", "lower", "upper", "episodes_differing",
             "episodes", "largest_difference_pct"]
    print(result[shown].round(2).to_string(index=False))
    print(f"outputs in {out}")
    return result


def plot(result: pd.DataFrame, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r.method} {r.shot}-shot" for r in result.itertuples()]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(labels) + 1.5))
    ax.errorbar(result["difference"], range(len(labels)), fmt="o",
                xerr=[result["difference"] - result["lower"], result["upper"] - result["difference"]], capsize=3)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.set_xlabel("mIoU, authors' - shared pipeline (points, 95% paired interval)")
    ax.set_title(title)
    return fig
