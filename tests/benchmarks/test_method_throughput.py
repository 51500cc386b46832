"""Evaluation throughput of every registered method on `synthetic-tiny` (untrained, the `tiny` profile's
options and input size; the feature cache where the method supports it, as `bench run` does)."""
import pytest

from methods.catalog import method_summaries
from tests.benchmarks.conftest import decoded_store, manifests

EPISODES = 10  # per (shot) manifest: 1- and 5-shot of split 1, seed 0
SIZE = 48


def build(name):
    from bench.training.profiles import PROFILES
    from methods import METHODS, build_method

    options = PROFILES["tiny"].options_for(name)
    if METHODS.card(name).takes_backbone:
        options = {"backbone": "synthnet", **options}
    return build_method(name, **options)


@pytest.mark.benchmark(group=f"evaluation, synthetic-tiny, {2 * EPISODES} episodes")
@pytest.mark.parametrize("name", [name for name, _ in method_summaries()])
def test_evaluation_throughput(benchmark, tiny, name):
    import torch

    from bench.evaluation.features import CodeCache
    from bench.evaluation.loop import evaluate_manifest

    torch.manual_seed(0)
    method = build(name)
    found = manifests(tiny, EPISODES)
    store = decoded_store(tiny, found, SIZE)

    def evaluate():
        features = CodeCache(store) if CodeCache.supports(method) else None
        return [evaluate_manifest(method, store, m, batch_size=16, quiet=True, features=features) for m in found]

    rows = benchmark.pedantic(evaluate, rounds=2, iterations=1)
    assert sum(len(r) for r in rows) == 2 * EPISODES
