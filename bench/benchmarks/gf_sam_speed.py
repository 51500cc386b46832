"""GF-SAM's speed on CPU: seconds per 1-shot and 5-shot episode in the real configuration (DINOv2 ViT-L/14 at
518, SAM ViT-H at 1024, up to 128 point prompts) or the synthetic profile's (`--reduced`). Prints figures.

    python -m bench.benchmarks.gf_sam_speed [--reduced] [--episodes 2] [--threads 2]

Random weights and random images: the number of prompts (at most 128) follows the similarity map, so the
figure is an estimate of the trained models' cost, not a measurement of it.
"""
from __future__ import annotations

import argparse
import time

import torch

from methods.gf_sam import PROFILES, GFSAM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reduced", action="store_true", help="the synthetic profile's small models")
    parser.add_argument("--episodes", type=int, default=2, help="episodes per shot setting")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    method = GFSAM(**(PROFILES["synthetic"]["options"] if args.reduced else {})).eval()
    size = method.input_size
    for shots in (1, 5):
        seconds = []
        for _ in range(args.episodes):
            query, supports = torch.randn(1, 3, size, size), torch.randn(1, shots, 3, size, size)
            masks = torch.zeros(1, shots, size, size, dtype=torch.long)
            masks[..., size // 4:size // 2, size // 4:size // 2] = 1
            start = time.perf_counter()
            with torch.no_grad():
                method(query, supports, masks)
            seconds.append(time.perf_counter() - start)
        print(f"gf-sam {'reduced' if args.reduced else 'ViT-L/14 + SAM ViT-H'} {shots}-shot: "
              f"{sum(seconds) / len(seconds):.2f} s per episode ({args.threads} threads, {size} px)")


if __name__ == "__main__":
    main()
