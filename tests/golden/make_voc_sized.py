"""Writes `fixtures/voc-sized/`: a small PASCAL VOC-layout tree at VOC's own image sizes, for the protocol
fixtures (the authors' HSNet, Min, Kang, Cho, ICCV 2021, and PFENet, Tian et al., TPAMI 2020, run end to
end on it) and the harness's `pascal5i` dataset.

    python -m tests.golden.make_voc_sized [--out DIR]

Layout: `VOC2012/JPEGImages/<id>.jpg` (RGB, quality 80), `VOC2012/SegmentationClassAug/<id>.png`
(grayscale class indices as SBD's aug masks ship, 255 = a void band along every object boundary) and
`lists/{val,trn}/fold0.txt` (split 1: test classes 1..5). Test classes 1, 2, 3 with 8 images each: per
class one also holds the next test class, one a training class, one only a small object (~200 labelled
pixels inside its void band), one a second small object; 4 images of training classes for trn/fold0.txt. Content is smooth (gradients,
blobs, a low-frequency texture) so the JPEG files stay small. Deterministic for a given numpy and
Pillow; the committed files, not this script, are what the tests read.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Tuple

import numpy as np
from PIL import Image

OUT = Path(__file__).parent / "fixtures" / "voc-sized"
SEED = 0
SIZES = [(375, 500), (500, 375), (333, 500), (500, 353), (281, 500), (366, 500), (500, 334), (375, 500)]  # (H, W)
TEST_CLASSES = (1, 2, 3)
PER_CLASS = 8
TRAIN_CLASSES = (8, 12, 15, 19)
VOID = 5  # width of the 255 band (VOC's is ~5 px)


def blob(h: int, w: int, cy: float, cx: float, radius: float, rng: np.random.Generator) -> np.ndarray:
    """A star-convex blob: radius modulated by three low harmonics of the angle."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    angle = np.arctan2(yy - cy, xx - cx)
    wobble = sum(rng.uniform(0.05, 0.2) * np.cos(k * angle + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    return np.hypot(yy - cy, xx - cx) <= radius * (1 + wobble)


def band(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels within `width` of the mask's boundary (inside or out), by 4-neighbour dilation and erosion."""
    def dilate(m: np.ndarray) -> np.ndarray:
        out = m.copy()
        out[1:] |= m[:-1]
        out[:-1] |= m[1:]
        out[:, 1:] |= m[:, :-1]
        out[:, :-1] |= m[:, 1:]
        return out
    grown, shrunk = mask.copy(), ~mask
    for _ in range((width + 1) // 2):
        grown, shrunk = dilate(grown), dilate(shrunk)
    return grown & shrunk


def paint(h: int, w: int, objects: List[Tuple[int, np.ndarray]], rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """The label (objects in order, later ones on top, void band last) and a smooth RGB image."""
    label = np.zeros((h, w), np.uint8)
    void = np.zeros((h, w), bool)
    for class_id, mask in objects:
        label[mask] = class_id
    for class_id, mask in objects:
        void |= band(label == class_id, VOID)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = rng.uniform(40, 200, 3)
    slope = rng.uniform(-60, 60, (2, 3))
    image = base + yy[..., None] * slope[0] + xx[..., None] * slope[1]
    for _ in range(3):  # soft background blobs
        cy, cx, s = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.3)
        image += rng.uniform(-40, 40, 3) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))[..., None]
    for class_id, _ in objects:
        colour = np.array([(37 * class_id) % 200 + 40, (91 * class_id) % 200 + 30, (53 * class_id) % 180 + 50], float)
        freq = rng.uniform(6, 14, 2)
        texture = 18 * np.sin(freq[0] * yy * np.pi + freq[1] * xx * np.pi)
        where = label == class_id
        image[where] = 0.35 * image[where] + 0.65 * (colour + texture[where][:, None])
    label[void] = 255
    return np.clip(image, 0, 255).astype(np.uint8), label


def layout(index: int, class_id: int, h: int, w: int, rng: np.random.Generator) -> List[Tuple[int, np.ndarray]]:
    """Objects of image `index` of `class_id`: one main object; image 3 a second test class, image 5 a
    training class, image 6 only a small object (~300 px), image 7 a small second object of the class."""
    side = min(h, w)
    cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.35, 0.65) * w
    small = index == 6
    radius = rng.uniform(10, 12) if small else rng.uniform(0.18, 0.33) * side
    objects = [(class_id, blob(h, w, cy, cx, radius, rng))]
    if index == 3:
        other = TEST_CLASSES[(TEST_CLASSES.index(class_id) + 1) % len(TEST_CLASSES)]
        objects.append((other, blob(h, w, 0.2 * h, 0.8 * w, 0.15 * side, rng)))
    if index == 5:
        objects.append((TRAIN_CLASSES[class_id % len(TRAIN_CLASSES)], blob(h, w, 0.8 * h, 0.2 * w, 0.14 * side, rng)))
    if index == 7:
        objects.append((class_id, blob(h, w, 0.15 * h, 0.15 * w, 11, rng)))
    return objects


def write(out: Path = OUT) -> None:
    rng = np.random.default_rng(SEED)
    jpeg, png = out / "VOC2012" / "JPEGImages", out / "VOC2012" / "SegmentationClassAug"
    for folder in (jpeg, png, out / "lists" / "val", out / "lists" / "trn"):
        folder.mkdir(parents=True, exist_ok=True)
    val, trn = [], []
    items = [(f"2008_{class_id:02d}{n:04d}", class_id, n) for class_id in TEST_CLASSES for n in range(PER_CLASS)]
    items += [(f"2009_{c:02d}0000", c, 0) for c in TRAIN_CLASSES]
    for number, (image_id, class_id, n) in enumerate(items):
        h, w = SIZES[number % len(SIZES)]
        objects = layout(n, class_id, h, w, rng) if class_id in TEST_CLASSES else \
            [(class_id, blob(h, w, h / 2, w / 2, 0.3 * min(h, w), rng))]
        image, label = paint(h, w, objects, rng)
        Image.fromarray(image).save(jpeg / f"{image_id}.jpg", quality=80)
        Image.fromarray(label, mode="L").save(png / f"{image_id}.png", optimize=True)
        for c in sorted({c for c, _ in objects}):
            if (label == c).any():
                (val if c in range(1, 6) else trn).append(f"{image_id}__{c:02d}")
    (out / "lists" / "val" / "fold0.txt").write_text("".join(f"{line}\n" for line in sorted(val)))
    (out / "lists" / "trn" / "fold0.txt").write_text("".join(f"{line}\n" for line in sorted(trn)))
    print(f"{len(items)} images, {len(val)} val pairs, {len(trn)} trn pairs under {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    write(parser.parse_args().out)
