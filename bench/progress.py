"""Progress bars that stay quiet when stderr is not a terminal or when asked to."""
from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(total=None, desc: str = "", quiet: bool = False, **kwargs):
    """A tqdm bar on stderr, disabled with `quiet` or when stderr is not a terminal."""
    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, disable=disable, dynamic_ncols=True, leave=False, **kwargs)
