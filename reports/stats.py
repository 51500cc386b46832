"""Statistics over episodes: bootstrap confidence intervals of mIoU and paired method comparisons.

The point estimate is the tables' own (`analyses.summary`): per seed, the mIoU pooled over that seed's
episodes, then the mean over seeds. Episodes are not independent draws: a (query image, class) pair
recurs across episodes and seeds (with other supports), so resampling episodes would count one query
several times as fresh evidence and give too narrow intervals. The bootstrap therefore resamples
clusters, the distinct (query image, class) pairs, with replacement; each drawn pair brings all its
episodes of every seed, and the estimate is recomputed. A paired comparison draws the same clusters for
both methods evaluated on identical episodes, so the interval of the difference reflects the sampling
of queries, not the difference of two unrelated draws.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

KEYS = ["split", "shot", "seed", "episode"]
#: the resampled unit: a (query image, class) pair
CLUSTER = ("query", "class_id")
#: every episode its own cluster (the naive bootstrap; for comparison only)
EPISODE = ("seed", "episode")


def _miou_samples(class_ids: np.ndarray, inter: np.ndarray, union: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """mIoU (percent) for each row of resampling weights [B, N]; a class with zero union is left out."""
    per_class = []
    for c in np.unique(class_ids):
        mask = class_ids == c
        i = weights[:, mask] @ inter[mask]
        u = weights[:, mask] @ union[mask]
        per_class.append(np.divide(i, u, out=np.full_like(i, np.nan, dtype=float), where=u > 0))
    return 100.0 * np.nanmean(np.stack(per_class, axis=1), axis=1)


def _estimate(seeds: np.ndarray, class_ids: np.ndarray, inter: np.ndarray, union: np.ndarray,
              weights: np.ndarray) -> np.ndarray:
    """Mean over seeds of each seed's pooled mIoU, for each row of episode weights [B, N]."""
    per_seed = [_miou_samples(class_ids[seeds == s], inter[seeds == s], union[seeds == s], weights[:, seeds == s])
                for s in np.unique(seeds)]
    return np.mean(np.stack(per_seed, axis=1), axis=1)


def _cluster_weights(rows: pd.DataFrame, cluster: Sequence[str], resamples: int, seed: int) -> np.ndarray:
    """Episode weights [B, N]: how often each episode's cluster was drawn in each of `resamples` draws."""
    codes = rows.groupby(list(cluster), sort=True).ngroup().to_numpy()
    n = int(codes.max()) + 1
    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)
    return drawn[:, codes]


def clusters(rows: pd.DataFrame, cluster: Sequence[str] = CLUSTER) -> int:
    """The number of distinct clusters (by default (query, class) pairs) among `rows`."""
    return int(rows.groupby(list(cluster)).ngroups)


def _columns(rows: pd.DataFrame, suffix: str = "") -> Tuple[np.ndarray, ...]:
    return (rows.seed.to_numpy(), rows.class_id.to_numpy(), rows[f"fg_inter{suffix}"].to_numpy(float),
            rows[f"fg_union{suffix}"].to_numpy(float))


def bootstrap_miou(rows: pd.DataFrame, resamples: int = 1000, seed: int = 0,
                   cluster: Sequence[str] = CLUSTER) -> Tuple[float, float, float]:
    """(mIoU, lower, upper): the mean over seeds of the pooled mIoU of `rows` (one method, split and shot)
    with a 95% percentile cluster-bootstrap interval."""
    columns = _columns(rows)
    point = _estimate(*columns, np.ones((1, len(rows))))[0]
    samples = _estimate(*columns, _cluster_weights(rows, cluster, resamples, seed))
    return float(point), float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))


def paired_difference(rows_a: pd.DataFrame, rows_b: pd.DataFrame, resamples: int = 1000, seed: int = 0,
                      cluster: Sequence[str] = CLUSTER) -> Dict[str, float]:
    """mIoU(a) - mIoU(b) on the episodes both were evaluated on, with a paired 95% cluster-bootstrap interval."""
    merged = rows_a.merge(rows_b, on=KEYS + ["class_id", "query"], suffixes=("_a", "_b"))
    if merged.empty:
        raise ValueError("the two methods share no episodes")
    weights = _cluster_weights(merged, cluster, resamples, seed)
    ones = np.ones((1, len(merged)))
    a, b = _columns(merged, "_a"), _columns(merged, "_b")
    point = (_estimate(*a, ones) - _estimate(*b, ones))[0]
    low, high = np.percentile(_estimate(*a, weights) - _estimate(*b, weights), [2.5, 97.5])
    return {"difference": float(point), "lower": float(low), "upper": float(high), "episodes": len(merged),
            "clusters": clusters(merged, cluster), "significant": bool(low > 0 or high < 0)}


def _ordered(names, order: Optional[List[str]]) -> List[str]:
    present = set(names)
    first = [m for m in (order or []) if m in present]
    return first + sorted(present - set(first))


def bootstrap_table(episodes: pd.DataFrame, resamples: int = 1000, order: Optional[List[str]] = None) -> pd.DataFrame:
    """Per (method, split, shot), methods in `order`: the tables' mIoU and its 95% cluster-bootstrap interval."""
    rows = []
    for method in _ordered(episodes.method.unique(), order):
        for (split, shot), group in episodes[episodes.method == method].groupby(["split", "shot"], sort=True):
            point, low, high = bootstrap_miou(group, resamples)
            rows.append({"method": method, "split": split, "shot": shot, "miou": point, "ci_low": low, "ci_high": high,
                         "episodes": len(group), "clusters": clusters(group)})
    return pd.DataFrame(rows)


def paired_table(episodes: pd.DataFrame, reference: str, resamples: int = 1000,
                 order: Optional[List[str]] = None) -> pd.DataFrame:
    """Every other method (in `order`) against `reference`, per split and shot, on identical episodes."""
    rows = []
    for (split, shot), group in episodes.groupby(["split", "shot"], sort=True):
        ref = group[group.method == reference]
        for method in _ordered(set(group.method) - {reference}, order):
            result = paired_difference(ref, group[group.method == method], resamples)
            rows.append({"reference": reference, "method": method, "split": split, "shot": shot, **result})
    return pd.DataFrame(rows)
