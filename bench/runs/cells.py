"""A cell: one method evaluated on one (split, shot, seed) episode set, the unit a run resumes by.

Its key `<method>__split<k>_shot<k>_seed<s>` names its files in the run directory and its Ray task; a
method trained with several seeds (`--train-seeds`) has one cell per training seed, keyed
`<method>__split<k>_shot<k>_seed<s>_train<t>`. Keys are built and parsed here only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional

from bench.core.errors import BenchError
from bench.data.episodes import cell_name, parse_cell

TRAIN_SUFFIX = re.compile(r"_train(?P<seed>\d+)$")


@dataclass(frozen=True, order=True)
class Cell:
    method: str
    split: int
    shot: int
    seed: int
    train_seed: Optional[int] = None  # None: the method's only checkpoint (or no training)

    @property
    def manifest(self) -> str:
        """The name of its episode set (its manifest's file stem), shared by every method."""
        return cell_name(self.split, self.shot, self.seed)

    @property
    def key(self) -> str:
        return f"{self.method}__{self.manifest}" + ("" if self.train_seed is None else f"_train{self.train_seed}")

    @property
    def label(self) -> str:
        """What progress and log lines call it: `<method> <manifest>[ train seed <t>]`."""
        return f"{self.method} {self.manifest}" + ("" if self.train_seed is None else f" train seed {self.train_seed}")

    @property
    def checkpoint_key(self) -> str:
        """config.json's key of the checkpoint the cell uses: <method>/split<k>[/train<t>]."""
        return f"{self.method}/split{self.split}" + ("" if self.train_seed is None else f"/train{self.train_seed}")

    @classmethod
    def of(cls, method: str, manifest: str, train_seed: Optional[int] = None) -> "Cell":
        return cls(method, *parse_cell(manifest), train_seed)

    @classmethod
    def from_key(cls, key: str) -> "Cell":
        method, sep, manifest = key.rpartition("__")
        if not sep or not method:
            raise BenchError(f"'{key}' is not a cell key (<method>__split<k>_shot<k>_seed<s>)")
        match = TRAIN_SUFFIX.search(manifest)
        if match is None:
            return cls.of(method, manifest)
        return cls.of(method, manifest[:match.start()], int(match["seed"]))


def train_seeds_of(identity: Dict, split: int) -> List[Optional[int]]:
    """The training seeds a method's cells of a split have: its identity's `train_seeds` for a learned
    method trained with several seeds, else [None] (one checkpoint, published weights, no training)."""
    seeds = identity.get("training", {}).get("train_seeds")
    published = f"{identity.get('method')}/split{split}" in identity.get("weights", {})
    return list(seeds) if seeds and not published else [None]


def method_cells(identity: Dict, manifests: List[str]) -> List[Cell]:
    """Every cell of a method (given by its identity, `config.method_identity`) on the run's episode sets."""
    cells = []
    for manifest in manifests:
        split = parse_cell(manifest)[0]
        cells += [Cell.of(identity["method"], manifest, t) for t in train_seeds_of(identity, split)]
    return cells
