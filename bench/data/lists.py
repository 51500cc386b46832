"""Reading PASCAL-5i style pair lists: one `<image id>__<2-digit 1-based class>` per line."""
from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Iterator, List, Tuple

from bench.core.errors import BenchError
from bench.data.base import Pair, is_plain_name

LINE = re.compile(r"^(?P<id>\S+)__(?P<cls>\d{2})$")
PART_DIRS = {"test": "val", "train": "trn"}


def shipped_lists(name: str) -> Path:
    """Folder of the split lists shipped inside the package (bench/data/splits/<name>)."""
    return Path(str(resources.files("bench") / "data" / "splits" / name))


def list_path(lists_dir: Path, split: int, part: str) -> Path:
    return Path(lists_dir) / PART_DIRS[part] / f"fold{split - 1}.txt"


def numbered_lines(path: Path, what: str) -> Iterator[Tuple[int, str, str]]:
    """(line number, stripped line, raw line) of every non-empty line of a list file."""
    if not path.is_file():
        raise BenchError(f"{what} is missing: {path}")
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        if raw.strip():
            yield number, raw.strip(), raw


def read_pair_list(path: Path) -> List[Pair]:
    """Parse a list file; a malformed line is a BenchError naming the file and line."""
    pairs = []
    for number, line, raw in numbered_lines(path, "split list"):
        match = LINE.match(line)
        if match is None:
            raise BenchError(f"malformed line {number} in {path}: {raw!r} (expected '<image id>__<2-digit class>')")
        if not is_plain_name(match["id"]):
            raise BenchError(f"line {number} in {path}: image id {match['id']!r} is not a plain file name "
                             "(ids name files inside the data root: no path separators, not '.' or '..')")
        pairs.append((match["id"], int(match["cls"])))
    if not pairs:
        raise BenchError(f"split list is empty: {path}")
    return pairs
