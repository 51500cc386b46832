"""On a CUDA GPU (marked cuda: skipped elsewhere; `python -m bench.benchmarks.device` runs them): a tiny
learned run gives the CPU's per-episode counts up to a handful of boundary pixels, under fp32 and bf16, and
the code cache on the GPU gives the uncached counts."""
import pandas as pd
import pytest

from bench.benchmarks.device import HANDFUL
from bench.benchmarks.gpu_measure import Budget, Workload, compare_counts, evaluate
from bench.cli.commands import main

pytestmark = pytest.mark.cuda


def run(trained, out, *extra):
    assert main(["run", "--methods", "panet", "--dataset", "synthetic-tiny", "--splits", "1", "--shots", "1", "5",
                 "--seeds", "0", "--episodes", "20", "--checkpoints", str(trained), "--no-train", "--out", str(out),
                 "--quiet", *extra]) == 0
    return pd.read_csv(out / "episodes.csv")


@pytest.fixture(scope="module")
def on_cpu(trained, tmp_path_factory):
    return run(trained, tmp_path_factory.mktemp("cpu") / "run", "--device", "cpu")


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_gpu_counts_are_the_cpus_up_to_a_handful_of_pixels(trained, on_cpu, tmp_path, precision):
    on_gpu = run(trained, tmp_path / "run", "--device", "cuda", "--precision", precision)
    compared = compare_counts(on_cpu, on_gpu)
    assert compared["episodes"] == len(on_cpu) == 40
    assert compared["changed_pixels_max"] <= HANDFUL * (1 if precision == "fp32" else 4), compared


def test_the_code_cache_on_the_gpu_gives_the_uncached_counts(cache_env):
    work = Workload("hsnet", 64, {"backbone": "resnet50", "backbone_enum": None}, "synthetic-tiny", 16)
    method, manifest = work.build("cuda"), work.manifest()
    uncached = evaluate(method, work.store(), manifest, "cuda", Budget(600), cached=False)
    cached = evaluate(method, work.store(), manifest, "cuda", Budget(600), cached=True)
    assert len(cached) == len(uncached) == 16
    assert compare_counts(uncached, cached)["changed_pixels_max"] <= HANDFUL
