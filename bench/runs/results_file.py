"""results.json: one versioned file per run with its configuration, environment, metrics and provenance.

Written atomically by `bench run` at the end of each run, from the saved per-episode rows (never from
stored metrics), next to episodes.csv, with the 95% bootstrap intervals of mIoU that `bench report` shows
(`analyses.stats`: (query image, class) pairs resampled, seed `INTERVAL_SEED`). The schema is the TypedDicts below; `SCHEMA_VERSION` changes
whenever a field is removed or changes meaning (adding a field does not). Missing values are JSON null.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, TypedDict

import pandas as pd

from analyses.stats import bootstrap_mean_over_splits, bootstrap_miou
from analyses.summary import CELL_KEYS, TRAIN, cell_metrics
from bench.data.episodes import parse_cell
from bench.runs.cells import Cell
from bench.runs.config import recorded_methods

SCHEMA_VERSION = 1
#: the bootstrap of the stored intervals: `bench report --resamples 1000` shows the same numbers
INTERVAL_RESAMPLES = 1000
INTERVAL_SEED = 0
#: what the stored intervals are
INTERVALS = ("miou_ci_low / miou_ci_high: 95% percentile bootstrap intervals of mIoU (analyses.stats, as `bench "
             "report` shows them): distinct (query image, class) pairs resampled with replacement, and training "
             "seeds where several; the mean over splits draws each split on its own")


class CellResult(TypedDict):
    """One evaluated cell: a method on one (split, shot, seed) episode set, for one training seed."""

    method: str
    split: int
    shot: int
    seed: int
    train_seed: Optional[int]  # null: the method's only checkpoint (or no training)
    episodes: int
    miou: float  # percent
    miou_ci_low: Optional[float]  # 95% bootstrap interval of miou (percent; see ResultsFile.intervals)
    miou_ci_high: Optional[float]
    fbiou: float  # percent
    sha256: str  # of the cell's per-episode CSV (episodes/<key>.csv)
    checkpoint: Optional[str]  # folder under the checkpoint root, or published/<entry>
    checkpoint_sha256: Optional[str]  # of best.pt, or of the published weights file
    weights: Optional[str]  # published entry (tag), if the cell used published weights


class SplitResult(TypedDict):
    """A method's metrics on one split and shot over its cells (`aggregate` "mean": the mean over splits)."""

    method: str
    split: Optional[int]  # null on the aggregate rows
    aggregate: Optional[str]  # "mean" (over splits) or null
    shot: int
    miou_mean: float
    miou_ci_low: Optional[float]  # 95% bootstrap interval of miou_mean (percent; see ResultsFile.intervals)
    miou_ci_high: Optional[float]
    miou_std: Optional[float]  # over seeds (episode sets); null with one seed
    miou_train_std: Optional[float]  # over training seeds; null with one
    fbiou_mean: float
    fbiou_std: Optional[float]
    fbiou_train_std: Optional[float]
    seeds: int
    train_seeds: int
    episodes: int


class MethodRecord(TypedDict):
    """What a method's cells are: its identity and the checkpoints or published weights they used."""

    identity: Dict  # method, training options (learned methods), published entries (config.method_identity)
    checkpoints: Dict[str, Dict]  # "<method>/split<k>[/train<t>]" -> {checkpoint, sha256[, weights]}


class ResultsFile(TypedDict):
    schema_version: int
    config: Dict  # config.json's "config": the resolved options of the last command, methods = all present
    protocol: str  # the one-line protocol `bench run` prints first
    environment: Dict  # package versions, git revision, platform, device
    dataset: Dict  # name and content hash
    manifests: Dict[str, str]  # sha256 of every episode set
    methods: Dict[str, MethodRecord]
    cells: List[CellResult]
    splits: List[SplitResult]
    intervals: str  # how the cells' and splits' miou_ci_low / miou_ci_high were computed
    interval_resamples: int  # their bootstrap resamples (`bench report --resamples`)
    interval_seed: int  # their bootstrap's random seed


def _number(value) -> Optional[float]:
    return None if value is None or pd.isna(value) or not math.isfinite(float(value)) else float(value)


def _int(value) -> Optional[int]:
    return None if value is None or pd.isna(value) else int(value)


def _cell(method: str, split, shot, seed, train_seed) -> Cell:
    return Cell(method, int(split), int(shot), int(seed), _int(train_seed))


def _bounds(estimate) -> tuple:
    """(low, high) of a bootstrap's (point, low, high); null where undefined (no class with a foreground)."""
    return _number(estimate[1]), _number(estimate[2])


def _intervals(episodes: pd.DataFrame, resamples: int) -> Dict:
    """(low, high) of the mIoU of every cell (by `Cell`), split ((method, "<split>", shot)) and mean over
    splits ((method, "mean", shot)), as `analyses.stats.bootstrap_table` groups them."""
    out = {}
    keys = CELL_KEYS + ([TRAIN] if TRAIN in episodes.columns else [])
    for key, rows in episodes.groupby(keys, sort=True, dropna=False):
        named = dict(zip(keys, key))
        cell = _cell(named["method"], named["split"], named["shot"], named["seed"], named.get(TRAIN))
        out[cell] = _bounds(bootstrap_miou(rows, resamples, INTERVAL_SEED))
    for (method, shot), group in episodes.groupby(["method", "shot"], sort=True):
        for split, rows in group.groupby("split", sort=True):
            out[(method, str(split), shot)] = _bounds(bootstrap_miou(rows, resamples, INTERVAL_SEED))
        out[(method, "mean", shot)] = _bounds(bootstrap_mean_over_splits(group, resamples, INTERVAL_SEED))
    return out


def results_document(record: Dict, episodes: pd.DataFrame, summary: pd.DataFrame, metas: List[Dict],
                     resamples: int = INTERVAL_RESAMPLES) -> ResultsFile:
    """results.json of a run: `record` its config.json, `episodes` its gathered rows, `summary` their
    `summarize`, `metas` the records of the cells gathered; `resamples` those of the intervals."""
    intervals = _intervals(episodes, resamples)
    by_cell = {_cell(m["method"], *parse_cell(m["cell"]), m.get("train_seed")): m for m in metas}
    cells: List[CellResult] = []
    for row in cell_metrics(episodes).itertuples(index=False):
        cell = _cell(row.method, row.split, row.shot, row.seed, getattr(row, "train_seed", None))
        meta, (low, high) = by_cell[cell], intervals[cell]
        cells.append(CellResult(
            method=row.method, split=int(row.split), shot=int(row.shot), seed=int(row.seed),
            train_seed=_int(getattr(row, "train_seed", None)), episodes=int(row.episodes), miou=float(row.miou),
            miou_ci_low=low, miou_ci_high=high, fbiou=float(row.fbiou), sha256=meta["sha256"], checkpoint=meta.get("checkpoint"),
            checkpoint_sha256=meta.get("weights_sha256") or meta.get("checkpoint_sha256"),
            weights=meta.get("weights")))
    splits: List[SplitResult] = []
    for row in summary.itertuples(index=False):
        aggregate = row.split == "mean"
        low, high = intervals[(row.method, str(row.split), row.shot)]
        splits.append(SplitResult(
            method=row.method, split=None if aggregate else int(row.split), aggregate="mean" if aggregate else None,
            shot=int(row.shot), miou_mean=float(row.miou_mean), miou_ci_low=low, miou_ci_high=high, miou_std=_number(row.miou_std),
            miou_train_std=_number(row.miou_train_std), fbiou_mean=float(row.fbiou_mean),
            fbiou_std=_number(row.fbiou_std), fbiou_train_std=_number(row.fbiou_train_std), seeds=int(row.seeds),
            train_seeds=int(row.train_seeds), episodes=int(row.episodes)))
    methods: Dict[str, MethodRecord] = {}
    for method, identity in recorded_methods(record).items():
        used = {_cell(c["method"], c["split"], c["shot"], c["seed"], c["train_seed"]).checkpoint_key: c
                for c in cells if c["method"] == method and c["checkpoint"]}
        methods[method] = MethodRecord(identity=identity, checkpoints={
            key: {"checkpoint": c["checkpoint"], "sha256": c["checkpoint_sha256"],
                  **({"weights": c["weights"]} if c["weights"] else {})} for key, c in sorted(used.items())})
    return ResultsFile(
        schema_version=SCHEMA_VERSION, config=record["config"], protocol=record.get("protocol", ""),
        environment=record.get("environment", {}),
        dataset={"name": record["dataset"]["name"], "hash": record["dataset"].get("hash")},
        manifests=dict(record["manifests"]), methods=methods, cells=cells, splits=splits, intervals=INTERVALS,
        interval_resamples=resamples, interval_seed=INTERVAL_SEED)

