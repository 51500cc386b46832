"""Where a training step of the main job goes: batch assembly, the frozen backbone, the head's forward and loss,
backward, the optimizer, and the epoch's validation; seconds per step (median of the measured steps) and each
part's share. Prints figures; asserts nothing.

    python -m bench.benchmarks.train_step [--methods simpropnet] [--dataset synthetic] [--split 1]
        [--steps 40] [--threads 2] [--processes 1]

`--processes N` measures N trainings at once, each in its own process with `--threads` threads (what
`bench run --train-jobs N` does): the figures are then each process's, and the four splits' training time
counts ceil(4 / N) rounds.

It builds what `bench train` builds (the method's profile for the dataset, its pretrained synthnet, the first
epoch's episodes) and runs the steps of `bench.training.train.optimization_step` part by part, without saving
anything. Run it on an idle machine: it measures wall time.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Dict, List

import torch

from bench.cli.arguments import build
from bench.cli.commands import build_parser
from bench.data.images import ImageStore
from bench.evaluation.features import CodeCache
from bench.evaluation.loop import evaluate_manifest
from bench.runs.config import RunConfig
from bench.runs.session import open_session
from bench.training.train import (make_optimizer, set_lr, split_held_out, training_batch,
                                  training_episodes, validation_manifest)
from methods import build_method
from methods.common import TrainingContext

PARTS = ("batch", "backbone", "head + loss", "backward", "optimizer")


def profile_method(name: str, args: argparse.Namespace) -> Dict[str, float]:
    """Seconds per step of each part (medians over `args.steps` steps after 3 warm-up steps) and the seconds of
    one epoch's validation."""
    config = build(RunConfig, build_parser().parse_args(
        ["train", "--methods", name, "--dataset", args.dataset, "--splits", str(args.split), "--quiet"]))
    session = open_session(config, "cpu", quiet=True)
    request = session.models.request(name, args.split)
    dataset, profile = session.models.dataset, request.profile
    train_pairs, held = split_held_out(dataset.pairs(args.split, "train"))
    store = ImageStore(dataset, profile.input_size)
    torch.manual_seed(0)
    method = build_method(name, **request.method_options)
    optimizer = make_optimizer(profile, [p for p in method.parameters() if p.requires_grad])
    steps = (profile.episodes_per_epoch or len(train_pairs)) // profile.batch_size
    total = profile.epochs * steps
    manifest = training_episodes(train_pairs, 0, args.split, 0, steps, profile.batch_size, method, 0, total)
    train_classes = sorted({c for _, c in train_pairs})
    method.train()
    times: Dict[str, List[float]] = {part: [] for part in PARTS}
    for step, rows in list(manifest.groupby("step", sort=True))[:args.steps + 3]:
        set_lr(optimizer, profile, step, total)
        marks = [time.perf_counter()]
        query, supports, support_masks, query_mask, labels = training_batch(store, rows, train_classes)
        context = TrainingContext(class_ids=torch.tensor(rows["class_id"].tolist()), query_labels=labels,
                                  base_classes=train_classes)
        marks.append(time.perf_counter())
        query_feats, support_feats = method.encode_episode(query, supports)
        marks.append(time.perf_counter())
        loss = method.training_loss(query_feats, support_feats, support_masks, query_mask, context=context)
        marks.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        marks.append(time.perf_counter())
        optimizer.step()
        marks.append(time.perf_counter())
        if step >= 3:
            for part, begin, end in zip(PARTS, marks, marks[1:]):
                times[part].append(end - begin)
    figures = {part: statistics.median(values) for part, values in times.items()}
    start = time.perf_counter()
    evaluate_manifest(method.eval(), store, validation_manifest(dataset, request, held), batch_size=16,
                      device="cpu", quiet=True, features=CodeCache(store, "cpu"))
    figures["validation"] = time.perf_counter() - start
    figures["steps per epoch"], figures["epochs"] = steps, profile.epochs
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["simpropnet"])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--split", type=int, default=1)
    parser.add_argument("--steps", type=int, default=40, help="measured steps (after 3 warm-up steps)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--processes", type=int, default=1, help="trainings measured at once, one process each")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"training step on {args.dataset} split {args.split}, {args.threads} threads x {args.processes} processes, "
          f"median of {args.steps} steps")
    print(f"{'method':<22}" + "".join(f"{part:>17}" for part in PARTS) + f"{'step':>9}{'validation':>12}{'training':>11}"
          f"{'4 splits':>11}")
    for name in args.methods:
        for f in measure(name, args):
            step = sum(f[part] for part in PARTS)
            training = (step * f["steps per epoch"] + f["validation"]) * f["epochs"]
            rounds = -(-4 // args.processes)
            print(f"{name:<22}" + "".join(f"{1000 * f[p]:8.1f} ms ({100 * f[p] / step:2.0f}%)" for p in PARTS)
                  + f"{1000 * step:6.0f} ms{f['validation']:10.1f} s{training / 60:8.1f} min{rounds * training / 60:7.1f} min")
    print("training: (step x steps per epoch + validation) x epochs, the estimate of one split's training; 4 splits: "
          "ceil(4 / processes) of them in turn")
    return 0


def _measure_in_process(name: str, args: argparse.Namespace) -> Dict[str, float]:
    torch.set_num_threads(args.threads)
    return profile_method(name, args)


def measure(name: str, args: argparse.Namespace) -> List[Dict[str, float]]:
    """The figures of `name`, one dict per process (`args.processes` at once, spawned; 1: in this process)."""
    if args.processes <= 1:
        return [profile_method(name, args)]
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
        return pool.starmap(_measure_in_process, [(name, args)] * args.processes)


if __name__ == "__main__":
    raise SystemExit(main())
