"""Freed images and codes go back to the operating system (glibc's malloc).

glibc serves a block above its mmap threshold (128 KiB at start) with its own mapping, returned to the
system when freed, but after each such free it raises the threshold to that block's size (up to 32 MiB).
From then on multi-MB images and codes come from the heap arenas, where a least-recently-used cache's
free-then-allocate pattern leaves free memory in the middle of the heap that is not returned: peak RSS
then grows with the number of images evaluated instead of staying within the caches' budgets.

The caches call `release_free_heap` (malloc_trim) after evicting a few hundred MB. Fixing the threshold
instead (`pin_mmap_threshold`, mallopt(3) M_MMAP_THRESHOLD; what bench did at first) also bounds memory
but gives every activation tensor above 128 KiB its own mapping, zero-filled page by page: training and
evaluation ran twice as slowly. `python -m bench.benchmarks.memory_scale --mmap pinned` measures it.
"""
from __future__ import annotations

import ctypes
import functools
import sys
from typing import Callable, Optional

M_MMAP_THRESHOLD = -3
DEFAULT_THRESHOLD = 128 * 1024


@functools.lru_cache(maxsize=None)
def _glibc(name: str, *argtypes) -> Optional[Callable[..., int]]:
    """glibc's function `name` (returning int), looked up once; None where there is no glibc (musl has
    neither mallopt nor malloc_trim)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = list(argtypes), ctypes.c_int
    return function


def pin_mmap_threshold(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at `threshold` bytes for the whole process (benchmarks only, see above);
    False where there is no glibc (nothing changed)."""
    mallopt = _glibc("mallopt", ctypes.c_int, ctypes.c_int)
    return mallopt is not None and mallopt(M_MMAP_THRESHOLD, threshold) == 1


def release_free_heap() -> bool:
    """Hand the heap's free pages back to the system (glibc's malloc_trim(0), which since glibc 2.8 also
    releases free pages in the middle of the heap); False where there is no glibc."""
    malloc_trim = _glibc("malloc_trim", ctypes.c_size_t)
    if malloc_trim is None:
        return False
    malloc_trim(0)
    return True
