"""How every command ends: a user's error is one `error:` line and exit status 2, an interrupt 130, a
SIGTERM 143 (both with a line saying what was kept)."""
from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
from typing import Callable, Iterator

from bench.core.errors import BenchError, Terminated
from methods import MethodError

RESUME_HINT = "interrupted: finished cells are saved; re-run the same command to resume"
USER_ERRORS = (BenchError, MethodError)  # what a user can cause: one `error:` line, status 2


def exit_status(command: Callable[[], object], interrupted: str = RESUME_HINT) -> int:
    """Run `command`; its own status if it returns an int (else 0), 2 after a BenchError or MethodError or a
    SystemExit raised by code it ran (a method's), 130 on Ctrl-C, 143 on SIGTERM, 0 when the reader of its
    output closes the pipe."""
    try:
        with terminate_as_interrupt():
            status = command()
        return status if isinstance(status, int) else 0
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print(interrupted.replace("interrupted", "terminated (SIGTERM)", 1), file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except SystemExit as exc:  # the commands return their status: this came from code they ran
        print(f"error: the command was ended by SystemExit({exc.code!r}) from code it ran (a method or plugin "
              "calling sys.exit?)", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `bench weights | head`: the reader left; no traceback, and none at exit either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _raise_terminated(owner: int, signum, frame) -> None:
    if os.getpid() != owner:  # a forked worker (a process pool's) inherited the handler: end as SIG_DFL would
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    raise Terminated()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises `Terminated` (an interrupt) where it would end the process
    silently: in the main thread, when no other handler is installed."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, functools.partial(_raise_terminated, os.getpid()))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
