"""LVIS v1 annotation files (Gupta et al., LVIS, CVPR 2019) and LVIS-92i's fold rule (Matcher, Liu et al., ICLR 2024).

An LVIS v1 file is COCO-shaped: `images` (id, height, width, `coco_url` naming the COCO 2017 subset and
file; no `file_name`), `annotations` (id, image_id, category_id, polygon segmentation) and `categories`
(id, name, `frequency`, ...). Image ids here are `<subset>_<12-digit COCO id>` (val2017_000000397133).
Every segmentation is checked for pycocotools (`coco_masks.check_segmentation`) before any is rendered.

Fold rule (Matcher's `matcher/data/lvis.py`, commit d59b6c7): the eligible classes of a part are those
with MORE images than shots; over the validation file's eligible classes in category-id order, fold f
(0-based) tests classes f, f + 10, f + 20, ... (the first 10 * (n // 10) of them: 92 per fold on LVIS v1
val); training classes are the training file's eligible classes minus the fold's test classes.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from bench.core.errors import BenchError
from bench.data.coco_json import _entries, _int, annotation_entries, check_json_size, parse_json
from bench.data.coco_masks import check_segmentation

NUM_FOLDS = 10
#: subsets of COCO 2017 that LVIS v1 images come from
SUBSETS = ("train2017", "val2017")
_URL = re.compile(r"^(?:https?://[^/]+/)?(train2017|val2017)/(\d{12})\.jpg$")
MAX_PIXELS = 1 << 26
#: largest LVIS file read (lvis_v1_train.json is about 1.1 GB)
MAX_LVIS_BYTES = 3 << 30


@dataclass
class LvisInstances:
    """A checked LVIS file: {image id: image}, {(image id, category): [annotations]}, {category: name}."""

    images: Dict[str, dict]
    by_pair: Dict[tuple, List[dict]]
    names: Dict[int, str]
    _per_class: Optional[Dict[int, List[str]]] = field(default=None, repr=False)

    def images_per_class(self) -> Dict[int, List[str]]:
        """{category id: sorted image ids holding it} (computed once)."""
        if self._per_class is None:
            out: Dict[int, set] = defaultdict(set)
            for image_id, category in self.by_pair:
                out[category].add(image_id)
            self._per_class = {c: sorted(ids) for c, ids in sorted(out.items())}
        return self._per_class


def image_key(image: dict, where: str) -> str:
    """`<subset>_<12 digits>` of an LVIS image entry, from its `coco_url` (or a COCO-style `file_name`)."""
    url = image.get("coco_url") or image.get("file_name")
    match = _URL.match(url) if isinstance(url, str) else None
    if match is None:
        raise BenchError(f"{where}: coco_url {str(url)[:80]!r} does not name a COCO 2017 image "
                         "(.../{train2017,val2017}/<12 digits>.jpg)")
    return f"{match.group(1)}_{match.group(2)}"


def parse_lvis(raw: bytes, where: str) -> LvisInstances:
    """Parse and check the bytes of one LVIS file (at most MAX_LVIS_BYTES)."""
    return validate_lvis(parse_json(raw, where, MAX_LVIS_BYTES), where)


def check_lvis_size(size: int, where: str) -> None:
    """Refuse an LVIS file over MAX_LVIS_BYTES before it is read."""
    check_json_size(size, where, MAX_LVIS_BYTES)


def validate_lvis(data, where: str) -> LvisInstances:
    """Check a parsed LVIS file (ids distinct, annotations naming listed images and categories, safe
    segmentations); the first problem is one BenchError naming `where`."""
    if not isinstance(data, dict):
        raise BenchError(f"annotation JSON {where} holds a {type(data).__name__}, not LVIS's object")
    names: Dict[int, str] = {}
    for n, category in enumerate(_entries(data, "categories", where)):
        cid = _int(category, "id", f"annotation JSON {where}: categories[{n}]")
        if cid in names or cid < 1:
            raise BenchError(f"annotation JSON {where}: category id {cid} is repeated or not positive")
        names[cid] = str(category.get("name", cid))
    images: Dict[str, dict] = {}
    by_id: Dict[int, str] = {}
    for n, image in enumerate(_entries(data, "images", where)):
        at = f"annotation JSON {where}: images[{n}]"
        image_id, height, width = _int(image, "id", at), _int(image, "height", at), _int(image, "width", at)
        key = image_key(image, at)
        if height < 1 or width < 1 or height * width > MAX_PIXELS:
            raise BenchError(f"{at} declares {width}x{height} (WxH) pixels; accepted are 1 to {MAX_PIXELS}")
        if image_id in by_id or key in images:
            raise BenchError(f"annotation JSON {where}: image {key} (id {image_id}) is listed twice")
        by_id[image_id], images[key] = key, image
    by_pair: Dict[tuple, List[dict]] = defaultdict(list)
    for ann, ann_id, image_id, category in annotation_entries(data, where):
        if image_id not in by_id or category not in names:
            raise BenchError(f"annotation JSON {where}: annotation {ann_id} names image {image_id} or category "
                             f"{category}, which is not listed")
        image = images[by_id[image_id]]
        try:
            check_segmentation(ann, image["height"], image["width"])
        except BenchError as exc:
            raise BenchError(f"annotation JSON {where}: {exc}") from None
        by_pair[(by_id[image_id], category)].append(ann)
    return LvisInstances(images, dict(by_pair), names)


def eligible_classes(images_per_class: Dict[int, List[str]], shot: int) -> List[int]:
    """Categories with more images than `shot` (Matcher's rule), in category-id order."""
    return [c for c in sorted(images_per_class) if len(images_per_class[c]) > shot]


def fold_test_classes(val_eligible: List[int], split: int) -> List[int]:
    """Category ids tested in 1-based split `split` (Matcher's fold split - 1) from the eligible val classes."""
    if not 1 <= split <= NUM_FOLDS:
        raise BenchError(f"split {split} is outside 1..{NUM_FOLDS} for LVIS-92i")
    per_fold = len(val_eligible) // NUM_FOLDS
    if per_fold == 0:
        raise BenchError(f"LVIS-92i needs at least {NUM_FOLDS} eligible validation classes, the file has "
                         f"{len(val_eligible)}")
    return [val_eligible[split - 1 + NUM_FOLDS * v] for v in range(per_fold)]
