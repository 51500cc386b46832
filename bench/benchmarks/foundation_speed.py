"""The training-free foundation methods' speed on CPU: seconds per 1-shot and 5-shot episode of GF-SAM or
Matcher in the real configuration (DINOv2 ViT-L/14 at 518, SAM ViT-H at 1024) or the synthetic profile's
(`--reduced`). Prints figures.

    python -m bench.benchmarks.foundation_speed --method matcher [--reduced] [--episodes 2] [--threads 2] [--parts]

`--parts` (Matcher): its parts timed once each instead of whole episodes (an episode takes more than 15
minutes on one CPU thread): DINOv2 on one image, SAM's image embedding, one batch of 64 prompts of the dense
grid and of the prompt sets, one earth mover's distance; with the counts of the COCO configuration they add up to
an episode's estimate.

Random weights and random images: the number of prompts and of the masks SAM's quality filters pass follows
the weights, so the figure is an estimate of the trained models' cost, not a measurement of it. With random
weights Matcher's filters pass no mask, so for it the script also times one earth mover's distance (its cost
per distinct proposal) at a typical size.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from methods import METHODS, build_method
from methods.matcher import earth_movers

NAMES = {"gf-sam": "ViT-L/14 + SAM ViT-H", "matcher": "ViT-L/14 + SAM ViT-H"}


def episode_seconds(method, shots: int, episodes: int) -> float:
    size = method.input_size
    seconds = []
    for _ in range(episodes):
        query, supports = torch.randn(1, 3, size, size), torch.randn(1, shots, 3, size, size)
        masks = torch.zeros(1, shots, size, size, dtype=torch.long)
        masks[..., size // 4:size // 2, size // 4:size // 2] = 1
        start = time.perf_counter()
        with torch.no_grad():
            method(query, supports, masks)
        seconds.append(time.perf_counter() - start)
    return sum(seconds) / len(seconds)


def emd_seconds(support_tokens: int = 300, mask_tokens: int = 400, repeats: int = 3) -> float:
    """One EMD between `support_tokens` and `mask_tokens` random unit features' cosine distances."""
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((support_tokens + mask_tokens, 64))
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    cost = (1 - feats[:support_tokens] @ feats[support_tokens:].T) / 2
    start = time.perf_counter()
    for _ in range(repeats):
        earth_movers(cost)
    return (time.perf_counter() - start) / repeats


def matcher_parts(model) -> None:
    """Matcher's parts, each timed once, and the COCO configuration's episode estimate from their counts."""
    size = model.input_size
    image = torch.rand(3, size, size)
    timed = {}

    def timer(name, fn):
        start = time.perf_counter()
        out = fn()
        timed[name] = time.perf_counter() - start
        print(f"matcher part {name}: {timed[name]:.2f} s")
        return out

    with torch.no_grad():
        timer("dinov2 one image", lambda: model.encoder(image[None]))
        timer("sam image embedding", lambda: model.prompter.set_image(image))
        cfg = dict(model.cfg)
        grid = 8  # 64 single points: one batch of the dense grid
        model.cfg.update(dense=True, points_per_side=grid)
        timer("sam dense batch of 64", lambda: model.proposals([]))
        sets = np.random.default_rng(0).integers(0, size, (64, 3, 2))
        model.cfg.update(dense=False)
        timer("sam 64 prompt sets of 3 points", lambda: model.proposals([sets]))
        model.cfg.clear()
        model.cfg.update(cfg)
    timed["emd"] = emd_seconds()
    print(f"matcher part one earth mover's distance, 300 x 400 tokens: {timed['emd']:.2f} s")
    dense = (cfg["points_per_side"] ** 2 + 63) // 64
    sets = (cfg["max_sample_iterations"] + 63) // 64 * (cfg["sample_range"][1] - cfg["sample_range"][0] + 1)
    for shots in (1, 5):
        total = ((1 + shots) * timed["dinov2 one image"] + timed["sam image embedding"]
                 + dense * timed["sam dense batch of 64"] + sets * timed["sam 64 prompt sets of 3 points"])
        print(f"matcher estimate {shots}-shot: {total:.0f} s per episode before the EMDs ({dense} dense and {sets} "
              f"prompt-set batches), plus {timed['emd']:.2f} s per distinct proposal")


def main(argv=None, method: str = "") -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    if not method:
        parser.add_argument("--method", choices=sorted(NAMES), required=True)
    parser.add_argument("--reduced", action="store_true", help="the synthetic profile's small models")
    parser.add_argument("--episodes", type=int, default=2, help="episodes per shot setting")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parts", action="store_true", help="Matcher: time its parts once each, estimate an episode")
    args = parser.parse_args(argv)
    name = method or args.method
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    options = METHODS.card(name).profiles["synthetic"]["options"] if args.reduced else {}
    model = build_method(name, **options).eval()
    label = "reduced" if args.reduced else NAMES[name]
    if args.parts and name == "matcher":
        matcher_parts(model)
        return
    for shots in (1, 5):
        print(f"{name} {label} {shots}-shot: {episode_seconds(model, shots, args.episodes):.2f} s per episode "
              f"({args.threads} threads, {model.input_size} px)")
    if name == "matcher":
        print(f"matcher: one earth mover's distance, 300 x 400 tokens: {emd_seconds():.2f} s")


if __name__ == "__main__":
    main()
