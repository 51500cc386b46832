"""Matcher's published-weights entries: the two foundation files GF-SAM uses, one entry per dataset and fold of its
logged numbers with that dataset's script configuration; seeded files laid out as the authors' load bit-exactly."""
import pytest
import torch

pytest.importorskip("timm")
pytest.importorskip("segment_anything")

from bench.training.published import PublishedModels, PublishedOptions  # noqa: E402
from methods.foundation import foundation_files  # noqa: E402
from methods.matcher import PAPER_OPTIONS, REPORTED, Matcher  # noqa: E402
from methods.weights import WEIGHTS  # noqa: E402
from tests.foundation_fixture import use_reduced, write_foundation_files  # noqa: E402


def test_one_entry_per_dataset_and_fold_with_its_config_and_logged_numbers():
    entries = WEIGHTS.for_method("matcher")
    assert sorted(e.tag for e in entries) == sorted(f"{d}-fold{f}" for d, shots in REPORTED.items()
                                                    for f in range(len(shots[1])))
    for e in entries:
        assert e.parts == foundation_files() and e.fold_verifiable and e.input_size == 518
        assert dict(e.options) == {**PAPER_OPTIONS, "config": e.dataset}
        assert e.reported[5]["miou"] == REPORTED[e.dataset][5][e.fold][0]


def test_the_real_architecture_is_exactly_the_two_files_parts():
    with torch.device("meta"):
        state = Matcher(**PAPER_OPTIONS).state_dict()
    assert all(k.startswith(("encoder.vit.", "sam.")) for k in state)
    assert state["encoder.vit.pos_embed"].shape == (1, 37 * 37 + 1, 1024)


def test_seeded_files_laid_out_as_the_authors_load_bit_exactly(monkeypatch, tmp_path):
    use_reduced(monkeypatch, "matcher")
    entry = WEIGHTS.get("matcher.coco20i-fold0")
    model = write_foundation_files(tmp_path / "w", entry, seed=4)
    published = PublishedModels(PublishedOptions(weights=[str(tmp_path / "w")]), "coco20i")
    published.resolve(["matcher"], [1])
    loaded, info = published.load("matcher", 1)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    assert set(info["files"]) == {"dinov2", "sam"}
