"""Paper cards: one JSON file per paper declaring its experiments, its tables (with the reported numbers) and
its claims as checkable statements (the format: docs/paper-cards.md).

A card is untrusted input: it is parsed strictly into the frozen dataclasses below (an unknown key, a wrong
type, an unknown method, dataset, analysis or experiment is refused with one line naming the key). Light: no
torch; the method names come from `methods.catalog`, the datasets' from `bench.data.catalog`.
"""
from __future__ import annotations

import json
import re
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench.core.errors import BenchError

SCHEMA_VERSION = 1
CARDS_DIR = Path(__file__).parent / "cards"
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # an analysis output inside its folder
#: the run options an experiment may set besides its grid (RunConfig fields of the protocol)
RUN_OPTIONS = ("class_sampling", "queries", "min_object_pixels", "input_size", "fold_convention")
#: the scoring options an experiment may set (ScoringProtocol fields)
SCORING_OPTIONS = ("pipeline", "eval_size", "void_as_background")
METRICS = ("miou", "fbiou")
KINDS = ("methods", "shots", "value")
DIRECTIONS = (">", "<")


class CardError(BenchError):
    """A card that does not follow the format (one line naming the key)."""


@dataclass(frozen=True)
class Experiment:
    """One run of the harness (`methods` set: `bench run`) or one analysis (`analysis` set)."""

    name: str
    title: str = ""
    methods: List[str] = field(default_factory=list)
    splits: List[int] = field(default_factory=lambda: [1, 2, 3, 4])
    shots: List[int] = field(default_factory=lambda: [1, 5])
    seeds: List[int] = field(default_factory=lambda: [0, 1, 2])
    episodes: Optional[int] = None
    train_seeds: List[int] = field(default_factory=lambda: [0])
    identical_input: bool = False
    #: other protocol options of `bench run` by field name (RUN_OPTIONS, SCORING_OPTIONS)
    options: Dict[str, Any] = field(default_factory=dict)
    #: the methods evaluate the authors' published checkpoints (`bench reproduce --weights DIR`), no training
    weights: bool = False
    #: with `weights`: patterns choosing among several entries of a method's split (`--weights-variant`)
    weights_variant: List[str] = field(default_factory=list)
    #: an analysis (`python -m analyses.<analysis>`) and its arguments by option name (flag without --)
    analysis: str = ""
    args: Dict[str, Any] = field(default_factory=dict)

    @property
    def is_run(self) -> bool:
        return not self.analysis

    @property
    def cell_train_seeds(self) -> List[Optional[int]]:
        """The `train_seed` coordinates of the run's cells: the seeds when there are several, else [None] (one
        seed: the cells of the single-seed layout, that seed being the run's `--train-seed`)."""
        return list(self.train_seeds) if len(self.train_seeds) > 1 else [None]


@dataclass(frozen=True)
class Table:
    """A table (or figure) of the paper: rows x (shot, column) of one metric, with the reported numbers.

    Run tables (`experiment` is a run): rows are methods, columns split numbers or "mean". Analysis tables:
    rows are experiments (one analysis each), columns name a column of the analysis' `file`, averaged."""

    id: str
    title: str
    where: str
    experiment: str = ""
    metric: str = "miou"
    #: row key (a method, or an analysis experiment) -> its label in the paper, in the paper's order
    rows: Dict[str, str] = field(default_factory=dict)
    columns: List[str] = field(default_factory=list)
    shots: List[int] = field(default_factory=lambda: [1])
    #: row key -> shot ("1", "5") -> one value per column (null: not reported)
    reported: Dict[str, Dict[str, List[Optional[float]]]] = field(default_factory=dict)
    #: analysis tables: the CSV of the analysis' output folder whose columns are averaged
    file: str = ""


@dataclass(frozen=True)
class Claim:
    """A checkable statement of the paper.

    methods: each of `a` minus each of `b` in `metric` on the experiment's identical episodes, per split and shot;
    shots: for each method of `a`, its `shots[1]`-shot minus its `shots[0]`-shot mIoU, per split;
    value: the mean of `column` (minus `minus`) over the rows of an analysis' `file`.
    Holds when every part's 95% interval lies on the `direction` side of `threshold`, fails when one lies on
    the other side, inconclusive otherwise."""

    id: str
    text: str
    where: str
    kind: str
    experiment: str
    direction: str = ">"
    threshold: float = 0.0
    metric: str = "miou"
    a: List[str] = field(default_factory=list)
    b: List[str] = field(default_factory=list)
    #: split numbers as strings, or "mean" (the mean over the experiment's splits); empty: every split
    splits: List[str] = field(default_factory=list)
    shots: List[int] = field(default_factory=list)
    file: str = ""
    column: str = ""
    minus: str = ""


@dataclass(frozen=True)
class PaperCard:
    """A paper: its citation, the dataset its tables are on, experiments, tables and claims."""

    schema: int
    name: str
    title: str
    citation: str
    url: str
    dataset: str
    experiments: List[Experiment]
    tables: List[Table] = field(default_factory=list)
    claims: List[Claim] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    #: per dataset, the training profile learned methods train with when --profile is not given (a dataset
    #: missing here: its own default), e.g. {"synthetic": "synthetic"} for the committed synthetic results
    profiles: Dict[str, str] = field(default_factory=dict)

    def experiment(self, name: str) -> Experiment:
        return next(e for e in self.experiments if e.name == name)


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _parse(hint, value, where: str):
    """`value` checked against the type hint `hint` (str, int, float, bool, List, Dict[str, X], Optional, Any,
    a card dataclass)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        if not isinstance(value, (str, int, float, bool, list)) or isinstance(value, list) and not all(
                isinstance(v, (str, int, float)) for v in value):
            raise CardError(f"{where}: expected a string, number, boolean or list of them, got {json.dumps(value)[:60]}")
        return value
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        return _parse(next(a for a in args if a is not type(None)), value, where)
    if origin is list:
        if not isinstance(value, list):
            raise CardError(f"{where}: expected a list, got {type(value).__name__}")
        return [_parse(args[0], v, f"{where}[{k}]") for k, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise CardError(f"{where}: expected an object, got {type(value).__name__}")
        return {k: _parse(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(hint, type) and hasattr(hint, "__dataclass_fields__"):
        return parse_fields(hint, value, where)
    ok = (isinstance(value, bool) if hint is bool else isinstance(value, str) if hint is str
          else isinstance(value, int) and not isinstance(value, bool) if hint is int
          else isinstance(value, (int, float)) and not isinstance(value, bool))
    if not ok:
        raise CardError(f"{where}: expected {_type_name(hint)}, got {json.dumps(value)[:60]}")
    return float(value) if hint is float else value


def parse_fields(cls, value, where: str):
    """An instance of the card dataclass `cls` from parsed JSON, its keys and types checked."""
    if not isinstance(value, dict):
        raise CardError(f"{where}: expected an object, got {type(value).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for key in value:
        if key not in known:
            raise CardError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")
    kwargs = {}
    for name, f in known.items():
        if name in value:
            kwargs[name] = _parse(hints[name], value[name], f"{where}.{name}")
        elif f.default is MISSING and f.default_factory is MISSING:
            raise CardError(f"{where}: missing key {name!r}")
    return cls(**kwargs)
