"""The feature cache against the per-episode loop (as `python -m bench.benchmarks.cache`, on `synthetic-tiny`):
the same episodes and model, each unique image encoded once vs the whole model per episode."""
import pandas as pd
import pytest

from tests.benchmarks.conftest import decoded_store, manifests

EPISODES = 20  # per (shot) manifest: 1- and 5-shot of split 1, seed 0
SIZE = 48      # the `tiny` profile's input size


@pytest.fixture(scope="module")
def setting(tiny):
    import torch

    from methods import build_method

    torch.manual_seed(0)
    found = manifests(tiny, EPISODES)
    method = build_method("simpropnet", backbone="synthnet", width=32, aspp_rates=(2, 4, 6))
    return method, decoded_store(tiny, found, SIZE), found


def evaluate(method, store, found, cached):
    from bench.evaluation.features import CodeCache
    from bench.evaluation.loop import evaluate_manifest

    features = CodeCache(store) if cached else None
    return pd.concat([evaluate_manifest(method, store, m, batch_size=16, quiet=True, features=features)
                      for m in found], ignore_index=True)


@pytest.mark.benchmark(group="feature cache (simpropnet, 40 episodes)")
@pytest.mark.parametrize("cached", [True, False], ids=["cached", "per-episode"])
def test_feature_cache(benchmark, setting, cached):
    method, store, found = setting
    rows = benchmark.pedantic(evaluate, args=(method, store, found, cached), rounds=3, iterations=1)
    assert rows.equals(evaluate(method, store, found, not cached))  # the cache never changes a count
