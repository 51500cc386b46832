"""The measurements of `python -m bench.benchmarks.device`: evaluation speed (cached and uncached, peak GPU
memory, GPU utilisation), and the per-episode counts of two settings (devices, precisions) compared.

Every measurement goes through the harness's own evaluation (`evaluate_manifest`, `CodeCache`,
`ImageStore`), in chunks of episodes, so a part stops at its time budget and reports what it did.
"""
from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import pandas as pd
import torch

from analyses.metrics import evaluate_rows
from bench.data.catalog import open_dataset
from bench.data.episodes import EpisodeSpec, sample_episodes
from bench.data.images import ImageStore
from bench.evaluation.features import CodeCache
from bench.evaluation.loop import evaluate_manifest
from bench.evaluation.precision import autocast
from methods import build_method

CHUNK = 25  # episodes between two looks at the clock


class Budget:
    """Seconds a part may use, from its start."""

    def __init__(self, seconds: float):
        self.seconds, self.start = seconds, time.monotonic()

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)


class Utilisation:
    """The GPU's utilisation (percent), sampled every `every` s in a thread while in the `with` block:
    torch.cuda.utilization (pynvml), else nvidia-smi; `mean` is None on CPU or where neither answers."""

    def __init__(self, device: str, every: float = 0.2):
        self.device, self.every, self.samples = device, every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def read(self) -> Optional[float]:
        if not self.device.startswith("cuda"):
            return None
        try:
            return float(torch.cuda.utilization(torch.device(self.device)))
        except Exception:  # no pynvml: ask nvidia-smi
            pass
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=5).stdout.split()
            return float(out[0]) if out else None
        except (OSError, ValueError, subprocess.SubprocessError):
            return None

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            value = self.read()
            if value is None:
                return
            self.samples.append(value)

    @property
    def mean(self) -> Optional[float]:
        return round(float(np.mean(self.samples)), 1) if self.samples else None

    def __enter__(self) -> "Utilisation":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Workload:
    """A method on the episodes of one (split 1, shot, seed 0) manifest at its input size."""

    method: str
    size: int
    options: Dict
    dataset: str
    episodes: int
    shot: int = 1

    def build(self, device: str):
        torch.manual_seed(0)  # random weights, the same on every device
        return build_method(self.method, **self.options).eval().to(device)

    def manifest(self) -> pd.DataFrame:
        return sample_episodes(open_dataset(self.dataset), EpisodeSpec(1, self.shot, 0, self.episodes))

    def store(self) -> ImageStore:
        return ImageStore(open_dataset(self.dataset), self.size)


def evaluate(method, store: ImageStore, manifest: pd.DataFrame, device: str, budget: Budget, cached: bool,
             precision: str = "fp32", batch_size: int = 16) -> pd.DataFrame:
    """Per-episode rows of the episodes evaluated before the budget ran out (chunks of CHUNK)."""
    features = CodeCache(store, device) if cached and CodeCache.supports(method) and not method.native_resolution \
        else None
    rows = []
    with autocast(device, precision):
        for start in range(0, len(manifest), CHUNK):
            if budget.left() <= 0:
                break
            rows.append(evaluate_manifest(method, store, manifest.iloc[start:start + CHUNK], batch_size=batch_size,
                                          device=device, features=features, quiet=True))
    if features is not None:
        features.close()
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def speed(work: Workload, device: str, budget: Budget, precision: str = "fp32") -> Dict:
    """Episodes per second uncached and, where the method's codes cache, cached (each from a cold image
    store: decoding counted), peak GPU memory and mean GPU utilisation of each, and how the counts of the
    two compare."""
    method, manifest = work.build(device), work.manifest()
    applies = CodeCache.supports(method) and not method.native_resolution
    out, counts = {"cache_applies": applies}, {}
    modes = (False, True) if applies else (False,)
    for i, cached in enumerate(modes):
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        with Utilisation(device) as gpu:
            start = time.perf_counter()
            rows = evaluate(method, work.store(), manifest, device, Budget(budget.left() / (len(modes) - i)), cached,
                            precision)
            synchronize(device)
            seconds = time.perf_counter() - start
        key = "cached" if cached else "uncached"
        counts[key] = rows
        out[key] = {"episodes": len(rows), "seconds": round(seconds, 2),
                    "episodes_per_s": round(len(rows) / seconds, 2) if len(rows) else None,
                    "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2 ** 20) if device.startswith("cuda")
                    else None, "gpu_utilisation": gpu.mean}
    if applies:
        out["cached_vs_uncached"] = compare_counts(counts["uncached"], counts["cached"])
    return out


def compare_counts(first: pd.DataFrame, second: pd.DataFrame) -> Dict:
    """How the per-episode counts of two settings differ: per episode, the net change of correctly
    classified pixels (|d fg_inter| + |d bg_inter|, a lower bound of the pixels whose prediction flipped),
    its distribution, and the mIoU of each setting (percent)."""
    n = min(len(first), len(second))
    first, second = first.head(n).reset_index(drop=True), second.head(n).reset_index(drop=True)
    if not n:
        return {"episodes": 0}
    assert list(first["episode"]) == list(second["episode"])
    changed = ((first["fg_inter"] - second["fg_inter"]).abs() + (first["bg_inter"] - second["bg_inter"]).abs())
    pixels = first["fg_union"] + first["bg_inter"]  # the scored pixels of the episode
    q = np.percentile(changed, [50, 90, 100])
    return {"episodes": n, "identical": int((changed == 0).sum()), "changed_pixels_median": round(float(q[0]), 1),
            "changed_pixels_p90": round(float(q[1]), 1), "changed_pixels_max": round(float(q[2]), 1),
            "changed_fraction_max": round(float((changed / pixels.clip(lower=1)).max()), 6),
            "miou_first": round(100 * float(evaluate_rows(first)["miou"]), 3),
            "miou_second": round(100 * float(evaluate_rows(second)["miou"]), 3)}


def counts_across(work: Workload, settings: List[Dict], budget: Budget) -> Dict:
    """Per-episode counts of the same episodes under two settings ({"device", "precision"}), compared, and
    each setting's speed (cached)."""
    manifest, results, speeds = work.manifest(), [], []
    for i, setting in enumerate(settings):
        share = Budget(budget.left() / (len(settings) - i))
        method = work.build(setting["device"])
        start = time.perf_counter()
        rows = evaluate(method, work.store(), manifest, setting["device"], share, True, setting["precision"])
        synchronize(setting["device"])
        results.append(rows)
        speeds.append(round(len(rows) / (time.perf_counter() - start), 2) if len(rows) else None)
        manifest = manifest.head(len(rows))  # the second setting evaluates what the first could
    return {"settings": settings, "episodes_per_s": speeds, **compare_counts(*results)}
