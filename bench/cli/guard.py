"""How every command ends: a user's error is one `error:` line and exit status 2, an interrupt 130."""
from __future__ import annotations

import os
import sys
from typing import Callable

from bench.core.errors import BenchError
from methods import MethodError

RESUME_HINT = "interrupted: finished cells are saved; re-run the same command to resume"
USER_ERRORS = (BenchError, MethodError)  # what a user can cause: one `error:` line, status 2


def exit_status(command: Callable[[], object], interrupted: str = RESUME_HINT) -> int:
    """Run `command`; its own status if it returns an int (else 0), 2 after a BenchError or MethodError,
    130 on Ctrl-C, 0 when the reader of its output closes the pipe."""
    try:
        status = command()
        return status if isinstance(status, int) else 0
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bench weights | head`: the reader left; no traceback, and none at exit either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
