"""Progress bars that stay quiet when stderr is not a terminal or when asked to."""
from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(total=None, desc: str = "", quiet: bool = False, **kwargs):
    """A tqdm bar on stderr, disabled with `quiet` or when stderr is not a terminal."""
    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, disable=disable, dynamic_ncols=True, leave=False, **kwargs)


class GridProgress:
    """One bar for a grid of cells: cells done / total, with failed cells and retried attempts.

    Without a terminal (logs, CI) it prints one summary line at the end if a cell failed or was retried.
    """

    def __init__(self, total: int, desc: str = "cells", quiet: bool = False):
        self.total, self.desc, self.quiet = total, desc, quiet
        self.done = self.failed = self.retries = 0
        self.bar = progress_bar(total=total, desc=desc, quiet=quiet, unit="cell", position=0)
        self.shown = not self.bar.disable  # tqdm disables a bar when it closes

    def update(self, done: int = 0, failed: int = 0, retries: int | None = None) -> None:
        """Count finished and failed cells; `retries` is the running total of repeated attempts."""
        self.done += done
        self.failed += failed
        if retries is not None:
            self.retries = retries
        if self.failed or self.retries:
            self.bar.set_postfix(failed=self.failed, retries=self.retries, refresh=False)
        self.bar.update(done + failed)

    def close(self) -> None:
        self.bar.close()
        if not self.shown and not self.quiet and (self.failed or self.retries):
            print(f"{self.desc}: {self.done}/{self.total} done, {self.failed} failed, {self.retries} retried attempts",
                  file=sys.stderr)
