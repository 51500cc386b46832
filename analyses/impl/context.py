"""What `python -m analyses.context` runs (its options and documentation: analyses/context.py)."""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import List

import pandas as pd

from analyses.common import Analysis, run_config
from analyses.impl import similarity
from analyses.stats import miou_estimate, paired_difference
from bench.core.errors import BenchError
from bench.core.log import log
from bench.data.catalog import context_name
from bench.data.synthetic import format_level
from bench.runs.results import load_results
from bench.runs.rundir import time_per_method
from bench.runs.run import run as bench_run

WITHOUT, WITH = "simpropnet-dpr", "simpropnet-dpr-fbaf"


def check_levels(levels: List[float]) -> List[float]:
    """The levels in the order given; each in [0, 1] and given once."""
    if not levels:
        raise BenchError("give at least one level with --levels")
    if len(set(levels)) != len(levels):
        raise BenchError("--levels lists a level twice")
    return [float(level) for level in levels]


def _training_seeds(cell: pd.DataFrame) -> int:
    return int(cell.train_seed.nunique()) if "train_seed" in cell.columns else 1


def gain_rows(episodes: pd.DataFrame, split: int, shots: List[int], resamples: int) -> List[dict]:
    """Per shot: both methods' mIoU (the tables' estimate) and FBAF's paired gain with its 95% interval (over
    (query, class) clusters and, with several --train-seeds, each method's training seeds)."""
    rows = []
    for shot in shots:
        cell = episodes[(episodes.split.astype(str) == str(split)) & (episodes.shot == shot)]
        with_fbaf, without = cell[cell.method == WITH], cell[cell.method == WITHOUT]
        if with_fbaf.empty or without.empty:
            raise BenchError(f"the run has no {shot}-shot episodes of {WITH} and {WITHOUT} on split {split}")
        gain = paired_difference(with_fbaf, without, resamples=resamples)
        rows.append({"shot": shot, "miou_dpr": miou_estimate(without), "miou_dpr_fbaf": miou_estimate(with_fbaf),
                     "training_seeds": _training_seeds(cell), "gain": gain["difference"],
                     "gain_low": gain["lower"], "gain_high": gain["upper"], "significant": gain["significant"],
                     "episodes": gain["episodes"]})
    return rows


def level_args(args: argparse.Namespace, dataset: str, folder: Path) -> argparse.Namespace:
    """The shared options of one level: its dataset, the two methods, its similarity folder."""
    out = copy.copy(args)
    out.dataset, out.methods, out.out, out.run = dataset, [WITHOUT, WITH], str(folder / "similarity"), None
    return out


def run_level(args: argparse.Namespace, level: float, out: Path) -> List[dict]:
    """Generate (or reuse) one level's benchmark, measure its similarity, train and evaluate both methods."""
    start = time.perf_counter()
    dataset = context_name(args.dataset, level)
    folder = out / f"level-{format_level(level)}"
    log(f"context level {format_level(level)} ({dataset}): Figure 3's similarity, then {WITHOUT} and {WITH}")
    inner = level_args(args, dataset, folder)
    summary = similarity.run(inner)
    overall, classes = summary.iloc[-1], summary.iloc[:-1]
    run_dir = bench_run(run_config(inner, folder / "run", splits=[args.split], shots=list(args.shots),
                                   seeds=list(args.seeds), episodes=args.episodes))
    results = load_results(run_dir)
    times = time_per_method(results.metas, [WITHOUT, WITH])
    base = {"level": level, "dataset": dataset, "fg_cosine": overall.fg_mean, "bg_cosine": overall.bg_mean,
            "bg_minus_fg": overall.bg_minus_fg, "classes_bg_above_fg": int((classes.bg_mean > classes.fg_mean).sum()),
            "classes": len(classes)}
    wall = {"wall_s": time.perf_counter() - start, "training_s": times.training_s.sum(min_count=1),
            "evaluation_s": times.evaluation_s.sum()}
    gains = gain_rows(results.episodes, args.split, list(args.shots), args.resamples)
    return [{**base, **row, **wall} for row in gains]


def plot(result: pd.DataFrame, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = result.sort_values("level", kind="stable")  # levels may be given in any order
    fig, ax = plt.subplots(figsize=(6.5, 4.6))
    for shot, group in result.groupby("shot"):
        ax.errorbar(group.level, group.gain, yerr=[group.gain - group.gain_low, group.gain_high - group.gain],
                    marker="o", capsize=4, label=f"FBAF gain, {shot}-shot (95% CI)")
    ax.axhline(0.0, color="gray", lw=0.8)
    ax.set_xlabel("background context level (0: independent of the class, 1: class's own scene and clutter)")
    ax.set_ylabel("mIoU gain of FBAF (points)")
    gap = ax.twinx()
    levels = result.drop_duplicates("level")
    gap.plot(levels.level, levels.bg_minus_fg, color="tab:green", ls="--", marker="s", label="BG - FG cosine")
    gap.axhline(0.0, color="tab:green", lw=0.6, ls=":")
    gap.set_ylabel("BG - FG similarity (Figure 3)", color="tab:green")
    handles = ax.get_legend_handles_labels()[0] + gap.get_legend_handles_labels()[0]
    fig.legend(handles, [h.get_label() for h in handles], loc="lower center", ncol=2, fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.subplots_adjust(bottom=0.22, right=0.86)  # the legend below the axes: it never hides a point
    return fig


def run(args: argparse.Namespace) -> pd.DataFrame:
    levels = check_levels(args.levels)
    names = [context_name(args.dataset, level) for level in levels]  # every level checked before any work
    out = Path(args.out or (Path(args.run) / "analyses" / "context" if args.run else
                            Path("runs") / "analyses" / f"context-{args.dataset}-split{args.split}"))
    rows: List[dict] = []
    writer = Analysis("context", args, None, None, out, "cpu")
    for level, name in zip(levels, names):
        done = run_level(args, level, out)
        rows += done
        print(f"level {format_level(level)} ({name}): BG - FG cosine {done[0]['bg_minus_fg']:+.3f}; "
              + "; ".join(f"{r['shot']}-shot FBAF gain {r['gain']:+.2f} [{r['gain_low']:+.2f}, {r['gain_high']:+.2f}]"
                          for r in done) + f"; {done[0]['wall_s']:.0f} s", flush=True)
        result = pd.DataFrame(rows)  # written after every level: an interrupted sweep shows what it measured
        writer.save_table(result, "context")
        trainings = int(result.training_seeds.max())
        title = (f"FBAF gain vs background context ({args.dataset}, split {args.split}, "
                 f"{trainings} training{'s' if trainings > 1 else ''} per method)")
        writer.save_figure(plot(result, title), "context")
    columns = ["level", "shot", "fg_cosine", "bg_cosine", "bg_minus_fg", "miou_dpr", "miou_dpr_fbaf", "gain",
               "gain_low", "gain_high", "training_seeds", "wall_s"]
    print(result[columns].round(3).to_string(index=False))
    if (result.training_seeds == 1).any():
        print("note: one training per method and level: the intervals cover the sampling of queries, not training "
              "noise (--train-seeds 0 1 2 resamples that too)")
    print(f"outputs in {out}")
    return result
