"""Peak memory and time of evaluation at COCO-20i scale, bounded caches vs unbounded (issue 15).

    python -m bench.benchmarks.memory_scale --images 20000 [--budget default|none|BYTES] [--spill DIR]

A synthetic in-memory dataset stands in for COCO-20i val2014 (40,504 images, 80 classes; Lin et al.,
ECCV 2014; folds of Nguyen & Todorovic, ICCV 2019): `--images` images of COCO-like sizes (480..640 x
~480, varying with the id), each generated from its id (RNG seeded by the index, so the same bytes on
every decode), one rectangle of class 1 + index % 80. The episodes touch every image once as a query,
1-shot, the support being the image 80 ids further (same class). The stand-in method pools the input
8x and projects it to `--channels` channels with a fixed random 1x1 conv: its query code and its
support code are each [channels, S/8, S/8] float32 (channels 256 at 473 px: 3.6 MB each, about the
size of a ResNet-50 layer-3 code at 473 px reduced to 256 channels), its decode a prototype match.
Prints peak RSS (ru_maxrss of this process; run one configuration per process), wall time, cache
counters and a SHA-256 of the per-episode counts, to compare configurations for identical results.
"""
from __future__ import annotations

import argparse
import hashlib
import resource
import time
from typing import List, Tuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from bench.core.memory import pin_mmap_threshold
from bench.data.base import FSSDataset
from bench.data.images import DEFAULT_STORE_BUDGET, ImageStore
from bench.evaluation.features import DEFAULT_CODE_BUDGET, CodeCache
from bench.evaluation.loop import evaluate_manifest

CLASSES = 80


class SyntheticCOCO(FSSDataset):
    """`count` images generated from their ids; no files."""

    name = "synthetic-coco-scale"
    num_classes = CLASSES
    num_splits = 1
    ignore_label = 255

    def __init__(self, count: int):
        self.count = count

    @staticmethod
    def _index(image_id: str) -> int:
        return int(image_id.split("_")[1])

    def _size(self, i: int) -> Tuple[int, int]:
        return 427 + (i * 7) % 54, 480 + (i * 13) % 161  # h in 427..480, w in 480..640

    def read_image(self, image_id: str) -> np.ndarray:
        i = self._index(image_id)
        h, w = self._size(i)
        return np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)

    def read_label(self, image_id: str) -> np.ndarray:
        i = self._index(image_id)
        h, w = self._size(i)
        label = np.zeros((h, w), np.uint8)
        y, x = (i * 31) % (h // 2), (i * 17) % (w // 2)
        label[y:y + h // 3, x:x + w // 3] = 1 + i % CLASSES
        label[:2] = 255
        return label

    def pairs(self, split: int, part: str):
        return [(f"val_{i:06d}", 1 + i % CLASSES) for i in range(self.count)]


def manifest_of(count: int) -> pd.DataFrame:
    rows = [{"episode": e, "split": 1, "shot": 1, "seed": 0, "class_id": 1 + e % CLASSES,
             "query": f"val_{e:06d}", "supports": f"val_{(e + CLASSES) % count:06d}"} for e in range(count)]
    return pd.DataFrame(rows)


class StandInMethod(torch.nn.Module):
    """A cheap frozen encoder with realistically large codes and a prototype-matching decode."""

    native_resolution = False
    logits_align_corners = False

    def __init__(self, channels: int):
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Conv2d(3, channels, 1)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(F.avg_pool2d(images, 8))

    def query_code(self, feats):
        return (feats,)

    def support_code(self, feats, masks):
        fg = F.interpolate((masks == 1).float()[:, None], size=feats.shape[-2:], mode="nearest")
        return (feats * fg, fg)

    def decode(self, query, supports) -> torch.Tensor:
        (q,), (s, fg) = query, supports
        proto = s.sum(dim=(1, 3, 4)) / fg.sum(dim=(1, 3, 4)).clamp(min=1)  # [B, C]
        sim = F.cosine_similarity(q, proto[:, :, None, None], dim=1)
        return torch.stack([torch.full_like(sim, 0.5), sim * 4], dim=1)


def parse_budget(text: str, default: int):
    return default if text == "default" else None if text == "none" else int(float(text))


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--size", type=int, default=473, help="input size")
    parser.add_argument("--channels", type=int, default=256, help="code channels")
    parser.add_argument("--budget", default="default", help="'default', 'none' or bytes, for both caches")
    parser.add_argument("--store-budget", default=None, help="overrides --budget for the ImageStore")
    parser.add_argument("--spill", default=None, help="spill folder for evicted codes")
    parser.add_argument("--precheck", action="store_true", help="decode every label first, as run.check_episode_data")
    parser.add_argument("--mmap", choices=["dynamic", "pinned"], default="dynamic",
                        help="glibc's mmap threshold: dynamic (as bench runs, the caches trim the heap) or pinned "
                             "at 128 KiB (bench's first remedy, twice as slow; bench.core.memory)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    pinned = args.mmap == "pinned" and pin_mmap_threshold()
    dataset, manifest = SyntheticCOCO(args.images), manifest_of(args.images)
    code_budget = parse_budget(args.budget, DEFAULT_CODE_BUDGET)
    store_budget = parse_budget(args.store_budget or args.budget, DEFAULT_STORE_BUDGET)
    store = ImageStore(dataset, args.size, budget_bytes=store_budget)
    cache = CodeCache(store, budget_bytes=code_budget, spill_dir=args.spill)
    method = StandInMethod(args.channels)
    start = time.perf_counter()
    if args.precheck:
        for image_id in sorted({*manifest["query"], *manifest["supports"]}):
            store.label(image_id)
    rows = evaluate_manifest(method, store, manifest, batch_size=16, quiet=True, features=cache)
    wall = time.perf_counter() - start
    code_mb = args.channels * (args.size // 8) ** 2 * 4 / 2 ** 20
    digest = hashlib.sha256(rows.to_csv(index=False).encode()).hexdigest()[:16]
    print(f"images {args.images}, input {args.size}, code per image {2 * code_mb + (args.size // 8) ** 2 * 4 / 2**20:.1f} MB "
          f"(query {code_mb:.1f} + support {code_mb:.1f} + mask), store budget {store_budget}, code budget {code_budget}, "
          f"spill {args.spill}, mmap threshold {'pinned' if pinned else 'dynamic'}")
    print(f"wall {wall:.1f} s, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.2f} GiB, "
          f"decoded {store.decoded}, store evictions {store.evictions}, encoded {cache.encoded} "
          f"(recomputed {cache.recomputed}), code evictions {cache.evictions}, spill reads {cache.spill_reads}, "
          f"counts sha256 {digest}, pooled fg IoU {rows['fg_inter'].sum() / max(rows['fg_union'].sum(), 1):.6f}")
    cache.close()


if __name__ == "__main__":
    main()
