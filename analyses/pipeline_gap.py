"""The shared-vs-authors pipeline gap: one checkpoint, the same episodes, two ways of preparing and scoring them.

    python -m analyses.pipeline_gap --methods hsnet --dataset pascal5i --data-root VOC --weights DIR --split 1

Under the shared pipeline every method sees an episode prepared one way (the fair comparison); under the
authors' pipeline each method sees it as its authors' test loader prepares it (`bench run --pipeline
authors`; see bench.evaluation.authors). The field argues about exactly this difference (e.g. HSNet's
400 x 400 versus original-size scoring, juhongm999/hsnet issues 1, 5, 6). Both are resumable `bench run`
directories under --out (`shared/`, `authors/`) on the same manifests; per method and shot the table gives
mIoU under each, the paired difference (authors - shared) with its 95% cluster-bootstrap interval
(`reports.stats.paired_difference`), the episodes whose counts differ and the largest difference as a share of
an episode's scored pixels.

Outputs (in --out): pipeline_gap.csv, pipeline_gap.png / .svg, and the two run directories.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Dict, List

import pandas as pd

from analyses.common import EPISODES, SEED, SHOTS, Analysis, add_arguments, checked_methods, cli, run_config
from analyses.metrics import COUNT_COLUMNS
from bench.cli.arguments import Parser, add_options, number
from bench.data.catalog import open_dataset
from bench.runs.config import RunConfig
from bench.runs.results import load_results
from bench.runs.run import run as bench_run
from bench.training.published import PublishedOptions
from reports.stats import miou_estimate, paired_difference

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


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m analyses.pipeline_gap", description=__doc__)
    add_arguments(parser, methods="many")
    add_options(parser, PublishedOptions)
    add_options(parser, RunConfig, names=("input_size",))
    parser.add_argument("--eval-size", type=number(int, 1, 4096), default=None, help="score at the network's input size under both "
                        "pipelines (HSNet's 400 x 400) instead of each label's original size")
    parser.add_argument("--shots", nargs="+", type=SHOTS, default=[1, 5], metavar="K", help="support images per episode")
    parser.add_argument("--seeds", nargs="+", type=SEED, default=[0], metavar="S", help="episode sets")
    parser.add_argument("--episodes", type=EPISODES, default=1000, help="episodes per seed")
    parser.add_argument("--resamples", type=number(int, 1, 100_000), default=1000, help="bootstrap resamples of the paired interval")
    return parser


def main(argv=None) -> int:
    return cli(build_parser, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
