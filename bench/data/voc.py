"""Datasets in the PASCAL VOC layout: PASCAL-5i and the synthetic benchmark.

Layout: `<root>/VOC2012/JPEGImages/<id>.jpg`, `<root>/VOC2012/SegmentationClassAug/<id>.png`
(palette PNGs of class indices, 255 = ignore) and split lists `<lists>/{trn,val}/fold{0..3}.txt`
where fold0 is the paper's split-1. PASCAL-5i (Shaban et al., BMVC 2017) tests split k on VOC
classes 5(k-1)+1 .. 5k and trains on the other 15.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from bench.core.errors import BenchError
from bench.core.fileio import hash_files, sha256_bytes
from bench.data.base import FSSDataset, Pair, check_label_values, load_index_png
from bench.data.cards import DatasetCard, register_dataset
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

    def __init__(self, name: str, root: Path, lists_dir: Path, class_names: Sequence[str], default_input_size: int,
                 card: Optional[DatasetCard] = None):
        self.name = name
        self.root = Path(root)
        self.lists_dir = Path(lists_dir)
        self._class_names = {i + 1: n for i, n in enumerate(class_names)}
        self.default_input_size = default_input_size
        voc = self.root / "VOC2012"
        self.image_dir = voc / "JPEGImages"
        self.label_dir = voc / "SegmentationClassAug"
        fail = card.missing if card is not None else BenchError
        if not self.root.is_dir():
            raise fail(f"data root does not exist: {self.root}")
        for folder in (self.image_dir, self.label_dir):
            if not folder.is_dir():
                raise fail(f"{name} data root {self.root} has no {folder.relative_to(self.root)} folder")
        self.pairs = lru_cache(maxsize=None)(self._read_pairs)

    def class_names(self) -> Dict[int, str]:
        return dict(self._class_names)

    def test_classes(self, split: int) -> List[int]:
        self.check_split(split)
        return split_test_classes(split)

    def list_files(self, split: int, part: str) -> List[Path]:
        """The list files of a split's part, relative to the lists folder."""
        return [list_path(Path("."), split, part)]

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
                list_rels.extend(str(rel) for rel in self.list_files(split, part))
                for image_id in {i for i, _ in self.pairs(split, part)}:
                    data_rels.add(str(self.image_path(image_id).relative_to(self.root)))
                    data_rels.add(str(self.label_path(image_id).relative_to(self.root)))
        lists_hash = hash_files(self.lists_dir, list_rels)
        return sha256_bytes(f"{lists_hash}:{hash_files(self.root, data_rels)}".encode())


PASCAL5I_CARD = DatasetCard(
    name="pascal5i", profile="paper-pascal", prepare_step="bench.data.prepare.pascal",
    title="PASCAL-5i (PASCAL VOC 2012 with SBD's extra masks)",
    citation="Shaban et al., One-Shot Learning for Semantic Segmentation, BMVC 2017; VOC: Everingham et al., "
             "IJCV 2010; SBD: Hariharan et al., Semantic Contours from Inverse Detectors, ICCV 2011",
    classes="20 PASCAL VOC classes", folds="4 folds of 5 classes: split k tests classes 5(k-1)+1..5k, trains on the rest",
    episodes="1000 per seed, queries following the shipped (image, class) test list (346/451/725/346 pairs)",
    eval_size="321 x 321 input (paper-pascal profile); scored on the original-size label, 255 ignored",
    layout=("VOC2012/JPEGImages/<id>.jpg", "VOC2012/SegmentationClassAug/<id>.png  (class indices, 255 = void; VOC "
            "masks plus SBD's converted)"),
    downloads=(("VOC2012", "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar (1.9 GB)"),
               ("SBD", "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/"
                       "benchmark.tgz (1.4 GB)")),
    licence="VOC images come from Flickr under its terms of use; VOC annotations and SBD for research use",
    size="17,125 VOC2012 images, 12,031 masks after SBD augmentation (10,582 train + 1,449 val)",
    prepare="python -m bench prepare pascal5i --voc VOCtrainval_11-May-2012.tar --sbd benchmark.tgz --out DIR",
)


@register_dataset(PASCAL5I_CARD)
def open_pascal5i(data_root: Optional[Path] = None, lists: Optional[Path] = None, progress: bool = False
                  ) -> VOCLayoutDataset:
    """PASCAL-5i on a real VOC tree; `lists` defaults to the shipped standard lists."""
    if data_root is None:
        raise PASCAL5I_CARD.missing("pascal5i needs --data-root")
    return VOCLayoutDataset("pascal5i", data_root, lists or shipped_lists("pascal5i"), VOC_CLASSES, 321,
                            card=PASCAL5I_CARD)


class PascalAllClasses(VOCLayoutDataset):
    """PASCAL VOC with all 20 classes in one split: what cross-domain FSS trains on (PATNet, Lei et al.,
    ECCV 2022). Its pairs are the union of the four PASCAL-5i lists of a part (train: every class's
    training pairs; test: the val pairs)."""

    num_splits = 1

    def test_classes(self, split: int) -> List[int]:
        self.check_split(split)
        return sorted(self._class_names)

    def list_files(self, split: int, part: str) -> List[Path]:
        return [list_path(Path("."), fold, part) for fold in range(1, 5)]

    def _read_pairs(self, split: int, part: str) -> List[Pair]:
        self.check_split(split)
        return sorted({pair for rel in self.list_files(split, part) for pair in read_pair_list(self.lists_dir / rel)})


PASCAL_ALL_CARD = DatasetCard(
    name="pascal-all", profile="paper-pascal",
    title="PASCAL VOC 2012 + SBD, all 20 classes in one split (cross-domain training)",
    citation=PASCAL5I_CARD.citation + "; cross-domain protocol: Lei et al., Cross-Domain Few-Shot Semantic "
             "Segmentation (PATNet), ECCV 2022",
    classes="20 PASCAL VOC classes", folds="one split with every class (no held-out fold)",
    episodes="1000 per seed from the union of the PASCAL-5i val lists (its own evaluation is a sanity check)",
    eval_size=PASCAL5I_CARD.eval_size, layout=PASCAL5I_CARD.layout, downloads=PASCAL5I_CARD.downloads,
    licence=PASCAL5I_CARD.licence, size=PASCAL5I_CARD.size, prepare=PASCAL5I_CARD.prepare,
)


@register_dataset(PASCAL_ALL_CARD)
def open_pascal_all(data_root: Optional[Path] = None, lists: Optional[Path] = None, progress: bool = False
                    ) -> PascalAllClasses:
    """PASCAL with all classes in one split, from the shipped PASCAL-5i lists (or `lists`, laid out alike)."""
    if data_root is None:
        raise PASCAL_ALL_CARD.missing("pascal-all needs --data-root (or --train-data-root when training for "
                                      "a cross-domain benchmark)")
    return PascalAllClasses("pascal-all", data_root, lists or shipped_lists("pascal5i"), VOC_CLASSES, 321,
                            card=PASCAL_ALL_CARD)
