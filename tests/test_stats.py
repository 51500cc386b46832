"""Bootstrap intervals and paired comparisons: the tables' estimate, (query, class) pairs resampled."""
import numpy as np
import pandas as pd
import pytest

from analyses.stats import (EPISODE, MAX_RESAMPLES, bootstrap_mean_over_splits, bootstrap_miou, bootstrap_table,
                            paired_difference, paired_table)
from analyses.summary import summarize
from bench.cli.arguments import RESAMPLES


def episodes(method, n=200, quality=0.5, seed=0, seeds=(0,)):
    """n episodes per seed over 4 classes; the queries repeat (16 images per class: 64 (query, class) pairs),
    as the list-order sampling of a small test list does."""
    frames = []
    for s in seeds:
        rng = np.random.default_rng(seed + 100 * s)
        union = rng.integers(50, 150, size=n)
        inter = (union * np.clip(quality + rng.normal(0, 0.1, n), 0, 1)).astype(int)
        index = np.arange(n) + 7 * s
        frames.append(pd.DataFrame({
            "method": method, "split": 1, "shot": 1, "seed": s, "episode": np.arange(n), "class_id": index % 4 + 1,
            "query": [f"img{(k // 4) % 16}" for k in index], "fg_inter": inter, "fg_union": union,
            "bg_inter": 1000, "bg_union": 1100}))
    return pd.concat(frames, ignore_index=True)


def repeated_queries(n_pairs=40, repeats=5, seed=0):
    """Each (query, class) pair in `repeats` episodes whose scores depend mostly on the query (an easy or a
    hard image), as they do: the episodes of one pair are far from independent."""
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0.1, 0.9, n_pairs)
    pair = np.repeat(np.arange(n_pairs), repeats)
    union = rng.integers(80, 120, size=pair.size)
    inter = (union * np.clip(quality[pair] + rng.normal(0, 0.02, pair.size), 0, 1)).astype(int)
    return pd.DataFrame({"method": "a", "split": 1, "shot": 1, "seed": 0, "episode": np.arange(pair.size),
                         "class_id": pair % 4 + 1, "query": [f"img{p}" for p in pair], "fg_inter": inter,
                         "fg_union": union, "bg_inter": 1000, "bg_union": 1100})


def duplicated(rows):
    """The whole manifest twice: every episode again, under new episode numbers."""
    return pd.concat([rows, rows.assign(episode=rows.episode + rows.episode.max() + 1)], ignore_index=True)


def test_the_point_estimate_is_the_tables_mean_over_seeds():
    rows = pd.concat([episodes("a", seeds=(0, 1, 2)), episodes("b", quality=0.6, seeds=(0, 1, 2))])
    table = bootstrap_table(rows, resamples=50).set_index(["method", "shot"])
    summary = summarize(rows)
    summary = summary[summary.split == "1"].set_index(["method", "shot"])
    for key in summary.index:
        assert table.loc[key, "miou"] == pytest.approx(summary.loc[key, "miou_mean"], abs=1e-9)
    point, low, high = bootstrap_miou(rows[rows.method == "a"], resamples=300)
    assert low < point < high and high - low < 10


def test_cluster_interval_is_wider_than_the_naive_one_when_queries_repeat():
    rows = repeated_queries()
    _, low, high = bootstrap_miou(rows, resamples=1000)
    _, naive_low, naive_high = bootstrap_miou(rows, resamples=1000, cluster=EPISODE)
    assert high - low >= 1.5 * (naive_high - naive_low)


def test_cluster_interval_does_not_change_when_the_whole_manifest_is_duplicated():
    rows = repeated_queries()
    assert bootstrap_miou(duplicated(rows), 500) == pytest.approx(bootstrap_miou(rows, 500), abs=1e-9)
    # the naive bootstrap takes the copies for new evidence: its interval shrinks
    _, low, high = bootstrap_miou(rows, 500, cluster=EPISODE)
    _, dup_low, dup_high = bootstrap_miou(duplicated(rows), 500, cluster=EPISODE)
    assert dup_high - dup_low < 0.85 * (high - low)


def test_paired_interval_resamples_pairs_too():
    a = repeated_queries(seed=1)
    b = a.assign(method="b", fg_inter=(a.fg_inter * 0.9).astype(int))
    result = paired_difference(a, b, 500)
    assert result["clusters"] == 40 and result["episodes"] == 200
    again = paired_difference(duplicated(a), duplicated(b), 500)
    assert (again["difference"], again["lower"], again["upper"]) == pytest.approx(
        (result["difference"], result["lower"], result["upper"]), abs=1e-9)
    naive = paired_difference(a, b, 500, cluster=EPISODE)
    assert result["upper"] - result["lower"] > naive["upper"] - naive["lower"]


def test_paired_difference_is_the_difference_of_the_tables_values():
    rows = pd.concat([episodes("a", seeds=(0, 1)), episodes("b", quality=0.6, seeds=(0, 1))])
    summary = summarize(rows).set_index(["method", "split"])
    result = paired_difference(rows[rows.method == "b"], rows[rows.method == "a"], 100)
    expected = summary.loc[("b", "1"), "miou_mean"] - summary.loc[("a", "1"), "miou_mean"]
    assert result["difference"] == pytest.approx(expected)


def test_paired_difference_of_a_method_with_itself_is_zero():
    rows = episodes("a")
    result = paired_difference(rows, rows.assign(method="b"), resamples=200)
    assert result["difference"] == 0 and result["lower"] == 0 and result["upper"] == 0
    assert not result["significant"]


def test_a_clearly_better_method_is_significant():
    table = paired_table(pd.concat([episodes("good", quality=0.7), episodes("bad", quality=0.5)]), "good", 300)
    row = table.iloc[0]
    assert row.method == "bad" and row.difference > 10 and row.significant and row.lower > 0


def test_tables_follow_the_given_method_order():
    rows = pd.concat([episodes(m, n=40) for m in ("b", "c", "a")])
    assert list(bootstrap_table(rows, 20, order=["c", "a", "b"]).method) == ["c", "a", "b"]
    assert list(paired_table(rows, "a", 20, order=["c", "a", "b"]).method) == ["c", "b"]


def test_paired_needs_shared_episodes():
    with pytest.raises(ValueError):
        paired_difference(episodes("a"), episodes("b").assign(episode=lambda f: f.episode + 10_000))


def _trained(rows: pd.DataFrame, shifts) -> pd.DataFrame:
    """`rows` repeated once per training seed, each copy's intersections scaled (a different checkpoint)."""
    copies = []
    for t, scale in enumerate(shifts):
        copy = rows.copy()
        copy["train_seed"] = t
        copy["fg_inter"] = (copy["fg_inter"] * scale).round()
        copies.append(copy)
    return pd.concat(copies, ignore_index=True)


def test_training_seeds_widen_the_interval_and_the_estimate_averages_them():
    rows = repeated_queries()
    one = bootstrap_miou(_trained(rows, [1.0, 1.0, 1.0]), 500)
    spread = bootstrap_miou(_trained(rows, [0.6, 1.0, 1.0]), 500)
    point = np.mean([bootstrap_miou(_trained(rows, [s]), 10)[0] for s in (0.6, 1.0, 1.0)])
    assert spread[0] == pytest.approx(point)
    assert spread[2] - spread[1] > 1.5 * (one[2] - one[1])


def test_paired_difference_with_training_seeds_pairs_each_episode_once():
    rows = repeated_queries()
    a, b = _trained(rows, [0.9, 1.0, 1.1]), rows.assign(method="b")
    result = paired_difference(a, b, 300)
    assert result["episodes"] == len(rows)
    single = paired_difference(_trained(rows, [1.0]), b, 300)
    assert single["difference"] == pytest.approx(0.0)


def test_mean_over_splits_is_the_summarys_with_each_split_drawn_on_its_own():
    one = episodes("a", seeds=(0, 1))
    assert bootstrap_mean_over_splits(one, resamples=200) == bootstrap_miou(one, resamples=200)
    both = pd.concat([one, episodes("a", quality=0.7, seed=5, seeds=(0, 1)).assign(split=2)], ignore_index=True)
    point, low, high = bootstrap_mean_over_splits(both, resamples=300)
    summary = summarize(both).set_index("split")
    assert point == pytest.approx(summary.loc["mean", "miou_mean"], abs=1e-9)
    assert low < point < high
    _, low_1, high_1 = bootstrap_miou(one, resamples=300)
    assert high - low < high_1 - low_1  # two splits' independent draws average out


@pytest.mark.parametrize("resamples, message", [(0, "must be >= 1"), (MAX_RESAMPLES + 1, "must be <= 100,000")])
def test_a_bad_resample_count_is_a_value_error(resamples, message):
    """The library refuses it (the command line already did, as it parsed `--resamples`)."""
    with pytest.raises(ValueError, match=message):
        bootstrap_miou(episodes("a"), resamples=resamples)
    with pytest.raises(ValueError, match=message):
        paired_difference(episodes("a"), episodes("b"), resamples=resamples)


def test_the_command_lines_bounds_are_the_librarys():
    assert RESAMPLES(str(MAX_RESAMPLES)) == MAX_RESAMPLES
    with pytest.raises(Exception, match="must be <="):
        RESAMPLES(str(MAX_RESAMPLES + 1))
