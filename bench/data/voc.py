"""Datasets in the PASCAL VOC layout: PASCAL-5i and the synthetic benchmark.

Layout: `<root>/VOC2012/JPEGImages/<id>.jpg`, `<root>/VOC2012/SegmentationClassAug/<id>.png`
(palette PNGs of class indices, 255 = ignore) and split lists `<lists>/{trn,val}/fold{0..3}.txt`
where fold0 is the paper's split-1. PASCAL-5i (Shaban et al., BMVC 2017) tests split k on VOC
classes 5(k-1)+1 .. 5k and trains on the other 15.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Sequence

from bench.core.errors import BenchError
from bench.core.fileio import hash_files, sha256_bytes
from bench.data.base import FSSDataset, Pair, check_label_values, load_index_png
from bench.data.lists import list_path, read_pair_list, shipped_lists

VOC_CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]


def split_test_classes(split: int) -> List[int]:
    """1-based class ids tested in PASCAL-5i split `split` (1..4)."""
    return list(range(5 * (split - 1) + 1, 5 * split + 1))


class VOCLayoutDataset(FSSDataset):
    """Reads any dataset laid out like PASCAL VOC with PASCAL-5i style lists."""

    def __init__(self, name: str, root: Path, lists_dir: Path, class_names: Sequence[str], default_input_size: int):
        self.name = name
        self.root = Path(root)
        self.lists_dir = Path(lists_dir)
        self._class_names = {i + 1: n for i, n in enumerate(class_names)}
        self.default_input_size = default_input_size
        voc = self.root / "VOC2012"
        self.image_dir = voc / "JPEGImages"
        self.label_dir = voc / "SegmentationClassAug"
        if not self.root.is_dir():
            raise BenchError(f"data root does not exist: {self.root}")
        for folder in (self.image_dir, self.label_dir):
            if not folder.is_dir():
                raise BenchError(f"{name} data root {self.root} has no {folder.relative_to(self.root)} folder")
        self.pairs = lru_cache(maxsize=None)(self._read_pairs)

    def class_names(self) -> Dict[int, str]:
        return dict(self._class_names)

    def test_classes(self, split: int) -> List[int]:
        self.check_split(split)
        return split_test_classes(split)

    def _read_pairs(self, split: int, part: str) -> List[Pair]:
        self.check_split(split)
        path = list_path(self.lists_dir, split, part)
        pairs = read_pair_list(path)
        test = set(split_test_classes(split))
        wrong = sorted({c for _, c in pairs if (c in test) != (part == "test") or c not in self._class_names})
        if wrong:
            raise BenchError(
                f"{path} lists classes {wrong} that do not belong to the {part} classes of split {split}"
            )
        return pairs

    def image_path(self, image_id: str) -> Path:
        return self.image_dir / f"{image_id}.jpg"

    def label_path(self, image_id: str) -> Path:
        return self.label_dir / f"{image_id}.png"

    def read_label(self, image_id: str):
        path = self.label_path(image_id)
        return check_label_values(load_index_png(path), path, len(self._class_names), self.ignore_label)

    def fingerprint(self, splits: Sequence[int], parts: Sequence[str] = ("test",)) -> str:
        list_rels, data_rels = [], set()
        for split in splits:
            for part in parts:
                list_rels.append(str(list_path(Path("."), split, part)))
                for image_id in {i for i, _ in self.pairs(split, part)}:
                    data_rels.add(str(self.image_path(image_id).relative_to(self.root)))
                    data_rels.add(str(self.label_path(image_id).relative_to(self.root)))
        lists_hash = hash_files(self.lists_dir, list_rels)
        return sha256_bytes(f"{lists_hash}:{hash_files(self.root, data_rels)}".encode())


def open_pascal5i(data_root: Path | None, lists: Path | None = None) -> VOCLayoutDataset:
    """PASCAL-5i on a real VOC tree; `lists` defaults to the shipped standard lists."""
    if data_root is None:
        raise BenchError(
            "pascal5i needs --data-root: a folder holding VOC2012/JPEGImages and VOC2012/SegmentationClassAug"
        )
    return VOCLayoutDataset("pascal5i", data_root, lists or shipped_lists("pascal5i"), VOC_CLASSES, 321)
