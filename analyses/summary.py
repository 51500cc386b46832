"""Summaries of per-episode rows: per cell, then mean and std over seeds, then mean over splits.

All numbers are recomputed from the saved per-episode pixel counts, never from stored metrics.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd

from analyses.metrics import evaluate_rows, mean_std

CELL_KEYS = ["method", "split", "shot", "seed"]
TRAIN = "train_seed"  # present when a method was trained with several seeds (empty for the other methods' rows)


def cell_metrics(episodes: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, split, shot, seed[, train_seed]): mIoU and FB-IoU in percent."""
    keys = CELL_KEYS + ([TRAIN] if TRAIN in episodes.columns else [])
    records = []
    for key, rows in episodes.groupby(keys, sort=True, dropna=False):
        metrics = evaluate_rows(rows)
        records.append(
            dict(zip(keys, key), miou=100 * metrics["miou"], fbiou=100 * metrics["fbiou"],
                 episodes=metrics["episodes"])
        )
    return pd.DataFrame.from_records(records, columns=keys + ["miou", "fbiou", "episodes"])


def _spread(cells: pd.DataFrame, metric: str):
    """(mean, std over episode sets, std over training seeds) of cells [seed, _train, metric]: the std over
    seeds is taken of each seed's mean over training seeds, the std over training seeds of each training
    seed's mean over episode sets (NaN with one of them)."""
    by_seed = cells.groupby("seed")[metric].mean()
    by_train = cells.groupby("_train")[metric].mean()
    mean, seed_std = mean_std(by_seed)
    return mean, seed_std, mean_std(by_train)[1]


def summarize(episodes: pd.DataFrame) -> pd.DataFrame:
    """Per (method, split, shot): mean, std over seeds (episode sets) and std over training seeds; plus
    split == "mean" rows.

    The "mean" row averages the per-split means; its stds are taken of the per-(seed, training seed)
    average over splits (only those present in every split are used). With one training seed per method
    the std over training seeds is NaN and the rest is the summary over seeds alone.
    """
    cells = cell_metrics(episodes)
    cells["_train"] = cells[TRAIN].fillna(-1) if TRAIN in cells.columns else 0
    records = []
    for (method, shot), group in cells.groupby(["method", "shot"], sort=True):
        for split, rows in group.groupby("split", sort=True):
            miou_mean, miou_std, miou_train_std = _spread(rows, "miou")
            fbiou_mean, fbiou_std, fbiou_train_std = _spread(rows, "fbiou")
            records.append(dict(method=method, split=str(split), shot=shot, miou_mean=miou_mean,
                                miou_std=miou_std, fbiou_mean=fbiou_mean, fbiou_std=fbiou_std,
                                seeds=rows.seed.nunique(), episodes=int(rows["episodes"].sum()),
                                miou_train_std=miou_train_std, fbiou_train_std=fbiou_train_std,
                                train_seeds=rows._train.nunique()))
        per_cell = group.pivot_table(index=["seed", "_train"], columns="split", values=["miou", "fbiou"],
                                     dropna=False).dropna()
        split_means = [r for r in records if r["method"] == method and r["shot"] == shot]
        averaged = pd.DataFrame({"miou": per_cell["miou"].mean(axis=1), "fbiou": per_cell["fbiou"].mean(axis=1)}
                                ).reset_index() if len(per_cell) else None
        _, miou_std, miou_train_std = _spread(averaged, "miou") if averaged is not None else (0, np.nan, np.nan)
        _, fbiou_std, fbiou_train_std = _spread(averaged, "fbiou") if averaged is not None else (0, np.nan, np.nan)
        records.append(dict(method=method, split="mean", shot=shot,
                            miou_mean=float(np.mean([r["miou_mean"] for r in split_means])), miou_std=miou_std,
                            fbiou_mean=float(np.mean([r["fbiou_mean"] for r in split_means])), fbiou_std=fbiou_std,
                            seeds=0 if averaged is None else averaged.seed.nunique(),
                            episodes=int(sum(r["episodes"] for r in split_means)),
                            miou_train_std=miou_train_std, fbiou_train_std=fbiou_train_std,
                            train_seeds=0 if averaged is None else averaged._train.nunique()))
    return pd.DataFrame.from_records(records)


def class_iou_table(episodes: pd.DataFrame) -> pd.DataFrame:
    """Per (method, split, shot, class_id): IoU in percent, pooled over all seeds' episodes."""
    records = []
    for key, rows in episodes.groupby(["method", "split", "shot"], sort=True):
        for class_id, iou in evaluate_rows(rows)["class_iou"].items():
            records.append(dict(zip(["method", "split", "shot"], key), class_id=class_id, iou=100 * iou))
    return pd.DataFrame.from_records(records)


def format_table(summary: pd.DataFrame, metric: str = "miou", methods: Optional[Sequence[str]] = None) -> str:
    """Paper-style text table: one line per (method, shot), columns split-1..4 and mean; methods in the order
    given (as on the command line), others after them alphabetically; where a method was trained with
    several seeds, each entry also gives the std over training seeds (after a slash)."""
    splits = [s for s in sorted(summary["split"].unique(), key=lambda s: (s == "mean", s))]
    train_std = f"{metric}_train_std"
    trained = train_std in summary.columns and bool(np.isfinite(summary[train_std].astype(float)).any())
    width = 24 if trained else 16
    title = metric.upper().replace("MIOU", "mIoU").replace("FBIOU", "FB-IoU")
    lines = [f"{title} (%), mean +/- std over seeds" + (" / std over training seeds" if trained else ""),
             f"{'method':<22}{'shot':>5}" + "".join(f"{('split-' + s) if s != 'mean' else 'mean':>{width}}"
                                                   for s in splits)]
    rank = {name: i for i, name in enumerate(methods or [])}
    groups = sorted(summary.groupby(["method", "shot"], sort=True), key=lambda g: (rank.get(g[0][0], len(rank)), g[0]))
    for (method, shot), group in groups:
        cells = group.set_index("split")
        row = f"{method:<22}{shot:>5}"
        for split in splits:
            if split not in cells.index:
                row += f"{'-':>{width}}"
                continue
            mean, std = cells.loc[split, f"{metric}_mean"], cells.loc[split, f"{metric}_std"]
            text = f"{mean:.2f}" + (f" +/- {std:.2f}" if np.isfinite(std) else "")
            if trained and np.isfinite(cells.loc[split, train_std]):
                text += f" / {cells.loc[split, train_std]:.2f}"
            row += f"{text:>{width}}"
        lines.append(row)
    return "\n".join(lines)


def collapsed_cells(summary: pd.DataFrame, methods, floor: str = "all-foreground") -> pd.DataFrame:
    """(method, split, shot, miou, floor_miou) of every split where one of `methods` has a mean mIoU at or
    below `floor`'s (a learned method there has likely collapsed, e.g. to foreground everywhere); empty when
    `floor` is not in the summary."""
    columns = ["method", "split", "shot", "miou", "floor_miou"]
    splits = summary[summary.split != "mean"]
    reference = splits[splits.method == floor].set_index(["split", "shot"]).miou_mean
    records = []
    for row in splits[splits.method.isin([m for m in methods if m != floor])].itertuples():
        bound = reference.get((row.split, row.shot))
        if bound is not None and row.miou_mean <= bound:
            records.append((row.method, row.split, row.shot, row.miou_mean, bound))
    return pd.DataFrame.from_records(records, columns=columns)


def collapse_warnings(summary: pd.DataFrame, methods, floor: str = "all-foreground") -> list:
    """One footnote line per method of `methods` at or below `floor` on some split (see collapsed_cells)."""
    cells = collapsed_cells(summary, methods, floor)
    lines = []
    for method in [m for m in dict.fromkeys(methods) if m in set(cells.method)]:
        rows = cells[cells.method == method]
        where = "; ".join(f"{shot}-shot split {' '.join(part.split)}"
                          for shot, part in rows.groupby("shot", sort=True))
        worst = rows.loc[(rows.miou - rows.floor_miou).idxmin()]
        lines.append(f"warning: {method} is at or below {floor}'s mIoU on {where} (split-{worst.split} "
                     f"{worst.shot}-shot: {worst.miou:.2f} vs {worst.floor_miou:.2f}); its training may have collapsed")
    return lines
