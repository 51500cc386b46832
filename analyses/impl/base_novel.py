"""What `python -m analyses.base_novel` runs (its options and documentation: analyses/base_novel.py)."""
from __future__ import annotations

import argparse
from typing import Dict, List

import pandas as pd
import torch

from analyses.common import Analysis, open_analysis
from analyses.metrics import evaluate_rows
from bench.core.errors import BenchError
from bench.data.episodes import EpisodeSpec, images_by_class, sample_episodes, sample_from_pairs
from bench.data.images import ImageStore
from bench.evaluation.loop import evaluate_manifest
from bench.training.train import split_held_out

CLASS_SETS = ("base", "novel")


def manifests(analysis: Analysis, split: int, shot: int, episodes: int, seed: int) -> Dict[str, pd.DataFrame]:
    """The base-class (held-out training images) and novel-class (test) manifests of one shot."""
    dataset = analysis.dataset
    spec = EpisodeSpec(split, shot, seed=seed, episodes=episodes)
    _, held = split_held_out(dataset.pairs(split, "train"))
    by_class = images_by_class(held)
    usable = [p for p in held if len(by_class[p[1]]) > shot]  # a class needs a query and `shot` supports
    if not usable:
        raise BenchError(f"split {split}: no base class has {shot + 1} held-out images for {shot}-shot episodes")
    return {"base": sample_from_pairs(usable, spec, dataset.class_names()), "novel": sample_episodes(dataset, spec)}


def gap_table(rows: Dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per class set and shot: episodes, mIoU and FB-IoU (percent), and base minus novel per shot."""
    records: List[dict] = []
    for classes, frame in rows.items():
        for shot, cell in frame.groupby("shot", sort=True):
            metrics = evaluate_rows(cell)
            records.append({"classes": classes, "shot": int(shot), "episodes": len(cell),
                            "miou": 100 * metrics["miou"], "fbiou": 100 * metrics["fbiou"]})
    table = pd.DataFrame(records)
    wide = table.pivot(index="shot", columns="classes", values="miou")
    table["base_minus_novel"] = table.shot.map(wide["base"] - wide["novel"])
    return table


def plot(table: pd.DataFrame, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4.5, 3.2))
    wide = table.pivot(index="shot", columns="classes", values="miou")
    wide.plot.bar(ax=axis, rot=0)
    axis.set_xlabel("shots")
    axis.set_ylabel("mIoU (%)")
    axis.set_title(title, fontsize=9)
    return figure


def run(args: argparse.Namespace) -> pd.DataFrame:
    analysis = open_analysis(args, "base_novel", f"-split{args.split}-{args.method}")
    method, _ = analysis.models.get(args.method, args.split)  # may train: outside no_grad
    store = ImageStore(analysis.dataset, analysis.input_size)
    rows: Dict[str, List[pd.DataFrame]] = {name: [] for name in CLASS_SETS}
    with torch.no_grad():
        for shot in sorted(set(args.shots)):
            for classes, manifest in manifests(analysis, args.split, shot, args.episodes, args.seed).items():
                frame = evaluate_manifest(method.eval(), store, manifest, device=analysis.device, quiet=args.quiet,
                                          desc=f"{args.method} split {args.split} {classes} {shot}-shot")
                rows[classes].append(frame.assign(shot=shot))
    frames = {classes: pd.concat(parts, ignore_index=True) for classes, parts in rows.items()}
    for classes, frame in frames.items():
        analysis.save_table(frame, f"episodes-{classes}")
    table = gap_table(frames)
    analysis.save_table(table, "gap")
    analysis.save_figure(plot(table, f"{args.method}, split {args.split}: base vs novel classes"), "gap")
    for row in table.itertuples(index=False):
        print(f"{args.method}, split {args.split}, {row.shot}-shot, {row.classes} classes: mIoU {row.miou:.2f}, "
              f"FB-IoU {row.fbiou:.2f} ({row.episodes} episodes)")
    return table
