"""ISIC 2018 skin-lesion segmentation (Codella et al. 2019; Tschandl et al., HAM10000, 2018) as PATNet's
cross-domain test set (Lei et al., ECCV 2022; slei109/PATNet data/isic.py, data/isic/class_id.csv).

PATNet uses the 2594 Task 1 training images and their lesion masks (binarised at 128) and gives each image
one of three diagnoses from its shipped class table (melanoma 519, nevus 1867, seborrheic keratosis 208);
the few-shot class of an episode is the diagnosis, the foreground the lesion. The table ships here as
`bench/data/splits/isic2018/classes.txt` (see PROVENANCE.md). Class ids: 1 melanoma, 2 nevus,
3 seborrheic_keratosis (alphabetical; PATNet's folder numbers 1..3 are not tied to names in its code).
Every Task 1 mask holds a lesion, so each listed image is one (image, class) pair. The official masks
are 0/255; a copy storing them as 0/1 is read as binary too (bench.data.base.foreground) rather than as
empty masks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np

from bench.core.errors import BenchError
from bench.core.fileio import sha256_bytes, sha256_file
from bench.data.base import is_plain_name
from bench.data.cards import DatasetCard, register_dataset
from bench.data.crossdomain import (PATNET_CITATION, PATNET_DEFAULTS, PATNET_EPISODE_TEXT, PATNET_EVAL_TEXT,
                                    PATNET_TRAIN_ON, CrossDomainDataset, binary_label)
from bench.data.lists import shipped_lists

CLASSES = ("melanoma", "nevus", "seborrheic_keratosis")
IMAGES = "ISIC2018_Task1-2_Training_Input"
MASKS = "ISIC2018_Task1_Training_GroundTruth"


def read_class_table(path: Path) -> Dict[str, str]:
    """`id,class` lines (header first) -> {image id: diagnosis}; bad lines are one BenchError."""
    table = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise BenchError(f"cannot read the ISIC class table {path}: {exc}") from None
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 2 or not is_plain_name(fields[0]) or fields[1] not in CLASSES:
            raise BenchError(f"line {number} of {path}: expected '<image id>,<{'|'.join(CLASSES)}>', got {line!r}")
        table[fields[0]] = fields[1]
    return table


class ISICDataset(CrossDomainDataset):
    name = "isic2018"

    def __init__(self, root: Path, lists_dir: Path | None = None):
        super().__init__()
        self.root = Path(root)
        for sub in (IMAGES, MASKS):
            if not (self.root / sub).is_dir():
                raise ISIC_CARD.missing(f"{self.root / sub} is missing")
        self.table_path = Path(lists_dir or shipped_lists("isic2018")) / "classes.txt"
        table = read_class_table(self.table_path)
        self._names = {i: name for i, name in enumerate(CLASSES, start=1)}
        ids = {name: i for i, name in self._names.items()}
        missing = [i for i in sorted(table) if not self.image_path(i).is_file()]
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise ISIC_CARD.missing(f"{len(missing)} images of the ISIC class table are missing in "
                                    f"{self.root / IMAGES}: {shown}")
        self._class_of = {i: ids[c] for i, c in table.items()}
        self._pairs_list = [(i, self._class_of[i]) for i in sorted(table)]

    def image_path(self, image_id: str) -> Path:
        return self.root / IMAGES / f"{image_id}.jpg"

    def label_path(self, image_id: str) -> Path:
        return self.root / MASKS / f"{image_id}_segmentation.png"

    def read_label(self, image_id: str) -> np.ndarray:
        """Class-index label: the image's diagnosis on the lesion mask's foreground (>= 128, or 1 in a 0/1 mask)."""
        return binary_label(self.label_path(image_id), self._class_of[image_id])

    def fingerprint(self, splits, parts=("test",)) -> str:
        """Hash of the images, masks and the class table."""
        return sha256_bytes((super().fingerprint(splits, parts) + sha256_file(self.table_path)).encode("ascii"))


ISIC_CARD = DatasetCard(
    name="isic2018", profile="paper-pascal",  # its models train on pascal-all
    title="ISIC 2018 skin lesions, PATNet's cross-domain protocol",
    citation=f"{PATNET_CITATION}; Codella et al., Skin Lesion Analysis Toward Melanoma Detection 2018 (ISIC), "
             "arXiv:1902.03368; Tschandl et al., The HAM10000 dataset, Scientific Data 2018",
    classes="3 diagnoses: melanoma, nevus, seborrheic_keratosis (PATNet's class table; foreground = lesion)",
    folds="one test split (test-only; trained on PASCAL)", episodes=PATNET_EPISODE_TEXT, eval_size=PATNET_EVAL_TEXT,
    layout=(f"{IMAGES}/ISIC_<n>.jpg  (2594 Task 1 training images)",
            f"{MASKS}/ISIC_<n>_segmentation.png  (lesion masks, binarised at 128)"),
    downloads=(("ISIC 2018 Task 1 training input and ground truth", "https://challenge.isic-archive.com/data#2018"),
               ("class table", "shipped: bench/data/splits/isic2018/classes.txt (from PATNet)")),
    licence="ISIC archive terms (CC BY-NC; see the challenge page)",
    size="2594 dermoscopic images of varying size (519 melanoma, 1867 nevus, 208 seborrheic keratosis)",
    train_on=PATNET_TRAIN_ON, train_dataset="pascal-all", class_sampling="uniform", defaults=dict(PATNET_DEFAULTS),
)


@register_dataset(ISIC_CARD)
def open_isic(data_root=None, lists=None, progress=False) -> ISICDataset:
    if data_root is None:
        raise ISIC_CARD.missing("isic2018 needs --data-root")
    return ISICDataset(data_root, lists)


__all__: List[str] = ["ISICDataset", "ISIC_CARD", "read_class_table"]
