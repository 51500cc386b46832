"""Evaluation speed: cached vs uncached episodes per second on the same episodes.

    python -m bench.benchmarks.cache [--method simpropnet] [--episodes 200] [--backbone synthnet|resnet50]

Uncached: every episode runs the whole model (backbone, encoder, fusion, decoder) on its 1 + k images,
as a per-episode loop does (images are decoded once in both cases). Cached: the backbone and the
episode-independent parts run once per unique image (and support class), each episode only decodes.
Both loops use the same model, the same manifests (3 seeds x 1- and 5-shot of one split) and give
the same per-episode counts (checked). `--backbone resnet50` uses a random-init ResNet-50 at 321 x 321
with a 256-wide head, the paper's configuration, to show the ratio where the backbone is heavy.
"""
from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from bench.data.catalog import open_dataset
from bench.data.episodes import EpisodeSpec, image_ids, sample_episodes
from bench.data.images import ImageStore
from bench.evaluation.features import CodeCache
from bench.evaluation.loop import evaluate_manifest
from methods import build_method


def measure(method, store, manifests, features):
    start = time.perf_counter()
    rows = [evaluate_manifest(method, store, m, batch_size=16, quiet=True, features=features) for m in manifests]
    return time.perf_counter() - start, pd.concat(rows, ignore_index=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="simpropnet")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--split", type=int, default=1)
    parser.add_argument("--episodes", type=int, default=200, help="episodes per (seed, shot) manifest")
    parser.add_argument("--backbone", default="synthnet", choices=["synthnet", "resnet50"])
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.backbone == "resnet50":
        method, size = build_method(args.method, backbone="resnet50", backbone_enum=None), 321
    else:
        method, size = build_method(args.method, backbone="synthnet", width=128, aspp_rates=(2, 4, 6)), 112
    dataset = open_dataset(args.dataset)
    store = ImageStore(dataset, size)
    manifests = [sample_episodes(dataset, EpisodeSpec(args.split, shot, seed, args.episodes))
                 for seed in (0, 1, 2) for shot in (1, 5)]
    episodes = sum(len(m) for m in manifests)
    for image_id in image_ids(manifests):  # decode every image before timing
        store.image(image_id)
    cache = CodeCache(store)
    cached_time, cached = measure(method, store, manifests, cache)
    encode_start = time.perf_counter()
    CodeCache(store).prepare(method, pd.concat(manifests))
    encode_time = time.perf_counter() - encode_start
    uncached_time, uncached = measure(method, store, manifests, None)
    same = cached.equals(uncached)
    print(f"method {args.method}, backbone {args.backbone} at {size}x{size}, split {args.split}, "
          f"{episodes} episodes (3 seeds x 1- and 5-shot x {args.episodes}), torch threads {torch.get_num_threads()}")
    print(f"uncached: {uncached_time:8.2f} s  {episodes / uncached_time:8.1f} episodes/s")
    print(f"cached:   {cached_time:8.2f} s  {episodes / cached_time:8.1f} episodes/s  "
          f"(speed-up {uncached_time / cached_time:.1f}x; identical per-episode counts: {same})")
    print(f"cached work: {cache.encoded} unique images encoded, {encode_time / max(cache.encoded, 1) * 1000:.1f} ms per "
          f"unique image; decoding {(cached_time - encode_time) / episodes * 1000:.2f} ms per episode; "
          f"uncached {uncached_time / episodes * 1000:.2f} ms per episode")


if __name__ == "__main__":
    main()
