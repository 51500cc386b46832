"""The run directory: one place for config, manifests, per-episode results and the summary.

Layout::

    config.json                    resolved config, environment, dataset and manifest hashes, the identity
                                   of every method present
    manifests/<cell>.csv           episodes of each (split, shot, seed)
    episodes/<method>__<cell>.csv  per-episode pixel counts of one finished cell
    episodes/<method>__<cell>.json the cell's wall time, device, method identity and the sha256 of its CSV
                                   (<cell>_train<t>: one training seed of several, --train-seeds)
    qualitative/<method>__<cell>.npz predictions of the best, worst and a random episode per class
                                   (first seed, smallest shot), for reports
    episodes.csv                   all per-episode rows (gathered from the cells)
    summary.csv, class_iou.csv     metrics recomputed from episodes.csv
    results.json                   the versioned results file (`bench.runs.results_file`)

Every file is written atomically, so a cell either finished (CSV and matching JSON) or is redone.
"""
from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pandas as pd

from bench.core.errors import BenchError
from bench.core.fileio import (
    LOCK_NAME,
    atomic_write_bytes,
    atomic_write_json,
    folder_lock,
    is_temporary,
    json_field,
    make_dirs,
    read_json,
    remove_stale_temporaries,
    sha256_bytes,
    sha256_file,
)
from bench.core.outputs import is_real_folder, remove_outputs, remove_temporaries, unlink_regular
from bench.runs.cells import Cell
from bench.runs.config import protocol_of, recorded_methods, same_identity
from methods.registry import METHODS, is_method_name

RUN_FILES = ("config.json", "episodes.csv", "summary.csv", "class_iou.csv", "results.json", "report.html")
CELL_FILE = re.compile(r"^[^/\\]+__split\d+_shot\d+_seed\d+(_train\d+)?\.(csv|json|npz)$")
MANIFEST_FILE = re.compile(r"^split\d+_shot\d+_seed\d+\.csv$")
#: the harness's files in each of its folders (anything else is the user's and is never removed)
HARNESS_FILES = {"manifests": MANIFEST_FILE, "episodes": CELL_FILE, "qualitative": CELL_FILE}
#: the folders the harness writes into (never through a link)
HARNESS_FOLDERS = (*HARNESS_FILES, "analyses", ".attempts")
#: the keys of a cell record that readers use when present, and their types
OPTIONAL_CELL_KEYS = {"train_seed": int, "checkpoint": (str, type(None)), "qualitative_sha256": str,
                      "checkpoint_train_seconds": (int, float, type(None)), "weights": str,
                      "method_identity": dict}


RERUN = "re-run the same `bench run` command on it to redo what is missing or damaged"


def _flat(record: Dict, prefix: str = "") -> Dict:
    """A nested record as {"a.b": value} (for one-line differences)."""
    out = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _diff(old: Dict, new: Dict) -> List[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


class RunDir:
    """Paths and bookkeeping of one run directory."""

    #: version of config.json's layout (2: the configuration in groups scoring / training / runtime)
    FORMAT = 2

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def manifest_path(self, cell: str) -> Path:
        return self.path / "manifests" / f"{cell}.csv"

    def cell_paths(self, cell: Cell):
        stem = self.path / "episodes" / cell.key
        return stem.with_suffix(".csv"), stem.with_suffix(".json")

    def qualitative_path(self, cell: Cell) -> Path:
        return self.path / "qualitative" / f"{cell.key}.npz"

    def read_config(self) -> Dict | None:
        """The run's config.json (None if there is none), its keys checked; damage, a missing key or a value of
        another type is one BenchError line naming the file (and the key)."""
        if not self.config_path.is_file():
            return None
        path, what = self.config_path, "run config"
        config = read_json(path, what)
        if not isinstance(config, dict) or not isinstance(config.get("identity"), dict):
            raise BenchError(f"{path} is not an fss-bench run config (no identity)")
        for key in ("methods", "checkpoints", "weights", "environment"):
            if key in config:
                json_field(config, key, dict, path, what)
        settings = json_field(config, "config", dict, path, what)
        names = json_field(settings, "methods", list, path, what + " 'config'")
        identities = config.get("methods", {})
        if not all(is_method_name(m) for m in [*names, *identities]):
            raise BenchError(f"{what} {path}: 'config.methods' or 'methods' holds a value that is not a method name")
        if not all(isinstance(v, dict) for v in identities.values()):
            raise BenchError(f"{what} {path}: 'methods' holds an identity that is not a JSON object")
        manifests = json_field(config, "manifests", dict, path, what)
        if not all(isinstance(v, str) and MANIFEST_FILE.match(f"{k}.csv") for k, v in manifests.items()):
            raise BenchError(f"{what} {path}: 'manifests' holds an entry that is not <episode set>: <sha256>")
        json_field(json_field(config, "dataset", dict, path, what), "name", str, path, what + " 'dataset'")
        return config

    @contextlib.contextmanager
    def lock(self, wait: bool = False) -> Iterator[None]:
        """Hold the run directory's advisory lock (one `bench run` per directory at a time).

        A folder this call created is removed again if nothing but the lock was written into it (a run
        that failed before its config.json), so a refused command leaves no trace.
        """
        created = not self.path.exists()
        make_dirs(self.path)
        try:
            with folder_lock(self.path, wait):
                yield
        finally:
            if created and [p.name for p in self.path.iterdir()] == [LOCK_NAME]:
                with contextlib.suppress(OSError):
                    (self.path / LOCK_NAME).unlink()
                    self.path.rmdir()

    def check_writable(self) -> None:
        """Refuse a path that is a file, or an existing folder that is neither empty nor a run directory."""
        if self.path.exists() and not self.path.is_dir():
            raise BenchError(f"output path exists and is not a directory: {self.path}")
        linked = [name for name in HARNESS_FOLDERS if (self.path / name).is_symlink()]
        if linked:
            raise BenchError(f"--out {self.path}: {linked[0]} is a symbolic link; a run writes and removes files only "
                             "inside its directory: replace the link by a folder or choose another --out")
        if not self.path.is_dir() or self.config_path.is_file():
            return
        foreign = sorted(p.name for p in self.path.iterdir() if p.name != LOCK_NAME and not is_temporary(p.name))
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise BenchError(f"--out {self.path} is a folder that is not an fss-bench run directory (no config.json; "
                             f"it holds {shown}): choose a new or empty folder")

    def prepare(self, protocol: Dict, methods: Dict[str, Dict], overwrite: bool) -> Optional[Dict]:
        """Check the directory against the protocol and the methods of a run about to write into it; called
        under `lock`, which has created the folder. Returns the config.json record that the run extends
        (None: a new or replaced run).

        Another protocol is refused unless `overwrite` (which then removes every harness file). Under the
        same protocol a method not recorded yet is added; one recorded with another identity (training
        options, published weights) is refused unless `overwrite`, which removes that method's cells only,
        as it does for every method of the command. A run that differs but has no finished cell (a start
        that failed) is replaced without asking: it holds nothing but what the same command writes again.
        """
        self.check_writable()
        replaced = False
        try:
            existing = self.read_config()
        except BenchError as exc:
            if not overwrite:
                raise BenchError(f"{self.config_path} is damaged; use --overwrite to start over ({exc})") from None
            existing, replaced = None, True
        if existing is not None and protocol_of(existing.get("identity", {})) != protocol:
            changes = _diff(protocol_of(existing.get("identity", {})), protocol)
            if not overwrite and self.finished_cells():
                raise BenchError(
                    f"{self.path} holds a run with a different config ({'; '.join(changes[:4])}); "
                    "use --overwrite to replace it or choose another --out"
                )
            if not overwrite:
                print(f"replacing the unfinished run in {self.path} (no cell had finished; {'; '.join(changes[:2])})",
                      file=sys.stderr)
            existing, replaced = None, True
        if existing is None:
            if replaced:
                self.remove_harness_files()
            return None
        recorded = recorded_methods(existing)
        self._check_kept_methods(existing, {m: i for m, i in recorded.items() if m not in methods})
        for method, identity in methods.items():
            finished = self.finished_cells(method)
            if overwrite:
                self.remove_cells(method)
            elif method in recorded and not same_identity(recorded[method], identity) and finished:
                changes = _diff(_flat(recorded[method]), _flat(identity))
                raise BenchError(
                    f"{self.path} holds {len(finished)} cells of {method} with other method options or code "
                    f"({'; '.join(changes[:3])}); use --overwrite to replace that method's cells or choose another --out"
                )
            elif method in recorded and finished and "code" in identity and "code" not in recorded[method]:
                print(f"warning: {len(finished)} cells of {method} were recorded before runs held a method's code "
                      "hash: they are kept as this code's; --overwrite redoes them")
        return existing

    def _check_kept_methods(self, record: Dict, kept: Dict[str, Dict]) -> None:
        """Refuse to grow a run whose other methods this process cannot vouch for: a method not registered now
        (its plugin not loaded) or a training-free one whose code changed since its cells were evaluated;
        config.json would otherwise lose its plugin's provenance or record new code beside old numbers."""
        for method, identity in kept.items():
            source = _plugin_of(record, method)
            if method not in METHODS:
                raise BenchError(f"{self.path} holds cells of {method}, a method of {source} that is not loaded: "
                                 f"pass --plugin with that file to add to this run, or choose another --out")
            current = {**identity, "code": METHODS.card(method).code_sha256}
            if "training" not in identity and not same_identity(identity, current):
                raise BenchError(f"{self.path} holds cells of {method} evaluated with other code than {source} has "
                                 f"now: add {method} to --methods with --overwrite to redo them, or choose another --out")

    def finished_cells(self, method: Optional[str] = None) -> List[Path]:
        """The records of the finished cells (of one method)."""
        return sorted(p for p in (self.path / "episodes").glob("*__*.json")  # a user's other files are not cells
                      if CELL_FILE.match(p.name) and (method is None or p.name.rpartition("__")[0] == method))

    def remove_cells(self, method: str) -> None:
        """Delete one method's cells and their predictions (regular files of the harness's names only)."""
        for folder in ("episodes", "qualitative"):
            path = self.path / folder
            for cell in sorted(path.iterdir()) if is_real_folder(path) else []:
                if CELL_FILE.match(cell.name) and cell.name.rpartition("__")[0] == method:
                    unlink_regular(cell)

    def remove_harness_files(self) -> None:
        """Delete what the harness wrote here (run files, manifests, cells, predictions, the analysis outputs
        their folders record, retry markers); every other file stays, and so does a folder that still holds
        one. Symbolic links are neither followed nor removed: nothing outside the run directory is touched."""
        for name in RUN_FILES:
            unlink_regular(self.path / name)
        for folder, pattern in HARNESS_FILES.items():
            _remove_matching(self.path / folder, pattern)
        analyses = self.path / "analyses"
        if is_real_folder(analyses):
            for folder in sorted(analyses.iterdir()):
                remove_outputs(folder)
        _remove_matching(analyses, None)
        _remove_matching(self.path / ".attempts", re.compile(".*"))

    def cell_done(self, cell: Cell, manifest_sha256: str, checkpoint: str | None = None,
                  checkpoint_sha256: str | None = None) -> bool:
        """True if the cell's results exist, are intact and belong to the given manifest and checkpoint.

        `checkpoint_sha256`: the content hash of the checkpoint the cell would use now (None when the
        checkpoint is not on this machine: the cell's record is then trusted); a cell evaluated with
        other weights is redone, and so is one whose saved predictions were damaged.
        """
        csv_path, meta_path = self.cell_paths(cell)
        if not (csv_path.is_file() and meta_path.is_file()):
            return False
        try:
            meta = self.cell_meta(cell)
        except BenchError:  # a damaged record: the cell is redone
            return False
        if (meta.get("manifest_sha256") != manifest_sha256 or meta.get("checkpoint") != checkpoint
                or (checkpoint_sha256 is not None and meta.get("checkpoint_sha256") != checkpoint_sha256)):
            return False
        qualitative = meta.get("qualitative_sha256")
        if qualitative is not None:
            path = self.qualitative_path(cell)
            if not path.is_file() or sha256_file(path) != qualitative:
                return False
        return meta.get("sha256") == sha256_file(csv_path)

    def write_cell(self, cell: Cell, rows: pd.DataFrame, meta: Dict) -> None:
        csv_path, meta_path = self.cell_paths(cell)
        data = rows.to_csv(index=False, lineterminator="\n").encode("utf-8")
        atomic_write_bytes(csv_path, data)
        atomic_write_json(meta_path, {**meta, "sha256": sha256_bytes(data), "rows": len(rows)})

    def remove_stale_temporaries(self) -> None:
        """Delete what atomic writes killed mid-write left (a Ray worker ended with its interrupted driver);
        a live writer's temporary (a concurrent `bench report`) is kept."""
        for folder in (self.path, self.path / "episodes", self.path / "manifests", self.path / "qualitative"):
            remove_stale_temporaries(folder)

    def read_cell(self, cell: Cell, sha256: Optional[str] = None) -> pd.DataFrame:
        """A cell's rows; with `sha256`, read only if the file has that hash (else one BenchError naming it)."""
        path = self.cell_paths(cell)[0]
        data = path.read_bytes()
        if sha256 is not None and sha256_bytes(data) != sha256:
            raise BenchError(f"{path} does not match its record {path.with_suffix('.json').name} (changed or "
                             f"truncated): {RERUN}")
        return pd.read_csv(io.BytesIO(data), dtype={"query": str})

    def cell_meta(self, cell: Cell) -> Dict:
        """A cell's record, its keys checked (and that it is this cell's); damage is one BenchError naming it."""
        path, what = self.cell_paths(cell)[1], "cell record"
        meta = read_json(path, what)
        for key, kind in (("method", str), ("cell", str), ("sha256", str), ("manifest_sha256", str),
                          ("seconds", (int, float))):
            json_field(meta, key, kind, path, what)
        for key, kind in OPTIONAL_CELL_KEYS.items():
            if key in meta:
                json_field(meta, key, kind, path, what)
        if (meta["method"], meta["cell"], meta.get("train_seed")) != (cell.method, cell.manifest, cell.train_seed):
            raise BenchError(f"{what} {path} is the record of another cell ({meta['method']} {meta['cell']})")
        return meta

    def cell_metas(self) -> List[Dict]:
        """The meta of every evaluated cell, in file-name order."""
        return [self.cell_meta(Cell.from_key(path.stem)) for path in self.finished_cells()]


def _plugin_of(record: Dict, method: str) -> str:
    """What config.json says provided `method`: 'plugin <path>' / 'plugin <entry point>', else 'fss-bench'."""
    plugins = record.get("environment", {}).get("plugins")
    for plugin in plugins if isinstance(plugins, list) else []:
        if isinstance(plugin, dict) and method in (plugin.get("methods") or []):
            return f"plugin {plugin.get('path') or plugin.get('entry_point')}"
    return "fss-bench"


def _remove_matching(folder: Path, pattern: Optional["re.Pattern"]) -> None:
    """Remove the regular files of `folder` whose names match (`None`: none but temporaries), then the folder
    itself if nothing else is left; a linked folder is not entered."""
    if not is_real_folder(folder):
        return
    names = [p.name for p in folder.iterdir()]
    for name in names if pattern is not None else []:
        if pattern.match(name):
            unlink_regular(folder / name)
    remove_temporaries(folder, names)
    with contextlib.suppress(OSError):
        folder.rmdir()


def time_per_method(metas: List[Dict], methods: List[str]) -> pd.DataFrame:
    """Seconds per method: evaluation summed over its cells, training summed over its distinct checkpoints.

    Training is NaN for methods without checkpoints and for cells written before checkpoints recorded it.
    """
    rows = []
    for method in methods:
        mine = [m for m in metas if m.get("method") == method]
        trained = {m["checkpoint"]: m.get("checkpoint_train_seconds") for m in mine
                   if m.get("checkpoint") and not m.get("weights")}  # published weights were not trained here
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
