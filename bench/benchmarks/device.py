"""The device check (issue 29): one prepared, self-checking command for a lent GPU, runnable without a
package registry (`pip install --no-deps -e .`; pycocotools and ray are not needed).

    python -m bench.benchmarks.device --out DIR [--device auto] [--scale 1.0]

It prints the device, then runs each part under its time budget (in all under 8 minutes on one GPU):
(a) the tests marked `cuda`; (b) the README's main job on the synthetic benchmark, timed; (c) HSNet
ResNet-50 at 400 and PFENet ResNet-50 at 473 (the authors' architectures, random weights) on 1000
synthetic episodes: episodes/s, peak GPU memory, GPU utilisation, cached vs uncached; (d) CPU vs GPU
per-episode counts on 50 episodes; (e) bf16 and fp16 (`--precision`) against fp32. Without a GPU it says
so and runs the parts in a reduced form (synthetic-tiny, a few episodes, small inputs; (d) compares two CPU
runs). Figures go to DIR/device.json and DIR/device.md; the exit status is 1 if a check failed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import pandas as pd
import torch

from analyses.metrics import evaluate_rows

from bench.benchmarks.device_report import write_report
from bench.benchmarks.gpu_measure import Budget, Workload, compare_counts, counts_across, speed
from bench.core.environment import describe_environment, resolve_device

ROOT = Path(__file__).resolve().parents[2]
#: seconds of each part on a GPU (7 minutes in all: a minute left for start-up and a last chunk over its
#: budget, to stay under 8); scaled by --scale
BUDGETS = {"tests": 50, "main_job": 130, "speed": 140, "counts": 45, "precision": 60}
#: most boundary pixels per episode by which two settings' counts may differ, and as a fraction of its pixels
HANDFUL, HANDFUL_FRACTION = 16, 0.002


def workloads(gpu: bool) -> List[Workload]:
    """HSNet at 400 (the shared pipeline's input: its codes cache) and PFENet (the authors' architecture, which
    resizes each episode itself: nothing to cache) at 473 on 1000 synthetic episodes; reduced: at 64 and 65
    on 4 synthetic-tiny episodes."""
    episodes, dataset = (1000, "synthetic") if gpu else (4, "synthetic-tiny")
    hsnet, pfenet = (400, 473) if gpu else (64, 65)
    return [Workload("hsnet", hsnet, {"backbone": "resnet50", "backbone_enum": None}, dataset,
                     episodes),
            Workload("pfenet", pfenet, {"architecture": "authors", "backbone_enum": None, "input_size": pfenet},
                     dataset, episodes)]


def part_tests(device: str, budget: Budget, out: Path) -> Dict:
    """(a) The tests marked cuda (they skip without a GPU: reported as skipped here)."""
    if not device.startswith("cuda"):
        return {"status": "skipped", "note": "no GPU: the tests marked cuda skip"}
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-o", "addopts=", "-p", "no:cacheprovider",
               str(ROOT / "tests")]
    return {**subprocess_part(command, budget, out), "command": " ".join(command[1:])}


def part_main_job(device: str, budget: Budget, out: Path) -> Dict:
    """(b) The README's main job (`bench run --methods simpropnet --shots 1 5`) on this device, timed, in a
    private FSS_BENCH_HOME; reduced: on synthetic-tiny, split 1, 1-shot, 8 episodes."""
    command = main_job(device, out / "main-job")
    return {**subprocess_part(command, budget, out), "command": " ".join(command[1:])}


def main_job(device: str, folder: Path, *extra: str) -> List[str]:
    """The main job's command line, into `folder` (reduced without a GPU)."""
    reduced = ["--dataset", "synthetic-tiny", "--splits", "1", "--seeds", "0", "--episodes", "8"]
    return [sys.executable, "-m", "bench", "run", "--methods", "simpropnet", "--shots", "1",
            *(["5"] if device.startswith("cuda") else reduced), "--device", device, "--out", str(folder), "--quiet",
            "--log-file", f"{folder}.log", *extra]


def main_job_bf16(device: str, budget: Budget, out: Path) -> Dict:
    """The main job's split 1, seed 0 again at bf16 with the checkpoints (b) trained: its mIoU per shot
    against (b)'s fp32 on the same episodes, and how the per-episode counts differ."""
    if not (out / "main-job" / "episodes.csv").is_file():
        return {"error": "the main job (b) did not finish: no trained checkpoints to compare"}
    command = main_job(device, out / "main-job-bf16", "--precision", "bf16", "--no-train")
    if device.startswith("cuda"):
        command += ["--splits", "1", "--seeds", "0"]
    ran = subprocess_part(command, budget, out)
    if ran["status"] != "ok":
        return {"error": f"the bf16 run: {ran['status']}", **ran}
    full, half = (pd.read_csv(out / name / "episodes.csv") for name in ("main-job", "main-job-bf16"))
    keys = ["method", "split", "shot", "seed", "episode"]
    full = full.merge(half[keys], on=keys)
    by_shot = {int(shot): {"miou_fp32": round(100 * float(evaluate_rows(full[full["shot"] == shot])["miou"]), 2),
                           "miou_bf16": round(100 * float(evaluate_rows(half[half["shot"] == shot])["miou"]), 2)}
               for shot in sorted(half["shot"].unique())}
    return {"command": " ".join(command[1:]), "seconds": ran["seconds"], "miou_by_shot": by_shot,
            "settings": [{"device": device, "precision": "fp32"}, {"device": device, "precision": "bf16"}],
            **compare_counts(full.sort_values(keys), half.sort_values(keys))}


def subprocess_part(command: List[str], budget: Budget, out: Path) -> Dict:
    env = {**os.environ, "FSS_BENCH_HOME": str(out / "home"), "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=max(budget.left(), 1), env=env,
                              cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"status": "budget", "seconds": round(time.perf_counter() - start, 1),
                "note": "stopped at its time budget"}
    lines = (done.stdout + done.stderr).strip().splitlines()
    return {"status": "ok" if done.returncode == 0 else "failed", "seconds": round(time.perf_counter() - start, 1),
            "returncode": done.returncode, "tail": lines[-24:]}


def part_speed(device: str, budget: Budget, out: Path) -> Dict:
    """(c) Speed of each workload, cached and uncached."""
    works = workloads(device.startswith("cuda"))
    figures = {}
    for i, work in enumerate(works):
        figures[f"{work.method}@{work.size}"] = speed(work, device, Budget(budget.left() / (len(works) - i)))
    verdicts = [verdict(f["cached_vs_uncached"]) for f in figures.values() if f["cache_applies"]]
    return {"status": "failed" if "failed" in verdicts else "ok", **figures}


def part_counts(device: str, budget: Budget, out: Path) -> Dict:
    """(d) CPU vs this device on 50 episodes of HSNet (reduced: two CPU runs of 4 episodes)."""
    work = workloads(device.startswith("cuda"))[0]
    work.episodes = min(work.episodes, 50)
    figures = counts_across(work, [{"device": "cpu", "precision": "fp32"}, {"device": device, "precision": "fp32"}],
                            budget)
    return {"status": verdict(figures), **figures}


def part_precision(device: str, budget: Budget, out: Path) -> Dict:
    """(e) bf16 and fp16 against fp32 on this device (HSNet, 200 episodes; reduced: 4), counts and speed, in
    a quarter of the budget each; then the trained main job at bf16 (`main_job_bf16`). Reported, not checked:
    reduced precision may change more than a handful of pixels."""
    work = workloads(device.startswith("cuda"))[0]
    work.episodes = min(work.episodes, 200)
    figures = {}
    for i, precision in enumerate(("bf16", "fp16")):
        try:
            figures[precision] = counts_across(work, [{"device": device, "precision": "fp32"},
                                                      {"device": device, "precision": precision}],
                                               Budget(budget.left() / (4 - i)))
        except Exception as exc:  # fp16 autocast unsupported on this device: said, not fatal
            figures[precision] = {"error": str(exc).splitlines()[0]}
    figures["main job bf16"] = main_job_bf16(device, budget, out)
    return {"status": "ok", **figures}


def verdict(figures: Dict) -> str:
    """ok when every episode's counts differ by at most a handful of pixels."""
    if not figures.get("episodes"):
        return "budget"
    small = figures["changed_pixels_max"] <= HANDFUL or figures["changed_fraction_max"] <= HANDFUL_FRACTION
    return "ok" if small else "failed"


PARTS: Dict[str, Callable[[str, Budget, Path], Dict]] = {
    "tests": part_tests, "main_job": part_main_job, "speed": part_speed, "counts": part_counts,
    "precision": part_precision}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder of device.json and device.md (and the parts' files)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every part's time budget")
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS), help="the parts to run")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    environment = describe_environment(device)
    gpu = environment.get("gpu")
    print(f"device: {device}" + (f" ({gpu}, CUDA {environment.get('cuda')})" if gpu else
                                 " (no GPU visible to torch: the parts run in a reduced form)"), flush=True)
    record = {"device": device, "gpu": gpu, "reduced": not device.startswith("cuda"), "torch": torch.__version__,
              "budgets_s": {k: v * args.scale for k, v in BUDGETS.items()}, "parts": {}}
    for name in args.parts:
        budget = Budget(BUDGETS[name] * args.scale)
        start = time.perf_counter()
        try:
            result = PARTS[name](device, budget, out)
        except Exception as exc:  # a part that breaks is a finding: the others still run
            result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
        result["wall_s"] = round(time.perf_counter() - start, 1)
        record["parts"][name] = result
        print(f"{name}: {result['status']} in {result['wall_s']} s", flush=True)
        (out / "device.json").write_text(json.dumps(record, indent=1, default=str))  # what is done survives a kill
    write_report(record, out)
    print((out / "device.md").read_text())
    return 1 if any(p["status"] == "failed" for p in record["parts"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
