"""Benchmarks (pytest-benchmark). Every test under tests/benchmarks is marked `benchmark`, which the default
`pytest` run deselects (pyproject's addopts); `tox -e bench` runs them:

    python -m pytest -m benchmark --benchmark-enable tests/benchmarks

Each one is seconds long on `synthetic-tiny` (generated into each module's private cache) with untrained models and one torch
thread: they time the harness's machinery, not what a method learns.
"""
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents and item.get_closest_marker("benchmark") is None:
            item.add_marker(pytest.mark.benchmark)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared machine two threads on busy cores oversubscribe and the figures swing by
    tens of times; one thread gives figures that compare."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(cache_env):
    """`synthetic-tiny`, generated into the module's private FSS_BENCH_CACHE (about 2 s)."""
    from bench.data.catalog import open_dataset

    return open_dataset("synthetic-tiny")


def manifests(dataset, episodes, shots=(1, 5), seeds=(0,), split=1):
    from bench.data.episodes import EpisodeSpec, sample_episodes

    return [sample_episodes(dataset, EpisodeSpec(split, shot, seed, episodes)) for seed in seeds for shot in shots]


def decoded_store(dataset, found, size):
    """An ImageStore at `size` with every image of `found` decoded (decoding is not what is timed)."""
    from bench.data.episodes import image_ids
    from bench.data.images import ImageStore

    store = ImageStore(dataset, size)
    for image_id in image_ids(found):
        store.image(image_id)
    return store
