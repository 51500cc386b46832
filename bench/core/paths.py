"""What a path given by the user is, checked without opening it (a FIFO would block, a device never ends)."""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Optional

from bench.core.errors import BenchError

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a regular file"))


def kind_of_mode(mode: int) -> str:
    """'a regular file', 'a directory', 'a FIFO', 'a character device', ... for an `st_mode`."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def kind_of(path: Path) -> Optional[str]:
    """What `path` is, as `kind_of_mode` says it (links followed); None: missing."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise BenchError(f"cannot read {path}: {exc.strerror or exc}") from None
    return kind_of_mode(mode)


def not_regular(path: Path, what: str) -> Optional[BenchError]:
    """The error for `path` existing as something other than a regular file (None: missing or regular)."""
    kind = kind_of(path)
    if kind is None or kind == "a regular file":
        return None
    return BenchError(f"{what} {path} is not a regular file (it is {kind})")


def input_file(path: Path, what: str) -> Path:
    """`path` if it is a regular file, else a BenchError saying it is missing or what it is instead."""
    error = not_regular(path, what)
    if error is not None:
        raise error
    if kind_of(path) is None:
        raise BenchError(f"{what} not found: {path}")
    return Path(path)


def output_file(path: Path, what: str) -> Path:
    """`path` if it is missing or a regular file (to be written or appended to); a folder, FIFO or device is
    a BenchError (writing to a FIFO would wait for a reader forever)."""
    error = not_regular(path, what)
    if error is not None:
        raise error
    return Path(path)


def input_folder(path: Path, what: str) -> Path:
    """`path` if it is missing (the caller says what that means) or a folder, else a BenchError."""
    kind = kind_of(path)
    if kind is not None and kind != "a directory":
        raise BenchError(f"{what} {path} is not a folder (it is {kind})")
    return Path(path)
