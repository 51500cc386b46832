"""The one check of a COCO instances JSON, used by `bench prepare coco20i` and the run-time reader alike.

Everything the harness later relies on is checked here, before any file is written or any label drawn:
the top-level lists; 80 categories with distinct integer ids (a missing or repeated one would shift every
later class); images with distinct integer ids and distinct plain `.jpg` names (a shared id would hand
one image another's objects, a shared name would drop one entry's objects) and integer sizes within
MAX_PIXELS; annotations naming a listed image and category, each segmentation safe for pycocotools
(`coco_masks.check_segmentation`). The JSON itself is bounded in size and nesting.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Dict, Iterator, List, Tuple

from bench.core.errors import BenchError
from bench.data.base import is_plain_name
from bench.data.coco_lists import NUM_CLASSES
from bench.data.coco_masks import category_classes, check_segmentation

#: largest annotation JSON read (the official instances_train2014.json is 332 MB)
MAX_JSON_BYTES = 1 << 30
#: largest declared image (height x width); COCO's images are at most 640 x 640
MAX_PIXELS = 1 << 26


@dataclass
class CocoInstances:
    """A checked instances file: images sorted by id, {file stem: image}, {image id: [annotations]}, classes."""

    images: List[dict]
    by_stem: Dict[str, dict]
    by_image: Dict[int, List[dict]]
    classes: Dict[int, int]


def check_json_size(size: int, where: str, limit: int = MAX_JSON_BYTES) -> None:
    """Refuse an annotation file larger than `limit` bytes before it is read."""
    if size > limit:
        raise BenchError(f"annotation JSON {where} is {size} bytes, more than the {limit} accepted")


def parse_json(raw: bytes, where: str, limit: int = MAX_JSON_BYTES):
    """json.loads of an annotation file's bytes; damage or absurd nesting is one BenchError naming `where`."""
    check_json_size(len(raw), where, limit)
    try:
        return json.loads(raw)
    except RecursionError:
        raise BenchError(f"annotation JSON {where} is nested too deeply to be a COCO annotation file") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BenchError(f"corrupt annotation JSON {where} ({exc}); download the annotations again") from None


def _int(entry: dict, key: str, where: str) -> int:
    if key not in entry:
        raise BenchError(f"{where} lacks '{key}'")
    value = entry[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise BenchError(f"{where}: '{key}' is {type(value).__name__} {str(value)[:40]!r}, expected an integer")
    return value


def _entries(data: dict, key: str, where: str) -> List[dict]:
    if not isinstance(data.get(key), list):
        raise BenchError(f"annotation JSON {where} lacks the '{key}' list")
    for n, entry in enumerate(data[key]):
        if not isinstance(entry, dict):
            raise BenchError(f"annotation JSON {where}: {key}[{n}] is a {type(entry).__name__}, not an object")
    return data[key]


def annotation_entries(data: dict, where: str) -> Iterator[Tuple[dict, int, int, int]]:
    """(annotation, id, image id, category id) of each entry of `annotations`; ids checked to be integers and
    annotation ids distinct."""
    seen = set()
    for n, ann in enumerate(_entries(data, "annotations", where)):
        at = f"annotation JSON {where}: annotations[{n}]"
        ann_id, image_id, category = _int(ann, "id", at), _int(ann, "image_id", at), _int(ann, "category_id", at)
        if ann_id in seen:
            raise BenchError(f"annotation JSON {where}: annotation id {ann_id} appears twice")
        seen.add(ann_id)
        yield ann, ann_id, image_id, category


def validate_instances(data, where: str) -> CocoInstances:
    """Check a parsed COCO instances file (rules: module docstring); the first problem is one BenchError."""
    if not isinstance(data, dict):
        raise BenchError(f"annotation JSON {where} holds a {type(data).__name__}, not COCO's object")
    categories = _entries(data, "categories", where)
    ids = [_int(c, "id", f"annotation JSON {where}: categories[{n}]") for n, c in enumerate(categories)]
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if repeated:
        raise BenchError(f"annotation JSON {where} lists category id {repeated[0]} twice")
    if len(ids) != NUM_CLASSES:
        raise BenchError(f"annotation JSON {where} has {len(ids)} categories, not COCO's {NUM_CLASSES}")
    images, by_stem, by_id = [], {}, {}
    for n, image in enumerate(_entries(data, "images", where)):
        at = f"annotation JSON {where}: images[{n}]"
        image_id, height, width = _int(image, "id", at), _int(image, "height", at), _int(image, "width", at)
        name = image.get("file_name")
        if not (isinstance(name, str) and name.endswith(".jpg") and is_plain_name(name)):
            raise BenchError(f"{at}: file_name {name!r} is not a plain .jpg file name")
        if height < 1 or width < 1 or height * width > MAX_PIXELS:
            raise BenchError(f"{at} ({name}) declares {width}x{height} (WxH) pixels; accepted are 1 to {MAX_PIXELS}")
        if image_id in by_id:
            raise BenchError(f"annotation JSON {where}: images {by_id[image_id]['file_name']} and {name} share id "
                             f"{image_id}")
        if name[:-4] in by_stem:
            raise BenchError(f"annotation JSON {where}: {name} is listed twice (ids {by_stem[name[:-4]]['id']} and "
                             f"{image_id})")
        by_id[image_id] = by_stem[name[:-4]] = image
        images.append(image)
    classes = category_classes(categories)
    by_image: Dict[int, List[dict]] = defaultdict(list)
    for ann, ann_id, image_id, category in annotation_entries(data, where):
        image = by_id.get(image_id)
        if image is None:
            raise BenchError(f"annotation JSON {where}: annotation {ann_id} names image {image_id}, which is not "
                             "listed")
        if category not in classes:
            raise BenchError(f"annotation JSON {where}: annotation {ann_id} has category {category}, which is not "
                             "among the file's categories")
        try:
            check_segmentation(ann, image["height"], image["width"])
        except BenchError as exc:
            raise BenchError(f"annotation JSON {where}: {exc}") from None
        by_image[image_id].append(ann)
    return CocoInstances(sorted(images, key=lambda im: im["id"]), by_stem, dict(by_image), classes)
