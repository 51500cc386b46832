"""The registries' names and cards as light data: `methods/catalog.json`, read without importing a method.

`python -m bench --help`, `bench list` and `bench weights` answer from this file instead of importing every
method's module (torch, torchvision). It is generated from the live registries (`live_catalog`), never written
by hand: after adding or changing a method, a backbone or a published checkpoint, run
`python -m methods.catalog` (tests/test_light_cli.py fails while the file is stale). Plugins are not in it: a
command given `--plugin`, or finding an installed plugin, reads the live registries.
"""
from __future__ import annotations

import functools
import importlib
import json
import sys
from pathlib import Path
from typing import Dict, List, Tuple

from methods import builtin_loaded
from methods.registry import METHODS
from methods.weights import WEIGHTS, PublishedWeights

CATALOG = Path(__file__).with_name("catalog.json")
#: the fields of a published checkpoint `bench weights` shows
WEIGHTS_FIELDS = ("method", "tag", "file_name", "url", "dataset", "fold", "input_size")


def live_catalog() -> Dict[str, object]:
    """The catalog of the built-in registries as they are now (imports every built-in method; plugins left out)."""
    backbones = importlib.import_module("methods.backbones").BACKBONES
    weights = [{**{f: getattr(e, f) for f in WEIGHTS_FIELDS},
                "reported": {str(k): dict(v) for k, v in sorted(e.reported.items())}} for e in WEIGHTS.entries()]
    builtin = [name for name in METHODS.names() if METHODS.card(name).builder.__module__.startswith("methods.")]
    return {"methods": [[name, METHODS.card(name).summary] for name in builtin],
            "backbones": backbones.names(), "weights": weights}


@functools.lru_cache(maxsize=None)
def read_catalog() -> Dict[str, object]:
    """The committed catalog (`methods/catalog.json`)."""
    return json.loads(CATALOG.read_text())


def method_summaries() -> List[Tuple[str, str]]:
    """(name, one-line summary) of every method, sorted by name."""
    if builtin_loaded():
        return [(name, METHODS.card(name).summary) for name in METHODS.names()]
    return [tuple(row) for row in read_catalog()["methods"]]


def backbone_names() -> Tuple[str, ...]:
    """The registered backbones' names (the choices of --backbone)."""
    return tuple(read_catalog()["backbones"])


def weights_entries() -> List[PublishedWeights]:
    """The published checkpoints as `bench weights` shows them (from the catalog: without key maps or hashes),
    sorted by name."""
    if builtin_loaded():
        return WEIGHTS.entries()
    return [PublishedWeights(**{k: v for k, v in row.items() if k != "reported"},
                             reported={int(k): v for k, v in row["reported"].items()})
            for row in read_catalog()["weights"]]


def write_catalog() -> Path:
    CATALOG.write_text(json.dumps(live_catalog(), indent=1, sort_keys=True) + "\n")
    read_catalog.cache_clear()
    return CATALOG


if __name__ == "__main__":
    print(f"wrote {write_catalog()}", file=sys.stderr)
