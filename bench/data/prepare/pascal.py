"""PASCAL-5i root from VOCtrainval_11-May-2012.tar and SBD's benchmark.tgz.

Layout as in the FSS codebases (OSLSM, PANet, PFENet, HSNet): VOC2012/JPEGImages/<id>.jpg and
VOC2012/SegmentationClassAug/<id>.png, the latter the usual "SBD augmented" class-index PNGs: SBD's
benchmark_RELEASE/dataset/cls/<id>.mat (struct GTcls, field Segmentation, classes 0..20; Hariharan et
al., ICCV 2011) where VOC has no mask, VOC's SegmentationClass/<id>.png (255 = void border) where it has.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from bench.core.errors import BenchError
from bench.core.progress import progress_bar
from bench.data.base import is_plain_name, open_image
from bench.data.lists import read_pair_list, shipped_lists
from bench.data.prepare.archives import check_tar_kind, index_png_bytes, stream_tar, write_once
from bench.data.prepare.step import Option, PrepareStep
from bench.data.prepare.target import check_target, claim_target
from bench.core.fileio import atomic_write_text

VOC_MEMBER = re.compile(r"^(?:\./)?VOCdevkit/VOC2012/(JPEGImages|SegmentationClass)/([^/]+)\.(jpg|png)$")
SBD_MEMBER = re.compile(r"^(?:\./)?benchmark_RELEASE/dataset/cls/([^/]+)\.mat$")


def _voc_mask(data: bytes, name: str) -> bytes:
    with open_image(io.BytesIO(data), f"{name} in the VOC tar", "VOC mask") as image:
        if image.mode not in ("P", "L"):
            raise BenchError(f"VOC mask {name} in the VOC tar has mode {image.mode}, expected a palette PNG of "
                             "class indices")
        label = np.array(image)
    return index_png_bytes(label)


def _sbd_mask(data: bytes, name: str) -> bytes:
    import scipy.io
    try:
        # SBD's files are MATLAB structs: GTcls.Segmentation holds the class map
        mat = scipy.io.loadmat(io.BytesIO(data), struct_as_record=False, squeeze_me=True)
        label = np.asarray(mat["GTcls"].Segmentation)
        if label.ndim != 2 or label.size == 0 or label.max() > 20 or label.min() < 0:
            raise ValueError("GTcls.Segmentation is not a 2-D map of classes 0..20")
    except Exception as exc:
        raise BenchError(f"corrupt SBD class mask {name} in the SBD archive ({exc})") from None
    return index_png_bytes(label.astype(np.uint8))


def prepare_pascal(voc_tar: Path, sbd_tgz: Path, out: Path, lists_dir: Path | None = None,
                   quiet: bool = False) -> dict:
    """Build out/VOC2012/{JPEGImages,SegmentationClassAug}; resumable, and a rerun re-prepares the files
    deleted since; returns a summary dict."""
    root = Path(out) / "VOC2012"
    images, masks = root / "JPEGImages", root / "SegmentationClassAug"
    voc_done, done = root / ".prepare_voc_done", root / ".prepare_done"
    ids = listed_ids(lists_dir)
    written = 0
    voc_what, sbd_what = "VOC trainval tar (VOCtrainval_11-May-2012.tar)", "SBD archive (benchmark.tgz)"
    complete = not _missing(root, ids)
    check_target(root, "pascal5i")
    if not (done.exists() and complete):
        check_tar_kind(voc_tar, voc_what, "VOCdevkit/")
        check_tar_kind(sbd_tgz, sbd_what, "benchmark_RELEASE/")  # a swapped argument fails before any write
    claim_target(root, "pascal5i", ("JPEGImages", "SegmentationClassAug"))
    if not (done.exists() and complete):
        if not (voc_done.exists() and complete):
            # VOC first: its masks take precedence, SBD then fills only the ids still missing
            with progress_bar(desc="VOC tar", quiet=quiet, unit="file") as bar:
                for name, data in stream_tar(voc_tar, voc_what, "VOCdevkit/", _voc_wanted):
                    bar.update(1)
                    folder, stem, ext = VOC_MEMBER.match(name).groups()
                    if folder == "JPEGImages" and ext == "jpg":
                        written += write_once(images / f"{stem}.jpg", lambda: data)
                    elif folder == "SegmentationClass" and ext == "png":
                        written += write_once(masks / f"{stem}.png", lambda: _voc_mask(data, name))
            atomic_write_text(voc_done, "ok\n")
        with progress_bar(desc="SBD tgz", quiet=quiet, unit="file") as bar:
            for name, data in stream_tar(sbd_tgz, sbd_what, "benchmark_RELEASE/", _sbd_wanted):
                bar.update(1)
                written += write_once(masks / f"{SBD_MEMBER.match(name)[1]}.png", lambda: _sbd_mask(data, name))
    summary = check_pascal(root, lists_dir)
    if not done.exists():
        atomic_write_text(done, "ok\n")
    summary["written"] = written
    return summary


def _voc_wanted(name: str) -> bool:
    match = VOC_MEMBER.match(name)
    return bool(match) and is_plain_name(match[2]) and is_plain_name(f"{match[2]}.{match[3]}")


def _sbd_wanted(name: str) -> bool:
    match = SBD_MEMBER.match(name)
    return bool(match) and is_plain_name(match[1])


def listed_ids(lists_dir: Path | None = None) -> set:
    """The image ids of the PASCAL-5i split lists (default: the shipped ones)."""
    lists_dir = Path(lists_dir) if lists_dir else shipped_lists("pascal5i")
    ids = set()
    for path in sorted(lists_dir.glob("*/fold*.txt")):
        ids.update(image_id for image_id, _ in read_pair_list(path))
    if not ids:
        raise BenchError(f"no split lists (*/fold*.txt) under {lists_dir}")
    return ids


def _missing(root: Path, ids: set) -> list:
    return [i for i in sorted(ids) if not (root / "JPEGImages" / f"{i}.jpg").is_file()
            or not (root / "SegmentationClassAug" / f"{i}.png").is_file()]


def check_pascal(root: Path, lists_dir: Path | None = None) -> dict:
    """Every image of the split lists present with image and mask; a BenchError naming the first missing."""
    ids = listed_ids(lists_dir)
    missing = _missing(root, ids)
    if missing:
        raise BenchError(f"{len(missing)} listed images lack an image or mask under {root} (first: {missing[0]}); "
                         "are these the full VOC 2012 trainval tar and SBD benchmark.tgz?")
    return {"root": str(root), "listed_images": len(ids),
            "images": sum(1 for _ in (root / "JPEGImages").glob("*.jpg")),
            "masks": sum(1 for _ in (root / "SegmentationClassAug").glob("*.png"))}


def _run(args) -> str:
    summary = prepare_pascal(args.voc, args.sbd, args.out, lists_dir=args.lists, quiet=args.quiet)
    return (f"PASCAL-5i ready at {summary['root']}: {summary['images']} images, {summary['masks']} masks, "
            f"all {summary['listed_images']} listed images present ({summary['written']} files written this run)")


STEP = PrepareStep(
    help="VOC2012 JPEGImages + SegmentationClassAug from VOC and SBD", run=_run, options=(
        Option("--voc", "archive", "VOCtrainval_11-May-2012.tar"),
        Option("--sbd", "archive", "SBD benchmark.tgz"),
        Option("--out", "out", "data root (VOC2012/ goes inside; it must be new, empty or made by this command)"),
        Option("--lists", "folder", "split lists folder to check against (default: the shipped PASCAL-5i lists)",
               required=False)))
