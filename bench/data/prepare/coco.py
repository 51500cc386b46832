"""COCO-20i root from the COCO 2014 zips, in HSNet's layout (Min et al., ICCV 2021):

COCO2014/{train2014,val2014}/<name>.jpg and COCO2014/annotations/{train2014,val2014}/<name>.png, the
PNG holding per pixel the 1-based index of the class among the 80 COCO categories sorted by category
id (0 = background). Instance annotations are rendered by bench.data.coco_masks.label_map.
"""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_text
from bench.core.progress import progress_bar
from bench.data.base import open_image
from bench.data.coco_json import CocoInstances, check_json_size, parse_json, validate_instances
from bench.data.coco_masks import label_map
from bench.data.prepare.archives import check_member_size, index_png_bytes, write_once
from bench.data.prepare.step import Option, PrepareStep, summary_line
from bench.data.prepare.target import check_target, claim_target

SPLITS = ("train2014", "val2014")


def _open_zip(path: Path, what: str) -> zipfile.ZipFile:
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{what} not found: {path}")
    try:
        archive = zipfile.ZipFile(path)
        bad = archive.testzip() if path.stat().st_size < (1 << 20) else None  # full CRC check only when cheap
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise BenchError(f"{path} is not a readable {what} (corrupt or truncated: {exc}); download it again") from None
    if bad is not None:
        raise BenchError(f"{path} is not a readable {what}: member {bad!r} fails its CRC check; download it again")
    return archive


def _instances(archive: zipfile.ZipFile, path: Path, split: str) -> CocoInstances:
    name = f"annotations/instances_{split}.json"
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise BenchError(f"{path} lacks {name}: is it annotations_trainval2014.zip?") from None
    where = f"{name} in {path}"
    check_json_size(info.file_size, where)
    return validate_instances(parse_json(_read(archive, path, name), where), where)


def prepare_coco(train_zip: Path, val_zip: Path, annotations_zip: Path, out: Path, quiet: bool = False) -> dict:
    """Build out/COCO2014; every input is checked before any file is written; resumable per file, and a
    rerun re-prepares the files deleted since."""
    root = Path(out) / "COCO2014"
    check_target(root, "coco20i")
    zips = {"train2014": _open_zip(train_zip, "COCO train2014.zip"), "val2014": _open_zip(val_zip, "COCO val2014.zip")}
    paths = {"train2014": Path(train_zip), "val2014": Path(val_zip)}
    annotations = _open_zip(annotations_zip, "COCO annotations_trainval2014.zip")
    summary = {"root": str(root), "written": 0}
    plans = {split: _plan(zips[split], paths[split], annotations, Path(annotations_zip), split) for split in SPLITS}
    claim_target(root, "coco20i", [f"{kind}{split}" for kind in ("", "annotations/") for split in SPLITS])
    for split, plan in plans.items():
        summary[split] = len(plan.images)
        with progress_bar(total=len(plan.images), desc=f"COCO {split}", quiet=quiet, unit="image") as bar:
            for image in plan.images:
                name = image["file_name"]
                summary["written"] += write_once(root / split / name,
                                                 lambda: _read(zips[split], paths[split], f"{split}/{name}"))
                mask = root / "annotations" / split / (name[:-4] + ".png")
                summary["written"] += write_once(mask, lambda: _render(plan, image, split))
                bar.update(1)
    if not (root / ".prepare_done").exists():
        atomic_write_text(root / ".prepare_done", "ok\n")
    return summary


def _read(archive: zipfile.ZipFile, path: Path, member: str) -> bytes:
    try:
        return archive.read(member)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise BenchError(f"{path} is corrupt at {member} ({exc}); download it again") from None


def _jpeg_size(archive: zipfile.ZipFile, path: Path, member: str) -> tuple:
    """(width, height) from a JPEG's header, read from the zip without decoding the image."""
    try:
        with archive.open(member) as handle, open_image(handle, f"{member} in {path}") as image:
            if image.format != "JPEG":
                raise BenchError(f"{member} in {path} is a {image.format} file, not a JPEG")
            return image.size
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise BenchError(f"{path} is corrupt at {member} ({exc}); download it again") from None


def _plan(archive: zipfile.ZipFile, path: Path, annotations: zipfile.ZipFile, annotations_path: Path,
          split: str) -> CocoInstances:
    """The checked instances of one split, each listed image present in the zip with its declared size."""
    members = {info.filename: info for info in archive.infolist() if not info.filename.endswith("/")}
    if not any(n.startswith(f"{split}/") for n in members):
        raise BenchError(f"{path} holds no {split}/ folder: is it COCO's {split}.zip?")
    plan = _instances(annotations, annotations_path, split)
    for image in plan.images:
        name = image["file_name"]
        info = members.get(f"{split}/{name}")
        if info is None:
            raise BenchError(f"image {name} listed in instances_{split}.json is missing from {path}")
        check_member_size(info.file_size, path, info.filename)
        size = _jpeg_size(archive, path, info.filename)
        if size != (image["width"], image["height"]):
            raise BenchError(f"{name} in {path} is {size[0]}x{size[1]} (WxH) but instances_{split}.json declares "
                             f"{image['width']}x{image['height']}; the annotations do not match the images")
    return plan


def _render(plan: CocoInstances, image: dict, split: str) -> bytes:
    try:
        label = np.asarray(label_map(plan.by_image.get(image["id"], []), image["height"], image["width"],
                                     plan.classes), dtype=np.uint8)
        if label.shape != (image["height"], image["width"]):
            raise ValueError(f"class map of shape {label.shape}")
    except BenchError:
        raise
    except Exception as exc:
        raise BenchError(f"annotations of {image.get('file_name')} in instances_{split}.json cannot be rendered "
                         f"({type(exc).__name__}: {exc})") from None
    return index_png_bytes(label)


def _run(args) -> str:
    summary = prepare_coco(args.train_zip, args.val_zip, args.annotations, args.out, quiet=args.quiet)
    return summary_line("COCO-20i", summary)


STEP = PrepareStep(
    help="COCO2014 images + class-index PNGs (HSNet's layout)", run=_run, options=(
        Option("--train-zip", "archive", "train2014.zip"),
        Option("--val-zip", "archive", "val2014.zip"),
        Option("--annotations", "archive", "annotations_trainval2014.zip"),
        Option("--out", "out", "data root (COCO2014/ goes inside; it must be new, empty or made by this command)")))
