"""A paper's claims checked against measured episodes, with 95% bootstrap intervals.

A claim is split into parts (one per compared pair of methods, split and shot); each part is a difference
with its interval from `analyses.stats`: paired cluster bootstrap for two methods on identical episodes
(training seeds resampled where several), independent draws for one method's two shot settings (their
episodes differ), a plain bootstrap over rows for an analysis' per-pair figures. A part holds when its
interval lies entirely on the claimed side of the threshold, fails when it lies entirely on the other side,
and is inconclusive otherwise; the claim holds when every part holds, fails when any part fails.

A leaf of the layers (analyses.stats, numpy and pandas only): `bench reproduce` passes the claim's fields.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from analyses.stats import bootstrap_mean, paired_difference, paired_difference_over_splits, unpaired_difference

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"


def verdict(lower: float, upper: float, direction: str, threshold: float) -> str:
    """holds / fails / inconclusive of one interval against `direction` ('>' or '<') `threshold`."""
    if direction == ">":
        return HOLDS if lower > threshold else FAILS if upper < threshold else INCONCLUSIVE
    return HOLDS if upper < threshold else FAILS if lower > threshold else INCONCLUSIVE


def combine(outcomes: Sequence[str]) -> str:
    """A claim's outcome from its parts': fails if one fails, holds if all hold, else inconclusive."""
    if not outcomes:
        return INCONCLUSIVE
    if FAILS in outcomes:
        return FAILS
    return HOLDS if all(o == HOLDS for o in outcomes) else INCONCLUSIVE


def _part(label: str, result: Dict[str, float], direction: str, threshold: float) -> Dict:
    return {"part": label, "difference": result["difference"], "lower": result["lower"], "upper": result["upper"],
            "outcome": verdict(result["lower"], result["upper"], direction, threshold)}


def _result(parts: List[Dict]) -> Dict:
    return {"outcome": combine([p["outcome"] for p in parts]), "parts": parts}


def _select(episodes: pd.DataFrame, method: str, shot: int, split: str) -> pd.DataFrame:
    rows = episodes[(episodes.method == method) & (episodes.shot == shot)]
    return rows if split == "mean" else rows[rows.split == int(split)]


def _splits(episodes: pd.DataFrame, splits: Sequence[str]) -> List[str]:
    return list(splits) or [str(s) for s in sorted(episodes.split.unique())]


def methods_claim(episodes: pd.DataFrame, a: Sequence[str], b: Sequence[str], splits: Sequence[str] = (),
                  shots: Sequence[int] = (), direction: str = ">", threshold: float = 0.0, resamples: int = 1000,
                  seed: int = 0) -> Dict:
    """Each method of `a` minus each of `b` (mIoU points) on the episodes both have, per split ('mean': the
    mean over splits) and shot (default: every split and shot of `episodes`)."""
    parts = []
    for shot in list(shots) or sorted(episodes.shot.unique()):
        for split in _splits(episodes, splits):
            for first in a:
                for second in b:
                    rows_a, rows_b = _select(episodes, first, shot, split), _select(episodes, second, shot, split)
                    if rows_a.empty or rows_b.empty:
                        raise ValueError(f"no episodes of {first if rows_a.empty else second} at {shot} shot, "
                                         f"split {split}")
                    compare = paired_difference_over_splits if split == "mean" else paired_difference
                    result = compare(rows_a, rows_b, resamples, seed)
                    parts.append(_part(f"{first} - {second}, {shot}-shot, split {split}", result, direction,
                                       threshold))
    return _result(parts)


def shots_claim(episodes: pd.DataFrame, methods: Sequence[str], low: int, high: int, splits: Sequence[str] = (),
                direction: str = ">", threshold: float = 0.0, resamples: int = 1000, seed: int = 0) -> Dict:
    """Each method's `high`-shot minus its `low`-shot mIoU per split ('mean': over splits); the two shot
    settings have different episodes, so their draws are independent."""
    parts = []
    for method in methods:
        for split in _splits(episodes, splits):
            rows_high, rows_low = _select(episodes, method, high, split), _select(episodes, method, low, split)
            if rows_high.empty or rows_low.empty:
                raise ValueError(f"no episodes of {method} at {high if rows_high.empty else low} shot, split {split}")
            result = unpaired_difference(rows_high, rows_low, resamples, seed)
            parts.append(_part(f"{method} {high}-shot - {low}-shot, split {split}", result, direction, threshold))
    return _result(parts)


def column_estimate(frame: pd.DataFrame, column: str, minus: str = "", resamples: int = 1000,
                    seed: int = 0) -> Tuple[float, Optional[float], Optional[float]]:
    """(value, lower, upper) of a column of an analysis' table: a pooled figure on one row with the interval its
    analysis computed (`<column>_ci_low` / `_ci_high`), else the mean over the rows (NaN left out; `minus`
    subtracted row by row) with a bootstrap interval over them; no interval from fewer than two values."""
    for name in (column, minus):
        if name and name not in frame.columns:
            raise ValueError(f"the table has no column {name!r} (it has {', '.join(frame.columns)})")
    low, high = f"{column}_ci_low", f"{column}_ci_high"
    if not minus and len(frame) == 1 and low in frame.columns and high in frame.columns:
        row = frame.iloc[0]
        return float(row[column]), float(row[low]), float(row[high])
    values = (frame[column] - frame[minus] if minus else frame[column]).to_numpy(float)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return (float(values[0]) if len(values) else float("nan")), None, None
    return bootstrap_mean(values, resamples, seed)


def value_claim(frame: pd.DataFrame, column: str, minus: str = "", direction: str = ">", threshold: float = 0.0,
                resamples: int = 1000, seed: int = 0, label: str = "") -> Dict:
    """The mean of `column` (minus `minus`, row by row) over the rows of an analysis' table, or its one pooled
    figure, with its interval (`column_estimate`); without an interval the claim is inconclusive."""
    value, lower, upper = column_estimate(frame, column, minus, resamples, seed)
    text = label or (f"mean {column} - {minus}" if minus else f"mean {column}")
    part = {"part": text, "difference": value, "lower": lower, "upper": upper,
            "outcome": INCONCLUSIVE if lower is None else verdict(lower, upper, direction, threshold)}
    return _result([part])
