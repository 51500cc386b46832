"""LVIS-92i root from the COCO 2017 zips and the LVIS v1 annotation zips (layout: bench.data.lvis).

LVIS/{train2017,val2017}/<12 digits>.jpg holds every image an annotation file lists (LVIS v1 val draws
from both COCO subsets), LVIS/annotations/lvis_v1_{val,train}.json the annotation files, and
LVIS/folds.csv the fold classes derived from them by Matcher's rule (bench.data.lvis_json), for reading;
the dataset derives them again from the JSON at load time. Every input is checked before any file is written.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Dict, Optional

from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_text
from bench.core.progress import progress_bar
from bench.data.lvis import FOLD_CONVENTIONS, PARTS, annotation_path, matcher_folds
from bench.data.lvis_json import SUBSETS, LvisInstances, check_lvis_size, parse_lvis
from bench.data.prepare.archives import check_member_size, write_once
from bench.data.prepare.coco import _jpeg_size, _open_zip, _read
from bench.data.prepare.step import Option, PrepareStep, summary_line
from bench.data.prepare.target import check_target, claim_target


def _annotations(path: Path, part: str) -> tuple:
    """(zip, member name, checked instances) of lvis_v1_<part>.json inside its zip."""
    archive = _open_zip(path, f"LVIS lvis_v1_{part}.json.zip")
    name = f"lvis_v1_{part}.json"
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise BenchError(f"{path} lacks {name}: is it lvis_v1_{part}.json.zip?") from None
    check_lvis_size(info.file_size, f"{name} in {path}")
    return archive, name, parse_lvis(_read(archive, path, name), f"{name} in {path}")


def _check_images(data: LvisInstances, zips: Dict[str, zipfile.ZipFile], paths: Dict[str, Path], part: str) -> None:
    """Every image of an annotation file is in its COCO zip, with the declared size."""
    part = PARTS[part]
    members = {s: {i.filename: i for i in z.infolist()} for s, z in zips.items()}
    for key, image in data.images.items():
        subset, number = key.split("_")
        member = f"{subset}/{number}.jpg"
        info = members[subset].get(member)
        if info is None:
            raise BenchError(f"image {member} listed in lvis_v1_{part}.json is missing from {paths[subset]}")
        check_member_size(info.file_size, paths[subset], member)
        size = _jpeg_size(zips[subset], paths[subset], member)
        if size != (image["width"], image["height"]):
            raise BenchError(f"{member} in {paths[subset]} is {size[0]}x{size[1]} (WxH) but lvis_v1_{part}.json "
                             f"declares {image['width']}x{image['height']}")


def folds_csv(val: LvisInstances, train: Optional[LvisInstances]) -> str:
    """convention,split,part,category,name rows of the derived folds."""
    lines = ["convention,split,part,category,name"]
    for convention in FOLD_CONVENTIONS:
        for split, parts in matcher_folds(val, train, convention).items():
            for part, classes in parts.items():
                lines += [f"{convention},{split},{part},{c},{val.names.get(c, c)}" for c in classes or []]
    return "\n".join(lines) + "\n"


def prepare_lvis(train_zip: Path, val_zip: Path, annotations: Path, out: Path,
                 train_annotations: Optional[Path] = None, quiet: bool = False) -> dict:
    """Build out/LVIS (resumable per file; a rerun re-writes the files deleted since)."""
    root = Path(out) / "LVIS"
    check_target(root, "lvis92i")
    paths = {"train2017": Path(train_zip), "val2017": Path(val_zip)}
    zips = {s: _open_zip(paths[s], f"COCO {s}.zip") for s in SUBSETS}
    files = {"test": _annotations(Path(annotations), "val")}
    if train_annotations is not None:
        files["train"] = _annotations(Path(train_annotations), "train")
    for part, (_, _, data) in files.items():
        _check_images(data, zips, paths, part)
    train = files["train"][2] if "train" in files else None
    table = folds_csv(files["test"][2], train)
    claim_target(root, "lvis92i", [*SUBSETS, "annotations"])
    summary = {"root": str(root), "written": 0}
    sources = {"test": Path(annotations), "train": Path(train_annotations) if train_annotations else None}
    for part, (archive, name, data) in files.items():  # the JSON is read again from its zip, not kept in memory
        summary["written"] += write_once(annotation_path(root, part), lambda: _read(archive, sources[part], name))
        summary[f"{part} images"] = len(data.images)
        with progress_bar(total=len(data.images), desc=f"LVIS {part}", quiet=quiet, unit="image") as bar:
            for key in data.images:
                subset, number = key.split("_")
                member = f"{subset}/{number}.jpg"
                summary["written"] += write_once(root / member, lambda: _read(zips[subset], paths[subset], member))
                bar.update(1)
    atomic_write_text(root / "folds.csv", table)
    if not (root / ".prepare_done").exists():
        atomic_write_text(root / ".prepare_done", "ok\n")
    return summary


def _run(args) -> str:
    summary = prepare_lvis(args.train_zip, args.val_zip, args.annotations, args.out,
                           getattr(args, "train_annotations", None), quiet=args.quiet)
    return summary_line("LVIS-92i", summary)


STEP = PrepareStep(
    help="COCO 2017 images + LVIS v1 annotations (+ the derived LVIS-92i folds)", run=_run, options=(
        Option("--train-zip", "archive", "train2017.zip (LVIS val uses images of both COCO 2017 subsets)"),
        Option("--val-zip", "archive", "val2017.zip"),
        Option("--annotations", "archive", "lvis_v1_val.json.zip"),
        Option("--train-annotations", "archive", "lvis_v1_train.json.zip (for training)", required=False),
        Option("--out", "out", "data root (LVIS/ goes inside; it must be new, empty or made by this command)")))
