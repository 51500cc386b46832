"""A paper's claims as outcomes: holds / fails / inconclusive from intervals (analyses.claims)."""
import numpy as np
import pandas as pd
import pytest

from analyses.claims import FAILS, HOLDS, INCONCLUSIVE, combine, methods_claim, value_claim, verdict


@pytest.mark.parametrize("lower, upper, direction, threshold, expected", [
    (1.0, 2.0, ">", 0.0, HOLDS), (-2.0, -1.0, ">", 0.0, FAILS), (-1.0, 1.0, ">", 0.0, INCONCLUSIVE),
    (0.5, 0.7, ">", 0.8, FAILS), (0.85, 0.9, ">", 0.8, HOLDS), (10.0, 20.0, "<", 25.0, HOLDS),
    (30.0, 40.0, "<", 25.0, FAILS),
])
def test_verdict(lower, upper, direction, threshold, expected):
    assert verdict(lower, upper, direction, threshold) == expected


def test_a_claim_holds_only_when_every_part_holds_and_fails_when_one_fails():
    assert combine([HOLDS, HOLDS]) == HOLDS
    assert combine([HOLDS, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([HOLDS, INCONCLUSIVE, FAILS]) == FAILS
    assert combine([]) == INCONCLUSIVE


def test_a_pooled_figure_uses_the_interval_its_analysis_wrote():
    frame = pd.DataFrame([{"fn_overlap": 18.0, "fn_overlap_ci_low": 15.0, "fn_overlap_ci_high": 21.0}])
    part = value_claim(frame, "fn_overlap", direction="<", threshold=25.0)["parts"][0]
    assert (part["difference"], part["lower"], part["upper"], part["outcome"]) == (18.0, 15.0, 21.0, HOLDS)
    assert value_claim(frame.drop(columns=["fn_overlap_ci_low"]), "fn_overlap", direction="<",
                       threshold=25.0)["outcome"] == INCONCLUSIVE  # one value, no interval: nothing is claimed


def test_a_mean_over_rows_is_bootstrapped_and_nan_rows_are_left_out():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"bg": rng.normal(0.9, 0.05, 400), "fg": rng.normal(0.7, 0.05, 400)})
    frame.loc[0, "bg"] = np.nan
    result = value_claim(frame, "bg", "fg")
    assert result["outcome"] == HOLDS and 0.18 < result["parts"][0]["difference"] < 0.22
    assert value_claim(frame, "fg", "bg")["outcome"] == FAILS
    with pytest.raises(ValueError, match="no column 'cosine'"):
        value_claim(frame, "cosine")


def episodes(method, offset, seed=0):
    """Episodes of two classes where `method` covers `offset` more foreground pixels than the rest."""
    rng = np.random.default_rng(seed)
    rows = []
    for split in (1, 2):
        for episode in range(60):
            union = 100
            inter = int(np.clip(rng.integers(30, 60) + offset, 0, union))
            rows.append({"method": method, "split": split, "shot": 1, "seed": 0, "episode": episode,
                         "class_id": episode % 2, "query": f"q{episode}", "fg_inter": inter, "fg_union": union,
                         "bg_inter": 0, "bg_union": 0})
    return rows


def test_methods_claim_is_paired_per_split_and_on_the_mean():
    frame = pd.DataFrame(episodes("a", 20) + episodes("b", 0))
    result = methods_claim(frame, ["a"], ["b"], splits=["1", "mean"])
    assert result["outcome"] == HOLDS and [p["part"] for p in result["parts"]] == [
        "a - b, 1-shot, split 1", "a - b, 1-shot, split mean"]
    assert methods_claim(frame, ["b"], ["a"])["outcome"] == FAILS
    with pytest.raises(ValueError, match="no episodes of c"):
        methods_claim(frame, ["c"], ["a"])
