"""On-disk layout shared with the PASCAL-5i loader: file names, encodings, fold lists and statistics."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from bench.core.fileio import atomic_write_text
from bench.data.synthetic.classes import N_CLASSES, SCENES, fold_classes
from bench.data.synthetic.render import MIN_PIXELS, render_image

JPEG_QUALITY = 92
JPEG_SUBSAMPLING = 2                      # 4:2:0, like camera JPEGs
IMAGE_DIR = "VOC2012/JPEGImages"
LABEL_DIR = "VOC2012/SegmentationClassAug"
POOLS = (("train", 0, "trn"), ("val", 1, "val"))  # (id prefix, pool id, list folder)
N_FOLDS = 4


def voc_palette() -> list[int]:
    """The standard PASCAL VOC colour map (256 entries, bit-interleaved)."""
    out = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out += [r, g, b]
    return out


_PALETTE = voc_palette()


def image_id(prefix: str, index: int, n: int) -> str:
    return f"{prefix}_{index:0{max(5, len(str(n - 1)))}d}"


def pool_anchors(seed: int, pool_id: int, n: int) -> np.ndarray:
    """Anchor class per image: each class equally often (up to rounding), in a seeded order."""
    rng = np.random.default_rng([1, seed, pool_id, 0])
    return rng.permutation(np.arange(n) % N_CLASSES + 1)


def render_chunk(task) -> list[tuple]:
    root, seed, pool_id, prefix, n, start, anchors, min_size, max_size, context = task
    root = Path(root)
    out = []
    for k, anchor in enumerate(anchors):
        index = start + k
        rgb, label, meta = render_image(seed, pool_id, index, int(anchor), min_size, max_size, context=context)
        name = image_id(prefix, index, n)
        buf = io.BytesIO()
        Image.fromarray(rgb, "RGB").save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=JPEG_SUBSAMPLING)
        (root / IMAGE_DIR / f"{name}.jpg").write_bytes(buf.getvalue())
        png = Image.frombytes("P", (label.shape[1], label.shape[0]), label.tobytes())
        png.putpalette(_PALETTE)
        buf = io.BytesIO()
        png.save(buf, "PNG")
        (root / LABEL_DIR / f"{name}.png").write_bytes(buf.getvalue())
        out.append((pool_id, name, meta))
    return out


def write_lists(root: Path, results: list[tuple]) -> dict:
    pairs = {0: [], 1: []}                      # pool id -> [(id, class)]
    per_class = {0: np.zeros(N_CLASSES, int), 1: np.zeros(N_CLASSES, int)}
    n_obj = {0: [], 1: []}
    scenes = {s: 0 for s in SCENES}
    anchor_listed = {0: 0, 1: 0}
    by_anchor = np.zeros((N_CLASSES, len(SCENES)), int)
    truncated, occluded = [], []
    for pool_id, name, meta in results:
        n_obj[pool_id].append(meta["n_objects"])
        scenes[meta["scene"]] += 1
        by_anchor[meta["anchor"] - 1, SCENES.index(meta["scene"])] += 1
        truncated += meta["truncated"]
        occluded += meta["occluded"]
        anchor_listed[pool_id] += meta["visible"].get(meta["anchor"], 0) >= MIN_PIXELS
        for c, px in meta["visible"].items():
            if px >= MIN_PIXELS:
                pairs[pool_id].append((name, c))
                per_class[pool_id][c - 1] += 1
    stats = {"scene_images": scenes, "scene_by_anchor": by_anchor.tolist(),
             "fraction_objects_truncated": round(float(np.mean(truncated)), 4),
             "fraction_objects_occluded": round(float(np.mean(occluded)), 4)}
    for _, pool_id, folder in POOLS:
        counts = []
        for fold in range(N_FOLDS):
            test = set(fold_classes(fold))
            keep = [p for p in pairs[pool_id] if (p[1] in test) == (pool_id == 1)]
            lines = sorted(f"{name}__{c:02d}" for name, c in keep)
            atomic_write_text(root / "lists" / folder / f"fold{fold}.txt", "".join(x + "\n" for x in lines))
            counts.append(len(lines))
        objs = np.array(n_obj[pool_id])
        stats[folder] = {
            "images": int(len(objs)), "pairs_per_fold": counts,
            "images_per_class": per_class[pool_id].tolist(),
            "fraction_multi_object": round(float((objs >= 2).mean()), 4),
            "fraction_anchor_listed": round(anchor_listed[pool_id] / max(len(objs), 1), 4),
        }
    return stats
