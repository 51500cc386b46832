"""LVIS-92i (Liu et al., Matcher: Segment Anything with One Shot Using All-Purpose Feature Matching, ICLR 2024;
github.com/aim-uofa/Matcher `matcher/data/lvis.py`, commit d59b6c7) on LVIS v1 (Gupta et al., CVPR 2019).

Layout under the data root (or its `LVIS/` subfolder, as `bench prepare lvis92i` writes): COCO 2017 images
`{train2017,val2017}/<12 digits>.jpg` and `annotations/lvis_v1_{val,train}.json` (the training file only
for training). Test pairs come from lvis_v1_val.json, training pairs from lvis_v1_train.json; LVIS images
come from both COCO 2017 subsets. Folds: `bench.data.lvis_json` (Matcher's rule: classes with more images
than shots, 10 interleaved folds). Fold conventions `matcher-1shot` (default; > 1 image) and
`matcher-5shot` (> 5 images): Matcher applies its rule with the run's shot, so its 5-shot folds differ.

Masks are Matcher's: the union of all instances of the episode's class in the image (overlaps with other
classes do not matter). A pair's image id therefore names its class, `<subset>_<12 digits>_c<category>`,
and its label holds the category id on the class's union and 0 elsewhere. Class ids are LVIS category ids.
"""
from __future__ import annotations

import re
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from bench.core.errors import BenchError
from bench.core.fileio import sha256_file
from bench.data.base import FSSDataset, Pair, missing_files_error, pairs_fingerprint
from bench.data.cards import DatasetCard, register_dataset
from bench.data.coco_masks import _mask_api, instance_rle
from bench.data.lvis_json import (NUM_FOLDS, LvisInstances, check_lvis_size, eligible_classes, fold_test_classes,
                                  parse_lvis)

FOLD_CONVENTIONS = ("matcher-1shot", "matcher-5shot")
RULE_SHOT = {"matcher-1shot": 1, "matcher-5shot": 5}
PARTS = {"test": "val", "train": "train"}
_PAIR_ID = re.compile(r"^(train2017|val2017)_(\d{12})_c(\d{1,9})$")


def annotation_path(root: Path, part: str) -> Path:
    """The LVIS v1 file of a part ('test': val, 'train': train) under a root."""
    return Path(root) / "annotations" / f"lvis_v1_{PARTS[part]}.json"


def load_lvis(path: Path) -> LvisInstances:
    """Read and check one LVIS v1 annotation file."""
    check_lvis_size(path.stat().st_size, str(path))
    return parse_lvis(path.read_bytes(), str(path))


def union_mask(annotations: Sequence[dict], height: int, width: int) -> np.ndarray:
    """uint8 [H, W] union of checked instance annotations (Matcher's class mask)."""
    api = _mask_api()
    rles = [instance_rle(ann, height, width) for ann in annotations]
    if not rles:
        return np.zeros((height, width), np.uint8)
    return api.decode(api.merge(rles, intersect=False)).astype(np.uint8)


def matcher_folds(val: LvisInstances, train: Optional[LvisInstances], convention: str) -> Dict[int, dict]:
    """{split: {"test": [categories], "train": [categories] or None}} by Matcher's rule (lvis_json)."""
    shot = RULE_SHOT[convention]
    val_ok = eligible_classes(val.images_per_class(), shot)
    train_ok = eligible_classes(train.images_per_class(), shot) if train is not None else None
    folds = {}
    for split in range(1, NUM_FOLDS + 1):
        test = fold_test_classes(val_ok, split)
        folds[split] = {"test": test, "train": None if train_ok is None else [c for c in train_ok if c not in test]}
    return folds


class LVIS92iDataset(FSSDataset):
    name = "lvis92i"
    num_splits = NUM_FOLDS
    default_input_size = 518  # Matcher's img_size (DINOv2 ViT-L/14)
    ignore_label = None  # LVIS has no void label

    def __init__(self, root: Path, fold_convention: str = "matcher-1shot"):
        root = Path(root)
        if not root.is_dir():
            raise CARD.missing(f"data root does not exist: {root}")
        if not annotation_path(root, "test").is_file() and annotation_path(root / "LVIS", "test").is_file():
            root = root / "LVIS"
        if fold_convention not in FOLD_CONVENTIONS:
            raise BenchError(f"unknown LVIS-92i fold convention {fold_convention!r}; choose one of "
                             f"{', '.join(FOLD_CONVENTIONS)}")
        self.root, self.fold_convention = root, fold_convention
        self.rule_shot = RULE_SHOT[fold_convention]
        if not annotation_path(root, "test").is_file():
            raise CARD.missing(f"lvis92i data root {root} has no annotations/lvis_v1_val.json")
        self.pairs = lru_cache(maxsize=None)(self._pairs)

    def instances(self, part: str) -> LvisInstances:
        """The checked annotation file of a part, loaded once."""
        return self._val if part == "test" else self._train

    @cached_property
    def _val(self) -> LvisInstances:
        return load_lvis(annotation_path(self.root, "test"))

    @cached_property
    def _train(self) -> LvisInstances:
        path = annotation_path(self.root, "train")
        if not path.is_file():
            raise CARD.missing(f"lvis92i training needs {path}")
        return load_lvis(path)

    @staticmethod
    def parse_id(image_id: str) -> tuple:
        """(subset, 12-digit COCO id, category) of a pair's image id."""
        match = _PAIR_ID.match(image_id)
        if match is None:
            raise BenchError(f"{image_id!r} is not an LVIS-92i image id (<train2017|val2017>_<12 digits>_c<category>)")
        return match.group(1), match.group(2), int(match.group(3))

    def class_names(self) -> Dict[int, str]:
        return dict(self._val.names)

    def test_classes(self, split: int) -> List[int]:
        self.check_split(split)
        return fold_test_classes(eligible_classes(self._val.images_per_class(), self.rule_shot), split)

    def part_classes(self, split: int, part: str) -> List[int]:
        test = self.test_classes(split)
        if part == "test":
            return test
        return [c for c in eligible_classes(self._train.images_per_class(), self.rule_shot) if c not in test]

    def _pairs(self, split: int, part: str) -> List[Pair]:
        by_class = self.instances(part).images_per_class()
        pairs = [(f"{key}_c{c}", c) for c in self.part_classes(split, part) for key in by_class.get(c, [])]
        if not pairs:
            raise BenchError(f"lvis92i split {split} has no {part} pairs under {self.root}")
        return pairs

    def image_path(self, image_id: str) -> Path:
        subset, number, _ = self.parse_id(image_id)
        return self.root / subset / f"{number}.jpg"

    def label_path(self, image_id: str) -> Path:
        return annotation_path(self.root, "test" if self._lookup(image_id)[0] is self._val else "train")

    def _lookup(self, image_id: str) -> tuple:
        subset, number, category = self.parse_id(image_id)
        key = f"{subset}_{number}"
        for data in (self._val, self._train):  # LVIS v1's val and train images are disjoint
            if key in data.images:
                return data, key, category
        raise BenchError(f"image {key} is listed in neither LVIS annotation file under {self.root}")

    def read_label(self, image_id: str) -> np.ndarray:
        data, key, category = self._lookup(image_id)
        image = data.images[key]
        mask = union_mask(data.by_pair.get((key, category), []), image["height"], image["width"])
        return mask.astype(np.int32) * category

    def check_files(self, split: int, part: str) -> None:
        paths = sorted({self.image_path(i) for i, _ in self.pairs(split, part)})
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise missing_files_error("images", missing, annotation_path(self.root, part).name)

    def fingerprint(self, splits: Sequence[int], parts: Sequence[str] = ("test",)) -> str:
        """sha256 of the convention, each annotation file's sha256, the pairs and the used images' sizes."""
        return pairs_fingerprint(self, f"lvis92i:{self.fold_convention}", splits, parts,
                                 lambda part: sha256_file(annotation_path(self.root, part)))


CARD = DatasetCard(
    name="lvis92i", profile="paper-coco", prepare_step="bench.data.prepare.lvis",
    title="LVIS-92i (LVIS v1 on COCO 2017, 10 folds of 92 classes, Matcher's protocol)",
    citation="Gupta et al., LVIS: A Dataset for Large Vocabulary Instance Segmentation, CVPR 2019; LVIS-92i: Liu et "
             "al., Matcher: Segment Anything with One Shot Using All-Purpose Feature Matching, ICLR 2024",
    classes="LVIS v1 categories with more images than shots (lvis_v1_val.json), by category id",
    folds="10 folds: of the eligible val classes in id order, split k tests those at 0-based positions k-1, k+9, "
          "k+19, ... (92 per fold on LVIS v1); trains on the other eligible train classes; matcher-1shot (> 1 image, "
          "default) or matcher-5shot (> 5 images), as Matcher's 1- and 5-shot runs",
    episodes="2300 per fold and seed (Matcher's count; it cycles its 92 classes, here class-uniform)",
    eval_size="518 x 518 input and scoring (Matcher's img_size; it scores the mask resized to 518, nearest)",
    layout=("{train2017,val2017}/<12 digits>.jpg  (COCO 2017 images; or under LVIS/)",
            "annotations/lvis_v1_val.json  (test folds)",
            "annotations/lvis_v1_train.json  (training only)"),
    downloads=(("train2017", "http://images.cocodataset.org/zips/train2017.zip (18 GB)"),
               ("val2017", "http://images.cocodataset.org/zips/val2017.zip (1 GB)"),
               ("annotations", "https://dl.fbaipublicfiles.com/LVIS/lvis_v1_val.json.zip and lvis_v1_train.json.zip")),
    licence="LVIS annotations CC BY 4.0; images under Flickr's terms of use (COCO)",
    size="19,809 val / 100,170 train images; 1,203 categories",
    prepare="python -m bench prepare lvis92i --train-zip train2017.zip --val-zip val2017.zip "
            "--annotations lvis_v1_val.json.zip --out DIR",
    class_sampling="uniform", fold_conventions=FOLD_CONVENTIONS,
    defaults={"class_sampling": "uniform", "episodes": 2300, "input_size": 518, "eval_size": 518},
    notes=("fold classes are derived from the annotation file at load (and prepare) time; Matcher reads its own "
           "pickled re-packaging of LVIS, whose class order is assumed to be category-id order",),
)


@register_dataset(CARD)
def open_lvis92i(data_root=None, lists=None, progress=False, fold_convention="matcher-1shot") -> LVIS92iDataset:
    if data_root is None:
        raise CARD.missing("lvis92i needs --data-root")
    if lists:
        raise BenchError("lvis92i derives its folds from the annotations; it takes no --lists")
    return LVIS92iDataset(Path(data_root), fold_convention)
