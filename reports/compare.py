"""`bench compare DIR_A DIR_B`: paired comparison of two runs on identical episodes (e.g. before and
after a change): for every method present in both, per split and shot, mIoU(B) - mIoU(A) with a paired
95% bootstrap interval."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from analyses.stats import check_resamples, paired_difference
from bench.core.errors import BenchError
from bench.runs.results import load_results


def _load(run_dir: Path):
    results = load_results(run_dir)
    return results.config, results.episodes


def compare_runs(dir_a: Path, dir_b: Path, resamples: int = 1000) -> pd.DataFrame:
    check_resamples(resamples)
    config_a, episodes_a = _load(dir_a)
    config_b, episodes_b = _load(dir_b)
    if config_a["manifests"] != config_b["manifests"]:
        only = sorted(set(config_a["manifests"]) ^ set(config_b["manifests"]))
        differ = sorted(k for k in set(config_a["manifests"]) & set(config_b["manifests"])
                        if config_a["manifests"][k] != config_b["manifests"][k])
        raise BenchError(f"the runs were not evaluated on identical episodes (cells only in one: {only[:3]}; "
                         f"different manifests: {differ[:3]}); replay with --episodes-from {Path(dir_a) / 'manifests'}")
    methods = [m for m in dict.fromkeys(episodes_a.method) if m in set(episodes_b.method)]
    if not methods:
        raise BenchError("the two runs have no method in common")
    rows = []
    for method in methods:
        a, b = episodes_a[episodes_a.method == method], episodes_b[episodes_b.method == method]
        for (split, shot), part_a in a.groupby(["split", "shot"], sort=True):
            part_b = b[(b.split == split) & (b.shot == shot)]
            rows.append({"method": method, "split": split, "shot": shot,
                         **paired_difference(part_b, part_a, resamples)})
    return pd.DataFrame(rows)


def print_comparison(table: pd.DataFrame, dir_a, dir_b) -> None:
    print(f"mIoU of B ({dir_b}) minus A ({dir_a}), paired over identical episodes, 95% bootstrap interval")
    shown = table.assign(interval=[f"[{lo:+.2f}, {hi:+.2f}]" for lo, hi in zip(table.lower, table.upper)],
                         difference=table.difference.map(lambda v: f"{v:+.2f}"),
                         real=table.significant.map({True: "yes", False: "no"}))
    print(shown[["method", "split", "shot", "difference", "interval", "episodes", "real"]].to_string(index=False))
