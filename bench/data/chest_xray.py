"""Chest X-ray lung segmentation (Candemir et al., IEEE TMI 2014; Jaeger et al., IEEE TMI 2014) as PATNet's
cross-domain test set (Lei et al., ECCV 2022; slei109/PATNet data/lung.py).

PATNet reads the Kaggle "Chest X-ray masks and labels" folder `Lung Segmentation/` (CXR_png/ images,
masks/ lung masks), one class (lung), masks binarised at 128. It derives an image's name from a mask's by
cutting the `_mask.png` suffix, so the images it can use are those whose masks carry that suffix (the
Shenzhen set's masks; the Montgomery masks are named like their images and are left out here, as in
PATNet's effective protocol).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.core.errors import BenchError
from bench.data.base import is_plain_name
from bench.data.cards import DatasetCard, register_dataset
from bench.data.crossdomain import (PATNET_CITATION, PATNET_DEFAULTS, PATNET_EPISODE_TEXT, PATNET_EVAL_TEXT,
                                    PATNET_TRAIN_ON, CrossDomainDataset, binary_label)

SUFFIX = "_mask.png"
LUNG = 1


class ChestXrayDataset(CrossDomainDataset):
    name = "chest-xray"

    def __init__(self, root: Path):
        super().__init__()
        root = Path(root)
        for wrapped in ("Lung Segmentation", "LungSegmentation"):
            if not (root / "masks").is_dir() and (root / wrapped / "masks").is_dir():
                root = root / wrapped
        self.root = root
        for sub in ("CXR_png", "masks"):
            if not (root / sub).is_dir():
                raise CHEST_CARD.missing(f"{root / sub} is missing")
        self._names = {LUNG: "lung"}
        ids = []
        for mask in sorted((root / "masks").glob(f"*{SUFFIX}")):
            image_id = mask.name[: -len(SUFFIX)]
            if not is_plain_name(image_id):
                raise BenchError(f"mask name {mask.name!r} in {root / 'masks'} is not a plain name; rename it")
            ids.append(image_id)
        if not ids:
            raise CHEST_CARD.missing(f"no <name>{SUFFIX} masks in {root / 'masks'}")
        missing = [i for i in ids if not self.image_path(i).is_file()]
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise CHEST_CARD.missing(f"{len(missing)} images of the masks in {root / 'masks'} are missing in "
                                     f"{root / 'CXR_png'}: {shown}")
        self._pairs_list = [(i, LUNG) for i in ids]

    def image_path(self, image_id: str) -> Path:
        return self.root / "CXR_png" / f"{image_id}.png"

    def label_path(self, image_id: str) -> Path:
        return self.root / "masks" / f"{image_id}{SUFFIX}"

    def read_label(self, image_id: str) -> np.ndarray:
        """Class-index label: 1 (lung) where the mask is >= 128, else 0."""
        return binary_label(self.label_path(image_id), LUNG)


CHEST_CARD = DatasetCard(
    name="chest-xray", profile="paper-pascal",  # its models train on pascal-all
    title="Chest X-ray lungs, PATNet's cross-domain protocol",
    citation=f"{PATNET_CITATION}; Candemir et al., Lung Segmentation in Chest Radiographs Using Anatomical "
             "Atlases With Nonrigid Registration, IEEE TMI 2014; Jaeger et al., Automatic Tuberculosis Screening "
             "Using Chest Radiographs, IEEE TMI 2014",
    classes="1 class: lung", folds="one test split (test-only; trained on PASCAL)",
    episodes=PATNET_EPISODE_TEXT, eval_size=PATNET_EVAL_TEXT,
    layout=("CXR_png/<name>.png  (chest radiographs; --data-root may also be the folder holding 'Lung Segmentation/')",
            f"masks/<name>{SUFFIX}  (lung masks, binarised at 128; masks without the suffix are not used)"),
    downloads=(("Lung Segmentation (CXR_png, masks)",
                "https://www.kaggle.com/datasets/nikhilpandey360/chest-xray-masks-and-labels"),),
    licence="Shenzhen / Montgomery sets of the U.S. National Library of Medicine (public; cite the papers)",
    size="the Shenzhen radiographs with '_mask' masks (566 in the Kaggle copy), about 3000 x 3000",
    train_on=PATNET_TRAIN_ON, train_dataset="pascal-all", class_sampling="uniform", defaults=dict(PATNET_DEFAULTS),
)


@register_dataset(CHEST_CARD)
def open_chest_xray(data_root=None, lists=None, progress=False) -> ChestXrayDataset:
    if data_root is None:
        raise CHEST_CARD.missing("chest-xray needs --data-root")
    return ChestXrayDataset(data_root)
