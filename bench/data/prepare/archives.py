"""Streaming reads of dataset archives, with one-line errors for wrong, corrupt or truncated ones."""
from __future__ import annotations

import contextlib
import io
import tarfile
import zlib
from pathlib import Path
from typing import Callable, Iterator, Tuple

import numpy as np
from PIL import Image

from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_bytes

#: largest image, mask or .mat member read from an archive (VOC's, SBD's and COCO's are under 1 MB)
MAX_MEMBER_BYTES = 64 << 20


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


@contextlib.contextmanager
def _tar_errors(path: Path, what: str) -> Iterator[None]:
    try:
        yield
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        if isinstance(exc, BenchError):
            raise
        raise BenchError(f"{path} is not a readable {what} (corrupt or truncated: {exc}); download it again") from None


def _file_members(path: Path, what: str, expect_prefix: str) -> Iterator[Tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """(archive, member) of each regular file, streamed; the first must start with `expect_prefix`."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{what} not found: {path}")
    with _tar_errors(path, what), tarfile.open(path, mode="r|*") as archive:
        first = True
        for member in archive:
            if not member.isfile():
                continue
            if first and not member.name.lstrip("./").startswith(expect_prefix):
                raise BenchError(f"{path} is not the {what}: its first file is {member.name!r}, "
                                 f"expected one under {expect_prefix!r}")
            first = False
            yield archive, member
        if first:
            raise BenchError(f"{path} is not the {what}: it holds no files")


def stream_tar(path: Path, what: str, expect_prefix: str,
               wanted: Callable[[str], bool] = lambda name: True) -> Iterator[Tuple[str, bytes]]:
    """(member name, bytes) of each regular file of a tar/tgz that `wanted(name)` accepts, in one streaming pass.

    Members not wanted are skipped unread (in a compressed stream they are decompressed in blocks and
    dropped); a wanted member larger than MAX_MEMBER_BYTES is one BenchError. The first file member must
    start with `expect_prefix`, otherwise this is not the expected archive and nothing is yielded; a
    corrupt or truncated archive is one BenchError naming the file.
    """
    for archive, member in _file_members(path, what, expect_prefix):
        if not wanted(member.name):
            continue
        check_member_size(member.size, path, member.name)
        with _tar_errors(path, what):
            data = archive.extractfile(member).read()
        yield member.name, data


def check_tar_kind(path: Path, what: str, expect_prefix: str) -> None:
    """Fail early (one line) if `path` is not the expected archive, reading only its first member's header."""
    members = _file_members(path, what, expect_prefix)
    try:
        next(members, None)
    finally:
        members.close()


def check_member_size(size: int, path: Path, member: str, limit: int = MAX_MEMBER_BYTES) -> None:
    """Refuse an archive member larger than `limit` before it is read."""
    if size > limit:
        raise BenchError(f"{path}: member {member} is {size} bytes, more than the {limit} accepted for it; "
                         "is this the official archive?")
