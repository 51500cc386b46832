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

`make_deepglobe_tiles` builds this harness's layout: `images/<tile>.jpg`, `labels/<tile>.png`
(8-bit class indices 0..6) and `tiles.txt` (one line per kept tile: its id and the classes present).
PATNet's own preprocessed archive (`<c>/test/origin/<tile>.jpg`, `<c>/test/groundtruth/<tile>.png`, one
binary mask per class folder 1..6) is read as well (`PatnetDeepGlobeDataset`).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_bytes, atomic_write_text, make_dirs
from bench.data.base import (check_label_values, foreground, is_plain_name, load_grey, load_index_png, load_rgb,
                             open_image)
from bench.data.cards import DatasetCard, register_dataset
from bench.data.crossdomain import (PATNET_CITATION, PATNET_DEFAULTS, PATNET_EPISODE_TEXT, PATNET_EVAL_TEXT,
                                    PATNET_TRAIN_ON, CrossDomainDataset)
from bench.data.prepare.target import claim_target

CLASSES: Tuple[Tuple[str, Tuple[int, int, int]], ...] = (
    ("agriculture", (255, 255, 0)), ("urban", (0, 255, 255)), ("rangeland", (255, 0, 255)),
    ("forest", (0, 255, 0)), ("water", (0, 0, 255)), ("barren", (255, 255, 255)),
)
UNKNOWN_RGB = (0, 0, 0)
GRID = 6
MIN_FRACTION = 0.048
TILES_LIST = "tiles.txt"


def tile_bounds(side: int, grid: int = GRID) -> List[Tuple[int, int]]:
    """[start, stop) of each of `grid` tiles along a side of `side` pixels (PATNet's int(i * side / grid))."""
    return [(int(i * side / grid), int((i + 1) * side / grid)) for i in range(grid)]


def colour_to_label(rgb: np.ndarray, path: Path) -> np.ndarray:
    """DeepGlobe colour mask [H, W, 3] -> class indices (0 = unknown); a colour of no class is an error."""
    bits = (rgb >= 128).astype(np.int32)
    code = bits[..., 0] * 4 + bits[..., 1] * 2 + bits[..., 2]
    table = np.full(8, -1, np.int32)
    table[0] = 0
    for class_id, (_, (r, g, b)) in enumerate(CLASSES, start=1):
        table[(r // 255) * 4 + (g // 255) * 2 + b // 255] = class_id
    label = table[code]
    if (label < 0).any():
        raise BenchError(f"DeepGlobe mask {path} holds {int((label < 0).sum())} pixels of red (255,0,0), which is "
                         f"no land-cover colour; is it a DeepGlobe land-cover mask?")
    return label


def keep_tile(label: np.ndarray, min_fraction: float = MIN_FRACTION) -> bool:
    """PATNet's filter: at least two colours (unknown counts as one) and the rarest above `min_fraction`."""
    counts = np.bincount(label.ravel(), minlength=len(CLASSES) + 1)
    counts = counts[counts > 0]
    return len(counts) > 1 and counts.min() / label.size > min_fraction


def _png_bytes(label: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(label.astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _jpg_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _sources(src: Path) -> List[Tuple[str, Path, Path]]:
    folder = src / "train" if (src / "train").is_dir() and not any(src.glob("*_sat.jpg")) else src
    found = []
    for sat in sorted(folder.glob("*_sat.jpg")):
        stem = sat.name[: -len("_sat.jpg")]
        mask = folder / f"{stem}_mask.png"
        if mask.is_file():
            if not is_plain_name(stem):
                raise BenchError(f"DeepGlobe image name {sat.name!r} in {folder} is not a plain name; rename it")
            _check_headers(sat, mask)
            found.append((stem, sat, mask))
    if not found:
        raise DEEPGLOBE_CARD.missing(f"no DeepGlobe <id>_sat.jpg / <id>_mask.png pairs in {src} (or {src / 'train'})")
    return found


def _check_headers(sat: Path, mask: Path) -> None:
    """Read the headers only (before anything is written): unreadable, bomb-sized or mismatched pairs fail."""
    with open_image(sat, sat) as image, open_image(mask, mask, "mask") as label:
        if image.size != label.size:
            raise BenchError(f"DeepGlobe image {sat} ({image.size[0]}x{image.size[1]}) and mask {mask} "
                             f"({label.size[0]}x{label.size[1]}) differ in size")


def make_deepglobe_tiles(src: Path, out: Path, progress: bool = True, grid: int = GRID,
                         min_fraction: float = MIN_FRACTION) -> Dict[str, int]:
    """Cut DeepGlobe's labelled images (`src`: <id>_sat.jpg + <id>_mask.png, or src/train/) into PATNet's
    tiles under `out` (a new or empty folder, or one this command made: prepare.target). Resumable: a source
    whose tiles are done (marker in out/.done) and present is skipped; every file is written atomically;
    `tiles.txt` is written last. Returns counts."""
    src, out = Path(src), Path(out)
    sources = _sources(src)
    claim_target(out, "deepglobe", ("images", "labels", ".done"))
    for sub in ("images", "labels", ".done"):
        make_dirs(out / sub)
    stats = {"sources": len(sources), "skipped_sources": 0, "tiles_kept": 0, "tiles_dropped": 0}
    lines = []
    for n, (stem, sat, mask) in enumerate(sources, start=1):
        marker = out / ".done" / f"{stem}.txt"
        done = _done_tiles(marker, out)
        if done is not None:
            stats["skipped_sources"] += 1
        else:
            image = load_rgb(sat)
            label = colour_to_label(load_rgb(mask), mask)
            done = []
            for i, (y0, y1) in enumerate(tile_bounds(label.shape[0], grid)):
                for j, (x0, x1) in enumerate(tile_bounds(label.shape[1], grid)):
                    tile = label[y0:y1, x0:x1]
                    if not keep_tile(tile, min_fraction):
                        done.append(f"# {stem}_{i}{j} dropped")
                        continue
                    tile_id = f"{stem}_{i}{j}"
                    atomic_write_bytes(out / "images" / f"{tile_id}.jpg", _jpg_bytes(image[y0:y1, x0:x1]))
                    atomic_write_bytes(out / "labels" / f"{tile_id}.png", _png_bytes(tile))
                    classes = sorted(int(c) for c in np.unique(tile) if c > 0)
                    done.append(f"{tile_id} " + " ".join(map(str, classes)))
            atomic_write_text(marker, "\n".join(done) + "\n")
        kept = [line for line in done if not line.startswith("#")]
        stats["tiles_kept"] += len(kept)
        stats["tiles_dropped"] += len(done) - len(kept)
        lines += kept
        if progress:
            print(f"\rdeepglobe tiles: {n}/{len(sources)} images, {stats['tiles_kept']} tiles kept", end="", flush=True)
    if progress:
        print()
    atomic_write_text(out / TILES_LIST, "\n".join(lines) + "\n")
    return stats


def _done_tiles(marker: Path, out: Path):
    """The tile lines a finished source recorded, or None if it is to be cut (again): no marker, or a kept
    tile's image or label deleted since."""
    if not marker.is_file():
        return None
    done = [line for line in marker.read_text().splitlines() if line.strip()]
    for line in done:
        tile = line.split()[0]
        if not line.startswith("#") and not ((out / "images" / f"{tile}.jpg").is_file()
                                             and (out / "labels" / f"{tile}.png").is_file()):
            return None
    return done


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
    name="deepglobe", title="DeepGlobe land cover, PATNet's cross-domain tiles",
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
    prepare="python -m bench prepare deepglobe --src DIR --out DIR",
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
