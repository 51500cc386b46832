"""Builds small datasets in the real VOC / FSS-1000 layouts for tests (no downloads)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

from bench.data.synthetic.layout import voc_palette


def save_palette_png(label: np.ndarray, path: Path) -> None:
    image = Image.fromarray(label.astype(np.uint8), mode="P")
    image.putpalette(voc_palette())
    image.save(path)


def _draw(label: np.ndarray, class_id: int, rng: np.random.Generator) -> None:
    h, w = label.shape
    y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
    y1, x1 = y0 + rng.integers(h // 4, h // 2), x0 + rng.integers(w // 4, w // 2)
    label[y0:y1, x0:x1] = class_id
    # VOC-style 255 band along the object boundary
    label[y0, x0:x1] = 255
    label[y1 - 1, x0:x1] = 255
    label[y0:y1, x0] = 255
    label[y0:y1, x1 - 1] = 255


def make_voc_tree(root: Path, per_class: int = 4, seed: int = 0) -> Dict[str, List[Tuple[str, int]]]:
    """Write a VOC2012-layout tree and PASCAL-5i style lists under `root` (lists in root/lists).

    Every class gets `per_class` val images and `per_class` trn images; every third image also holds
    an object of the next class (multi-class images). Image sizes vary. Returns the pairs per list.
    """
    rng = np.random.default_rng(seed)
    jpeg_dir = root / "VOC2012" / "JPEGImages"
    label_dir = root / "VOC2012" / "SegmentationClassAug"
    jpeg_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    pairs: Dict[str, List[Tuple[str, int]]] = {}
    for part in ("val", "trn"):
        for class_id in range(1, 21):
            for n in range(per_class):
                image_id = f"{part}_{class_id:02d}_{n}"
                h, w = int(rng.integers(28, 48)), int(rng.integers(28, 48))
                label = np.zeros((h, w), dtype=np.uint8)
                classes = [class_id] + ([class_id % 20 + 1] if n % 3 == 2 else [])
                for c in classes[::-1]:
                    _draw(label, c, rng)
                image = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
                image[label == class_id] = (200, 40, 40)
                Image.fromarray(image).save(jpeg_dir / f"{image_id}.jpg", quality=90)
                save_palette_png(label, label_dir / f"{image_id}.png")
                for c in classes:
                    if (label == c).any():
                        pairs.setdefault(part, []).append((image_id, c))
    lists = root / "lists"
    for fold in range(4):
        test = set(range(5 * fold + 1, 5 * fold + 6))
        for part in ("val", "trn"):
            keep = [(i, c) for i, c in pairs[part] if (c in test) == (part == "val")]
            (lists / part).mkdir(parents=True, exist_ok=True)
            (lists / part / f"fold{fold}.txt").write_text("".join(f"{i}__{c:02d}\n" for i, c in sorted(keep)))
    return pairs


def make_fss_tree(root: Path, class_names: List[str], images: int = 4, seed: int = 0) -> None:
    """Write FSS-1000 layout folders `<root>/<class>/<n>.jpg|png` (masks 0/255 grayscale)."""
    rng = np.random.default_rng(seed)
    for name in class_names:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(1, images + 1):
            mask = np.zeros((32, 32), dtype=np.uint8)
            y, x = rng.integers(0, 16, size=2)
            mask[y : y + 12, x : x + 12] = 255
            image = rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
            Image.fromarray(image).save(folder / f"{n}.jpg")
            Image.fromarray(mask, mode="L").save(folder / f"{n}.png")
