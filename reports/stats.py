"""Statistics over episodes: bootstrap confidence intervals of mIoU and paired method comparisons.

mIoU pools intersections and unions per class over episodes, so a bootstrap resamples whole episodes
(with replacement, pooled over seeds) and recomputes the pooled mIoU of each resample. A paired
comparison resamples the same episode indices for two methods evaluated on identical episodes, so the
interval of the difference reflects the sampling of episodes, not the difference of two unrelated
draws.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import pandas as pd

KEYS = ["split", "shot", "seed", "episode"]


def _miou_samples(class_ids: np.ndarray, inter: np.ndarray, union: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """mIoU (percent) for each row of resampling weights [B, N]."""
    classes = np.unique(class_ids)
    per_class = []
    for c in classes:
        mask = class_ids == c
        i = weights[:, mask] @ inter[mask]
        u = weights[:, mask] @ union[mask]
        per_class.append(np.divide(i, u, out=np.full_like(i, np.nan, dtype=float), where=u > 0))
    return 100.0 * np.nanmean(np.stack(per_class, axis=1), axis=1)


def _weights(n: int, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)


def bootstrap_miou(rows: pd.DataFrame, resamples: int = 1000, seed: int = 0) -> Tuple[float, float, float]:
    """(mIoU, lower, upper) with a 95% percentile bootstrap interval over the episodes in `rows`."""
    class_ids = rows.class_id.to_numpy()
    inter, union = rows.fg_inter.to_numpy(float), rows.fg_union.to_numpy(float)
    point = _miou_samples(class_ids, inter, union, np.ones((1, len(rows))))[0]
    samples = _miou_samples(class_ids, inter, union, _weights(len(rows), resamples, seed))
    return float(point), float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))


def paired_difference(rows_a: pd.DataFrame, rows_b: pd.DataFrame, resamples: int = 1000,
                      seed: int = 0) -> Dict[str, float]:
    """mIoU(a) - mIoU(b) on the episodes both were evaluated on, with a paired 95% bootstrap interval."""
    merged = rows_a.merge(rows_b, on=KEYS + ["class_id"], suffixes=("_a", "_b"))
    if merged.empty:
        raise ValueError("the two methods share no episodes")
    class_ids = merged.class_id.to_numpy()
    weights = _weights(len(merged), resamples, seed)
    a = _miou_samples(class_ids, merged.fg_inter_a.to_numpy(float), merged.fg_union_a.to_numpy(float), weights)
    b = _miou_samples(class_ids, merged.fg_inter_b.to_numpy(float), merged.fg_union_b.to_numpy(float), weights)
    ones = np.ones((1, len(merged)))
    point = (_miou_samples(class_ids, merged.fg_inter_a.to_numpy(float), merged.fg_union_a.to_numpy(float), ones)
             - _miou_samples(class_ids, merged.fg_inter_b.to_numpy(float), merged.fg_union_b.to_numpy(float), ones))[0]
    low, high = np.percentile(a - b, [2.5, 97.5])
    return {"difference": float(point), "lower": float(low), "upper": float(high), "episodes": len(merged),
            "significant": bool(low > 0 or high < 0)}


def bootstrap_table(episodes: pd.DataFrame, resamples: int = 1000) -> pd.DataFrame:
    """Per (method, split, shot): pooled mIoU over all seeds' episodes and its 95% interval."""
    rows = []
    for (method, split, shot), group in episodes.groupby(["method", "split", "shot"], sort=True):
        point, low, high = bootstrap_miou(group, resamples)
        rows.append({"method": method, "split": split, "shot": shot, "miou": point, "ci_low": low, "ci_high": high,
                     "episodes": len(group)})
    return pd.DataFrame(rows)


def paired_table(episodes: pd.DataFrame, reference: str, resamples: int = 1000) -> pd.DataFrame:
    """Every other method against `reference`, per split and shot, on identical episodes."""
    rows = []
    for (split, shot), group in episodes.groupby(["split", "shot"], sort=True):
        ref = group[group.method == reference]
        for method in sorted(set(group.method) - {reference}):
            result = paired_difference(ref, group[group.method == method], resamples)
            rows.append({"reference": reference, "method": method, "split": split, "shot": shot, **result})
    return pd.DataFrame(rows)
