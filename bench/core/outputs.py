"""What the harness wrote into a folder it shares with the user, so that only that is ever removed.

A folder the harness writes outputs into (an analysis' folder under a run's `analyses/`) keeps a record
`.fss-bench-outputs.json` of the file names it wrote there. Removing the outputs removes the files the
record names and nothing else: never a file the user put beside them, never what a symbolic link points
to (a linked folder is not entered, a linked file is not removed).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterable, List

from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_bytes, atomic_write_json, is_temporary, read_json

RECORD_NAME = ".fss-bench-outputs.json"


def is_plain_name(name: object) -> bool:
    """A file or folder name that stays in its folder: no separator, not '.', '..' or empty, no NUL."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name)


def is_real_folder(path: Path) -> bool:
    """A folder that is not a symbolic link (nor reached through one as its last part)."""
    return path.is_dir() and not path.is_symlink()


def recorded_outputs(folder: Path) -> List[str]:
    """The names the folder's record lists (none without a record); a damaged record is one BenchError."""
    path = Path(folder) / RECORD_NAME
    if not path.is_file() or path.is_symlink():
        return []
    names = read_json(path, "outputs record")
    if not isinstance(names, list) or not all(is_plain_name(n) and n != RECORD_NAME for n in names):
        raise BenchError(f"outputs record {path} is not a list of file names")
    return names


def write_output(folder: Path, name: str, data: bytes) -> Path:
    """Write `data` to `folder/name` atomically and add `name` to the folder's record first (a write killed
    between the two leaves a recorded name without its file, never an unrecorded file)."""
    if not is_plain_name(name):
        raise BenchError(f"output name {name!r} is not a plain file name")
    folder = Path(folder)
    names = recorded_outputs(folder)
    if name not in names:
        atomic_write_json(folder / RECORD_NAME, sorted([*names, name]))
    path = folder / name
    atomic_write_bytes(path, data)
    return path


def remove_outputs(folder: Path) -> None:
    """Remove the files the folder's record names (regular files only), the record, the harness's dead
    temporaries, then the folder if nothing else is left. A linked folder is left alone."""
    folder = Path(folder)
    if not is_real_folder(folder):
        return
    for name in recorded_outputs(folder):
        unlink_regular(folder / name)
    unlink_regular(folder / RECORD_NAME)
    remove_temporaries(folder, [p.name for p in folder.iterdir()])
    with contextlib.suppress(OSError):
        folder.rmdir()


def remove_temporaries(folder: Path, names: Iterable[str]) -> None:
    """Remove the harness's temporaries among `names` in `folder` (regular files only)."""
    for name in names:
        if is_temporary(name):
            unlink_regular(Path(folder) / name)


def unlink_regular(path: Path) -> None:
    """Remove `path` if it is a regular file (a symbolic link, even to a file, is left alone)."""
    if path.is_file() and not path.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
