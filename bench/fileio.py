"""Atomic writes and content hashing shared by datasets, manifests and run directories."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, List


_UMASK = os.umask(0)
os.umask(_UMASK)


_TEMP_SUFFIX = ".tmp"  # atomic writes go through hidden ".<name>.<random>.tmp" files beside their target


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename.

    An interrupted write leaves either the old file or none, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TEMP_SUFFIX, dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(folder: str | os.PathLike) -> List[Path]:
    """Delete the temporary files that atomic writes into `folder` left when their process was killed
    (an exception removes its own); only call when no writer into `folder` is running. Returns them."""
    stale = [p for p in Path(folder).glob(f".*{_TEMP_SUFFIX}") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_files(root: str | os.PathLike, relpaths: Iterable[str]) -> str:
    """One sha256 over the names and contents of files under `root` (order-independent)."""
    root = Path(root)
    digest = hashlib.sha256()
    for rel in sorted(set(relpaths)):
        digest.update(rel.encode("utf-8") + b"\0")
        digest.update(sha256_file(root / rel).encode("ascii") + b"\n")
    return digest.hexdigest()
