"""Executors: the same evaluation grid with the local executor and with Ray; wall times and Ray's overhead.

    python -m bench.benchmarks.executors --methods simpropnet canet --shots 1 5 \\
        [--dataset synthetic-tiny --profile tiny --episodes 1000 --checkpoints DIR --out DIR --threads N]

The grid's missing checkpoints are trained first (not timed). Then the grid is evaluated into two fresh
run directories: once in this process (local executor), once as Ray tasks on a local cluster (its
start-up timed separately; worker start-up, imports and each worker's own image decoding and feature
cache are part of the Ray wall time, as in any real Ray run). The per-episode rows must be identical.
Ray's scheduling overhead is also measured alone, with empty tasks.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.cli.commands import main as bench_main
from bench.runs.executors.ray import require_ray
from bench.runs.rundir import RunDir


def _noop():
    return None


def grid_seconds(out: Path) -> float:
    """Time spent inside the cells' evaluation (the `seconds` of every cell's meta)."""
    return sum(meta["seconds"] for meta in RunDir(out).cell_metas())


def empty_task_overhead(ray, cpus: int, n: int = 400):
    """Seconds per empty task: one at a time (round trip) and all at once (throughput)."""
    task = ray.remote(_noop).options(num_cpus=cpus)
    ray.get([task.remote() for _ in range(8)])  # workers up
    start = time.perf_counter()
    for _ in range(50):
        ray.get(task.remote())
    latency = (time.perf_counter() - start) / 50
    start = time.perf_counter()
    ray.get([task.remote() for _ in range(n)])
    return latency, (time.perf_counter() - start) / n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["simpropnet", "canet"])
    parser.add_argument("--shots", nargs="+", default=["1", "5"])
    parser.add_argument("--splits", nargs="+", default=["1", "2", "3", "4"])
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    parser.add_argument("--episodes", default="1000")
    parser.add_argument("--dataset", default="synthetic-tiny")
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--checkpoints", default="checkpoints")
    parser.add_argument("--cpus-per-task", default="1")
    parser.add_argument("--threads", type=int, help="torch threads of this process, i.e. of the local executor "
                                                    "(default: torch's, one per core)")
    parser.add_argument("--out", help="folder for the two run directories (default: a temporary one)")
    args = parser.parse_args(argv)
    ray = require_ray()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out or tempfile.mkdtemp(prefix="executors-"))
    common = ["--methods", *args.methods, "--dataset", args.dataset, "--profile", args.profile,
              "--checkpoints", args.checkpoints, "--quiet"]
    grid = ["run", *common, "--splits", *args.splits, "--shots", *args.shots, "--seeds", *args.seeds,
            "--episodes", args.episodes, "--no-train"]
    cells = len(args.methods) * len(args.splits) * len(args.shots) * len(args.seeds)
    if bench_main(["train", *common, "--splits", *args.splits]) != 0:
        return 1
    start = time.perf_counter()
    if bench_main([*grid, "--out", str(out / "local"), "--overwrite"]) != 0:
        return 1
    local = time.perf_counter() - start
    start = time.perf_counter()
    ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    cluster_start = time.perf_counter() - start
    cpus = int(ray.cluster_resources()["CPU"])
    start = time.perf_counter()
    if bench_main([*grid, "--out", str(out / "ray"), "--overwrite", "--executor", "ray",
                   "--cpus-per-task", args.cpus_per_task]) != 0:
        return 1
    distributed = time.perf_counter() - start
    latency, throughput = empty_task_overhead(ray, int(args.cpus_per_task))
    ray.shutdown()
    same = (out / "local" / "episodes.csv").read_bytes() == (out / "ray" / "episodes.csv").read_bytes()
    work_local, work_ray = grid_seconds(out / "local"), grid_seconds(out / "ray")
    print(f"grid: {' '.join(args.methods)} x splits {' '.join(args.splits)} x shots {' '.join(args.shots)} x seeds "
          f"{' '.join(args.seeds)}, {args.episodes} episodes per cell = {cells} cells on {args.dataset} "
          f"(profile {args.profile}); this process: {torch.get_num_threads()} torch threads; Ray: {cpus} CPUs, "
          f"{args.cpus_per_task} per task")
    print(f"local executor: {local:8.2f} s wall ({work_local:.2f} s inside cells, {local / cells:.3f} s per cell)")
    print(f"ray executor:   {distributed:8.2f} s wall ({work_ray:.2f} s inside cells, summed over workers) "
          f"+ {cluster_start:.2f} s to start the local cluster")
    print(f"ray overhead per cell: {(distributed - local) / cells * 1000:+.1f} ms ((ray wall - local wall) / cells), "
          f"{(distributed + cluster_start - local) / cells * 1000:+.1f} ms with the cluster start")
    print(f"empty Ray task: {latency * 1000:.2f} ms round trip one at a time, {throughput * 1000:.2f} ms each "
          f"when submitted together")
    print(f"identical per-episode rows: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
