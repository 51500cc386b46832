"""Class-index label maps from COCO instance annotations (Lin et al., Microsoft COCO, ECCV 2014).

The value of a pixel is the 1-based index of its category among the 80 COCO categories sorted by
category id (HSNet's / PFENet's order), 0 = background. Decoding uses pycocotools.mask.

Rules (deterministic, documented because COCO instances overlap):
* instances are painted in decreasing order of their rendered pixel area, ties by annotation id, so
  a smaller object lying on a larger one stays visible (the last one painted wins a pixel);
* crowd regions (iscrowd=1) are painted as their class, like the pycocotools `annToMask`-based
  scripts that render the pre-made COCO-20i masks: there is no ignore label in those masks;
* an RLE whose size is not the image's (height, width) is refused with a BenchError naming the
  annotation id and image; an annotation of an unknown category is refused likewise.
"""
from __future__ import annotations

from typing import Dict, Mapping, Sequence

import numpy as np

from bench.core.errors import BenchError


def _mask_api():
    try:
        from pycocotools import mask
    except ImportError:
        raise BenchError("pycocotools is needed to render COCO annotations: pip install pycocotools") from None
    return mask


def instance_mask(ann: Mapping, height: int, width: int) -> np.ndarray:
    """Binary uint8 [H, W] mask of one annotation (polygons, uncompressed or compressed RLE)."""
    api = _mask_api()
    seg = ann.get("segmentation")
    where = f"annotation {ann.get('id')} of image {ann.get('image_id')}"
    if isinstance(seg, list):
        polygons = [p for p in seg if isinstance(p, (list, tuple)) and len(p) >= 6]
        if not polygons:
            return np.zeros((height, width), np.uint8)
        try:
            rle = api.merge(api.frPyObjects([[float(v) for v in p] for p in polygons], height, width))
        except (TypeError, ValueError) as exc:
            raise BenchError(f"{where} has a malformed polygon ({exc})") from None
        return api.decode(rle)
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        size = tuple(int(v) for v in seg["size"])
        if size != (height, width):
            raise BenchError(f"{where}: its RLE is {size[0]}x{size[1]} (HxW) but the image is {height}x{width}; "
                             "the annotation file does not match its images")
        counts = seg["counts"]
        try:
            if isinstance(counts, list):  # uncompressed RLE (crowd regions in the official files)
                rle = api.frPyObjects(seg, height, width)
            else:
                rle = {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}
            return api.decode(rle)
        except (TypeError, ValueError) as exc:
            raise BenchError(f"{where} has a malformed RLE ({exc})") from None
    raise BenchError(f"{where} has no polygon or RLE segmentation")


def label_map(annotations: Sequence[Mapping], height: int, width: int,
              category_to_class: Mapping[int, int]) -> np.ndarray:
    """uint8 [H, W] class indices of one image from its instance annotations (rules: module docstring)."""
    height, width = int(height), int(width)
    rendered = []
    for ann in annotations:
        category = ann.get("category_id")
        if category not in category_to_class:
            raise BenchError(f"annotation {ann.get('id')} of image {ann.get('image_id')} has category {category}, "
                             "which is not among the file's categories")
        mask = instance_mask(ann, height, width)
        rendered.append((-int(mask.sum()), int(ann.get("id") or 0), int(category_to_class[category]), mask))
    label = np.zeros((height, width), np.uint8)
    for _, _, class_index, mask in sorted(rendered, key=lambda r: r[:2]):
        label[mask.astype(bool)] = class_index
    return label


def category_classes(categories: list) -> Dict[int, int]:
    """COCO category id -> 1-based class index in sorted category-id order (HSNet's and PFENet's order)."""
    return {cid: n + 1 for n, cid in enumerate(sorted(int(c["id"]) for c in categories))}
