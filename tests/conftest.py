import pytest

from tests.voc_fixture import make_voc_tree


@pytest.fixture(scope="session")
def voc_root(tmp_path_factory):
    """A small VOC-layout tree with PASCAL-5i style lists in <root>/lists (built once per session)."""
    root = tmp_path_factory.mktemp("voc")
    make_voc_tree(root)
    return root
