"""The folder a `bench prepare` writes: a new or empty one, or one that `bench prepare` of the same dataset
made (it holds MARKER, written before the first file), as `bench run --out` treats run directories.

A user's own files are never overwritten nor taken for the archive's: a folder holding anything without
the marker is refused before anything is written. Older versions' completion markers (LEGACY) count as
the marker, so their roots are resumed and repaired rather than refused.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_text, remove_stale_temporaries

MARKER = ".fss-bench-prepare.json"
LEGACY = (".prepare_done", ".prepare_voc_done", ".done")


def _marked_dataset(folder: Path) -> str | None:
    """The dataset named by the folder's marker, '' for a legacy marker, None when there is none."""
    marker = folder / MARKER
    if marker.is_file():
        try:
            with open(marker, "rb") as handle:
                data = json.loads(handle.read(4096))
            return str(data["dataset"]) if isinstance(data, dict) and "dataset" in data else "?"
        except (OSError, ValueError):
            return "?"
    return "" if any((folder / name).exists() for name in LEGACY) else None


def check_target(folder: Path, dataset: str) -> None:
    """Refuse (BenchError) a target that is a file, or a folder with content not prepared for `dataset`."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise BenchError(f"{folder} is not a folder; give --out a new or empty folder")
    if not folder.exists() or not any(folder.iterdir()):
        return
    marked = _marked_dataset(folder)
    if marked is None:
        raise BenchError(f"{folder} is a folder that `bench prepare {dataset}` did not create (it holds other "
                         "files, which would be overwritten or taken for the archive's); give a new or empty folder")
    if marked not in ("", dataset):
        raise BenchError(f"{folder} was prepared for {marked}, not {dataset}; give a new or empty folder")


def claim_target(folder: Path, dataset: str, subfolders: Iterable[str] = ()) -> None:
    """Mark a checked target as this command's (before its first file) and remove the temporaries that a
    killed earlier run left in it and its `subfolders`."""
    folder = Path(folder)
    check_target(folder, dataset)
    if not (folder / MARKER).is_file():
        atomic_write_text(folder / MARKER, json.dumps({"dataset": dataset, "prepared_by": "fss-bench"}) + "\n")
    for sub in ("", *subfolders):
        if (folder / sub).is_dir():
            remove_stale_temporaries(folder / sub)
