"""COCO-20i fold classes, HSNet's published pair lists (read without unpickling) and the cached class table.

Folds (FWB, Nguyen & Todorovic ICCV 2019; HSNet, Min et al. ICCV 2021; PFENet's use_split_coco):
"interleaved" split k (1-based) tests 1-based classes k, k+4, ..., k+76; "contiguous" tests
20(k-1)+1 .. 20k. Train classes are the other 60.

HSNet ships `data/splits/coco/{trn,val}/fold{i}.pkl`: a pickled dict {0-based class: ['val2014/<name>.jpg', ...]}.
`read_safe_pickle` interprets the pickle opcodes itself (pickletools.genops) and accepts only the
opcodes that build dicts, lists, tuples, strings, ints, None and booleans; anything else (GLOBAL,
REDUCE, BUILD, ...) is a BenchError, so no code in a list file can run.
"""
from __future__ import annotations

import csv
import io
import pickletools
from pathlib import Path
from typing import Dict, List, Tuple

from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_text
from bench.data.base import is_plain_name

FOLD_CONVENTIONS = ("interleaved", "contiguous")
NUM_CLASSES = 80
SUBSETS = {"test": "val2014", "train": "train2014"}
PKL_DIRS = {"test": "val", "train": "trn"}


def fold_test_classes(split: int, convention: str = "interleaved") -> List[int]:
    """1-based classes tested in COCO-20i split `split` (1..4) under a fold convention."""
    if convention == "interleaved":
        return [split + 4 * j for j in range(20)]
    if convention == "contiguous":
        return list(range(20 * (split - 1) + 1, 20 * split + 1))
    raise BenchError(f"unknown COCO-20i fold convention {convention!r}; choose one of {', '.join(FOLD_CONVENTIONS)}")


_PUSH_ARG = {"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "BININT", "BININT1", "BININT2", "LONG1",
             "SHORT_BINSTRING", "BINSTRING"}
_CONST = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_GET = {"GET", "BINGET", "LONG_BINGET"}


def read_safe_pickle(path: Path):
    """The object of a pickle holding only dict/list/tuple/str/int/None/bool; other opcodes: BenchError."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BenchError(f"cannot read list file {path}: {exc.strerror}") from None
    stack: list = []
    marks: List[int] = []
    memo: dict = {}

    def pop_mark() -> list:
        if not marks:
            raise ValueError("no MARK on the stack")
        start = marks.pop()
        items = stack[start:]
        del stack[start:]
        return items

    try:
        for op, arg, pos in pickletools.genops(data):
            name = op.name
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                if len(stack) != 1 or marks:
                    raise ValueError("unbalanced stack at STOP")
                return stack[0]
            if name in _PUSH_ARG:
                stack.append(arg.decode("utf-8") if isinstance(arg, bytes) else arg)
            elif name == "INT":
                stack.append(arg)
            elif name in _CONST:
                stack.append(_CONST[name])
            elif name in ("EMPTY_DICT", "EMPTY_LIST", "EMPTY_TUPLE"):
                stack.append({"EMPTY_DICT": {}, "EMPTY_LIST": [], "EMPTY_TUPLE": ()}[name])
            elif name == "MARK":
                marks.append(len(stack))
            elif name == "APPEND":
                value = stack.pop()
                _as(stack[-1], list).append(value)
            elif name == "APPENDS":
                items = pop_mark()
                _as(stack[-1], list).extend(items)
            elif name == "SETITEM":
                value, key = stack.pop(), stack.pop()
                _as(stack[-1], dict)[key] = value
            elif name == "SETITEMS":
                items = pop_mark()
                target = _as(stack[-1], dict)
                for i in range(0, len(items) - 1, 2):
                    target[items[i]] = items[i + 1]
            elif name in ("TUPLE", "LIST", "DICT"):
                items = pop_mark()
                stack.append(tuple(items) if name == "TUPLE" else list(items) if name == "LIST"
                             else dict(zip(items[::2], items[1::2])))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                items = stack[-n:]
                del stack[-n:]
                stack.append(tuple(items))
            elif name in _PUT:
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in _GET:
                stack.append(memo[arg])
            elif name == "POP":
                stack.pop()
            else:
                raise BenchError(f"list file {path} uses pickle opcode {name} (byte {pos}), which a plain list never "
                                 "needs; refusing it (it could run code): use HSNet's published split files")
    except BenchError:
        raise
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise BenchError(f"list file {path} is not a readable pickle of plain lists ({exc})") from None
    raise BenchError(f"list file {path} is truncated (no STOP opcode)")


def _as(obj, kind):
    if not isinstance(obj, kind):
        raise TypeError(f"expected a {kind.__name__} on the stack, found {type(obj).__name__}")
    return obj


def read_hsnet_fold(lists_dir: Path, split: int, part: str) -> Dict[int, List[str]]:
    """{1-based class: [image ids]} of HSNet's `{trn,val}/fold{split-1}.pkl`."""
    path = Path(lists_dir) / PKL_DIRS[part] / f"fold{split - 1}.pkl"
    if not path.is_file():
        raise BenchError(f"HSNet list file is missing: {path} (expected {{trn,val}}/fold{{0..3}}.pkl under --lists)")
    data = read_safe_pickle(path)
    if not isinstance(data, dict):
        raise BenchError(f"{path} holds a {type(data).__name__}, not HSNet's dict {{class: [image names]}}")
    out: Dict[int, List[str]] = {}
    for key, names in data.items():
        if not (isinstance(key, int) and 0 <= key < NUM_CLASSES and isinstance(names, list)):
            raise BenchError(f"{path}: entry {key!r} is not a 0-based class (0..79) with a list of image names")
        ids = []
        for name in names:
            stem = name.rsplit("/", 1)[-1] if isinstance(name, str) else None
            if stem is None or not stem.endswith(".jpg") or not is_plain_name(stem[:-4]):
                raise BenchError(f"{path}: class {key} lists {name!r}, not '<subset>/<name>.jpg'")
            ids.append(stem[:-4])
        out[key + 1] = ids
    return out


TABLE_COLUMNS = ("image", "class", "pixels")


def write_table(path: Path, rows: List[Tuple[str, int, int]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TABLE_COLUMNS)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def read_table(path: Path) -> List[Tuple[str, int, int]]:
    """Rows of a cached class table; a damaged cache is a BenchError saying to delete it."""
    try:
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            if tuple(next(reader)) != TABLE_COLUMNS:
                raise ValueError("bad header")
            return [(row[0], int(row[1]), int(row[2])) for row in reader]
    except (OSError, ValueError, IndexError, StopIteration) as exc:
        raise BenchError(f"cached COCO-20i class table {path} is damaged ({exc}); delete it to rebuild it") from None
