import pytest

from bench.cli.commands import main
from tests.voc_fixture import make_voc_tree


def pytest_collection_modifyitems(config, items):
    """Tests marked cuda skip where torch sees no CUDA GPU."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def voc_root(tmp_path_factory):
    """A small VOC-layout tree with PASCAL-5i style lists in <root>/lists (built once per session)."""
    root = tmp_path_factory.mktemp("voc")
    make_voc_tree(root)
    return root


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    """A private FSS_BENCH_CACHE per test module (synthetic-tiny and the tiny backbone are built into it)."""
    root = tmp_path_factory.mktemp("cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("FSS_BENCH_CACHE", str(root))
    yield root
    patch.undo()


@pytest.fixture(scope="module")
def pascal_run(voc_root, tmp_path_factory):
    """A finished run (reference methods, PASCAL-5i fixture, split 1, shots 1 and 3, qualitative files)."""
    out = tmp_path_factory.mktemp("bad") / "run"
    assert main(["run", "--methods", "support-copy", "all-foreground", "--dataset", "pascal5i", "--data-root",
                 str(voc_root), "--lists", str(voc_root / "lists"), "--splits", "1", "--shots", "1", "3",
                 "--seeds", "0", "--episodes", "10", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def trained(cache_env, tmp_path_factory):
    """A checkpoint root holding a finished PANet checkpoint for synthetic-tiny split 1 (tiny profile)."""
    root = tmp_path_factory.mktemp("ckpt")
    assert main(["train", "--methods", "panet", "--dataset", "synthetic-tiny", "--splits", "1",
                 "--checkpoints", str(root), "--quiet"]) == 0
    return root
