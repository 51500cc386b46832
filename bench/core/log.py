"""Plain, timestamped log lines for batch jobs (SLURM, nohup, CI), where progress bars show nothing.

`bench run`, `bench train` and the analyses' commands open a `log_session`: its lines go to stderr when stderr is not a terminal
(a terminal has the bars) unless quiet, and always to the log file if one is given (appended). Outside
a session (the library, Ray workers) `log` writes nothing.
"""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Type

from bench.core.errors import BenchError, Terminated

LOGGER = logging.getLogger("fss_bench")
LOGGER.propagate = False  # never into an application's root logger (pytest's, Ray's)
LOGGER.setLevel(logging.INFO)
LOGGER.addHandler(logging.NullHandler())
FORMAT = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
_OPEN: List[str] = []  # the titles of the sessions open now (at most one: nested ones are no-ops)


def log(message: str) -> None:
    """One log line (a stage, a progress report) to the session's destinations."""
    LOGGER.info(message)


def is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # None, or a closed stream
        return False


def format_seconds(seconds: float) -> str:
    """12 s, 3m05s, 1h02m."""
    seconds = int(round(max(seconds, 0)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class StderrLines(logging.Handler):
    """Writes to whatever `sys.stderr` is when a line comes, and only if it is not a terminal."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(FORMAT)

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr
        if stream is None or is_terminal(stream):
            return
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging's own policy: report on stderr, never raise
            self.handleError(record)


def _file_handler(path: Path) -> logging.FileHandler:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    except OSError as exc:
        raise BenchError(f"cannot write the log file {path}: {exc.strerror or exc}") from None
    handler.setFormatter(FORMAT)
    return handler


@contextmanager
def log_session(log_file: Optional[str] = None, quiet: bool = False, title: str = "",
                expected: Tuple[Type[BaseException], ...] = (BenchError,)) -> Iterator[None]:
    """Send `log` lines to stderr (not a terminal, not quiet) and to `log_file` while the block runs.

    The file alone also gets `<title> started (pid N)` (it is appended to) and how the block ended when
    it raised: `error: ...` for the `expected` (user's) errors, as the command prints it on stderr, an
    interrupt, or the type of any other exception. A session opened inside another (an analysis command
    that calls `bench run`) changes nothing: the outer one's destinations hold, so no line is written twice.
    """
    if _OPEN:
        yield
        return
    handlers: List[logging.Handler] = [] if quiet else [StderrLines()]
    to_file = _file_handler(Path(log_file)) if log_file else None
    if to_file is not None:
        handlers.append(to_file)
        _only_to(to_file, f"{title or 'fss-bench'} started (pid {os.getpid()})")
    for handler in handlers:
        LOGGER.addHandler(handler)
    _OPEN.append(title)
    try:
        yield
    except BaseException as exc:
        if to_file is not None and not isinstance(exc, SystemExit):
            _only_to(to_file, _ending(exc, expected))
        raise
    finally:
        _OPEN.pop()
        for handler in handlers:
            LOGGER.removeHandler(handler)
            handler.close()


def _only_to(handler: logging.Handler, message: str) -> None:
    handler.handle(logging.makeLogRecord({"msg": message, "levelno": logging.INFO, "levelname": "INFO"}))


def _ending(exc: BaseException, expected: Tuple[Type[BaseException], ...]) -> str:
    if isinstance(exc, Terminated):
        return "terminated (SIGTERM): finished work is saved; re-run the same command to resume"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, expected):
        return f"error: {exc}"
    return f"failed: {type(exc).__name__}: {exc}"
