"""Analyses on small inputs with known answers, and their commands end to end on synthetic-tiny."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from analyses import base_novel, error_overlap, error_regions, identical, protocol, similarity, tsne
from analyses.common import same_class_pairs
from bench.training.models import ModelProvider
from methods.base import FewShotSegmenter

COMMANDS = [similarity, tsne, error_regions, error_overlap, identical, protocol, base_novel]


def test_error_ratio_known_values():
    v = torch.tensor([1.0, 2.0, 0.0])
    assert error_regions.error_ratio(v, v, v, v) == pytest.approx(1.0)
    assert error_regions.error_ratio(v, 2 * v, v, v) == pytest.approx(2.0)
    assert math.isnan(error_regions.error_ratio(v, v, torch.zeros(3), v))  # undefined, not a crash


def test_ratio_summary_counts_undefined_pairs():
    frame = pd.DataFrame({"ratio": [1.0, 0.5, float("nan")]})
    summary = error_regions.summarize(frame).iloc[0]
    assert (summary.pairs, summary.defined, summary.undefined) == (3, 2, 1)
    assert summary.ratio_mean == pytest.approx(0.75)


def test_region_counts_and_overlap_by_hand():
    target = torch.tensor([[1, 1, 1, 0], [0, 0, 255, 0]])
    fss = torch.tensor([[1, 0, 0, 1], [0, 0, 1, 0]], dtype=torch.bool)
    sup = torch.tensor([[1, 1, 0, 1], [1, 0, 1, 0]], dtype=torch.bool)
    counts = error_overlap.region_counts(fss, sup, target)
    assert counts == {"gt": 3, "tp_fss": 1, "tp_sup": 2, "fn_fss": 2, "fn_sup": 1, "fn_both": 1,
                      "fp_fss": 1, "fp_sup": 2, "fp_both": 1}
    figures = error_overlap.overlap_table(pd.DataFrame([counts]))
    assert figures["fn_overlap"] == pytest.approx(50.0)  # 1 / (2 + 1 - 1)
    assert figures["fp_overlap"] == pytest.approx(50.0)  # 1 / (1 + 2 - 1)
    assert figures["tp_gap"] == pytest.approx(100 / 3)
    assert figures["fn_shared_by_supervised"] == pytest.approx(50.0)


def test_identical_vectors_have_similarity_one():
    pairs = pd.DataFrame({"class_id": [1, 1], "image_a": ["a", "a"], "image_b": ["b", "c"]})
    v = torch.tensor([0.3, 0.1, 2.0])
    vectors = {("a", 1): (v, v), ("b", 1): (2 * v, -v), ("c", 1): (v + torch.tensor([1.0, 0, 0]), v)}
    result = similarity.pair_similarities(pairs, vectors)
    assert result.fg_cosine[0] == pytest.approx(1.0) and result.bg_cosine[0] == pytest.approx(-1.0)
    assert result.fg_cosine[1] < 1.0
    assert similarity.per_class(result, {1: "x"}).iloc[-1].class_name == "all"


def test_tsne_gives_one_row_per_vector():
    vectors = np.random.default_rng(0).normal(size=(25, 8))
    coords = tsne.embed_2d(vectors, seed=0)
    assert coords.shape == (25, 2)
    assert np.allclose(coords, tsne.embed_2d(vectors, seed=0))


def test_identical_table_and_deltas():
    def summary(values):
        return pd.DataFrame([{"method": m, "split": s, "miou_mean": v, "miou_std": 0.0}
                             for (m, s), v in values.items()])

    ident = summary({("a", "1"): 80.0, ("a", "mean"): 80.0, ("b", "1"): 50.0, ("b", "mean"): 50.0})
    regular = summary({("a", "1"): 40.0, ("a", "mean"): 40.0, ("b", "1"): 45.0, ("b", "mean"): 45.0})
    table = identical.table(ident, regular, ["a", "b"])
    assert list(table.gain_identical_over_regular) == [40.0, 40.0, 5.0, 5.0]
    deltas = identical.deltas(table, ["a", "b"])
    assert list(deltas.delta_miou) == [30.0, 30.0]


def test_protocol_variants_cover_the_literature():
    from bench.runs.config import RunConfig

    names = set(protocol.variants(RunConfig(methods=["x"]), 100))
    assert {"default", "eval-400", "eval-417", "void-as-background", "episodes-5000", "min-size-filter",
            "uniform-classes"} <= names


@pytest.mark.parametrize("module", COMMANDS, ids=lambda m: m.__name__)
def test_help_names_the_paper_counterpart(module, capsys):
    with pytest.raises(SystemExit):
        module.build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert any(word in text for word in ("Figure", "Table", "Section", "protocol"))


@pytest.mark.parametrize("argv,message", [
    (["--method", "nope"], "unknown method 'nope'"),
    (["--method", "simpropnet", "--split", "7"], "split 7 is outside 1..4"),
    (["--method", "simpropnet", "--no-train", "--checkpoints", "/nonexistent"], "no trained checkpoint for simpropnet"),
])
def test_clear_errors(cache_env, tmp_path, capsys, argv, message):
    code = error_regions.main([*argv, "--dataset", "synthetic-tiny", "--out", str(tmp_path), "--quiet", "--pairs", "4"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and len(err.splitlines()) == 1


def test_same_class_pairs_are_seeded_and_distinct(cache_env):
    from bench.data.catalog import open_dataset

    dataset = open_dataset("synthetic-tiny")
    a = same_class_pairs(dataset, 2, 50, seed=3)
    assert a.equals(same_class_pairs(dataset, 2, 50, seed=3))
    assert not a.equals(same_class_pairs(dataset, 2, 50, seed=4))
    assert (a.image_a != a.image_b).all()
    listed = set(dataset.pairs(2, "test"))
    assert all((i, c) in listed for i, c in zip(a.image_a, a.class_id))
    assert all((i, c) in listed for i, c in zip(a.image_b, a.class_id))


class AllBackground(FewShotSegmenter):
    def forward(self, query, supports, support_masks):
        logits = query.new_zeros(query.shape[0], 2, *query.shape[-2:])
        logits[:, 0] = 1.0
        return logits


def test_error_region_ratio_of_an_all_background_predictor_is_one(cache_env, tmp_path, monkeypatch):
    """Predicting nothing makes every error region the ground-truth region: the ratio is exactly 1."""
    monkeypatch.setattr(ModelProvider, "get", lambda self, name, split: (AllBackground(), {}))
    assert error_regions.main(["--method", "support-copy", "--dataset", "synthetic-tiny", "--split", "2",
                               "--pairs", "30", "--out", str(tmp_path), "--quiet"]) == 0
    pairs = pd.read_csv(tmp_path / "pairs.csv")
    defined = pairs.ratio.dropna()
    assert len(defined) >= 10 and np.allclose(defined, 1.0, atol=1e-5)
    assert (tmp_path / "ratios.png").is_file() and (tmp_path / "ratios.svg").is_file()


def test_similarity_and_tsne_commands_write_their_outputs(cache_env, tmp_path):
    assert similarity.main(["--dataset", "synthetic-tiny", "--split", "3", "--pairs", "40", "--out",
                            str(tmp_path / "sim"), "--quiet"]) == 0
    pairs = pd.read_csv(tmp_path / "sim" / "pairs.csv")
    assert len(pairs) == 40 and pairs.fg_cosine.between(-1, 1).all()
    assert (tmp_path / "sim" / "similarity.svg").is_file()
    assert tsne.main(["--dataset", "synthetic-tiny", "--split", "1", "--per-class", "4", "--out",
                      str(tmp_path / "tsne"), "--quiet"]) == 0
    coords = pd.read_csv(tmp_path / "tsne" / "coordinates.csv")
    assert len(coords) == 2 * len(coords[coords.region == "fg"])
    assert set(coords.region) == {"fg", "bg"} and {"x", "y"} <= set(coords.columns)


def test_analyses_of_two_methods_in_one_run_keep_both(cache_env, tmp_path):
    """With --run, each split / method gets its own folder, and the report shows each of them."""
    from reports.render import analyses_sections

    for method in ("support-copy", "all-foreground"):
        assert error_regions.main(["--method", method, "--dataset", "synthetic-tiny", "--split", "2", "--pairs", "6",
                                   "--run", str(tmp_path), "--quiet"]) == 0
    folders = sorted(p.name for p in (tmp_path / "analyses").iterdir())
    assert folders == ["error_regions-split2-all-foreground", "error_regions-split2-support-copy"]
    titles = [section["title"] for section in analyses_sections(tmp_path)]
    assert titles == [f"Error-region similarity (Section 3.1) {name[len('error_regions-'):]}" for name in folders]
