"""`python -m analyses.base_novel`: base-class episodes come from held-out training images, novel ones from the
test list; the gap table from per-episode counts."""
import pandas as pd
import pytest

import analyses.impl.base_novel as impl
from analyses import base_novel
from bench.training.models import ModelProvider
from bench.training.train import is_held_out
from tests.test_analyses import AllBackground


def counts(class_id, fg_inter, fg_union, classes, shot=1):
    return {"method": "m", "split": 1, "shot": shot, "classes": classes, "class_id": class_id, "fg_inter": fg_inter,
            "fg_union": fg_union, "bg_inter": 10, "bg_union": 10}


def test_gap_table_divides_once_per_class_set_and_shot():
    rows = pd.DataFrame([counts(1, 1, 2, "base"), counts(1, 3, 4, "base"), counts(2, 1, 4, "base"),
                         counts(3, 1, 4, "novel"), counts(4, 0, 4, "novel")])
    row = impl.gap_table(rows).iloc[0]
    assert row.base_miou == pytest.approx(100 * (4 / 6 + 1 / 4) / 2)  # class 1 pooled over its episodes: 4 / 6
    assert row.novel_miou == pytest.approx(100 * (1 / 4 + 0) / 2)
    assert row.base_minus_novel == pytest.approx(row.base_miou - row.novel_miou) and row.episodes == 2


def test_command_scores_held_out_base_images_and_novel_test_episodes(cache_env, tmp_path, monkeypatch):
    from bench.data.catalog import open_dataset

    calls = []
    monkeypatch.setattr(ModelProvider, "get", lambda self, name, split: calls.append(split) or (AllBackground(), {}))
    argv = ["--methods", "support-copy", "--dataset", "synthetic-tiny", "--splits", "2", "--shots", "1",
            "--episodes", "12", "--out", str(tmp_path), "--quiet"]
    assert base_novel.main(argv) == 0
    table = pd.read_csv(tmp_path / "gap.csv")
    assert len(table) == 1 and table.base_miou[0] == table.novel_miou[0] == table.base_minus_novel[0] == 0
    dataset = open_dataset("synthetic-tiny")
    train_classes = {c for _, c in dataset.pairs(2, "train")}
    rows = pd.read_csv(tmp_path / "episodes-support-copy-split2.csv")
    base, novel = rows[rows.classes == "base"], rows[rows.classes == "novel"]
    assert len(base) == len(novel) == 12
    assert base["query"].map(is_held_out).all() and set(base.class_id) <= train_classes
    assert set(zip(novel["query"], novel.class_id)) <= set(dataset.pairs(2, "test"))
    assert not set(novel.class_id) & train_classes
    assert (tmp_path / "gap.png").is_file()
    saved = (tmp_path / "episodes-support-copy-split2.csv").read_bytes()
    monkeypatch.setattr(impl, "evaluate_manifest", lambda *a, **k: pytest.fail("re-evaluated saved episodes"))
    assert base_novel.main(argv) == 0  # the saved episodes are these: read back
    assert (tmp_path / "episodes-support-copy-split2.csv").read_bytes() == saved
