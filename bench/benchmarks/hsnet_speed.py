"""HSNet's speed on CPU at the authors' input size: seconds per 1-shot and 5-shot episode, uncached (the
backbone runs on every image of every episode) against cached (each unique image encoded once, as the
evaluation's CodeCache does, then only `decode` per episode). Prints figures; asserts nothing but equality.

    python -m bench.benchmarks.hsnet_speed [--backbone resnet50] [--size 400] [--episodes 3] [--threads 2]

Random weights and random images (speed does not depend on either); episodes draw their query and
supports from a small pool of unique images, as evaluation episodes reuse a split's images.
"""
from __future__ import annotations

import argparse
import time
from typing import Dict, List, Tuple

import torch

from methods.hsnet import HSNet


def episodes(pool: int, count: int, shots: int, seed: int) -> List[Tuple[int, List[int]]]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        order = torch.randperm(pool, generator=generator).tolist()
        out.append((order[0], order[1:1 + shots]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50", choices=["resnet50", "resnet101", "vgg16"])
    parser.add_argument("--size", type=int, default=400, help="square input side (the authors' 400)")
    parser.add_argument("--episodes", type=int, default=3, help="episodes per shot setting")
    parser.add_argument("--pool", type=int, default=8, help="unique images the episodes draw from")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    method = HSNet(backbone=args.backbone, backbone_enum=None, input_size=args.size).eval()
    images = torch.randn(args.pool, 3, args.size, args.size)
    masks = torch.zeros(args.pool, args.size, args.size, dtype=torch.long)
    masks[:, args.size // 4: 3 * args.size // 4, args.size // 5: 4 * args.size // 5] = 1
    print(f"HSNet {args.backbone}, {args.size} x {args.size}, {args.threads} threads, {args.episodes} episodes per "
          f"shot setting from {args.pool} unique images")
    with torch.no_grad():
        method(images[:1], images[1:2, None], masks[1:2, None])  # warm-up
        start = time.perf_counter()
        query_codes: Dict[int, tuple] = {}
        support_codes: Dict[int, tuple] = {}
        for i in range(args.pool):  # CodeCache: backbone once per image, its query and support codes kept
            feats = method.encode(images[i:i + 1])
            query_codes[i] = method.query_code(feats)
            support_codes[i] = method.support_code(feats, masks[i:i + 1])
        per_image = (time.perf_counter() - start) / args.pool
        print(f"encoding (backbone + codes): {per_image:.2f} s per unique image")
        for shots in (1, 5):
            eps = episodes(args.pool, args.episodes, shots, seed=shots)
            start = time.perf_counter()
            direct = [method(images[q:q + 1], images[s][None], masks[s][None]) for q, s in eps]
            uncached = (time.perf_counter() - start) / len(eps)
            start = time.perf_counter()
            cached = [method.decode(query_codes[q], tuple(torch.stack([support_codes[i][p] for i in s], dim=1)
                                                          for p in range(len(support_codes[s[0]]))))
                      for q, s in eps]
            decode = (time.perf_counter() - start) / len(eps)
            same = all(torch.allclose(a, b, atol=1e-5) for a, b in zip(direct, cached))
            print(f"{shots}-shot: uncached {uncached:.2f} s per episode, cached {decode:.2f} s per episode "
                  f"(decode only; + {per_image:.2f} s per unique image once), speed-up {uncached / decode:.2f}x, "
                  f"same logits: {same}")


if __name__ == "__main__":
    main()
