"""`bench check`: the CI regression check of mIoU against a committed baseline.

A baseline is a JSON file (under reports/baselines/) listing, per (method, dataset, split, shot), the
mIoU (mean over seeds, percent) of a reference run. The check fails (exit 1) if any entry of the
baseline is missing from the run or lower by more than the tolerance (default 1.0 mIoU), and prints a
table of every entry. `--update` rewrites the baseline from the run after showing the differences.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

import pandas as pd

from analyses.summary import summarize
from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_json
from bench.runs.results import load_results

Key = Tuple[str, str, str, int]


def run_entries(run_dir: Path) -> Dict[Key, float]:
    """(method, dataset, split, shot) -> mIoU of a finished run directory, recomputed from its verified
    per-episode rows (a damaged or edited episodes.csv is refused, and summary.csv is never trusted)."""
    results = load_results(run_dir)
    dataset = results.config["dataset"]["name"]
    summary = summarize(results.episodes)
    return {(r.method, dataset, str(r.split), int(r.shot)): float(r.miou_mean) for r in summary.itertuples()}


def read_baseline(path: Path) -> Dict[Key, float]:
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"baseline file not found: {path} (create it with --update)")
    try:
        entries = json.loads(path.read_text())["entries"]
        return {(e["method"], e["dataset"], str(e["split"]), int(e["shot"])): float(e["miou"]) for e in entries}
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BenchError(f"baseline {path} is not a valid baseline file ({exc})") from None


def compare(run: Dict[Key, float], baseline: Dict[Key, float], tolerance: float) -> pd.DataFrame:
    rows = []
    for key in sorted(set(baseline) | set(run)):
        base, now = baseline.get(key), run.get(key)
        if base is None:
            status = "new"
        elif now is None:
            status = "MISSING"
        elif now < base - tolerance:
            status = "REGRESSED"
        else:
            status = "ok"
        rows.append(dict(zip(["method", "dataset", "split", "shot"], key), baseline=base, run=now,
                         change=None if base is None or now is None else now - base, status=status))
    return pd.DataFrame(rows)


def format_report(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in ("baseline", "run", "change"):
        shown[column] = shown[column].map(lambda v: "-" if v is None or pd.isna(v) else f"{v:.2f}")
    return shown.to_string(index=False)


def check(run_dir: Path, baseline_path: Path, tolerance: float = 1.0, update: bool = False) -> int:
    """Print the comparison; return 0 if nothing regressed or is missing (or after --update), else 1."""
    run = run_entries(run_dir)
    baseline = read_baseline(baseline_path) if Path(baseline_path).is_file() or not update else {}
    table = compare(run, baseline, tolerance)
    print(format_report(table))
    if update:
        entries = [dict(zip(["method", "dataset", "split", "shot"], k), miou=round(v, 4)) for k, v in sorted(run.items())]
        atomic_write_json(baseline_path, {"source_run": str(run_dir), "entries": entries})
        print(f"baseline {baseline_path} rewritten from {run_dir} ({len(entries)} entries)")
        return 0
    bad: List[str] = list(table[table.status.isin(["REGRESSED", "MISSING"])].status)
    if bad:
        print(f"FAILED: {bad.count('REGRESSED')} regressed by more than {tolerance} mIoU, {bad.count('MISSING')} missing")
        return 1
    print(f"OK: {len(baseline)} baseline entries within {tolerance} mIoU")
    return 0
