"""Memory-bounded ImageStore and CodeCache (issue 15): LRU eviction, spill folder, identical results."""
import numpy as np
import pandas as pd
import pytest
import torch

from bench.data.catalog import open_dataset
from bench.data.episodes import EpisodeSpec, sample_episodes
from bench.data.images import ImageStore, LRUCache
from bench.evaluation.features import CodeCache
from bench.evaluation.loop import evaluate_manifest
from bench.training.profiles import PROFILES
from tests.method_helpers import tiny_method

SIZE = PROFILES["tiny"].input_size


@pytest.fixture(scope="module")
def tiny(cache_env):
    return open_dataset("synthetic-tiny")


@pytest.fixture(scope="module")
def setup(tiny):
    method = tiny_method("simpropnet", seed=3).eval()
    manifest = sample_episodes(tiny, EpisodeSpec(1, 2, seed=0, episodes=20))
    reference = evaluate_manifest(method, ImageStore(tiny, SIZE, budget_bytes=None), manifest, batch_size=4,
                                  quiet=True, features=CodeCache(ImageStore(tiny, SIZE, budget_bytes=None),
                                                                 budget_bytes=None))
    return method, manifest, reference


def test_lru_evicts_the_least_recently_used():
    cache = LRUCache(budget_bytes=3 * 8)
    for key in "abc":
        cache.put(key, np.zeros(1, np.float64))
    cache.get("a")  # now b is the oldest
    cache.put("d", np.zeros(1, np.float64))
    assert cache.keys() == ["c", "a", "d"] and cache.evictions == 1 and cache.bytes == 24
    cache.put("big", np.zeros(4, np.float64))  # larger than the budget: not kept, nothing evicted
    assert "big" not in cache and cache.keys() == ["c", "a", "d"]


def test_evictions_hand_the_freed_heap_back_every_few_hundred_mb(monkeypatch):
    import bench.data.images as images

    trims = []
    monkeypatch.setattr(images, "release_free_heap", lambda: trims.append(1) or True)
    monkeypatch.setattr(images, "TRIM_EVERY_BYTES", 3 * 400)
    cache = LRUCache(budget_bytes=800)
    for key in range(2):
        cache.put(key, np.zeros(100, np.float32))   # 400 bytes each: fits, nothing evicted
    assert trims == []
    for key in range(2, 5):
        cache.put(key, np.zeros(100, np.float32))   # evicts 0, 1, 2: 1200 bytes freed
    assert len(trims) == 1 and cache.evictions == 3
    cache.put(5, np.zeros(100, np.float32))
    assert len(trims) == 1                          # counted again from 0


def test_release_free_heap_reaches_glibc_where_there_is_one():
    from bench.core.memory import release_free_heap

    import platform
    expected = platform.libc_ver()[0] == "glibc"
    assert release_free_heap() is expected


def test_store_under_a_tiny_budget_decodes_again_and_gives_the_same_arrays(tiny):
    ids = sorted({i for i, _ in tiny.pairs(1, "test")})[:6]
    free, small = ImageStore(tiny, SIZE, budget_bytes=None), ImageStore(tiny, SIZE, budget_bytes=1)
    for _ in range(2):
        for i in ids:
            assert torch.equal(free.image(i), small.image(i))  # each call decodes again
            assert np.array_equal(free.label(i), small.label(i))
            assert np.array_equal(free.original(i), small.original(i))
    assert free.decoded == len(ids) and small.decoded == 4 * len(ids) and small.cached_bytes == 0


@pytest.mark.parametrize("budget", [1, 20_000])
def test_bounded_code_cache_gives_identical_counts(tiny, setup, budget):
    method, manifest, reference = setup
    store = ImageStore(tiny, SIZE, budget_bytes=budget)
    cache = CodeCache(store, budget_bytes=budget)
    rows = evaluate_manifest(method, store, manifest, batch_size=4, quiet=True, features=cache)
    pd.testing.assert_frame_equal(reference, rows)
    assert cache.evictions > 0 or budget == 1
    assert cache.recomputed > 0 and cache.cached_bytes <= budget


def test_spilled_codes_are_bit_exact_and_the_folder_is_removed(tiny, setup, tmp_path):
    method, manifest, reference = setup
    store = ImageStore(tiny, SIZE, budget_bytes=None)
    cache = CodeCache(store, budget_bytes=20_000, spill_dir=str(tmp_path / "spill"))
    rows = evaluate_manifest(method, store, manifest, batch_size=4, quiet=True, features=cache)
    pd.testing.assert_frame_equal(reference, rows)
    assert cache.spill_reads > 0
    files = list((tmp_path / "spill").rglob("*"))
    assert any(f.suffix == ".npz" for f in files) and not any(f.suffix == ".tmp" for f in files)
    cache.close()
    assert list((tmp_path / "spill").iterdir()) == []


def test_a_failed_spill_leaves_no_partial_file(tiny, setup, tmp_path, monkeypatch):
    method, manifest, _ = setup
    cache = CodeCache(ImageStore(tiny, SIZE), budget_bytes=1, spill_dir=str(tmp_path))

    def fail(f, *arrays):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail)
    code = (torch.ones(3),)
    with pytest.raises(OSError):
        cache._spill(("q", "x"), code)
    assert [f for f in tmp_path.rglob("*") if f.is_file()] == []


def test_an_image_passes_the_backbone_once_for_all_its_codes(tiny, setup):
    """Asked for one code of an image the cache could not pre-encode, the cache computes every code of that
    image the manifest uses (query and supports) in the same backbone pass."""
    method, manifest, _ = setup
    store = ImageStore(tiny, SIZE, budget_bytes=None)
    probe = CodeCache(store, budget_bytes=None)
    probe.prepare(method, manifest.iloc[[0]])
    per_code = probe.cached_bytes // (1 + 2)  # one query code and two support codes
    roles = {}
    for q, s, c in zip(manifest["query"], manifest["supports"], manifest["class_id"]):
        roles.setdefault(q, set()).add(("q",))
        for i in s.split():
            roles.setdefault(i, set()).add(("s", int(c)))
    both = [i for i, r in roles.items() if ("q",) in r and any(k[0] == "s" for k in r)]
    assert both, "the fixture manifest has an image used as query and as support"
    cache = CodeCache(store, batch_size=1, budget_bytes=6 * per_code)
    cache.prepare(method, manifest)
    image = next(i for i in reversed(both) if ("q", i) not in cache._codes)
    before = cache.encoded
    cache.query_codes([image])
    assert cache.encoded == before + 1
    for _, class_id in (k for k in roles[image] if k[0] == "s"):
        cache.support_codes([[image]], [class_id])
    assert cache.encoded == before + 1
