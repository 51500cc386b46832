"""A cell: one method evaluated on one (split, shot, seed) episode set, the unit a run resumes by.

Its key `<method>__split<k>_shot<k>_seed<s>` names its files in the run directory and its Ray task;
it is built and parsed here only.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.core.errors import BenchError
from bench.data.episodes import cell_name, parse_cell


@dataclass(frozen=True, order=True)
class Cell:
    method: str
    split: int
    shot: int
    seed: int

    @property
    def manifest(self) -> str:
        """The name of its episode set (its manifest's file stem), shared by every method."""
        return cell_name(self.split, self.shot, self.seed)

    @property
    def key(self) -> str:
        return f"{self.method}__{self.manifest}"

    @classmethod
    def of(cls, method: str, manifest: str) -> "Cell":
        return cls(method, *parse_cell(manifest))

    @classmethod
    def from_key(cls, key: str) -> "Cell":
        method, sep, manifest = key.rpartition("__")
        if not sep or not method:
            raise BenchError(f"'{key}' is not a cell key (<method>__split<k>_shot<k>_seed<s>)")
        return cls.of(method, manifest)
