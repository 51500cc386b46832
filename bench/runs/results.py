"""A run's results as data: gathered from its cells into episodes.csv, and read back only once verified.

`bench run` writes every cell (`episodes/<method>__<cell>.csv`, with its sha256 in the cell's JSON) and
then gathers them into `episodes.csv`, from which `summary.csv` and `class_iou.csv` are recomputed.
Everything that reads a finished run (report, compare, check, analyses) goes through `load_results`,
which checks each cell against its recorded hash and episodes.csv against the cells, so a truncated or
edited file is refused instead of rendered.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import pandas as pd

from analyses.summary import class_iou_table, summarize
from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_bytes
from bench.runs.cells import Cell
from bench.runs.rundir import RERUN, RunDir


def _csv_bytes(frame: pd.DataFrame, **kwargs) -> bytes:
    return frame.to_csv(index=False, lineterminator="\n", **kwargs).encode()


def gather_episodes(run_dir: RunDir, methods: List[str], cells: List[str],
                    hashes: Optional[Dict[Cell, str]] = None) -> pd.DataFrame:
    """All per-episode rows of the given cells, method by method, each with its split, shot and seed;
    with `hashes`, each cell's file is checked against its hash as it is read."""
    frames = []
    for method in methods:
        for manifest in cells:
            cell = Cell.of(method, manifest)
            rows = run_dir.read_cell(cell, None if hashes is None else hashes[cell])
            for column, value in (("seed", cell.seed), ("shot", cell.shot), ("split", cell.split), ("method", method)):
                rows.insert(0, column, value)
            frames.append(rows)
    return pd.concat(frames, ignore_index=True)


def write_results(run_dir: RunDir, methods: List[str], cells: List[str]) -> pd.DataFrame:
    """Gather the cells into episodes.csv and recompute summary.csv and class_iou.csv from it."""
    episodes = gather_episodes(run_dir, methods, cells)
    atomic_write_bytes(run_dir.path / "episodes.csv", _csv_bytes(episodes))
    summary = summarize(episodes)
    atomic_write_bytes(run_dir.path / "summary.csv", _csv_bytes(summary, float_format="%.4f"))
    atomic_write_bytes(run_dir.path / "class_iou.csv", _csv_bytes(class_iou_table(episodes), float_format="%.4f"))
    return summary


@dataclass
class RunResults:
    """A finished run, verified: its config.json, every per-episode row and every cell's record."""

    path: Path
    config: Dict
    episodes: pd.DataFrame
    metas: List[Dict]

    @property
    def methods(self) -> List[str]:
        return list(dict.fromkeys(self.config["config"]["methods"]))


def _check_config(run_dir: RunDir) -> Dict:
    config = run_dir.read_config()
    if config is None or not (run_dir.path / "episodes.csv").is_file():
        raise BenchError(f"{run_dir.path} is not a finished run directory (no config.json / episodes.csv)")
    settings, manifests, dataset = config.get("config"), config.get("manifests"), config.get("dataset")
    if not (isinstance(settings, dict) and isinstance(settings.get("methods"), list) and settings["methods"]
            and isinstance(manifests, dict) and manifests and isinstance(dataset, dict) and "name" in dataset):
        raise BenchError(f"{run_dir.config_path} lacks the run's methods, manifests or dataset: not a complete "
                         "fss-bench run config")
    return config


def load_results(path: Path) -> RunResults:
    """Read a finished run, refusing it (one BenchError) if a cell or episodes.csv does not match its record."""
    run_dir = RunDir(Path(path))
    config = _check_config(run_dir)
    results = RunResults(run_dir.path, config, pd.DataFrame(), [])
    cells = sorted(config["manifests"])
    hashes = {}
    for method in results.methods:
        for manifest in cells:
            cell = Cell.of(method, manifest)
            csv_path, meta_path = run_dir.cell_paths(cell)
            if not (csv_path.is_file() and meta_path.is_file()):
                raise BenchError(f"{run_dir.path} lacks the results of {method} on {manifest}: {RERUN}")
            meta = run_dir.cell_meta(cell)
            if meta.get("manifest_sha256") != config["manifests"][manifest]:
                raise BenchError(f"{csv_path} was evaluated on another manifest than the run's {manifest}: {RERUN}")
            hashes[cell] = str(meta.get("sha256") or "-")  # a record without a hash matches no file
            results.metas.append(meta)
    results.episodes = gather_episodes(run_dir, results.methods, cells, hashes)  # each cell read once, checked
    if _csv_bytes(results.episodes) != (run_dir.path / "episodes.csv").read_bytes():
        raise BenchError(f"{run_dir.path / 'episodes.csv'} does not match the cells it was gathered from "
                         f"({len(results.episodes)} rows in the cells; changed or truncated): {RERUN}")
    return results
