"""Streaming reads of dataset archives, with one-line errors for wrong, corrupt or truncated ones."""
from __future__ import annotations

import io
import tarfile
import zlib
from pathlib import Path
from typing import Iterator, Tuple

import numpy as np
from PIL import Image

from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_bytes


def index_png_bytes(label: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG of class indices, as the distributed SegmentationClassAug files are.

    Grayscale rather than palette: PIL reads both as indices, but OpenCV's IMREAD_GRAYSCALE (used by
    some FSS loaders) turns a palette PNG's colours into luminance, not indices.
    """
    image = Image.fromarray(np.asarray(label, dtype=np.uint8), mode="L")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_once(path: Path, data_fn) -> bool:
    """Write `data_fn()` atomically to `path` unless it exists (a complete file: writes are atomic)."""
    if path.exists():
        return False
    atomic_write_bytes(path, data_fn())
    return True


def stream_tar(path: Path, what: str, expect_prefix: str) -> Iterator[Tuple[str, bytes]]:
    """(member name, bytes) of each regular file of a tar/tgz in one streaming pass.

    The first file member must start with `expect_prefix`, otherwise this is not the expected archive
    and nothing is yielded; a corrupt or truncated archive is one BenchError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{what} not found: {path}")
    try:
        with tarfile.open(path, mode="r|*") as archive:
            first = True
            for member in archive:
                if not member.isfile():
                    continue
                if first and not member.name.lstrip("./").startswith(expect_prefix):
                    raise BenchError(f"{path} is not the {what}: its first file is {member.name!r}, "
                                     f"expected one under {expect_prefix!r}")
                first = False
                handle = archive.extractfile(member)
                yield member.name, handle.read()
            if first:
                raise BenchError(f"{path} is not the {what}: it holds no files")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        if isinstance(exc, BenchError):
            raise
        raise BenchError(f"{path} is not a readable {what} (corrupt or truncated: {exc}); download it again") from None


def check_tar_kind(path: Path, what: str, expect_prefix: str) -> None:
    """Fail early (one line) if `path` is not the expected archive, reading only its first member."""
    members = stream_tar(path, what, expect_prefix)
    try:
        next(members, None)
    finally:
        members.close()
