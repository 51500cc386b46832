"""Statistics over episodes: bootstrap confidence intervals of mIoU and paired method comparisons.

The point estimate is the tables' own (`analyses.summary`): per seed, the mIoU pooled over that seed's
episodes, then the mean over seeds. Episodes are not independent draws: a (query image, class) pair
recurs across episodes and seeds (with other supports), so resampling episodes would count one query
several times as fresh evidence and give too narrow intervals. The bootstrap therefore resamples
clusters, the distinct (query image, class) pairs, with replacement; each drawn pair brings all its
episodes of every seed, and the estimate is recomputed. A paired comparison draws the same clusters for
both methods evaluated on identical episodes, so the interval of the difference reflects the sampling
of queries, not the difference of two unrelated draws.

A leaf of the layers (numpy and pandas only; tests/test_layers.py): `bench report`, `bench compare`, the
analyses and results.json (`bench.runs.results_file`) all compute their intervals here. A bad resample
count is a ValueError; the command line refuses it earlier, as it parses `--resamples`
(`bench.cli.arguments.RESAMPLES`, the same bounds).
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
#: the most bootstrap resamples: the draws are held in memory, [resamples, episodes] floats
MAX_RESAMPLES = 100_000


def check_resamples(resamples: int) -> int:
    """`--resamples`, refused outside 1..MAX_RESAMPLES (a huge count would exhaust memory)."""
    if resamples < 1:
        raise ValueError(f"--resamples must be >= 1, got {resamples}")
    if resamples > MAX_RESAMPLES:
        raise ValueError(f"--resamples must be <= {MAX_RESAMPLES:,} (the draws are held in memory), got {resamples}")
    return resamples


def _miou_samples(class_ids: np.ndarray, inter: np.ndarray, union: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """mIoU (percent) for each row of resampling weights [B, N]; a class with zero union is left out."""
    per_class = []
    for c in np.unique(class_ids):
        mask = class_ids == c
        i = weights[:, mask] @ inter[mask]
        u = weights[:, mask] @ union[mask]
        per_class.append(np.divide(i, u, out=np.full_like(i, np.nan, dtype=float), where=u > 0))
    return 100.0 * np.nanmean(np.stack(per_class, axis=1), axis=1)


def _train_codes(rows: pd.DataFrame) -> np.ndarray:
    """0..T-1 per row: the training seed of the checkpoint that produced it (0 for one or none)."""
    if "train_seed" not in rows.columns:
        return np.zeros(len(rows), dtype=int)
    return rows["train_seed"].fillna(-1).rank(method="dense").to_numpy(int) - 1


def _estimate(rows: pd.DataFrame, weights: np.ndarray, train_weights: Optional[np.ndarray] = None,
              suffix: str = "") -> np.ndarray:
    """The tables' estimate for each row of episode weights [B, N]: per episode set (seed) and training seed
    the pooled mIoU, averaged over training seeds (weighted by `train_weights` [B, T] when resampled), then
    over seeds."""
    seeds, trains, class_ids = rows.seed.to_numpy(), _train_codes(rows), rows.class_id.to_numpy()
    inter, union = rows[f"fg_inter{suffix}"].to_numpy(float), rows[f"fg_union{suffix}"].to_numpy(float)
    per_seed = []
    for s in np.unique(seeds):
        in_seed = seeds == s
        ts = np.unique(trains[in_seed])
        per_train = np.stack([_miou_samples(class_ids[m], inter[m], union[m], weights[:, m])
                              for m in (in_seed & (trains == t) for t in ts)], axis=1)  # [B, T]
        w = np.ones_like(per_train) if train_weights is None else train_weights[:, ts]
        per_seed.append((per_train * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-12))
    return np.mean(np.stack(per_seed, axis=1), axis=1)


def _draw_clusters(codes: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Counts [B, n]: how often each of the n clusters was drawn in each of `resamples` draws."""
    n = int(codes.max()) + 1
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)


def _train_draws(rows: pd.DataFrame, resamples: int, rng: np.random.Generator) -> Optional[np.ndarray]:
    """Training seeds resampled with replacement [B, T] when a method was trained with several, else None."""
    count = int(_train_codes(rows).max(initial=0)) + 1
    return None if count < 2 else _draw_clusters(np.arange(count), resamples, rng)


def _cluster_codes(rows: pd.DataFrame, cluster: Sequence[str], reference: Optional[pd.DataFrame] = None) -> np.ndarray:
    """Each row's cluster number; clusters numbered over `reference` (default `rows`) so two frames agree."""
    keys = (reference if reference is not None else rows)[list(cluster)].drop_duplicates().sort_values(list(cluster))
    numbers = {tuple(k): i for i, k in enumerate(keys.itertuples(index=False))}
    return np.array([numbers[tuple(k)] for k in rows[list(cluster)].itertuples(index=False)], dtype=int)


def clusters(rows: pd.DataFrame, cluster: Sequence[str] = CLUSTER) -> int:
    """The number of distinct clusters (by default (query, class) pairs) among `rows`."""
    return int(rows.groupby(list(cluster)).ngroups)


def miou_estimate(rows: pd.DataFrame) -> float:
    """The tables' mIoU (percent) of `rows` (one method, split and shot): per episode set and training seed
    pooled over its episodes, averaged over training seeds, then over episode sets."""
    return float(_estimate(rows, np.ones((1, len(rows))))[0])


def bootstrap_miou(rows: pd.DataFrame, resamples: int = 1000, seed: int = 0,
                   cluster: Sequence[str] = CLUSTER) -> Tuple[float, float, float]:
    """(mIoU, lower, upper): the tables' mIoU of `rows` (one method, split and shot) with a 95% percentile
    bootstrap interval over clusters and, where the method was trained with several seeds, training seeds."""
    check_resamples(resamples)
    samples = _resampled(rows, resamples, np.random.default_rng(seed), cluster)
    return miou_estimate(rows), float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))


def bootstrap_mean_over_splits(rows: pd.DataFrame, resamples: int = 1000, seed: int = 0,
                               cluster: Sequence[str] = CLUSTER) -> Tuple[float, float, float]:
    """(mIoU, lower, upper) of the summary's "mean" row: the mean over splits of each split's mIoU (`rows`: one
    method and shot), with a 95% percentile interval; each split's clusters (and training seeds) are drawn on
    their own (the splits hold disjoint classes) and each draw averaged over the splits."""
    check_resamples(resamples)
    rng = np.random.default_rng(seed)
    parts = [group for _, group in rows.groupby("split", sort=True)]
    samples = np.mean([_resampled(part, resamples, rng, cluster) for part in parts], axis=0)
    point = float(np.mean([miou_estimate(part) for part in parts]))
    return point, float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))


def _resampled(rows: pd.DataFrame, resamples: int, rng: np.random.Generator, cluster: Sequence[str]) -> np.ndarray:
    """The estimate of `rows` under `resamples` draws of its clusters (and training seeds, where several)."""
    codes = _cluster_codes(rows, cluster)
    return _estimate(rows, _draw_clusters(codes, resamples, rng)[:, codes], _train_draws(rows, resamples, rng))


def _paired_samples(rows_a: pd.DataFrame, rows_b: pd.DataFrame, resamples: int, rng: np.random.Generator,
                    cluster: Sequence[str]) -> Tuple[float, np.ndarray, pd.DataFrame]:
    """(point, draws [B], the episodes both have) of mIoU(a) - mIoU(b), paired as `paired_difference` says."""
    episode = KEYS + ["class_id", "query"]
    common = rows_a[episode].drop_duplicates().merge(rows_b[episode].drop_duplicates(), on=episode)
    if common.empty:
        raise ValueError("the two methods share no episodes")
    a, b = (rows.merge(common, on=episode) for rows in (rows_a, rows_b))
    drawn = _draw_clusters(_cluster_codes(common, cluster), resamples, rng)
    codes_a, codes_b = _cluster_codes(a, cluster, common), _cluster_codes(b, cluster, common)
    point = miou_estimate(a) - miou_estimate(b)
    samples = (_estimate(a, drawn[:, codes_a], _train_draws(a, resamples, rng))
               - _estimate(b, drawn[:, codes_b], _train_draws(b, resamples, rng)))
    return point, samples, common


def _difference(point: float, samples: np.ndarray, **extra) -> Dict[str, float]:
    low, high = np.percentile(samples, [2.5, 97.5])
    return {"difference": float(point), "lower": float(low), "upper": float(high), **extra,
            "significant": bool(low > 0 or high < 0)}


def paired_difference(rows_a: pd.DataFrame, rows_b: pd.DataFrame, resamples: int = 1000, seed: int = 0,
                      cluster: Sequence[str] = CLUSTER) -> Dict[str, float]:
    """mIoU(a) - mIoU(b) on the episodes both were evaluated on, with a paired 95% bootstrap interval: the same
    clusters drawn for both; each method's training seeds (where several) resampled on their own, since two
    methods' trainings are independent."""
    check_resamples(resamples)
    point, samples, common = _paired_samples(rows_a, rows_b, resamples, np.random.default_rng(seed), cluster)
    return _difference(point, samples, episodes=len(common), clusters=clusters(common, cluster))


def paired_difference_over_splits(rows_a: pd.DataFrame, rows_b: pd.DataFrame, resamples: int = 1000, seed: int = 0,
                                  cluster: Sequence[str] = CLUSTER) -> Dict[str, float]:
    """The paired difference of the mean over splits of each split's mIoU (one shot): each split drawn on its
    own (as `bootstrap_mean_over_splits`), paired within it, the draws averaged over splits."""
    check_resamples(resamples)
    rng = np.random.default_rng(seed)
    parts = [_paired_samples(part, rows_b[rows_b.split == split], resamples, rng, cluster)
             for split, part in rows_a.groupby("split", sort=True)]
    return _difference(float(np.mean([p[0] for p in parts])), np.mean([p[1] for p in parts], axis=0),
                       episodes=sum(len(p[2]) for p in parts), clusters=sum(clusters(p[2], cluster) for p in parts))


def unpaired_difference(rows_a: pd.DataFrame, rows_b: pd.DataFrame, resamples: int = 1000, seed: int = 0,
                        cluster: Sequence[str] = CLUSTER) -> Dict[str, float]:
    """mIoU(a) - mIoU(b) of two sets of episodes that are not paired (e.g. one method's 5-shot and 1-shot
    episodes), each a mean over its splits, each bootstrapped on its own: the interval of the difference of
    independent draws (wider than a paired one)."""
    check_resamples(resamples)
    rng = np.random.default_rng(seed)
    means = []
    for rows in (rows_a, rows_b):
        parts = [group for _, group in rows.groupby("split", sort=True)]
        means.append((np.mean([miou_estimate(p) for p in parts]),
                      np.mean([_resampled(p, resamples, rng, cluster) for p in parts], axis=0)))
    return _difference(float(means[0][0] - means[1][0]), means[0][1] - means[1][1],
                       episodes=len(rows_a) + len(rows_b))


def bootstrap_mean(values: Sequence[float], resamples: int = 1000, seed: int = 0) -> Tuple[float, float, float]:
    """(mean, lower, upper) of `values` (NaN left out) with a 95% percentile bootstrap interval over them (each
    value one independent draw: for per-pair figures of the analyses)."""
    check_resamples(resamples)
    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    if data.size == 0:
        raise ValueError("no values to average")
    draws = np.random.default_rng(seed).multinomial(data.size, np.full(data.size, 1.0 / data.size), size=resamples)
    samples = draws @ data / data.size
    return float(data.mean()), float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))


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
