"""Bootstrap intervals and paired comparisons."""
import numpy as np
import pandas as pd
import pytest

from analyses.metrics import FSSEvaluator
from reports.stats import bootstrap_miou, paired_difference, paired_table


def episodes(method, n=200, quality=0.5, seed=0):
    rng = np.random.default_rng(seed)
    union = rng.integers(50, 150, size=n)
    inter = (union * np.clip(quality + rng.normal(0, 0.1, n), 0, 1)).astype(int)
    return pd.DataFrame({"method": method, "split": 1, "shot": 1, "seed": 0, "episode": np.arange(n),
                         "class_id": np.arange(n) % 4 + 1, "fg_inter": inter, "fg_union": union,
                         "bg_inter": 1000, "bg_union": 1100})


def test_bootstrap_point_estimate_is_the_pooled_miou_and_inside_the_interval():
    rows = episodes("a")
    point, low, high = bootstrap_miou(rows, resamples=500)
    evaluator = FSSEvaluator()
    evaluator.process(rows.class_id, rows[["fg_inter", "fg_union", "bg_inter", "bg_union"]].to_numpy())
    assert point == pytest.approx(100 * evaluator.evaluate()["miou"])
    assert low < point < high and high - low < 10


def test_paired_difference_of_a_method_with_itself_is_zero():
    rows = episodes("a")
    result = paired_difference(rows, rows.assign(method="b"), resamples=200)
    assert result["difference"] == 0 and result["lower"] == 0 and result["upper"] == 0
    assert not result["significant"]


def test_a_clearly_better_method_is_significant():
    table = paired_table(pd.concat([episodes("good", quality=0.7), episodes("bad", quality=0.5)]), "good", 300)
    row = table.iloc[0]
    assert row.method == "bad" and row.difference > 10 and row.significant and row.lower > 0


def test_paired_needs_shared_episodes():
    with pytest.raises(ValueError):
        paired_difference(episodes("a"), episodes("b").assign(episode=lambda f: f.episode + 10_000))
