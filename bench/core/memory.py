"""Freed images and codes go back to the operating system (glibc's malloc).

glibc serves a block above its mmap threshold (128 KiB at start) with its own mapping, returned to the
system when freed, but after each such free it raises the threshold to that block's size (up to 32 MiB).
From then on multi-MB images and codes come from the heap arenas, where a least-recently-used cache's
free-then-allocate pattern leaves fragmented memory that is not returned: peak RSS then grows with the
number of images evaluated instead of staying within the caches' budgets. Setting the threshold once
turns the dynamic raise off (glibc's mallopt(3), M_MMAP_THRESHOLD).
"""
from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3
DEFAULT_THRESHOLD = 128 * 1024


def pin_mmap_threshold(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at `threshold` bytes; False where there is no glibc (nothing changed)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, threshold) == 1
