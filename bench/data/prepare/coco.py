"""COCO-20i root from the COCO 2014 zips, in HSNet's layout (Min et al., ICCV 2021):

COCO2014/{train2014,val2014}/<name>.jpg and COCO2014/annotations/{train2014,val2014}/<name>.png, the
PNG holding per pixel the 1-based index of the class among the 80 COCO categories sorted by category
id (0 = background). Instance annotations are rendered by bench.data.coco_masks.label_map.
"""
from __future__ import annotations

import json
import zipfile
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_text
from bench.core.progress import progress_bar
from bench.data.base import is_plain_name
from bench.data.coco_masks import category_classes, label_map
from bench.data.prepare.archives import index_png_bytes, write_once

SPLITS = ("train2014", "val2014")


def _open_zip(path: Path, what: str) -> zipfile.ZipFile:
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{what} not found: {path}")
    try:
        archive = zipfile.ZipFile(path)
        bad = archive.testzip() if path.stat().st_size < (1 << 20) else None  # full CRC check only when cheap
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise BenchError(f"{path} is not a readable {what} (corrupt or truncated: {exc}); download it again") from None
    if bad is not None:
        raise BenchError(f"{path} is not a readable {what}: member {bad!r} fails its CRC check; download it again")
    return archive


def _instances(archive: zipfile.ZipFile, path: Path, split: str) -> dict:
    name = f"annotations/instances_{split}.json"
    try:
        data = json.loads(archive.read(name))
    except KeyError:
        raise BenchError(f"{path} lacks {name}: is it annotations_trainval2014.zip?") from None
    except (ValueError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise BenchError(f"corrupt annotation JSON {name} in {path} ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations",
                                                                                      "categories")):
        raise BenchError(f"annotation JSON {name} in {path} lacks the images/annotations/categories lists")
    return data


def prepare_coco(train_zip: Path, val_zip: Path, annotations_zip: Path, out: Path, quiet: bool = False) -> dict:
    """Build out/COCO2014; every input is checked before any file is written; resumable per file."""
    root = Path(out) / "COCO2014"
    done = root / ".prepare_done"
    zips = {"train2014": _open_zip(train_zip, "COCO train2014.zip"), "val2014": _open_zip(val_zip, "COCO val2014.zip")}
    paths = {"train2014": Path(train_zip), "val2014": Path(val_zip)}
    annotations = _open_zip(annotations_zip, "COCO annotations_trainval2014.zip")
    summary = {"root": str(root), "written": 0}
    plans = {split: _plan(zips[split], paths[split], annotations, Path(annotations_zip), split) for split in SPLITS}
    for split, (images, by_image, classes) in plans.items():
        summary[split] = len(images)
        if done.exists():
            continue
        with progress_bar(total=len(images), desc=f"COCO {split}", quiet=quiet, unit="image") as bar:
            for image in images:
                name = image["file_name"]
                summary["written"] += write_once(root / split / name, lambda: _read(zips[split], paths[split], f"{split}/{name}"))
                mask = root / "annotations" / split / (name[:-4] + ".png")
                summary["written"] += write_once(mask, lambda: _render(label_map, by_image[image["id"]], image,
                                                                        classes, split))
                bar.update(1)
    if not done.exists():
        atomic_write_text(done, "ok\n")
    return summary


def _read(archive: zipfile.ZipFile, path: Path, member: str) -> bytes:
    try:
        return archive.read(member)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise BenchError(f"{path} is corrupt at {member} ({exc}); download it again") from None


def _plan(archive: zipfile.ZipFile, path: Path, annotations: zipfile.ZipFile, annotations_path: Path,
          split: str):
    """(images sorted by id, annotations by image id, category -> class) of one split, all names checked."""
    members = {n for n in archive.namelist() if not n.endswith("/")}
    if not any(n.startswith(f"{split}/") for n in members):
        raise BenchError(f"{path} holds no {split}/ folder: is it COCO's {split}.zip?")
    data = _instances(annotations, annotations_path, split)
    classes = category_classes(data["categories"])
    by_image = defaultdict(list)
    for ann in data["annotations"]:
        by_image[ann.get("image_id")].append(ann)
    images = sorted(data["images"], key=lambda im: im.get("id", 0))
    for image in images:
        name = image.get("file_name", "")
        if not (isinstance(name, str) and is_plain_name(name) and name.endswith(".jpg")):
            raise BenchError(f"instances_{split}.json lists an image {name!r} that is not a plain .jpg file name")
        if f"{split}/{name}" not in members:
            raise BenchError(f"image {name} listed in instances_{split}.json is missing from {path}")
    return images, by_image, classes


def _render(label_map, anns: list, image: dict, classes: dict, split: str) -> bytes:
    try:
        label = label_map(anns, int(image["height"]), int(image["width"]), classes)
        label = np.asarray(label, dtype=np.uint8)
        if label.shape != (int(image["height"]), int(image["width"])):
            raise ValueError(f"class map of shape {label.shape}")
    except BenchError:
        raise
    except Exception as exc:
        raise BenchError(f"annotations of {image.get('file_name')} in instances_{split}.json cannot be rendered "
                         f"({type(exc).__name__}: {exc})") from None
    return index_png_bytes(label)
