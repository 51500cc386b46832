"""Shared base of the cross-domain few-shot segmentation test sets (Lei et al., "Cross-Domain Few-Shot
Semantic Segmentation", ECCV 2022, PATNet; public code slei109/PATNet).

Facts of PATNet's protocol (test.py, data/{deepglobe,isic,lung}.py): the model is trained on PASCAL
VOC with `--fold 4`, i.e. no held-out fold (all 20 classes); each target set is test-only, one split;
images are resized to 400 x 400 and the query mask is resized (nearest) to 400 x 400 for scoring;
a test run has 600 episodes; episode i takes class i mod C (round robin), then a query and k supports
uniformly at random among that class's images, supports different from the query. Masks are
binarised at 128. The harness's nearest class sampling is ``uniform`` (a class at random, then a pair).

The datasets live in `bench.data.deepglobe`, `bench.data.isic` and `bench.data.chest_xray`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
from bench.core.errors import BenchError
from bench.core.fileio import hash_files
from bench.data.base import FSSDataset, Pair, foreground, load_grey

PATNET_CITATION = "Lei et al., Cross-Domain Few-Shot Semantic Segmentation, ECCV 2022 (PATNet)"
PATNET_TRAIN_ON = "pascal-all: PASCAL VOC with all 20 classes (no held-out fold), as PATNet"
PATNET_EPISODES = 600
PATNET_DEFAULTS = {"input_size": 400, "eval_size": 400, "episodes": PATNET_EPISODES, "class_sampling": "uniform"}
PATNET_EPISODE_TEXT = ("600 per seed (PATNet's test length): a class uniformly, then a query and k supports of it "
                       "uniformly, supports different from the query")
PATNET_EVAL_TEXT = "400 x 400 input, masks scored at 400 x 400 (PATNet's test.py)"


def binary_label(path: Path, class_id: int) -> np.ndarray:
    """Class-index label of a binary mask: `class_id` on its foreground (base.foreground: >= 128, or 1 in a
    0/1 mask), else 0."""
    grey = load_grey(path)
    return np.where(foreground(grey), class_id, 0).astype(np.int32)


class CrossDomainDataset(FSSDataset):
    """One test-only split; subclasses fill `_names` (class id -> name) and `_pairs_list`."""

    num_splits = 1
    default_input_size = 400
    ignore_label = None
    root: Path

    def __init__(self) -> None:
        self._names: Dict[int, str] = {}
        self._pairs_list: List[Pair] = []

    def class_names(self) -> Dict[int, str]:
        return dict(self._names)

    def test_classes(self, split: int) -> List[int]:
        self.check_split(split)
        present = {c for _, c in self._pairs_list}
        return [c for c in sorted(self._names) if c in present]

    def pairs(self, split: int, part: str) -> List[Pair]:
        self.check_split(split)
        if part != "test":
            raise BenchError(f"{self.name} is a test-only cross-domain benchmark (no '{part}' part): "
                             f"learned methods train on pascal-all (PASCAL, all 20 classes, as PATNet): give --train-data-root")
        return list(self._pairs_list)

    def relpaths(self, image_id: str) -> List[str]:
        return [str(p.relative_to(self.root)) for p in (self.image_path(image_id), self.label_path(image_id))]

    def fingerprint(self, splits: Sequence[int], parts: Sequence[str] = ("test",)) -> str:
        ids = sorted({i for split in splits for part in parts for i, _ in self.pairs(split, part)})
        return hash_files(self.root, [rel for i in ids for rel in self.relpaths(i)] + self.extra_files())

    def extra_files(self) -> List[str]:
        """Files under the root besides images and masks that define the pairs (hashed too)."""
        return []
