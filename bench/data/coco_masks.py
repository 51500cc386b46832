"""Class-index label maps from COCO instance annotations (Lin et al., Microsoft COCO, ECCV 2014).

The value of a pixel is the 1-based index of its category among the 80 COCO categories sorted by
category id (HSNet's / PFENet's order), 0 = background. Decoding uses pycocotools.mask.

Rules (deterministic, documented because COCO instances overlap):
* instances are painted in decreasing order of their rendered pixel area, ties by annotation id, so
  a smaller object lying on a larger one stays visible (the last one painted wins a pixel);
* crowd regions (iscrowd=1) are painted as their class, like the pycocotools `annToMask`-based
  scripts that render the pre-made COCO-20i masks: there is no ignore label in those masks;
* polygons of fewer than 3 points are empty (pycocotools cannot fill them).

pycocotools' C code trusts its input (a NaN or 1e18 coordinate, or RLE counts that do not add up to
the image's pixels, crash it or make it allocate without bound), so `check_segmentation` checks every
annotation first; `bench.data.coco_json.validate_instances` calls it for every annotation of a file.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Sequence

import numpy as np

from bench.core.errors import BenchError

#: how far outside the declared image a polygon point may lie, as a fraction of the longer side (plus 2 px)
POLYGON_MARGIN = 0.1
#: bound on a polygon outline's length (sum of max(|dx|, |dy|) over its edges) in units of height + width
MAX_OUTLINE = 1000


def _mask_api():
    try:
        from pycocotools import mask
    except ImportError:
        raise BenchError("pycocotools is needed to render COCO annotations: pip install pycocotools") from None
    return mask


def _check_polygons(seg: list, height: int, width: int, where: str) -> None:
    margin = POLYGON_MARGIN * max(height, width) + 2
    outline = 0.0
    for n, polygon in enumerate(seg):
        values = np.asarray(polygon) if isinstance(polygon, list) else None
        if values is None or values.ndim != 1 or (values.size and values.dtype.kind not in "iuf"):
            raise BenchError(f"{where}: polygon {n} is not a list of numbers")
        if len(polygon) % 2:
            raise BenchError(f"{where}: polygon {n} has an odd number of coordinates ({len(polygon)})")
        if len(polygon) < 6:
            continue
        values = values.astype(float)
        if not np.isfinite(values).all():
            raise BenchError(f"{where}: polygon {n} holds a NaN or infinite coordinate")
        xs, ys = values[0::2], values[1::2]
        if xs.min() < -margin or ys.min() < -margin or xs.max() > width + margin or ys.max() > height + margin:
            raise BenchError(f"{where}: polygon {n} reaches ({xs.max():.6g}, {ys.max():.6g}) / "
                             f"({xs.min():.6g}, {ys.min():.6g}), outside the {width}x{height} (WxH) image")
        outline += float(np.maximum(np.abs(np.diff(xs, append=xs[:1])), np.abs(np.diff(ys, append=ys[:1]))).sum())
    if outline > MAX_OUTLINE * (height + width):
        raise BenchError(f"{where}: its polygons' outline is {outline:.6g} pixels long, implausible for a "
                         f"{width}x{height} image")


def decode_rle_string(counts: str) -> List[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools' rleFrString, in Python); ValueError if
    malformed."""
    runs: List[int] = []
    pos = 0
    while pos < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(counts) or shift > 60:
                raise ValueError("truncated run")
            char = ord(counts[pos]) - 48
            if not 0 <= char < 64:
                raise ValueError(f"character {counts[pos]!r} is not an RLE digit")
            value |= (char & 0x1F) << shift
            more = bool(char & 0x20)
            pos += 1
            shift += 5
            if not more and char & 0x10:
                value -= 1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def _check_rle(seg: dict, height: int, width: int, where: str) -> None:
    size = seg.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                               for v in size)):
        raise BenchError(f"{where}: its RLE 'size' is not [height, width]")
    if tuple(size) != (height, width):
        raise BenchError(f"{where}: its RLE is {size[0]}x{size[1]} (HxW) but the image is {height}x{width}; "
                         "the annotation file does not match its images")
    counts = seg.get("counts")
    if isinstance(counts, str):
        try:
            runs = decode_rle_string(counts)
        except ValueError as exc:
            raise BenchError(f"{where} has a malformed compressed RLE ({exc})") from None
    elif isinstance(counts, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
        runs = counts
    else:
        raise BenchError(f"{where}: its RLE 'counts' is neither a string nor a list of integers")
    if any(r < 0 for r in runs) or sum(runs) != height * width:
        raise BenchError(f"{where}: its RLE runs cover {sum(runs)} pixels (or are negative), not the image's "
                         f"{height * width}")


def check_segmentation(ann: Mapping, height: int, width: int) -> None:
    """Refuse (BenchError) a segmentation that pycocotools could not render safely at height x width."""
    seg = ann.get("segmentation")
    where = f"annotation {ann.get('id')} of image {ann.get('image_id')}"
    if isinstance(seg, list):
        _check_polygons(seg, height, width, where)
    elif isinstance(seg, dict) and "counts" in seg and "size" in seg:
        _check_rle(seg, height, width, where)
    else:
        raise BenchError(f"{where} has no polygon or RLE segmentation")


def instance_rle(ann: Mapping, height: int, width: int) -> dict:
    """The compressed RLE of one annotation (polygons, uncompressed or compressed RLE) that passed
    `check_segmentation`."""
    api = _mask_api()
    seg = ann["segmentation"]
    if isinstance(seg, list):
        polygons = [[float(v) for v in p] for p in seg if len(p) >= 6]
        if not polygons:
            return api.encode(np.zeros((height, width), np.uint8, order="F"))
        return api.merge(api.frPyObjects(polygons, height, width))
    if isinstance(seg["counts"], list):  # uncompressed RLE (crowd regions in the official files)
        return api.frPyObjects(seg, height, width)
    return {"size": [height, width], "counts": seg["counts"].encode()}


def instance_mask(ann: Mapping, height: int, width: int) -> np.ndarray:
    """Binary uint8 [H, W] mask of one annotation; checked first (`check_segmentation`)."""
    check_segmentation(ann, height, width)
    return _mask_api().decode(instance_rle(ann, height, width))


def label_map(annotations: Sequence[Mapping], height: int, width: int,
              category_to_class: Mapping[int, int]) -> np.ndarray:
    """uint8 [H, W] class indices of one image from its instance annotations (rules: module docstring).

    Annotations must have passed `check_segmentation` (coco_json.validate_instances checks every one);
    instances are kept as RLEs and decoded one at a time, so memory does not grow with their number.
    """
    api = _mask_api()
    height, width = int(height), int(width)
    rendered = []
    for ann in annotations:
        category = ann.get("category_id")
        if category not in category_to_class:
            raise BenchError(f"annotation {ann.get('id')} of image {ann.get('image_id')} has category {category}, "
                             "which is not among the file's categories")
        rle = instance_rle(ann, height, width)
        rendered.append((-int(api.area(rle)), int(ann.get("id") or 0), int(category_to_class[category]), rle))
    label = np.zeros((height, width), np.uint8)
    for _, _, class_index, rle in sorted(rendered, key=lambda r: r[:2]):
        label[api.decode(rle).astype(bool)] = class_index
    return label


def category_classes(categories: list) -> Dict[int, int]:
    """COCO category id -> 1-based class index in sorted category-id order (HSNet's and PFENet's order)."""
    return {cid: n + 1 for n, cid in enumerate(sorted(int(c["id"]) for c in categories))}
