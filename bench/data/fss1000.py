"""FSS-1000 (Wei et al., CVPR 2020): 1000 classes of 10 images each, one split.

Layout: `<root>/<class name>/<n>.jpg` with `<n>.png` masks (binarised at 128). Class ids are
1-based over the shipped lists in order trn (520), val (240), test (240), so test classes are
761..1000. Evaluation uses the 240 test classes; training the 520 trn classes.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from bench.core.errors import BenchError
from bench.core.fileio import hash_files
from bench.data.base import (INDEX_MODES, FSSDataset, Pair, check_label_values, foreground, is_plain_name, load_rgb,
                             open_image)
from bench.data.cards import DatasetCard, register_dataset
from bench.data.lists import numbered_lines, shipped_lists

PARTS = ("trn", "val", "test")


def read_class_lists(lists_dir: Path) -> Dict[str, List[str]]:
    lists = {}
    for part in PARTS:
        path = Path(lists_dir) / f"{part}.txt"
        names = []
        for number, name, _ in numbered_lines(path, "FSS-1000 class list"):
            if not is_plain_name(name):
                why = ("contains whitespace, which separates the support ids of an episode manifest; rename "
                       "its folder and list entry (e.g. with underscores)" if any(c.isspace() for c in name)
                       else "is not a plain folder name (no path separators, not '.' or '..')")
                raise BenchError(f"line {number} of {path}: class name {name!r} {why}")
            names.append(name)
        lists[part] = names
    return lists


class FSS1000Dataset(FSSDataset):
    name = "fss1000"
    num_splits = 1
    default_input_size = 320
    ignore_label = None  # class ids go up to 1000 and FSS-1000 masks have no void label

    def __init__(self, root: Path, lists_dir: Path | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise BenchError(f"data root does not exist: {self.root}")
        self.lists_dir = Path(lists_dir or shipped_lists("fss1000"))
        self.class_lists = read_class_lists(self.lists_dir)
        names = [n for part in PARTS for n in self.class_lists[part]]
        self._class_names = {i + 1: n for i, n in enumerate(names)}
        self._ids = {n: i for i, n in self._class_names.items()}
        self.pairs = lru_cache(maxsize=None)(self._pairs)

    def class_names(self) -> Dict[int, str]:
        return dict(self._class_names)

    def test_classes(self, split: int) -> List[int]:
        self.check_split(split)
        return [self._ids[n] for n in self.class_lists["test"]]

    def _pairs(self, split: int, part: str) -> List[Pair]:
        self.check_split(split)
        names = self.class_lists["test" if part == "test" else "trn"]
        missing = [self.root / n for n in names if not (self.root / n).is_dir()]
        if missing:
            shown = ", ".join(map(str, missing[:3]))
            raise FSS1000_CARD.missing(f"{len(missing)} FSS-1000 class folders are missing: {shown}"
                                       + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""))
        pairs = []
        for name in names:
            for jpg in sorted((self.root / name).glob("*.jpg"), key=lambda p: (len(p.stem), p.stem)):
                if not is_plain_name(jpg.stem):
                    raise BenchError(f"FSS-1000 image {jpg} has whitespace in its name, which an episode manifest "
                                     f"cannot hold; FSS-1000's images are <n>.jpg (1.jpg .. 10.jpg) beside <n>.png "
                                     "masks: rename or remove it")
                pairs.append((f"{name}/{jpg.stem}", self._ids[name]))
        return pairs

    def image_path(self, image_id: str) -> Path:
        return self.root / f"{image_id}.jpg"

    def label_path(self, image_id: str) -> Path:
        return self.root / f"{image_id}.png"

    def read_image(self, image_id: str) -> np.ndarray:
        return load_rgb(self.image_path(image_id))

    def read_label(self, image_id: str) -> np.ndarray:
        """Class-index label: the image's class on the mask's foreground (base.foreground), else 0."""
        path = self.label_path(image_id)
        with open_image(path, path, "mask") as img:
            raw = np.asarray(img if img.mode in INDEX_MODES else img.convert("L")).astype(np.int32)
        check_label_values(raw, path, 255, None)  # 8-bit grey levels, binarised below
        class_id = self._ids[image_id.split("/")[0]]
        return np.where(foreground(raw), class_id, 0).astype(np.int32)

    def fingerprint(self, splits: Sequence[int], parts: Sequence[str] = ("test",)) -> str:
        rels = [f"{i}.{ext}" for split in splits for part in parts for i, _ in self.pairs(split, part)
                for ext in ("jpg", "png")]
        return hash_files(self.root, rels)


FSS1000_CARD = DatasetCard(
    name="fss1000", profile="paper-pascal", title="FSS-1000",
    citation="Li et al., FSS-1000: A 1000-Class Dataset for Few-Shot Segmentation, CVPR 2020",
    classes="1000 classes of 10 images (520 train / 240 val / 240 test, HSNet's class lists)",
    folds="one split: tests the 240 test classes (ids 761..1000), trains on the 520 train classes",
    episodes="sampled: 1000 per seed from the test pairs; every-image: each of the 2400 test images a query "
             "once (HSNet's protocol)",
    eval_size="320 x 320 input (HSNet's protocol: --input-size 400 --eval-size 400)",
    layout=("<class name>/<n>.jpg  (224 x 224)", "<class name>/<n>.png  (mask, binarised at 128)"),
    downloads=(("FSS-1000", "https://github.com/HKUSTCV/FSS-1000 (fewshot_data.zip, about 700 MB)"),),
    licence="see the FSS-1000 repository (research use)", size="10,000 images of 224 x 224",
    query_protocols=("sampled", "every-image"),
)


@register_dataset(FSS1000_CARD)
def open_fss1000(data_root=None, lists=None, progress=False) -> FSS1000Dataset:
    if data_root is None:
        raise FSS1000_CARD.missing("fss1000 needs --data-root")
    return FSS1000Dataset(data_root, lists)
