"""What `python -m analyses.base_novel` runs (its options and documentation: analyses/base_novel.py)."""
from __future__ import annotations

import argparse
from typing import Dict, List

import pandas as pd
import torch

from analyses.common import Analysis, checked_methods, open_analysis
from analyses.metrics import evaluate_rows
from bench.core.errors import BenchError
from bench.data.episodes import EpisodeSpec, images_by_class, sample_episodes, sample_from_pairs
from bench.data.images import ImageStore
from bench.evaluation.loop import evaluate_manifest
from bench.training.train import split_held_out

CLASS_SETS = ("base", "novel")
KEYS = ["classes", "shot", "episode", "class_id", "query"]


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


def gap_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per method, split and shot: base and novel mIoU and FB-IoU (percent), base minus novel, episodes."""
    records: List[dict] = []
    for (method, split, shot), cell in rows.groupby(["method", "split", "shot"], sort=False):
        record = {"method": method, "split": int(split), "shot": int(shot)}
        for classes in CLASS_SETS:
            metrics = evaluate_rows(cell[cell.classes == classes])
            record.update({f"{classes}_miou": 100 * metrics["miou"], f"{classes}_fbiou": 100 * metrics["fbiou"]})
        record["base_minus_novel"] = record["base_miou"] - record["novel_miou"]
        record["episodes"] = int((cell.classes == "novel").sum())
        records.append(record)
    return pd.DataFrame(records)


def plot(table: pd.DataFrame, shot: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(table.method))
    figure, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3), sharey=True, squeeze=False)
    for axis, method in zip(axes[0], methods):
        part = table[(table.method == method) & (table.shot == shot)].set_index("split")
        part[["base_miou", "novel_miou"]].rename(columns=lambda c: c.split("_")[0]).plot.bar(ax=axis, rot=0)
        axis.set_title(f"{method}, {shot}-shot", fontsize=9)
        axis.set_ylabel("mIoU (%)")
    return figure


def evaluated(analysis: Analysis, method, name: str, split: int, args: argparse.Namespace) -> pd.DataFrame:
    """Per-episode rows of one method and split, both class sets and every shot: read back when the saved file
    holds exactly these episodes, else evaluated and saved."""
    wanted = [manifest.assign(classes=classes, shot=shot) for shot in sorted(set(args.shots))
              for classes, manifest in manifests(analysis, split, shot, args.episodes, args.seed).items()]
    path = analysis.out / f"episodes-{name}-split{split}.csv"
    if path.is_file():
        saved = pd.read_csv(path)
        expected = pd.concat([w[KEYS] for w in wanted], ignore_index=True)
        if len(saved) == len(expected) and saved[KEYS].astype(str).equals(expected.astype(str)):
            return saved
    store = ImageStore(analysis.dataset, analysis.input_size)
    parts = []
    with torch.no_grad():
        for manifest in wanted:
            classes, shot = manifest.classes.iloc[0], int(manifest.shot.iloc[0])
            frame = evaluate_manifest(method.eval(), store, manifest.drop(columns=["classes", "shot"]),
                                      device=analysis.device, quiet=args.quiet,
                                      desc=f"{name} split {split} {classes} {shot}-shot")
            parts.append(frame.assign(classes=classes, shot=shot))
    rows = pd.concat(parts, ignore_index=True)
    rows = rows[KEYS + [c for c in rows.columns if c not in KEYS]]
    analysis.save_table(rows, path.stem)
    return rows


def run(args: argparse.Namespace) -> pd.DataFrame:
    analysis = open_analysis(args, "base_novel")
    frames = []
    for name in checked_methods(args):
        for split in args.splits:
            method, _ = analysis.models.get(name, split)  # may train: outside no_grad
            frames.append(evaluated(analysis, method, name, split, args).assign(method=name, split=split))
    table = gap_table(pd.concat(frames, ignore_index=True))
    analysis.save_table(table, "gap")
    analysis.save_figure(plot(table, min(args.shots)), "gap")
    for row in table.itertuples(index=False):
        print(f"{row.method}, split {row.split}, {row.shot}-shot: base mIoU {row.base_miou:.2f}, novel "
              f"{row.novel_miou:.2f}, gap {row.base_minus_novel:+.2f} ({row.episodes} episodes each)")
    return table
