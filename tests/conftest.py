import pytest

from tests.voc_fixture import make_voc_tree


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
