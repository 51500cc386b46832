"""reproduction.json: a card's tables and claims computed from the saved results of a reproduction folder.

Everything is recomputed from the run directories' per-episode rows (each finished method's cells, checked
against their records by `load_finished_methods`; a method not finished counts as not run) and the analyses'
CSV files; nothing is read from a stored metric. The schema is `Reproduction` below, versioned by
`SCHEMA_VERSION` (bumped when a field is removed or changes meaning).
"""
from __future__ import annotations

import datetime
import math
import statistics
from pathlib import Path
from typing import Dict, List, Optional, TypedDict

import pandas as pd

from analyses.claims import column_estimate, methods_claim, shots_claim, value_claim
from analyses.stats import bootstrap_mean_over_splits, bootstrap_miou
from analyses.summary import summarize
from bench.core.environment import git_revision, package_versions
from bench.core.fileio import read_json
from bench.papers.card import Claim, Experiment, PaperCard, Table
from bench.runs.results import RunResults, load_finished_methods

SCHEMA_VERSION = 1
NOT_RUN = "not run"


class Cell(TypedDict):
    column: str
    paper: Optional[float]
    measured: Optional[float]
    lower: Optional[float]
    upper: Optional[float]
    difference: Optional[float]


class Row(TypedDict):
    key: str
    label: str
    shot: int
    cells: List[Cell]


class TableResult(TypedDict):
    id: str
    title: str
    where: str
    experiment: str
    metric: str
    file: str
    columns: List[str]
    rows: List[Row]
    note: str


class ClaimResult(TypedDict):
    id: str
    text: str
    where: str
    kind: str
    experiment: str
    statement: str
    outcome: str
    parts: List[Dict]
    note: str


class _Reproduction(TypedDict):
    schema_version: int
    card: str
    title: str
    citation: str
    url: str
    paper_dataset: str
    dataset: str
    on_paper_dataset: bool
    created: str
    commit: str
    versions: Dict[str, str]
    resamples: int
    interval_seed: int
    runs: Dict[str, List[str]]
    tables: List[TableResult]
    claims: List[ClaimResult]
    timings: Dict[str, Dict[str, float]]


class Reproduction(_Reproduction, total=False):
    #: added by `bench reproduce` (not by `reproduction()`): the card file's sha256 and each run directory's
    #: `bench report` page
    card_sha256: str
    reports: Dict[str, str]


def _number(value) -> Optional[float]:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), 4)


class Measured:
    """The saved results of a reproduction folder, read once each."""

    def __init__(self, out: Path, run_of: Dict[str, str]):
        self.out, self.run_of = out, run_of
        self._runs: Dict[str, Optional[RunResults]] = {}

    def run(self, experiment: str) -> Optional[RunResults]:
        name = self.run_of.get(experiment)
        if name is None:
            return None
        if name not in self._runs:
            path = self.out / "runs" / name
            finished = (path / "config.json").is_file() and load_finished_methods(path)
            self._runs[name] = finished if finished and not finished.episodes.empty else None
        return self._runs[name]

    def episodes(self, experiment: Experiment) -> Optional[pd.DataFrame]:
        run = self.run(experiment.name)
        if run is None:
            return None
        rows = run.episodes
        rows = rows[rows.method.isin(experiment.methods) & rows.split.isin(experiment.splits)
                    & rows.shot.isin(experiment.shots)]
        return None if rows.empty else rows

    def table(self, experiment: str, file: str) -> Optional[pd.DataFrame]:
        folder = self.out / "analyses" / experiment
        if not (folder / "done.json").is_file() or not (folder / file).is_file():  # `file`: a name (loader.py)
            return None
        return pd.read_csv(folder / file)


def _run_table(table: Table, experiment: Experiment, episodes: pd.DataFrame, on_paper: bool,
               resamples: int) -> List[Row]:
    summary = summarize(episodes) if table.metric == "fbiou" and not episodes.empty else None
    rows: List[Row] = []
    for key, label in table.rows.items():
        for shot in table.shots:
            reported = table.reported.get(key, {}).get(str(shot), [None] * len(table.columns))
            cells: List[Cell] = []
            for column, paper in zip(table.columns, reported):
                mine = episodes[(episodes.method == key) & (episodes.shot == shot)]
                if column != "mean":
                    mine = mine[mine.split == int(column)]
                measured = lower = upper = None
                if not mine.empty and table.metric == "miou":
                    compute = bootstrap_mean_over_splits if column == "mean" else bootstrap_miou
                    measured, lower, upper = compute(mine, resamples)
                elif not mine.empty:
                    hit = summary[(summary.method == key) & (summary.shot == shot) & (summary.split == column)]
                    measured = float(hit.fbiou_mean.iloc[0]) if len(hit) else None
                cells.append(_cell(column, paper, measured, lower, upper, on_paper))
            rows.append({"key": key, "label": label, "shot": shot, "cells": cells})
    return rows


def _cell(column: str, paper, measured, lower, upper, on_paper: bool) -> Cell:
    difference = measured - paper if on_paper and measured is not None and paper is not None else None
    return {"column": column, "paper": _number(paper), "measured": _number(measured), "lower": _number(lower),
            "upper": _number(upper), "difference": _number(difference)}


def _analysis_table(table: Table, measured: Measured, on_paper: bool, resamples: int) -> List[Row]:
    rows: List[Row] = []
    for key, label in table.rows.items():
        frame = measured.table(key, table.file)
        for shot in table.shots:
            reported = table.reported.get(key, {}).get(str(shot), [None] * len(table.columns))
            cells = []
            for column, paper in zip(table.columns, reported):
                value = lower = upper = None
                if frame is not None and column in frame.columns and frame[column].notna().any():
                    value, lower, upper = column_estimate(frame, column, resamples=resamples)
                cells.append(_cell(column, paper, value, lower, upper, on_paper))
            rows.append({"key": key, "label": label, "shot": shot, "cells": cells})
    return rows


def table_result(table: Table, card: PaperCard, measured: Measured, on_paper: bool, resamples: int) -> TableResult:
    experiment = card.experiment(table.experiment)
    note = ""
    if experiment.is_run:
        episodes = measured.episodes(experiment)
        if episodes is None:
            note, episodes = NOT_RUN, pd.DataFrame(columns=["method", "split", "shot"])
        rows = _run_table(table, experiment, episodes, on_paper, resamples)
    else:
        rows = _analysis_table(table, measured, on_paper, resamples)
    return {"id": table.id, "title": table.title, "where": table.where, "experiment": table.experiment,
            "metric": table.metric if experiment.is_run else "", "file": table.file, "columns": list(table.columns),
            "rows": rows, "note": note}


def statement(claim: Claim) -> str:
    """The claim as the harness checks it, in one line."""
    splits = ", ".join(claim.splits) if claim.splits else "every split"
    if claim.kind == "methods":
        shots = "/".join(map(str, claim.shots)) or "every"
        return (f"{' | '.join(claim.a)} - {' | '.join(claim.b)} {claim.direction} {claim.threshold:g} mIoU "
                f"({shots}-shot; {splits}; paired bootstrap)")
    if claim.kind == "shots":
        return (f"{claim.shots[1]}-shot - {claim.shots[0]}-shot {claim.direction} {claim.threshold:g} mIoU for "
                f"{' | '.join(claim.a)} ({splits})")
    what = f"{claim.column} - {claim.minus}" if claim.minus else claim.column
    return f"mean {what} of {claim.experiment}/{claim.file} {claim.direction} {claim.threshold:g}"


def claim_result(claim: Claim, card: PaperCard, measured: Measured, resamples: int) -> ClaimResult:
    experiment = card.experiment(claim.experiment)
    base = {"id": claim.id, "text": claim.text, "where": claim.where, "kind": claim.kind,
            "experiment": claim.experiment, "statement": statement(claim)}
    try:
        if claim.kind == "value":
            frame = measured.table(claim.experiment, claim.file)
            if frame is None:
                return {**base, "outcome": NOT_RUN, "parts": [], "note": f"no {claim.file} of {claim.experiment}"}
            result = value_claim(frame, claim.column, claim.minus, claim.direction, claim.threshold, resamples)
        else:
            episodes = measured.episodes(experiment)
            if episodes is None:
                return {**base, "outcome": NOT_RUN, "parts": [], "note": f"{claim.experiment} has not run"}
            if claim.kind == "methods":
                result = methods_claim(episodes, claim.a, claim.b, claim.splits, claim.shots, claim.direction,
                                       claim.threshold, resamples)
            else:
                result = shots_claim(episodes, claim.a, claim.shots[0], claim.shots[1], claim.splits,
                                     claim.direction, claim.threshold, resamples)
    except ValueError as exc:  # missing cells or columns: reported, not raised
        return {**base, "outcome": NOT_RUN, "parts": [], "note": str(exc)}
    parts = [{**p, **{k: _number(p[k]) for k in ("difference", "lower", "upper")}} for p in result["parts"]]
    return {**base, "outcome": result["outcome"], "parts": parts, "note": ""}


def timings(measured: Measured, run_names: List[str], out: Path) -> Dict[str, Dict[str, float]]:
    """Recorded seconds: median evaluation of one cell and median training of one checkpoint per method, and
    each analysis experiment's run (the estimates of `bench reproduce --plan`)."""
    cells: Dict[str, List[float]] = {}
    trainings: Dict[str, Dict[str, float]] = {}
    for name in run_names:
        run = measured._runs.get(name)
        for meta in run.metas if run else []:
            cells.setdefault(meta["method"], []).append(float(meta.get("seconds", 0.0)))
            if meta.get("checkpoint_train_seconds") and meta.get("checkpoint"):
                trainings.setdefault(meta["method"], {})[str(meta["checkpoint"])] = meta["checkpoint_train_seconds"]
    analyses = {}
    for done in sorted((out / "analyses").glob("*/done.json")):
        record = read_json(done, "done.json")
        if isinstance(record, dict) and isinstance(record.get("seconds"), (int, float)):
            analyses[done.parent.name] = float(record["seconds"])
    return {"cell": {m: round(statistics.median(v), 3) for m, v in sorted(cells.items())},
            "training": {m: round(statistics.median(v.values()), 1) for m, v in sorted(trainings.items())},
            "analysis": analyses}


def reproduction(card: PaperCard, out: Path, run_of: Dict[str, str], dataset: str, resamples: int = 1000) -> Reproduction:
    """The reproduction record of `out` (`run_of`: experiment -> its run directory's name under out/runs)."""
    measured = Measured(out, run_of)
    on_paper = dataset == card.dataset
    tables = [table_result(t, card, measured, on_paper, resamples) for t in card.tables]
    claims = [claim_result(c, card, measured, resamples) for c in card.claims]
    runs: Dict[str, List[str]] = {}
    for experiment, name in run_of.items():
        runs.setdefault(name, []).append(experiment)
    for name in runs:
        measured.run(runs[name][0])
    return {"schema_version": SCHEMA_VERSION, "card": card.name, "title": card.title, "citation": card.citation,
            "url": card.url, "paper_dataset": card.dataset, "dataset": dataset, "on_paper_dataset": on_paper,
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": git_revision(), "versions": package_versions(), "resamples": resamples, "interval_seed": 0,
            "runs": runs, "tables": tables, "claims": claims, "timings": timings(measured, list(runs), out)}
