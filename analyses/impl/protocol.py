"""What `python -m analyses.protocol` runs (its options and documentation: analyses/protocol.py)."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Dict, List

import numpy as np
import pandas as pd

from analyses.common import Analysis, checked_methods, run_config
from analyses.summary import cell_metrics, summarize
from bench.data.catalog import open_dataset
from bench.evaluation.protocol import ScoringProtocol
from bench.runs.config import RunConfig
from bench.runs.results import load_results
from bench.runs.run import run as bench_run

PASCAL_AREA = 500 * 375  # a typical VOC image
PFENET_MIN_PIXELS = 2 * 32 * 32


def scaled_min_pixels(dataset, split: int) -> int:
    """PFENet's 2048-pixel filter scaled to the mean image area of the split's test images."""
    ids = sorted({i for i, _ in dataset.pairs(split, "test")})[:200]
    area = np.mean([np.prod(dataset.read_label(i).shape) for i in ids])
    return max(1, int(round(PFENET_MIN_PIXELS * area / PASCAL_AREA)))


def variants(base: RunConfig, min_pixels: int) -> Dict[str, tuple]:
    """name -> (description, config); 'best-seed' is derived from the default run."""
    return {
        "default": ("original label size, void ignored, 1000 episodes, list sampling, mean of seeds", base),
        "eval-400": ("scored at 400 x 400 (HSNet)", replace(base, scoring=ScoringProtocol(eval_size=400))),
        "eval-417": ("scored at 417 x 417 (PANet)", replace(base, scoring=ScoringProtocol(eval_size=417))),
        "void-as-background": ("void pixels scored as background (OSLSM)",
                               replace(base, scoring=ScoringProtocol(void_as_background=True))),
        "episodes-5000": ("5000 episodes (PFENet)", replace(base, episodes=5000)),
        "min-size-filter": (f"objects >= {min_pixels} px (PFENet's filter, scaled)", replace(base, min_object_pixels=min_pixels)),
        "uniform-classes": ("uniform class sampling (PANet)", replace(base, class_sampling="uniform")),
    }


def collect(name: str, description: str, run_dir: Path, split: int) -> List[dict]:
    summary = summarize(load_results(run_dir).episodes)
    rows = summary[summary.split == str(split)]
    return [{"variant": name, "description": description, "method": r.method, "shot": r.shot,
             "miou": r.miou_mean, "fbiou": r.fbiou_mean} for r in rows.itertuples()]


def best_seed(run_dir: Path, split: int) -> List[dict]:
    cells = cell_metrics(load_results(run_dir).episodes)
    cells = cells[cells.split == split]
    rows = []
    for (method, shot), group in cells.groupby(["method", "shot"]):
        best = group.loc[group.miou.idxmax()]
        rows.append({"variant": "best-seed", "description": f"best of {len(group)} seeds (BAM, HDMNet)",
                     "method": method, "shot": shot, "miou": best.miou, "fbiou": best.fbiou})
    return rows


def run(args: argparse.Namespace) -> pd.DataFrame:
    checked_methods(args)
    out = Path(args.out or (Path(args.run) / "analyses" / "protocol" if args.run else
                            Path("runs") / "analyses" / f"protocol-{args.dataset}-split{args.split}"))
    base = run_config(args, out, splits=[args.split], shots=list(args.shots), seeds=list(args.seeds),
                      episodes=args.episodes)
    dataset = open_dataset(args.dataset, args.data_root, args.lists)
    dataset.check_split(args.split)
    rows: List[dict] = []
    for name, (description, config) in variants(base, scaled_min_pixels(dataset, args.split)).items():
        run_dir = bench_run(replace(config, runtime=replace(config.runtime, out=str(out / name))))
        rows += collect(name, description, run_dir, args.split)
        if name == "default":
            rows += best_seed(run_dir, args.split)
    variants_order, methods_order = list(dict.fromkeys(r["variant"] for r in rows)), list(args.methods)
    rows.sort(key=lambda r: (variants_order.index(r["variant"]), methods_order.index(r["method"]), r["shot"]))
    result = pd.DataFrame(rows)
    default = result[result.variant == "default"].set_index(["method", "shot"])
    for metric in ("miou", "fbiou"):
        result[f"{metric}_change"] = [r[metric] - default.loc[(r.method, r.shot), metric] for _, r in result.iterrows()]
    spread = result.groupby(["method", "shot"]).agg(miou_min=("miou", "min"), miou_max=("miou", "max"),
                                                    fbiou_min=("fbiou", "min"), fbiou_max=("fbiou", "max")).reset_index()
    spread = spread.sort_values("method", key=lambda m: m.map(methods_order.index), kind="stable")
    spread["miou_spread"] = spread.miou_max - spread.miou_min
    spread["fbiou_spread"] = spread.fbiou_max - spread.fbiou_min
    writer = Analysis("protocol", args, dataset, None, out, "cpu")
    writer.save_table(result, "protocol")
    writer.save_table(spread, "spread")
    writer.save_figure(plot(result, f"protocol sensitivity, {args.dataset} split {args.split}"), "protocol")
    print(result[["variant", "method", "shot", "miou", "miou_change", "fbiou", "fbiou_change"]].round(2).to_string(index=False))
    print(spread[["method", "shot", "miou_spread", "fbiou_spread"]].round(2).to_string(index=False))
    print(f"outputs in {out}")
    return result


def plot(result: pd.DataFrame, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(result.groupby(["method", "shot"]).groups)
    order = list(dict.fromkeys(result.variant))
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(order) + 1.5), sharey=True)
    for ax, metric in zip(axes, ("miou", "fbiou")):
        for k, (method, shot) in enumerate(keys):
            part = result[(result.method == method) & (result.shot == shot)].set_index("variant").reindex(order)
            ax.plot(part[metric], range(len(order)), "o", label=f"{method} {shot}-shot", color=f"C{k}")
        ax.set_yticks(range(len(order)))
        ax.set_yticklabels(order)
        ax.invert_yaxis()
        ax.set_xlabel(f"{'mIoU' if metric == 'miou' else 'FB-IoU'} (%)")
        ax.grid(axis="x", alpha=0.3)
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    return fig
