"""results.json: one versioned file per run with its configuration, environment, metrics and provenance.

Written atomically by `bench run` at the end of each run, from the saved per-episode rows (never from
stored metrics), next to episodes.csv. The schema is the TypedDicts below; `SCHEMA_VERSION` changes
whenever a field is removed or changes meaning (adding a field does not). Missing values are JSON null.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, TypedDict

import pandas as pd

from analyses.summary import cell_metrics
from bench.data.episodes import parse_cell
from bench.runs.cells import Cell
from bench.runs.config import recorded_methods

SCHEMA_VERSION = 1
#: why results.json holds no confidence intervals (bench.runs sits below reports/, which computes them)
INTERVALS = ("not stored: 95% bootstrap intervals over episodes are computed from episodes.csv by "
             "`bench report` (reports/stats.py)")


class CellResult(TypedDict):
    """One evaluated cell: a method on one (split, shot, seed) episode set, for one training seed."""

    method: str
    split: int
    shot: int
    seed: int
    train_seed: Optional[int]  # null: the method's only checkpoint (or no training)
    episodes: int
    miou: float  # percent
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
    intervals: str  # where the confidence intervals are (not in this file)


def _number(value) -> Optional[float]:
    return None if value is None or pd.isna(value) or not math.isfinite(float(value)) else float(value)


def _int(value) -> Optional[int]:
    return None if value is None or pd.isna(value) else int(value)


def _cell(method: str, split, shot, seed, train_seed) -> Cell:
    return Cell(method, int(split), int(shot), int(seed), _int(train_seed))


def results_document(record: Dict, episodes: pd.DataFrame, summary: pd.DataFrame, metas: List[Dict]) -> ResultsFile:
    """results.json of a run: `record` its config.json, `episodes` its gathered rows, `summary` their
    `summarize`, `metas` the records of the cells gathered."""
    by_cell = {_cell(m["method"], *parse_cell(m["cell"]), m.get("train_seed")): m for m in metas}
    cells: List[CellResult] = []
    for row in cell_metrics(episodes).itertuples(index=False):
        meta = by_cell[_cell(row.method, row.split, row.shot, row.seed, getattr(row, "train_seed", None))]
        cells.append(CellResult(
            method=row.method, split=int(row.split), shot=int(row.shot), seed=int(row.seed),
            train_seed=_int(getattr(row, "train_seed", None)), episodes=int(row.episodes), miou=float(row.miou),
            fbiou=float(row.fbiou), sha256=meta["sha256"], checkpoint=meta.get("checkpoint"),
            checkpoint_sha256=meta.get("weights_sha256") or meta.get("checkpoint_sha256"),
            weights=meta.get("weights")))
    splits: List[SplitResult] = []
    for row in summary.itertuples(index=False):
        aggregate = row.split == "mean"
        splits.append(SplitResult(
            method=row.method, split=None if aggregate else int(row.split), aggregate="mean" if aggregate else None,
            shot=int(row.shot), miou_mean=float(row.miou_mean), miou_std=_number(row.miou_std),
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
        manifests=dict(record["manifests"]), methods=methods, cells=cells, splits=splits, intervals=INTERVALS)

