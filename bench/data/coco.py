"""COCO-20i (Nguyen & Todorovic, ICCV 2019; HSNet's protocol, Min et al. ICCV 2021) on COCO 2014.

Two sources, detected under the data root (or its `COCO2014/` subfolder, as `bench prepare coco20i` writes):
(a) the official layout: `{train2014,val2014}/<name>.jpg` and `annotations/instances_{train,val}2014.json`,
    label maps rendered on demand by `bench.data.coco_masks.label_map`;
(b) HSNet's pre-rendered masks: `annotations/{train2014,val2014}/<name>.png` (class indices, 0 = background).
Image ids are file stems (COCO_val2014_000000000139); the subset comes from the prefix. Test pairs come
from val2014, train pairs from train2014. Without `--lists`, the (image, class, pixels) table of a subset
is computed once (every label rendered or read) and cached as CSV under $FSS_BENCH_CACHE/coco20i,
keyed by the JSON's sha256 or, for PNGs, by a hash of the mask names and sizes. With `--lists`,
HSNet's `{trn,val}/fold{i}.pkl` give the exact pairs (read without unpickling: coco_lists).
"""
from __future__ import annotations

import hashlib
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from bench.core.errors import BenchError
from bench.core.fileio import sha256_file
from bench.core.progress import progress_bar
from bench.data.base import (FSSDataset, Pair, check_label_values, is_plain_name, load_index_png,
                             missing_files_error, pairs_fingerprint)
from bench.data.cards import DatasetCard, register_dataset
from bench.data.coco_lists import (FOLD_CONVENTIONS, NUM_CLASSES, SUBSETS, fold_test_classes, read_hsnet_fold,
                                   read_table, write_table)
from bench.data.coco_json import CocoInstances, check_json_size, parse_json, validate_instances
from bench.data.coco_masks import label_map
from bench.data.synthetic.generate import default_cache_dir as cache_root

COCO_CLASSES = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
]


def default_cache_dir() -> Path:
    return cache_root() / "coco20i"


class _JsonSource:
    """One subset's instances JSON, loaded on first use."""

    def __init__(self, path: Path):
        self.path = path
        self.key = sha256_file(path)

    @cached_property
    def data(self) -> CocoInstances:
        check_json_size(self.path.stat().st_size, str(self.path))
        return validate_instances(parse_json(self.path.read_bytes(), str(self.path)), str(self.path))

    def render(self, image_id: str) -> np.ndarray:
        info = self.data.by_stem.get(image_id)
        if info is None:
            raise BenchError(f"image {image_id} is not listed in {self.path}")
        return label_map(self.data.by_image.get(info["id"], []), info["height"], info["width"], self.data.classes)


class COCO20iDataset(FSSDataset):
    name = "coco20i"
    num_splits = 4
    default_input_size = 473  # PFENet's / HSNet-era COCO-20i input side
    ignore_label = None  # crowd regions are painted as their class (coco_masks); no void label

    def __init__(self, root: Path, lists_dir: Optional[Path] = None, progress: bool = False,
                 fold_convention: str = "interleaved"):
        root = Path(root)
        if not root.is_dir():
            raise CARD.missing(f"data root does not exist: {root}")
        if not (root / "val2014").is_dir() and (root / "COCO2014").is_dir():
            root = root / "COCO2014"
        if fold_convention not in FOLD_CONVENTIONS:
            fold_test_classes(1, fold_convention)  # the error naming the conventions
        self.root, self.fold_convention, self.progress = root, fold_convention, progress
        self.lists_dir = Path(lists_dir) if lists_dir else None
        self._sources: Dict[str, object] = {}
        self._tables: Dict[str, Dict[tuple, int]] = {}
        self.source("val2014")  # the test subset must be there; train2014 is checked when used
        self.pairs = lru_cache(maxsize=None)(self._pairs)

    # Sources --------------------------------------------------------------------------------------

    def source(self, subset: str):
        """'png' or the subset's _JsonSource; a missing part is CARD.missing."""
        if subset not in self._sources:
            if not (self.root / subset).is_dir():
                raise CARD.missing(f"coco20i data root {self.root} has no {subset}/ image folder")
            png_dir = self.root / "annotations" / subset
            json_path = self.root / "annotations" / f"instances_{subset}.json"
            if png_dir.is_dir():
                self._sources[subset] = "png"
            elif json_path.is_file():
                self._sources[subset] = _JsonSource(json_path)
            else:
                raise CARD.missing(f"coco20i data root {self.root} has neither annotations/{subset}/ (masks) nor "
                                   f"annotations/instances_{subset}.json")
        return self._sources[subset]

    @staticmethod
    def subset_of(image_id: str) -> str:
        for subset in SUBSETS.values():
            if image_id.startswith(f"COCO_{subset}_") and is_plain_name(image_id):
                return subset
        raise BenchError(f"{image_id!r} is not a COCO 2014 image id (COCO_train2014_<n> or COCO_val2014_<n>)")

    def image_path(self, image_id: str) -> Path:
        return self.root / self.subset_of(image_id) / f"{image_id}.jpg"

    def label_path(self, image_id: str) -> Path:
        subset = self.subset_of(image_id)
        source = self.source(subset)
        return self.root / "annotations" / subset / f"{image_id}.png" if source == "png" else source.path

    def read_label(self, image_id: str) -> np.ndarray:
        source = self.source(self.subset_of(image_id))
        if source != "png":
            return source.render(image_id).astype(np.int32)
        path = self.label_path(image_id)
        return check_label_values(load_index_png(path), path, NUM_CLASSES, None)

    # Lists ----------------------------------------------------------------------------------------

    def class_names(self) -> Dict[int, str]:
        return {i + 1: n for i, n in enumerate(COCO_CLASSES)}

    def test_classes(self, split: int) -> List[int]:
        self.check_split(split)
        return fold_test_classes(split, self.fold_convention)

    def part_classes(self, split: int, part: str) -> List[int]:
        test = self.test_classes(split)
        return test if part == "test" else [c for c in range(1, NUM_CLASSES + 1) if c not in test]

    def table_key(self, subset: str) -> str:
        source = self.source(subset)
        if source != "png":
            return source.key
        digest = hashlib.sha256()
        for entry in sorted((self.root / "annotations" / subset).glob("*.png")):
            digest.update(f"{entry.name}\0{entry.stat().st_size}\n".encode())
        return digest.hexdigest()

    def table(self, subset: str) -> Dict[tuple, int]:
        """{(image id, class): pixels} of a subset, from the cache or computed once."""
        if subset in self._tables:
            return self._tables[subset]
        source = self.source(subset)
        cache = default_cache_dir() / f"{subset}-{self.table_key(subset)[:20]}.csv"
        if cache.is_file():
            rows = read_table(cache)
        else:
            if source == "png":
                ids = sorted(p.stem for p in (self.root / "annotations" / subset).glob("*.png"))
            else:
                ids = sorted(source.data.by_stem)
            rows = []
            with progress_bar(total=len(ids), desc=f"COCO-20i {subset} class table", quiet=not self.progress,
                              unit="image") as bar:
                for image_id in ids:
                    counts = np.bincount(self.read_label(image_id).ravel(), minlength=NUM_CLASSES + 1)
                    rows += [(image_id, c, int(counts[c])) for c in np.flatnonzero(counts[1:]) + 1]
                    bar.update(1)
            write_table(cache, rows)
        self._tables[subset] = {(i, int(c)): n for i, c, n in rows}
        return self._tables[subset]

    def _pairs(self, split: int, part: str) -> List[Pair]:
        classes = self.part_classes(split, part)
        subset = SUBSETS[part]
        self.source(subset)
        if self.lists_dir is not None:
            listed = read_hsnet_fold(self.lists_dir, split, part)
            pairs = [(i, c) for c in classes for i in listed.get(c, [])]
            wrong = [i for i, _ in pairs if self.subset_of(i) != subset]
            if wrong:
                raise BenchError(f"HSNet list of split {split} ({part}) names {wrong[0]}, not a {subset} image")
        else:
            wanted = set(classes)
            pairs = sorted(((i, c) for i, c in self.table(subset) if c in wanted), key=lambda p: (p[1], p[0]))
        if not pairs:
            raise BenchError(f"coco20i split {split} has no {part} pairs under {self.root}")
        return pairs

    def class_pixel_count(self, image_id: str, class_id: int) -> int:
        subset = self.subset_of(image_id)
        if self.lists_dir is None or subset in self._tables:
            return self.table(subset).get((image_id, class_id), 0)
        return super().class_pixel_count(image_id, class_id)

    def check_files(self, split: int, part: str) -> None:
        ids = sorted({image_id for image_id, _ in self.pairs(split, part)})
        subset = SUBSETS[part]
        source = self.source(subset)
        where = f"the {part} list of split {split}" if source == "png" else source.path.name
        missing = [p for p in map(self.image_path, ids) if not p.is_file()]
        if missing:
            raise missing_files_error("images", missing, where)
        if source == "png":
            missing = [p for p in map(self.label_path, ids) if not p.is_file()]
            if missing:
                raise missing_files_error("masks", missing, where)

    def fingerprint(self, splits: Sequence[int], parts: Sequence[str] = ("test",)) -> str:
        """sha256 of the fold convention, the pairs, each subset's table key (JSON sha256 or PNG names+sizes)
        and the names and sizes of the images used; image contents are not re-read (40k files)."""
        return pairs_fingerprint(self, f"coco20i:{self.fold_convention}", splits, parts,
                                 lambda part: self.table_key(SUBSETS[part]))


CARD = DatasetCard(
    name="coco20i", profile="paper-coco", prepare_step="bench.data.prepare.coco",
    title="COCO-20i (MS COCO 2014, 80 classes in 4 folds)",
    citation="Lin et al., Microsoft COCO: Common Objects in Context, ECCV 2014; COCO-20i: Nguyen & Todorovic, "
             "Feature Weighting and Boosting for Few-Shot Segmentation (FWB), ICCV 2019",
    classes="80 COCO categories, 1-based in category-id order",
    folds="4 folds of 20 classes: interleaved (default; split k tests k, k+4, ..., k+76, as FWB/HSNet/PFENet) or "
          "contiguous (split k tests 20(k-1)+1..20k); trains on the other 60; tests on val2014, trains on train2014",
    episodes="1000 per seed, class-uniform as HSNet (a class, then one of its images)",
    eval_size="321 x 321 input (paper-coco profile; PFENet uses 473 or 641, HSNet 400); scored on the original-size "
              "label (no void label)",
    layout=("{train2014,val2014}/<name>.jpg  (COCO_val2014_000000000139.jpg; or under COCO2014/)",
            "annotations/instances_{train,val}2014.json  (official; masks rendered on demand)",
            "or annotations/{train2014,val2014}/<name>.png  (HSNet's pre-rendered class-index masks)"),
    downloads=(("train2014", "http://images.cocodataset.org/zips/train2014.zip (13 GB)"),
               ("val2014", "http://images.cocodataset.org/zips/val2014.zip (6 GB)"),
               ("annotations", "http://images.cocodataset.org/annotations/annotations_trainval2014.zip"),
               ("HSNet lists (--lists)", "https://github.com/juhongm999/hsnet data/splits/coco")),
    licence="annotations CC BY 4.0 (COCO consortium); images under Flickr's terms of use",
    size="82,783 train / 40,504 val images (HSNet's val folds: 35,783 / 17,912 / 14,563 / 14,315 pairs)",
    prepare="python -m bench prepare coco20i --train-zip train2014.zip --val-zip val2014.zip "
            "--annotations annotations_trainval2014.zip --out DIR",
    class_sampling="uniform", fold_conventions=FOLD_CONVENTIONS, defaults={"class_sampling": "uniform"},
)


@register_dataset(CARD)
def open_coco20i(data_root=None, lists=None, progress=False, fold_convention="interleaved") -> COCO20iDataset:
    if data_root is None:
        raise CARD.missing("coco20i needs --data-root")
    return COCO20iDataset(Path(data_root), Path(lists) if lists else None, progress, fold_convention)
