"""DeepGlobe land cover (Demir et al., CVPR Workshops 2018) as PATNet's cross-domain test set (Lei et al.,
ECCV 2022; slei109/PATNet data/preprocess.py and data/deepglobe.py).

PATNet's preprocessing of the 803 labelled 2448 x 2448 training images: each image and mask is cut into a
6 x 6 grid (tile bounds int(i * side / 6), so 36 tiles of 408 x 408); a tile is kept only if its mask
holds at least two colours and the rarest colour covers more than 4.8 % of the tile; then each of the six
land-cover classes gets the tiles where it appears. The "unknown" colour (black) is no class. PATNet's
class numbering (its folders 1..6, colours read by OpenCV in BGR order) is, in RGB:
1 agriculture (255,255,0), 2 urban (0,255,255), 3 rangeland (255,0,255), 4 forest (0,255,0),
5 water (0,0,255), 6 barren (255,255,255). Mask channels are binarised at 128 (the DeepGlobe readme
warns that mask values are not exactly 0/255).

`bench prepare deepglobe` (`bench.data.prepare.deepglobe.make_deepglobe_tiles`) builds this harness's layout: `images/<tile>.jpg`, `labels/<tile>.png`
(8-bit class indices 0..6) and `tiles.txt` (one line per kept tile: its id and the classes present).
PATNet's own preprocessed archive (`<c>/test/origin/<tile>.jpg`, `<c>/test/groundtruth/<tile>.png`, one
binary mask per class folder 1..6) is read as well (`PatnetDeepGlobeDataset`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from bench.core.errors import BenchError
from bench.data.base import check_label_values, foreground, is_plain_name, load_grey, load_index_png
from bench.data.cards import DatasetCard, register_dataset
from bench.data.crossdomain import (PATNET_CITATION, PATNET_DEFAULTS, PATNET_EPISODE_TEXT, PATNET_EVAL_TEXT,
                                    PATNET_TRAIN_ON, CrossDomainDataset)

CLASSES: Tuple[Tuple[str, Tuple[int, int, int]], ...] = (
    ("agriculture", (255, 255, 0)), ("urban", (0, 255, 255)), ("rangeland", (255, 0, 255)),
    ("forest", (0, 255, 0)), ("water", (0, 0, 255)), ("barren", (255, 255, 255)),
)
UNKNOWN_RGB = (0, 0, 0)
TILES_LIST = "tiles.txt"


class DeepGlobeDataset(CrossDomainDataset):
    name = "deepglobe"

    def __init__(self, root: Path):
        super().__init__()
        self.root = Path(root)
        listing = self.root / TILES_LIST
        if not listing.is_file():
            raise DEEPGLOBE_CARD.missing(f"{listing} is missing (the tile list written by the tile maker)")
        self._names = {i: name for i, (name, _) in enumerate(CLASSES, start=1)}
        for number, line in enumerate(listing.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            tile_id, classes = fields[0], fields[1:]
            if not is_plain_name(tile_id) or not all(c.isdigit() and 1 <= int(c) <= len(CLASSES) for c in classes):
                raise BenchError(f"line {number} of {listing}: expected '<tile id> <class 1..6> ...', got {line!r}")
            self._pairs_list += [(tile_id, int(c)) for c in classes]
        if not self._pairs_list:
            raise DEEPGLOBE_CARD.missing(f"{listing} lists no tiles")

    def image_path(self, image_id: str) -> Path:
        return self.root / "images" / f"{image_id}.jpg"

    def label_path(self, image_id: str) -> Path:
        return self.root / "labels" / f"{image_id}.png"

    def read_label(self, image_id: str) -> np.ndarray:
        path = self.label_path(image_id)
        return check_label_values(load_index_png(path), path, len(CLASSES), None)

    def extra_files(self) -> List[str]:
        return [TILES_LIST]


class PatnetDeepGlobeDataset(CrossDomainDataset):
    """PATNet's preprocessed tiles: class folders 1..6, each with test/origin (jpg) and test/groundtruth
    (binary png); a tile appears in the folder of every class it holds."""

    name = "deepglobe"

    def __init__(self, root: Path):
        super().__init__()
        self.root = Path(root)
        self._names = {i: name for i, (name, _) in enumerate(CLASSES, start=1)}
        self._folders: Dict[str, List[int]] = {}
        for class_id in self._names:
            origin = self.root / str(class_id) / "test" / "origin"
            if not origin.is_dir():
                raise DEEPGLOBE_CARD.missing(f"{origin} is missing (PATNet's preprocessed layout)")
            for jpg in sorted(origin.glob("*.jpg")):
                if not is_plain_name(jpg.stem):
                    raise BenchError(f"tile name {jpg.name!r} in {origin} is not a plain name; rename it")
                self._folders.setdefault(jpg.stem, []).append(class_id)
                self._pairs_list.append((jpg.stem, class_id))
        if not self._pairs_list:
            raise DEEPGLOBE_CARD.missing(f"no tiles under {self.root}/<1..6>/test/origin")

    def _mask_of(self, image_id: str, class_id: int) -> Path:
        return self.root / str(class_id) / "test" / "groundtruth" / f"{image_id}.png"

    def image_path(self, image_id: str) -> Path:
        return self.root / str(self._folders[image_id][0]) / "test" / "origin" / f"{image_id}.jpg"

    def label_path(self, image_id: str) -> Path:
        return self._mask_of(image_id, self._folders[image_id][0])

    def read_label(self, image_id: str) -> np.ndarray:
        """Class-index label merged from the tile's binary masks (>= 128) in each of its class folders."""
        label = None
        for class_id in self._folders[image_id]:
            grey = load_grey(self._mask_of(image_id, class_id))
            label = np.zeros(grey.shape, np.int32) if label is None else label
            if grey.shape != label.shape:
                raise BenchError(f"mask {self._mask_of(image_id, class_id)} differs in size from the other "
                                 f"masks of tile {image_id}")
            label[foreground(grey)] = class_id
        return label

    def relpaths(self, image_id: str) -> List[str]:
        return [str(p.relative_to(self.root)) for c in self._folders[image_id]
                for p in (self.root / str(c) / "test" / "origin" / f"{image_id}.jpg", self._mask_of(image_id, c))]


DEEPGLOBE_CARD = DatasetCard(
    name="deepglobe", profile="paper-pascal",  # its models train on pascal-all
    title="DeepGlobe land cover, PATNet's cross-domain tiles",
    citation=f"{PATNET_CITATION}; Demir et al., DeepGlobe 2018: A Challenge to Parse the Earth through "
             "Satellite Images, CVPR Workshops 2018",
    classes="6 land-cover classes: agriculture, urban, rangeland, forest, water, barren (unknown excluded)",
    folds="one test split (test-only; trained on PASCAL)", episodes=PATNET_EPISODE_TEXT, eval_size=PATNET_EVAL_TEXT,
    layout=("images/<image id>_<i><j>.jpg  (408 x 408 tiles of the 2448 x 2448 images, 6 x 6 grid)",
            "labels/<image id>_<i><j>.png  (8-bit class indices 0..6; 0 = unknown)",
            "tiles.txt  (kept tiles: '<tile id> <classes present>')",
            "or PATNet's preprocessed archive: <1..6>/test/origin/<tile>.jpg, <1..6>/test/groundtruth/<tile>.png"),
    downloads=(("DeepGlobe land cover (the 803 labelled train images: <id>_sat.jpg, <id>_mask.png)",
                "https://www.kaggle.com/datasets/balraj98/deepglobe-land-cover-classification-dataset "
                "(or http://deepglobe.org)"),
               ("PATNet's preprocessed tiles", "https://drive.google.com/file/d/12Dljy04maKIim3mZsR50CEOC3_ROZLCg "
                "(linked from github.com/slei109/PATNet)")),
    licence="DeepGlobe challenge terms (research use; see the Kaggle page)",
    size="803 images of 2448 x 2448 -> tiles of 408 x 408 (those passing PATNet's colour filter)",
    prepare="python -m bench prepare deepglobe --src DIR --out DIR", prepare_step="bench.data.prepare.deepglobe",
    train_on=PATNET_TRAIN_ON, train_dataset="pascal-all", class_sampling="uniform", defaults=dict(PATNET_DEFAULTS),
    notes=("PATNet's tile filter: >= 2 mask colours and the rarest over 4.8 % of the tile",),
)


@register_dataset(DEEPGLOBE_CARD)
def open_deepglobe(data_root=None, lists=None, progress=False) -> CrossDomainDataset:
    if data_root is None:
        raise DEEPGLOBE_CARD.missing("deepglobe needs --data-root")
    root = Path(data_root)
    if not (root / TILES_LIST).is_file() and (root / "Deepglobe" / "1").is_dir():
        root = root / "Deepglobe"
    if not (root / TILES_LIST).is_file() and (root / "1" / "test" / "origin").is_dir():
        return PatnetDeepGlobeDataset(root)
    return DeepGlobeDataset(root)
