"""What `python -m analyses.identical` runs (its options and documentation: analyses/identical.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from analyses.common import Analysis, checked_methods, run_config
from analyses.summary import summarize
from bench.core.errors import BenchError
from bench.runs.config import RunConfig
from bench.runs.results import load_results
from bench.runs.run import run as bench_run


def identical_config(args: argparse.Namespace, out: Path, identical: bool) -> RunConfig:
    return run_config(args, out, splits=list(args.splits), shots=[1], seeds=list(args.seeds), episodes=args.episodes,
                      identical_input=identical)


def read_summary(run_dir: Path, methods, identical: bool) -> pd.DataFrame:
    """summary.csv of an existing run, checked to be the right kind of run and to hold the methods."""
    results = load_results(run_dir)
    config = results.config["config"]
    if bool(config.get("identical_input")) != identical or 1 not in config.get("shots", []):
        kind = "an --identical-input" if identical else "a regular 1-shot"
        raise BenchError(f"{run_dir} is not {kind} run")
    summary = summarize(results.episodes)
    summary = summary[(summary.shot == 1) & summary.method.isin(methods)]
    missing = [m for m in methods if m not in set(summary.method)]
    if missing:
        raise BenchError(f"{run_dir} has no results for {', '.join(missing)}")
    return summary


def table(identical: pd.DataFrame, regular: pd.DataFrame, methods) -> pd.DataFrame:
    """Per method and split: identical-input mIoU, regular 1-shot mIoU and their difference."""
    keep = ["method", "split", "miou_mean", "miou_std"]
    merged = identical[keep].merge(regular[keep], on=["method", "split"], suffixes=("_identical", "_regular"))
    merged["gain_identical_over_regular"] = merged.miou_mean_identical - merged.miou_mean_regular
    merged["method"] = pd.Categorical(merged.method, categories=list(methods), ordered=True)
    return merged.sort_values(["method", "split"], key=lambda col: col if col.name == "method" else
                              col.map(lambda s: (s == "mean", s))).reset_index(drop=True)


def deltas(result: pd.DataFrame, methods) -> pd.DataFrame:
    """Table 6's Delta rows: identical-input mIoU of the first method minus each other method's."""
    wide = result.pivot(index="split", columns="method", values="miou_mean_identical")
    rows = []
    for other in methods[1:]:
        for split, value in (wide[methods[0]] - wide[other]).items():
            rows.append({"method": methods[0], "versus": other, "split": split, "delta_miou": value})
    return pd.DataFrame(rows)


def plot(result: pd.DataFrame, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = result[result.split == "mean"]
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(means)), 3.8))
    x = range(len(means))
    ax.bar([i - 0.2 for i in x], means.miou_mean_regular, width=0.4, label="regular 1-shot", color="tab:gray")
    ax.bar([i + 0.2 for i in x], means.miou_mean_identical, width=0.4, label="identical input", color="tab:green")
    ax.set_xticks(list(x))
    ax.set_xticklabels(means.method.astype(str), rotation=20, ha="right")
    ax.set_ylabel("mIoU (%), mean over splits")
    ax.set_ylim(0, 100)
    ax.legend()
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return fig


def run(args: argparse.Namespace) -> pd.DataFrame:
    args.methods = checked_methods(args)
    if len(set(args.methods)) != len(args.methods):
        raise BenchError("--methods lists a method twice")
    out = Path(args.out or (Path(args.run) / "analyses" / "identical" if args.run else
                            Path("runs") / "analyses" / f"identical-{args.dataset}"))
    identical_dir = Path(args.identical_run) if args.identical_run else bench_run(
        identical_config(args, out / "run-identical", identical=True))
    regular_dir = Path(args.regular_run) if args.regular_run else bench_run(
        identical_config(args, out / "run-regular", identical=False))
    result = table(read_summary(identical_dir, args.methods, identical=True),
                   read_summary(regular_dir, args.methods, identical=False), args.methods)
    writer = Analysis("identical", args, None, None, out, "cpu")
    writer.save_table(result, "identical")
    if len(args.methods) > 1:
        writer.save_table(deltas(result, args.methods), "deltas")
    writer.save_figure(plot(result, f"identical-input test ({args.dataset})"), "identical")
    print(result.round(2).to_string(index=False))
    print(f"outputs in {out}")
    return result
