"""The run directory: one place for config, manifests, per-episode results and the summary.

Layout::

    config.json                    resolved config, environment, dataset and manifest hashes
    manifests/<cell>.csv           episodes of each (split, shot, seed)
    episodes/<method>__<cell>.csv  per-episode pixel counts of one finished cell
    episodes/<method>__<cell>.json the cell's wall time, device and the sha256 of its CSV
    qualitative/<method>__<cell>.npz predictions of the best, worst and a random episode per class
                                   (first seed, smallest shot), for reports
    episodes.csv                   all per-episode rows (gathered from the cells)
    summary.csv, class_iou.csv     metrics recomputed from episodes.csv

Every file is written atomically, so a cell either finished (CSV and matching JSON) or is redone.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Dict, List

import pandas as pd

from bench.errors import BenchError
from bench.fileio import atomic_write_bytes, atomic_write_json, remove_stale_temporaries, sha256_bytes, sha256_file

RUN_FILES = ("config.json", "episodes.csv", "summary.csv", "class_iou.csv")
RUN_DIRS = ("manifests", "episodes", "qualitative")


def _diff(old: Dict, new: Dict) -> List[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


class RunDir:
    """Paths and bookkeeping of one run directory."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def manifest_path(self, cell: str) -> Path:
        return self.path / "manifests" / f"{cell}.csv"

    def cell_paths(self, method: str, cell: str):
        stem = self.path / "episodes" / f"{method}__{cell}"
        return stem.with_suffix(".csv"), stem.with_suffix(".json")

    def read_config(self) -> Dict | None:
        if not self.config_path.is_file():
            return None
        try:
            return json.loads(self.config_path.read_text())
        except json.JSONDecodeError as exc:
            raise BenchError(f"{self.config_path} is not valid JSON ({exc}); use --overwrite to start over") from None

    def prepare(self, identity: Dict, overwrite: bool) -> None:
        """Refuse a directory that holds a different run (unless `overwrite`), clear it if asked."""
        if self.path.exists() and not self.path.is_dir():
            raise BenchError(f"output path exists and is not a directory: {self.path}")
        existing = self.read_config() if self.path.is_dir() else None
        if existing is not None and not overwrite and existing.get("identity") != identity:
            changes = _diff(existing.get("identity", {}), identity)
            raise BenchError(
                f"{self.path} holds a run with a different config ({'; '.join(changes[:4])}); "
                "use --overwrite to replace it or choose another --out"
            )
        if overwrite:
            for name in RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
            for name in RUN_DIRS:
                shutil.rmtree(self.path / name, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)

    def cell_done(self, method: str, cell: str, manifest_sha256: str, checkpoint: str | None = None) -> bool:
        """True if the cell's results exist, are intact and belong to the given manifest and checkpoint."""
        csv_path, meta_path = self.cell_paths(method, cell)
        if not (csv_path.is_file() and meta_path.is_file()):
            return False
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            return False
        return (meta.get("manifest_sha256") == manifest_sha256 and meta.get("checkpoint") == checkpoint
                and meta.get("sha256") == sha256_file(csv_path))

    def write_cell(self, method: str, cell: str, rows: pd.DataFrame, meta: Dict) -> None:
        csv_path, meta_path = self.cell_paths(method, cell)
        data = rows.to_csv(index=False, lineterminator="\n").encode("utf-8")
        atomic_write_bytes(csv_path, data)
        atomic_write_json(meta_path, {**meta, "sha256": sha256_bytes(data), "rows": len(rows)})

    def remove_stale_temporaries(self) -> None:
        """Delete what atomic writes killed mid-write left (a Ray worker ended with its interrupted driver);
        call when no writer of this run is left."""
        for folder in (self.path, self.path / "episodes"):
            remove_stale_temporaries(folder)

    def read_cell(self, method: str, cell: str) -> pd.DataFrame:
        return pd.read_csv(self.cell_paths(method, cell)[0], dtype={"query": str})

    def cell_meta(self, method: str, cell: str) -> Dict:
        return json.loads(self.cell_paths(method, cell)[1].read_text())

    def cell_metas(self) -> List[Dict]:
        """The meta of every evaluated cell, in file-name order."""
        return [json.loads(p.read_text()) for p in sorted((self.path / "episodes").glob("*.json"))]


def time_per_method(metas: List[Dict], methods: List[str]) -> pd.DataFrame:
    """Seconds per method: evaluation summed over its cells, training summed over its distinct checkpoints.

    Training is NaN for methods without checkpoints and for cells written before checkpoints recorded it.
    """
    rows = []
    for method in methods:
        mine = [m for m in metas if m.get("method") == method]
        trained = {m["checkpoint"]: m.get("checkpoint_train_seconds") for m in mine if m.get("checkpoint")}
        known = [s for s in trained.values() if s is not None]
        rows.append({"method": method, "cells": len(mine), "evaluation_s": sum(m.get("seconds", 0.0) for m in mine),
                     "checkpoints": len(trained),
                     "training_s": sum(known) if trained and len(known) == len(trained) else float("nan")})
    return pd.DataFrame(rows, columns=["method", "cells", "evaluation_s", "checkpoints", "training_s"])


def format_times(times: pd.DataFrame) -> str:
    """The time table `bench run` prints after its results."""
    lines = ["wall time per method (s)", f"{'method':<22} {'cells':>5} {'evaluation':>10} {'checkpoints':>11} {'training':>9}"]
    for row in times.itertuples():
        training = "-" if row.checkpoints == 0 else ("?" if pd.isna(row.training_s) else f"{row.training_s:.0f}")
        lines.append(f"{row.method:<22} {row.cells:>5} {row.evaluation_s:>10.0f} {row.checkpoints:>11} {training:>9}")
    lines.append("(training: what each checkpoint recorded when it was trained, in this run or an earlier one; "
                 "?: not recorded)")
    return "\n".join(lines)


def load_episodes(run_dir: Path) -> pd.DataFrame:
    """All per-episode rows of a finished run (episodes.csv)."""
    path = Path(run_dir) / "episodes.csv"
    if not path.is_file():
        raise BenchError(f"{path} not found: is {run_dir} a finished run directory?")
    return pd.read_csv(path, dtype={"query": str})
