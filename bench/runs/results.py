"""A run's results as data: gathered from its cells into episodes.csv, and read back only once verified.

`bench run` writes every cell (`episodes/<method>__<cell>.csv`, with its sha256 in the cell's JSON) and
then gathers the cells of every method present (those of earlier commands too) into `episodes.csv`, from
which `summary.csv`, `class_iou.csv` and `results.json` are recomputed.
Everything that reads a finished run (report, compare, check, analyses) goes through `load_results`,
which checks each cell against its recorded hash and episodes.csv against the cells, so a truncated or
edited file is refused instead of rendered.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import pandas as pd

from analyses.summary import class_iou_table, summarize
from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_bytes, atomic_write_json
from bench.runs.cells import Cell, method_cells
from bench.runs.config import protocol_of, recorded_methods
from bench.runs.results_file import results_document
from bench.runs.rundir import RERUN, RunDir


def _csv_bytes(frame: pd.DataFrame, **kwargs) -> bytes:
    return frame.to_csv(index=False, lineterminator="\n", **kwargs).encode()


def run_cells(record: Dict) -> Dict[str, List[Cell]]:
    """Every cell of a run by method, from its config.json record: the methods present (in order of addition),
    each with its identity (its training seeds), on every episode set."""
    identities = recorded_methods(record)
    manifests = sorted(record["manifests"])
    return {m: method_cells(identities.get(m, {"method": m}), manifests)
            for m in dict.fromkeys(record["config"]["methods"])}


def gather_episodes(run_dir: RunDir, cells: List[Cell], hashes: Optional[Dict[Cell, str]] = None) -> pd.DataFrame:
    """All per-episode rows of the given cells, in order, each with its split, shot, seed (and training seed,
    as a `train_seed` column after `seed`, empty for cells without one, when any cell has one); with
    `hashes`, each cell's file is checked against its hash as it is read."""
    frames = []
    for cell in cells:
        rows = run_dir.read_cell(cell, None if hashes is None else hashes[cell])
        for column, value in (("seed", cell.seed), ("shot", cell.shot), ("split", cell.split), ("method", cell.method)):
            rows.insert(0, column, value)
        if cell.train_seed is not None:
            rows.insert(4, "train_seed", cell.train_seed)
        frames.append(rows)
    episodes = pd.concat(frames, ignore_index=True)
    if "train_seed" in episodes.columns:
        episodes.insert(4, "train_seed", episodes.pop("train_seed").astype("Int64"))
    return episodes


def summary_csv(summary: pd.DataFrame) -> pd.DataFrame:
    """summary.csv's form of `summarize`: `split` numeric (empty on the mean-over-splits rows) and an
    `aggregate` column ("mean" on those rows, empty otherwise), so that the file loads as numbers."""
    aggregate = summary["split"] == "mean"
    out = summary.copy()
    out["split"] = pd.to_numeric(out["split"].where(~aggregate), errors="coerce").astype("Int64")
    out.insert(out.columns.get_loc("split") + 1, "aggregate", aggregate.map({True: "mean", False: ""}))
    return out


def write_results(run_dir: RunDir, record: Dict) -> pd.DataFrame:
    """Gather the cells of every method present into episodes.csv, recompute summary.csv and class_iou.csv
    from it and write results.json; return the summary (`analyses.summary.summarize`).

    A method recorded by an earlier command whose cells are not all there (that command was interrupted) is
    left out, with one line saying so; `load_results` refuses the run until that command is re-run."""
    cells = []
    for method, mine in run_cells(record).items():
        missing = [c for c in mine if not all(p.is_file() for p in run_dir.cell_paths(c))]
        if missing:
            print(f"warning: {method} lacks {len(missing)} of its {len(mine)} cells (an earlier command was "
                  f"interrupted); left out of episodes.csv until that command is re-run", file=sys.stderr)
            continue
        cells += mine
    episodes = gather_episodes(run_dir, cells)
    atomic_write_bytes(run_dir.path / "episodes.csv", _csv_bytes(episodes))
    summary = summarize(episodes)
    atomic_write_bytes(run_dir.path / "summary.csv", _csv_bytes(summary_csv(summary), float_format="%.4f"))
    atomic_write_bytes(run_dir.path / "class_iou.csv", _csv_bytes(class_iou_table(episodes), float_format="%.4f"))
    metas = [run_dir.cell_meta(cell) for cell in cells]
    atomic_write_json(run_dir.path / "results.json", results_document(record, episodes, summary, metas))
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
    hashes, cells = {}, []
    for method, mine in run_cells(config).items():
        for cell in mine:
            csv_path, meta_path = run_dir.cell_paths(cell)
            if not (csv_path.is_file() and meta_path.is_file()):
                raise BenchError(f"{run_dir.path} lacks the results of {method} on {cell.key.split('__', 1)[1]}: "
                                 f"{RERUN}")
            meta = run_dir.cell_meta(cell)
            if meta.get("manifest_sha256") != config["manifests"][cell.manifest]:
                raise BenchError(f"{csv_path} was evaluated on another manifest than the run's {cell.manifest}: {RERUN}")
            hashes[cell] = str(meta.get("sha256") or "-")  # a record without a hash matches no file
            results.metas.append(meta)
            cells.append(cell)
    results.episodes = gather_episodes(run_dir, cells, hashes)  # each cell read once, checked
    if _csv_bytes(results.episodes) != (run_dir.path / "episodes.csv").read_bytes():
        raise BenchError(f"{run_dir.path / 'episodes.csv'} does not match the cells it was gathered from "
                         f"({len(results.episodes)} rows in the cells; changed or truncated): {RERUN}")
    return results


def load_finished_methods(path: Path) -> RunResults:
    """The methods of a run directory whose every cell is finished on the run's manifests (the others, not
    started or interrupted, are left out), each cell checked against its record; episodes.csv, which a run
    rewrites only at its end, is not read. For a partial reproduction (`bench reproduce --no-run`)."""
    run_dir = RunDir(Path(path))
    config = run_dir.read_config()
    if config is None or not isinstance(config.get("manifests"), dict):
        raise BenchError(f"{run_dir.path} is not a run directory (no config.json)")
    results = RunResults(run_dir.path, config, pd.DataFrame(), [])
    hashes, cells = {}, []
    for method, mine in run_cells(config).items():
        metas = {}
        for cell in mine:
            csv_path, meta_path = run_dir.cell_paths(cell)
            meta = run_dir.cell_meta(cell) if csv_path.is_file() and meta_path.is_file() else None
            if meta is None or meta.get("manifest_sha256") != config["manifests"][cell.manifest]:
                break
            metas[cell] = meta
        else:
            for cell, meta in metas.items():
                hashes[cell] = str(meta.get("sha256") or "-")
                results.metas.append(meta)
                cells.append(cell)
    results.config = {**config, "config": {**config["config"], "methods": list(dict.fromkeys(c.method for c in cells))}}
    results.episodes = gather_episodes(run_dir, cells, hashes) if cells else pd.DataFrame()
    return results


def load_runs(paths: List[Path]) -> RunResults:
    """Several finished runs of one protocol as one, each verified as `load_results` does; refused (one
    BenchError) unless their protocols, manifests included, are identical and no method is in two of them.
    The merged config is the first run's with every method present, in the order of the runs."""
    runs = [load_results(path) for path in paths]
    first = runs[0]
    protocol = protocol_of(first.config["identity"])
    owners: Dict[str, Path] = {}
    for run in runs:
        if protocol_of(run.config["identity"]) != protocol:
            what = "manifests" if run.config["manifests"] != first.config["manifests"] else "protocol"
            raise BenchError(f"{run.path} and {first.path} have different {what} (only runs of one protocol merge; "
                             f"replay with --episodes-from {first.path / 'manifests'})")
        for method in run.methods:
            if method in owners:
                raise BenchError(f"{method} is in both {owners[method]} and {run.path}: merge runs of different methods")
            owners[method] = run.path
    identities = {m: i for run in runs for m, i in recorded_methods(run.config).items()}
    config = {**first.config, "methods": identities, "config": {**first.config["config"], "methods": list(owners)}}
    for key in ("checkpoints", "weights"):
        merged = {k: v for run in runs for k, v in run.config.get(key, {}).items()}
        if merged:
            config[key] = merged
    episodes = pd.concat([run.episodes for run in runs], ignore_index=True)
    if "train_seed" in episodes.columns:
        episodes["train_seed"] = episodes["train_seed"].astype("Int64")
    return RunResults(first.path, config, episodes, [meta for run in runs for meta in run.metas])
