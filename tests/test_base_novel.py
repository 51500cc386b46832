"""`python -m analyses.base_novel`: base-class episodes come from held-out training images, novel ones from the
test list; the gap table from per-episode counts."""
import pandas as pd
import pytest

from analyses import base_novel
from bench.training.models import ModelProvider
from bench.training.train import is_held_out
from tests.test_analyses import AllBackground


def counts(class_id, fg_inter, fg_union):
    return {"class_id": class_id, "fg_inter": fg_inter, "fg_union": fg_union, "bg_inter": 10, "bg_union": 10}


def test_gap_table_divides_once_per_class_set_and_shot():
    base = pd.DataFrame([counts(1, 1, 2), counts(1, 3, 4), counts(2, 1, 4)]).assign(shot=1)
    novel = pd.DataFrame([counts(3, 1, 4), counts(4, 0, 4)]).assign(shot=1)
    table = base_novel.gap_table({"base": base, "novel": novel}).set_index("classes")
    assert table.loc["base", "miou"] == pytest.approx(100 * (4 / 6 + 1 / 4) / 2)  # class 1 pooled: 4 / 6
    assert table.loc["novel", "miou"] == pytest.approx(100 * (1 / 4 + 0) / 2)
    assert table.loc["base", "base_minus_novel"] == pytest.approx(table.loc["base", "miou"] - table.loc["novel", "miou"])
    assert list(table.episodes) == [3, 2]


def test_command_scores_held_out_base_images_and_novel_test_episodes(cache_env, tmp_path, monkeypatch):
    from bench.data.catalog import open_dataset

    monkeypatch.setattr(ModelProvider, "get", lambda self, name, split: (AllBackground(), {}))
    assert base_novel.main(["--method", "support-copy", "--dataset", "synthetic-tiny", "--split", "2", "--shots", "1",
                            "--episodes", "12", "--out", str(tmp_path), "--quiet"]) == 0
    table = pd.read_csv(tmp_path / "gap.csv")
    assert list(table.classes) == ["base", "novel"] and (table.miou == 0).all() and (table.base_minus_novel == 0).all()
    dataset = open_dataset("synthetic-tiny")
    train_classes = {c for _, c in dataset.pairs(2, "train")}
    base, novel = (pd.read_csv(tmp_path / f"episodes-{name}.csv") for name in ("base", "novel"))
    assert len(base) == len(novel) == 12
    assert base["query"].map(is_held_out).all() and set(base.class_id) <= train_classes
    assert set(zip(novel["query"], novel.class_id)) <= set(dataset.pairs(2, "test"))
    assert not set(novel.class_id) & train_classes
    assert (tmp_path / "gap.png").is_file()
