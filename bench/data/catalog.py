"""Datasets by name: `pascal5i`, `fss1000`, `synthetic` (default) and `synthetic-tiny` (tests, CI)."""
from __future__ import annotations

from pathlib import Path

from bench.core.errors import BenchError
from bench.data.base import IGNORE, FSSDataset
from bench.data.fss1000 import FSS1000Dataset
from bench.data.synthetic import CLASS_NAMES, TINY_SPEC, SyntheticSpec, ensure_synthetic
from bench.data.voc import VOCLayoutDataset, open_pascal5i
from methods.registry import Registry, RegistryError

DATASETS = Registry("dataset")


@DATASETS.register("pascal5i")
def _pascal5i(data_root=None, lists=None, progress=False) -> FSSDataset:
    return open_pascal5i(data_root, lists)


@DATASETS.register("fss1000")
def _fss1000(data_root=None, lists=None, progress=False) -> FSSDataset:
    if data_root is None:
        raise BenchError("fss1000 needs --data-root: a folder holding <class name>/<n>.jpg and <n>.png")
    return FSS1000Dataset(data_root, lists)


def _synthetic(name: str, tiny: bool):
    def build(data_root=None, lists=None, progress=False) -> FSSDataset:
        spec = TINY_SPEC if tiny else SyntheticSpec()
        root = ensure_synthetic(Path(data_root) if data_root else None, spec, progress=progress)
        return VOCLayoutDataset(name, root, Path(lists) if lists else root / "lists", CLASS_NAMES,
                                default_input_size=128)

    return build


DATASETS.register("synthetic")(_synthetic("synthetic", tiny=False))
DATASETS.register("synthetic-tiny")(_synthetic("synthetic-tiny", tiny=True))


def open_dataset(name: str, data_root=None, lists=None, progress: bool = False) -> FSSDataset:
    """Open a dataset by registry name; unknown names and bad roots raise BenchError."""
    try:
        builder = DATASETS.get(name)
    except RegistryError as exc:
        raise BenchError(str(exc)) from None
    if data_root is not None and not Path(data_root).exists() and not name.startswith("synthetic"):
        raise BenchError(f"data root does not exist: {data_root}")
    return builder(data_root=data_root, lists=lists, progress=progress)


__all__ = ["DATASETS", "FSSDataset", "IGNORE", "open_dataset"]
