"""Atomic writes, content hashing and the run-directory lock shared by datasets, manifests and runs.

Every write goes through a hidden temporary `.<name>.<pid>-<host>-<random>.tmp` beside its target and a
rename, so a killed writer leaves the old file or none, never a truncated one. The temporary names its
writer, so a cleanup removes only those whose process is gone (a concurrent writer keeps its own).
"""
from __future__ import annotations

import contextlib
import errno as errno_codes
import hashlib
import json
import os
import secrets
import socket
import stat
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator, List

from bench.core.errors import BenchError
from bench.core.paths import kind_of_mode

_TEMP_SUFFIX = ".tmp"
LOCK_NAME = ".fss-bench.lock"


class WriteError(BenchError, OSError):
    """A file could not be written (full disk, read-only filesystem, permissions): names the file.

    Also an OSError, so that the Ray executor still retries a task after a shared-filesystem hiccup.
    """

    def __init__(self, errno: int | None, strerror: str | None, filename: str):
        OSError.__init__(self, errno, strerror, filename)

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror or 'error ' + str(self.errno)}"


class FolderError(WriteError):
    """A folder could not be created."""

    def __str__(self) -> str:
        return f"cannot create folder {self.filename}: {self.strerror or 'error ' + str(self.errno)}"


def write_error(path: os.PathLike | str, exc: OSError) -> WriteError:
    return WriteError(exc.errno, exc.strerror or str(exc), str(path))


def host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


def _temp_path(path: Path) -> Path:
    return path.parent / f".{path.name}.{os.getpid()}-{host_tag()}-{secrets.token_hex(3)}{_TEMP_SUFFIX}"


def make_dirs(folder: os.PathLike | str) -> None:
    """mkdir -p, with a FolderError naming the folder instead of an OSError traceback."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise BenchError(f"cannot create folder {folder}: a file of that name is in the way") from None
    except OSError as exc:
        raise FolderError(exc.errno, exc.strerror or str(exc), str(folder)) from None


def check_writable_target(path: str | os.PathLike) -> None:
    """Refuse a target that exists and is not a regular file (a folder, device, FIFO, socket, or a link to
    one): the rename of an atomic write would replace it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return  # a new path (or a dangling link, which the rename replaces)
    except OSError as exc:
        raise write_error(path, exc) from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else f"not a regular file (it is {kind_of_mode(mode)})"
        raise BenchError(f"{path} is {kind}: refusing to replace it; give a new path or a regular file")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename.

    An interrupted write leaves either the old file or none, never a truncated one; a failed one
    (ENOSPC, EROFS, EACCES) raises a WriteError naming `path` and leaves no temporary behind. A target
    that is not a regular file is refused (`check_writable_target`) before anything is created.
    """
    path = Path(path)
    check_writable_target(path)
    make_dirs(path.parent)
    tmp = _temp_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, BenchError):
            raise write_error(path, exc) from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _writer_alive(temp: Path) -> bool:
    """Whether the process that named this temporary may still be writing it."""
    token = temp.name[: -len(_TEMP_SUFFIX)].rsplit(".", 1)[-1]
    parts = token.split("-")
    if len(parts) != 3 or not parts[0].isdigit():
        # not named by this version: stale once it is older than any write could take
        return time.time() - temp.stat().st_mtime < 3600
    pid, host = int(parts[0]), parts[1]
    if host != host_tag():
        return True  # another machine's writer (a shared filesystem): not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> List[Path]:
    """Delete the temporaries in `folder` whose writer was killed (an exception removes its own); a live
    writer's temporary is kept. Returns the removed ones."""
    stale = []
    for path in Path(folder).glob(f".*{_TEMP_SUFFIX}"):
        try:
            if path.is_file() and not _writer_alive(path):
                path.unlink()
                stale.append(path)
        except FileNotFoundError:  # its writer renamed it meanwhile
            continue
    return stale


def is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(_TEMP_SUFFIX)


@contextlib.contextmanager
def folder_lock(folder: Path, wait: bool = False, what: str = "bench run") -> Iterator[None]:
    """An advisory lock on `folder` (flock on `<folder>/.fss-bench.lock`) for as long as the block runs.

    A second holder is refused with a BenchError naming the process that holds it, or waits with `wait`.
    Released when the process ends, however it ends.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks
        yield
        return
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno_codes.EWOULDBLOCK, errno_codes.EAGAIN, errno_codes.EACCES):
                raise write_error(path, exc) from None
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            if not wait:
                raise BenchError(f"{folder} is in use by {holder}; wait for it to finish, or pass --wait to "
                                 "wait for it") from None
            print(f"waiting for {holder} to release {folder}", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()} ({what}, since {stamp})\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # an unheld lock is an empty file, whoever held it last
    finally:
        os.close(fd)


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


def read_json(path: Path, what: str) -> object:
    """Parse a JSON file the harness reads (untrusted: damaged, edited or hostile); any damage, a nesting too
    deep for the parser included, is one BenchError naming the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"{what} not found: {path}") from None
    except RecursionError:
        raise BenchError(f"{what} {path} is not valid JSON (nested too deeply)") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise BenchError(f"{what} {path} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise BenchError(f"cannot read {what} {path}: {exc.strerror}") from None


def json_field(record: object, key: str, kind: type | tuple, path: Path, what: str) -> object:
    """`record[key]`, checked to be a `kind`; a record that is no object, a missing key or a value of another
    type is one BenchError naming the file and the key."""
    if not isinstance(record, dict):
        raise BenchError(f"{what} {path} is not a JSON object")
    if key not in record:
        raise BenchError(f"{what} {path} lacks the key '{key}'")
    value = record[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise BenchError(f"{what} {path}: '{key}' is not {names} (got {type(value).__name__})")
    return value
