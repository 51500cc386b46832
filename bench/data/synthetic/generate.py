"""Write the synthetic few-shot segmentation benchmark to disk in the PASCAL-5i (VOC2012 + SBD) layout.

    <root>/VOC2012/JPEGImages/<id>.jpg            RGB JPEG (quality 92, 4:2:0)
    <root>/VOC2012/SegmentationClassAug/<id>.png  palette PNG: 0 background, 1..20 class, 255 ignore
    <root>/lists/{trn,val}/fold{0..3}.txt         "<id>__<class 01..20>", sorted
    <root>/synthetic.json                         stamp (version, spec, classes, content hash, timing)

Usage: python -m bench.data.synthetic.generate --out DIR [--seed N] [--tiny] [--context LEVEL] [--workers N]
"""
from __future__ import annotations

import argparse
import fcntl
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from bench.core.environment import cache_dir
from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_json, hash_files
from bench.core.log import log
from bench.core.progress import progress_bar
from bench.data.base import IGNORE
from bench.data.synthetic.classes import CLASS_NAMES, CLASSES, N_CLASSES, SCENES
from bench.data.synthetic.layout import (
    IMAGE_DIR,
    JPEG_QUALITY,
    LABEL_DIR,
    POOLS,
    pool_anchors,
    render_chunk,
    write_lists,
)
from bench.data.synthetic.render import MIN_PIXELS

GENERATOR_VERSION = 1
GENERATOR_ID = "fss-bench-synthetic"
STAMP_NAME = "synthetic.json"
OWNER_MARKER = ".fss-bench-synthetic"     # written first into every folder this module creates
_CHUNK = 25


@dataclass(frozen=True)
class SyntheticSpec:
    """What the generated benchmark depends on. `context`: None for the default benchmark, or a level in
    [0, 1] of how strongly backgrounds follow the image's main class (see `render_image`)."""

    seed: int = 0
    n_train: int = 3000
    n_val: int = 1000
    min_size: int = 96
    max_size: int = 128
    context: Optional[float] = None

    def __post_init__(self):
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise BenchError(f"synthetic seed must be a non-negative integer, got {self.seed!r}")
        if self.n_train < N_CLASSES or self.n_val < N_CLASSES:
            raise BenchError(f"synthetic pools need at least {N_CLASSES} images each")
        if not 32 <= self.min_size <= self.max_size:
            raise BenchError(f"synthetic sizes need 32 <= min_size <= max_size, got {self.min_size}, {self.max_size}")
        number = isinstance(self.context, (int, float)) and not isinstance(self.context, bool)
        if self.context is not None and not (number and 0 <= self.context <= 1
                                             and float(format_level(self.context)) == self.context):
            raise BenchError(f"synthetic context level must be a number in [0, 1] with at most 6 significant "
                             f"digits, got {self.context!r}")

    @property
    def name(self) -> str:
        context = "" if self.context is None else f"-context{format_level(self.context)}"
        return (f"synthetic-v{GENERATOR_VERSION}-s{self.seed}-{self.n_train}x{self.n_val}"
                f"-{self.min_size}to{self.max_size}{context}")

    def as_dict(self) -> dict:
        """The spec as stamped; without `context` when it is None, so the default spec reads as before."""
        out = asdict(self)
        if self.context is None:
            del out["context"]
        return out


def format_level(level: float) -> str:
    """The canonical text of a context level in names: 0, 0.25, 1."""
    return f"{float(level):g}"


TINY_SPEC = SyntheticSpec(n_train=240, n_val=160)


def default_cache_dir() -> Path:
    """$FSS_BENCH_CACHE (checked), else ~/.cache/fss-bench."""
    return cache_dir()


def _pool_context():
    # fork on Linux: workers start instantly and never re-import the caller's __main__ (an unguarded
    # script would otherwise re-enter ensure_synthetic and wait on its lock); workers only use numpy/PIL.
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _safe_to_fork() -> bool:
    """Forking copies only the calling thread: a lock that another thread (a timer, torch's or OpenBLAS'
    thread pools) held at that moment stays locked in the child forever. A test process deadlocked so;
    generate in this process instead whenever other threads may exist."""
    if _pool_context().get_start_method() != "fork":
        return True
    return threading.active_count() == 1 and "torch" not in sys.modules


def _generate_into(root: Path, spec: SyntheticSpec, progress: bool, workers: int | None) -> dict:
    t0 = time.perf_counter()
    workers = max(1, workers if workers is not None else min(2, os.cpu_count() or 1))
    if workers > 1 and not _safe_to_fork():
        workers = 1  # same images either way: the content hash does not depend on the workers
    (root / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    (root / LABEL_DIR).mkdir(parents=True, exist_ok=True)
    tasks = []
    for prefix, pool_id, _ in POOLS:
        n = spec.n_train if pool_id == 0 else spec.n_val
        anchors = pool_anchors(spec.seed, pool_id, n)
        for start in range(0, n, _CHUNK):
            tasks.append((str(root), spec.seed, pool_id, prefix, n, start, anchors[start:start + _CHUNK].tolist(),
                          spec.min_size, spec.max_size, spec.context))
    results = []
    if workers == 1:
        chunks = map(render_chunk, tasks)
        pool = None
    else:
        pool = _pool_context().Pool(workers)   # before tqdm starts its monitor thread
        chunks = pool.imap_unordered(render_chunk, tasks)
    bar = progress_bar(total=spec.n_train + spec.n_val, desc=f"generating {spec.name}", quiet=not progress, unit="img")
    try:
        for chunk in chunks:
            results.extend(chunk)
            bar.update(len(chunk))
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        bar.close()
    stats = write_lists(root, results)
    content_hash = synthetic_content_hash(root)
    seconds = time.perf_counter() - t0
    stamp = {
        "generator": GENERATOR_ID, "version": GENERATOR_VERSION, "name": spec.name, "spec": spec.as_dict(),
        "class_names": CLASS_NAMES, "classes": [c.attributes() for c in CLASSES], "scenes": list(SCENES),
        "min_pixels": MIN_PIXELS, "ignore_label": IGNORE,
        "jpeg": {"quality": JPEG_QUALITY, "subsampling": "4:2:0"},
        "content_hash": content_hash, "generation_seconds": round(seconds, 3), "workers": workers,
        "stats": stats,
    }
    atomic_write_json(root / STAMP_NAME, stamp)
    return stamp


def _content_relpaths(root: Path) -> list[str]:
    rels = []
    for sub in (IMAGE_DIR, LABEL_DIR, "lists/trn", "lists/val"):
        folder = root / sub
        if folder.is_dir():
            rels += [f"{sub}/{e.name}" for e in os.scandir(folder) if not e.name.startswith(".")]
    return rels


def synthetic_content_hash(root: Path) -> str:
    """One sha256 over every image, label and list file (names and contents)."""
    return hash_files(root, _content_relpaths(Path(root)))


def _read_stamp(root: Path) -> dict | None:
    try:
        stamp = json.loads((Path(root) / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) and stamp.get("generator") == GENERATOR_ID else None


def verify_synthetic(root: Path) -> str:
    root = Path(root)
    stamp = _read_stamp(root)
    if stamp is None:
        raise BenchError(f"{root}: no synthetic dataset stamp ({STAMP_NAME}); generate it with ensure_synthetic")
    actual = synthetic_content_hash(root)
    if actual != stamp.get("content_hash"):
        raise BenchError(f"{root}: synthetic dataset files do not match their stamp "
                         f"(content hash {actual[:12]} != {str(stamp.get('content_hash'))[:12]}); regenerate it")
    return actual


def _is_current(root: Path, spec: SyntheticSpec) -> bool:
    stamp = _read_stamp(root)
    if stamp is None or stamp.get("version") != GENERATOR_VERSION or stamp.get("spec") != spec.as_dict():
        return False
    try:
        return synthetic_content_hash(root) == stamp.get("content_hash")
    except OSError:
        return False


def _is_ours(folder: Path) -> bool:
    return (folder / OWNER_MARKER).exists() or _read_stamp(folder) is not None


@contextmanager
def _lock(root: Path):
    with open(root.parent / f".{root.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(root: Path) -> None:
    """Delete temp/trash siblings of `root` left by interrupted runs (only ones this module created)."""
    for prefix in (f".{root.name}.tmp-", f".{root.name}.old-"):
        for entry in root.parent.glob(prefix + "*"):
            if entry.is_dir() and (_is_ours(entry) or not any(entry.iterdir())):
                shutil.rmtree(entry, ignore_errors=True)


def ensure_synthetic(root: Path | None = None, spec: SyntheticSpec = SyntheticSpec(), progress: bool = False,
                     workers: int | None = None) -> Path:
    """Return a folder holding the dataset for `spec`, (re)generating it when missing, partial or stale."""
    root = Path(root).expanduser() if root is not None else default_cache_dir() / spec.name
    root = root.absolute()
    if root.exists() and not root.is_dir():
        raise BenchError(f"{root} exists and is not a folder; cannot put the synthetic dataset there")
    root.parent.mkdir(parents=True, exist_ok=True)
    with _lock(root):
        if root.is_dir():
            if _is_current(root, spec):
                return root
            if any(root.iterdir()) and not _is_ours(root):
                raise BenchError(f"refusing to overwrite {root}: it is not empty and is not a synthetic dataset "
                                 f"folder (no {STAMP_NAME}); choose another folder or empty it")
        _remove_leftovers(root)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
        try:
            (tmp / OWNER_MARKER).write_text(json.dumps({"pid": os.getpid(), "spec": spec.as_dict()}) + "\n")
            log(f"generating the {spec.name} dataset (once, cached): {spec.n_train + spec.n_val} images into {root}")
            stamp = _generate_into(tmp, spec, progress, workers)
            log(f"generated {spec.name} in {stamp['generation_seconds']:.1f} s")
            if root.exists():
                trash = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
                os.replace(root, trash / "data")
                os.replace(tmp, root)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(tmp, root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.data.synthetic.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="dataset folder (default: cache/<spec name>)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="the small test spec")
    parser.add_argument("--context", type=float, default=None, metavar="LEVEL",
                        help="background context level in [0, 1] (default: the default benchmark's backgrounds)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    base = TINY_SPEC if args.tiny else SyntheticSpec()
    try:
        spec = SyntheticSpec(args.seed, base.n_train, base.n_val, base.min_size, base.max_size, args.context)
        t0 = time.perf_counter()
        root = ensure_synthetic(args.out, spec, progress=args.progress, workers=args.workers)
        total = time.perf_counter() - t0
        t1 = time.perf_counter()
        verify_synthetic(root)
        verify = time.perf_counter() - t1
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stamp = _read_stamp(root)
    print(f"{root}\n  spec {spec.name}, generation {stamp['generation_seconds']:.2f} s "
          f"(this call {total:.2f} s), verify {verify:.3f} s, workers {stamp['workers']}")
    for folder in ("trn", "val"):
        s = stamp["stats"][folder]
        print(f"  {folder}: {s['images']} images, pairs per fold {s['pairs_per_fold']}, "
              f"images per class {min(s['images_per_class'])}..{max(s['images_per_class'])}, "
              f"multi-object {s['fraction_multi_object']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
