"""`bench prepare deepglobe`: DeepGlobe's labelled land-cover images cut into PATNet's tiles (the layout that
`bench.data.deepglobe` reads; its docstring gives PATNet's preprocessing and class numbering).

Each image and mask is cut into a GRID x GRID grid (tile bounds int(i * side / GRID)); a tile is kept if its
mask holds at least two colours and the rarest covers more than MIN_FRACTION of it.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_bytes, atomic_write_text, make_dirs
from bench.data.base import is_plain_name, load_rgb, open_image
from bench.data.deepglobe import CLASSES, DEEPGLOBE_CARD, TILES_LIST
from bench.data.prepare.step import Option, PrepareStep
from bench.data.prepare.target import claim_target

GRID = 6
MIN_FRACTION = 0.048


def tile_bounds(side: int, grid: int = GRID) -> List[Tuple[int, int]]:
    """[start, stop) of each of `grid` tiles along a side of `side` pixels (PATNet's int(i * side / grid))."""
    return [(int(i * side / grid), int((i + 1) * side / grid)) for i in range(grid)]


def colour_to_label(rgb: np.ndarray, path: Path) -> np.ndarray:
    """DeepGlobe colour mask [H, W, 3] -> class indices (0 = unknown); a colour of no class is an error."""
    bits = (rgb >= 128).astype(np.int32)
    code = bits[..., 0] * 4 + bits[..., 1] * 2 + bits[..., 2]
    table = np.full(8, -1, np.int32)
    table[0] = 0
    for class_id, (_, (r, g, b)) in enumerate(CLASSES, start=1):
        table[(r // 255) * 4 + (g // 255) * 2 + b // 255] = class_id
    label = table[code]
    if (label < 0).any():
        raise BenchError(f"DeepGlobe mask {path} holds {int((label < 0).sum())} pixels of red (255,0,0), which is "
                         f"no land-cover colour; is it a DeepGlobe land-cover mask?")
    return label


def keep_tile(label: np.ndarray, min_fraction: float = MIN_FRACTION) -> bool:
    """PATNet's filter: at least two colours (unknown counts as one) and the rarest above `min_fraction`."""
    counts = np.bincount(label.ravel(), minlength=len(CLASSES) + 1)
    counts = counts[counts > 0]
    return len(counts) > 1 and counts.min() / label.size > min_fraction


def _png_bytes(label: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(label.astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _jpg_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _sources(src: Path) -> List[Tuple[str, Path, Path]]:
    folder = src / "train" if (src / "train").is_dir() and not any(src.glob("*_sat.jpg")) else src
    found = []
    for sat in sorted(folder.glob("*_sat.jpg")):
        stem = sat.name[: -len("_sat.jpg")]
        mask = folder / f"{stem}_mask.png"
        if mask.is_file():
            if not is_plain_name(stem):
                raise BenchError(f"DeepGlobe image name {sat.name!r} in {folder} is not a plain name; rename it")
            _check_headers(sat, mask)
            found.append((stem, sat, mask))
    if not found:
        raise DEEPGLOBE_CARD.missing(f"no DeepGlobe <id>_sat.jpg / <id>_mask.png pairs in {src} (or {src / 'train'})")
    return found


def _check_headers(sat: Path, mask: Path) -> None:
    """Read the headers only (before anything is written): unreadable, bomb-sized or mismatched pairs fail."""
    with open_image(sat, sat) as image, open_image(mask, mask, "mask") as label:
        if image.size != label.size:
            raise BenchError(f"DeepGlobe image {sat} ({image.size[0]}x{image.size[1]}) and mask {mask} "
                             f"({label.size[0]}x{label.size[1]}) differ in size")


def make_deepglobe_tiles(src: Path, out: Path, progress: bool = True, grid: int = GRID,
                         min_fraction: float = MIN_FRACTION) -> Dict[str, int]:
    """Cut DeepGlobe's labelled images (`src`: <id>_sat.jpg + <id>_mask.png, or src/train/) into PATNet's
    tiles under `out` (a new or empty folder, or one this command made: prepare.target). Resumable: a source
    whose tiles are done (marker in out/.done) and present is skipped; every file is written atomically;
    `tiles.txt` is written last. Returns counts."""
    src, out = Path(src), Path(out)
    sources = _sources(src)
    claim_target(out, "deepglobe", ("images", "labels", ".done"))
    for sub in ("images", "labels", ".done"):
        make_dirs(out / sub)
    stats = {"sources": len(sources), "skipped_sources": 0, "tiles_kept": 0, "tiles_dropped": 0}
    lines = []
    for n, (stem, sat, mask) in enumerate(sources, start=1):
        marker = out / ".done" / f"{stem}.txt"
        done = _done_tiles(marker, out)
        if done is not None:
            stats["skipped_sources"] += 1
        else:
            image = load_rgb(sat)
            label = colour_to_label(load_rgb(mask), mask)
            done = []
            for i, (y0, y1) in enumerate(tile_bounds(label.shape[0], grid)):
                for j, (x0, x1) in enumerate(tile_bounds(label.shape[1], grid)):
                    tile = label[y0:y1, x0:x1]
                    if not keep_tile(tile, min_fraction):
                        done.append(f"# {stem}_{i}{j} dropped")
                        continue
                    tile_id = f"{stem}_{i}{j}"
                    atomic_write_bytes(out / "images" / f"{tile_id}.jpg", _jpg_bytes(image[y0:y1, x0:x1]))
                    atomic_write_bytes(out / "labels" / f"{tile_id}.png", _png_bytes(tile))
                    classes = sorted(int(c) for c in np.unique(tile) if c > 0)
                    done.append(f"{tile_id} " + " ".join(map(str, classes)))
            atomic_write_text(marker, "\n".join(done) + "\n")
        kept = [line for line in done if not line.startswith("#")]
        stats["tiles_kept"] += len(kept)
        stats["tiles_dropped"] += len(done) - len(kept)
        lines += kept
        if progress:
            print(f"\rdeepglobe tiles: {n}/{len(sources)} images, {stats['tiles_kept']} tiles kept", end="", flush=True)
    if progress:
        print()
    atomic_write_text(out / TILES_LIST, "\n".join(lines) + "\n")
    return stats


def _done_tiles(marker: Path, out: Path):
    """The tile lines a finished source recorded, or None if it is to be cut (again): no marker, or a kept
    tile's image or label deleted since."""
    if not marker.is_file():
        return None
    done = [line for line in marker.read_text().splitlines() if line.strip()]
    for line in done:
        tile = line.split()[0]
        if not line.startswith("#") and not ((out / "images" / f"{tile}.jpg").is_file()
                                             and (out / "labels" / f"{tile}.png").is_file()):
            return None
    return done


def _run(args) -> str:
    summary = make_deepglobe_tiles(args.src, args.out, progress=not args.quiet)
    return f"DeepGlobe tiles ready at {args.out}: " + ", ".join(f"{k} {v}" for k, v in summary.items())


STEP = PrepareStep(
    help="DeepGlobe land-cover images cut into PATNet's 6 x 6 tiles", run=_run, options=(
        Option("--src", "folder", "folder of <id>_sat.jpg / <id>_mask.png (the Kaggle DeepGlobe land-cover train set, "
               "or its train/ folder)"),
        Option("--out", "out", "folder to create (images/, labels/, tiles.txt); new, empty or made by this command")))
