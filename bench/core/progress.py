"""Progress bars on a terminal; progress lines in the log (`bench.core.log`) at most every LOG_EVERY s."""
from __future__ import annotations

import os
import sys
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from tqdm.auto import tqdm

from bench.core.log import format_seconds, is_terminal, log

LOG_EVERY = 30.0  # seconds between two progress lines of one bar in the log
clock = time.monotonic  # (tests replace it)
MIN_COLUMNS = 20  # a terminal reporting fewer (some batch systems' ptys say 0 x 0) gets FALLBACK_SIZE
FALLBACK_SIZE = (80, 24)


def bar_size(stream) -> Dict:
    """tqdm's size arguments for `stream`: follow the terminal's size, or fixed ones where it reports (almost)
    none: tqdm's own `dynamic_ncols` draws a bar of width 0 there, and hides every bar below row 0."""
    try:
        columns, lines = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        columns, lines = 0, 0
    if columns >= MIN_COLUMNS and lines >= 1:
        return {"dynamic_ncols": True}
    return {"ncols": columns if columns >= MIN_COLUMNS else _environ("COLUMNS", MIN_COLUMNS, FALLBACK_SIZE[0]),
            "nrows": lines if lines >= 1 else _environ("LINES", 1, FALLBACK_SIZE[1])}


def _environ(name: str, least: int, default: int) -> int:
    given = os.environ.get(name, "")
    return int(given) if given.isdigit() and int(given) >= least else default


class Progress:
    """A tqdm bar on stderr (shown on a terminal unless quiet) that also logs a progress line (done, postfix,
    elapsed, ETA) when LOG_EVERY seconds have passed since the last one: long work shows up in batch logs,
    whatever `quiet` says (the log session decides where lines go)."""

    def __init__(self, total=None, desc: str = "", quiet: bool = False, unit: str = "it", initial: int = 0,
                 eta: Optional[Callable[[], Optional[float]]] = None, **kwargs):
        shown = not quiet and is_terminal(sys.stderr)
        self.bar = tqdm(total=total, desc=desc, disable=not shown, leave=False, unit=unit, initial=initial,
                        **(bar_size(sys.stderr) if shown else {}), **kwargs)
        self.total, self.desc, self.unit, self.n, self.first = total, desc, unit, initial, initial
        self.start = self.last = clock()
        self.postfix, self.logged = "", False
        #: seconds left from the work left (`WorkEstimate.seconds_left`) instead of from the rate of `n`
        self.eta = eta

    @property
    def disable(self) -> bool:
        return self.bar.disable

    def update(self, n: int = 1) -> None:
        self.bar.update(n)
        self.n += n
        now = clock()
        if now - self.last >= LOG_EVERY:
            self.last, self.logged = now, True
            log(self.line(now))

    def set_postfix(self, refresh: bool = True, **values) -> None:
        self.bar.set_postfix(refresh=refresh, **values)
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def line(self, now: float) -> str:
        """`desc: n/total unit (p%), postfix, elapsed, ETA`."""
        elapsed = now - self.start
        parts = [f"{self.desc}: {self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f}%)" if self.total
                 else f"{self.desc}: {self.n} {self.unit}"]
        if self.postfix:
            parts.append(self.postfix)
        parts.append(f"{format_seconds(elapsed)} elapsed")
        if self.eta is not None:
            parts.append(eta_text(self.eta()))
        elif self.total and self.n > self.first:
            parts.append(f"ETA {format_seconds(elapsed / (self.n - self.first) * (self.total - self.n))}")
        return ", ".join(parts)

    def close(self, finished: bool = True) -> None:
        self.bar.close()
        if self.logged and finished:  # the work was long enough to report progress: say that it ended
            log(f"{self.desc}: done, {self.n} {self.unit} in {format_seconds(clock() - self.start)}")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, kind, *exc) -> None:
        self.close(finished=kind is None)


def progress_bar(total=None, desc: str = "", quiet: bool = False, **kwargs) -> Progress:
    """A bar on stderr, hidden with `quiet` or when stderr is not a terminal; long work is logged either way."""
    return Progress(total=total, desc=desc, quiet=quiet, **kwargs)


def eta_text(seconds: Optional[float]) -> str:
    return "ETA unknown until each kind of work left has been timed" if seconds is None \
        else f"ETA {format_seconds(seconds)}"


class WorkEstimate:
    """Seconds left of work of unequal kinds (a training takes hours, a cell minutes): the work left of each
    (kind, method), each at the mean of its timings, recorded ones (earlier cells and trainings of the run)
    and those of this command. A (kind, method) never timed takes its kind's mean over methods; while a kind
    with work left has no timing at all, the estimate is None: no number rather than a wrong one. Counting
    cells alone at a mean rate (what a bar does) jumps by hours when the cells that waited on trainings end."""

    def __init__(self, recorded: Iterable[Tuple[str, str, float]] = ()):
        self.left: Dict[Tuple[str, str], int] = {}
        self.timings: Dict[Tuple[str, str], List[float]] = {}
        for kind, method, seconds in recorded:
            self.timings.setdefault((kind, method), []).append(float(seconds))

    def add(self, kind: str, method: str, count: int = 1) -> None:
        """Work to do: `count` more of (kind, method)."""
        self.left[(kind, method)] = self.left.get((kind, method), 0) + count

    def finished(self, kind: str, method: str, seconds: float) -> None:
        """One (kind, method) done in `seconds`."""
        self.left[(kind, method)] -= 1
        self.timings.setdefault((kind, method), []).append(seconds)

    def mean(self, kind: str, method: str) -> Optional[float]:
        own = self.timings.get((kind, method)) or [s for (k, _), t in self.timings.items() if k == kind for s in t]
        return sum(own) / len(own) if own else None

    def seconds_left(self) -> Optional[float]:
        total = 0.0
        for (kind, method), count in self.left.items():
            if count:
                mean = self.mean(kind, method)
                if mean is None:
                    return None
                total += count * mean
        return total


class GridProgress:
    """One bar for a grid of cells: cells done / total, with failed cells and retried attempts; with an
    `estimate`, the ETA is its `seconds_left` (trainings and cells left at their timings).

    Without a terminal (logs, CI) it prints one summary line at the end if a cell failed or was retried.
    """

    def __init__(self, total: int, desc: str = "cells", quiet: bool = False,
                 estimate: Optional[WorkEstimate] = None):
        self.total, self.desc, self.quiet, self.estimate = total, desc, quiet, estimate
        self.done = self.failed = self.retries = 0
        # with an estimate, tqdm's own remaining time (from the rate of cells) is left out of the bar
        shape = {"bar_format": "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"} if estimate else {}
        self.bar = progress_bar(total=total, desc=desc, quiet=quiet, unit="cell", position=0,
                                eta=estimate.seconds_left if estimate else None, **shape)
        self.shown = not self.bar.disable  # tqdm disables a bar when it closes

    def update(self, done: int = 0, failed: int = 0, retries: int | None = None) -> None:
        """Count finished and failed cells; `retries` is the running total of repeated attempts."""
        self.done += done
        self.failed += failed
        if retries is not None:
            self.retries = retries
        if self.failed or self.retries:
            self.bar.set_postfix(failed=self.failed, retries=self.retries, refresh=False)
        if self.estimate is not None:  # shown on the bar only: the log line adds the ETA itself
            shown = [self.bar.postfix, eta_text(self.estimate.seconds_left())]
            self.bar.bar.set_postfix_str(", ".join(filter(None, shown)), refresh=False)
        self.bar.update(done + failed)

    def close(self) -> None:
        self.bar.close()
        if not self.shown and not self.quiet and (self.failed or self.retries):
            print(f"{self.desc}: {self.done}/{self.total} done, {self.failed} failed, {self.retries} retried attempts",
                  file=sys.stderr)
