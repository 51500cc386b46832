"""Runs that grow by methods (the directory is its protocol), results.json, `bench report --runs`, and the
legacy config.json of a run written before that (reference methods on the VOC fixture: fast)."""
import json
import shutil
from typing import get_type_hints

import numpy as np
import pandas as pd
import pytest

import bench.runs.runner as runner_module
from analyses.stats import bootstrap_mean_over_splits, bootstrap_miou, bootstrap_table
from analyses.summary import cell_metrics, summarize
from bench.cli.commands import main
from bench.runs.results import load_results, load_runs
from bench.runs.results_file import INTERVAL_RESAMPLES, SCHEMA_VERSION, CellResult, ResultsFile, SplitResult


def args(voc_root, out, methods, *extra):
    return ["run", "--methods", *methods, "--dataset", "pascal5i", "--data-root", str(voc_root), "--lists",
            str(voc_root / "lists"), "--splits", "1", "2", "--shots", "1", "--seeds", "0", "1", "--episodes", "10",
            "--out", str(out), "--quiet", *extra]


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def evaluations(monkeypatch):
    calls = []
    original = runner_module.evaluate_manifest
    monkeypatch.setattr(runner_module, "evaluate_manifest", lambda *a, **k: calls.append(k["desc"]) or original(*a, **k))
    return calls


@pytest.fixture(scope="module")
def grown(voc_root, tmp_path_factory):
    """support-copy, then all-foreground added to the same directory; and both in one command elsewhere."""
    tmp = tmp_path_factory.mktemp("grow")
    assert main(args(voc_root, tmp / "sc", ["support-copy"])) == 0
    shutil.copytree(tmp / "sc", tmp / "grown")
    assert main(args(voc_root, tmp / "grown", ["all-foreground"])) == 0
    assert main(args(voc_root, tmp / "both", ["support-copy", "all-foreground"])) == 0
    return tmp


def test_adding_a_method_keeps_the_others_and_matches_one_command(grown):
    config = json.loads((grown / "grown" / "config.json").read_text())
    assert config["config"]["methods"] == ["support-copy", "all-foreground"]
    assert set(config["methods"]) == {"support-copy", "all-foreground"}
    assert "methods" not in config["identity"] and "training" not in config["identity"]
    # episodes.csv and summary.csv cover every method present, as if one command had run them
    assert (grown / "grown" / "episodes.csv").read_bytes() == (grown / "both" / "episodes.csv").read_bytes()
    assert (grown / "grown" / "summary.csv").read_bytes() == (grown / "both" / "summary.csv").read_bytes()
    assert set(load_results(grown / "grown").episodes.method) == {"support-copy", "all-foreground"}
    meta = json.loads((grown / "grown" / "episodes" / "all-foreground__split1_shot1_seed0.json").read_text())
    assert meta["method_identity"].pop("method") == "all-foreground"
    assert list(meta["method_identity"]) == ["code"]  # a training-free method: its file's hash (issue 25)


def test_adding_a_method_evaluates_only_its_cells(voc_root, grown, tmp_path, evaluations):
    out = tmp_path / "run"
    shutil.copytree(grown / "sc", out)
    assert main(args(voc_root, out, ["all-foreground"])) == 0
    assert sorted(evaluations) == sorted(f"all-foreground split{k}_shot1_seed{s}" for k in (1, 2) for s in (0, 1))
    evaluations.clear()
    assert main(args(voc_root, out, ["support-copy"])) == 0  # present: nothing to do
    assert evaluations == []
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["methods"] == ["support-copy", "all-foreground"]  # order of addition kept


def test_another_protocol_is_still_refused(voc_root, grown, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(grown / "grown", out)
    before = snapshot(out)
    assert main(args(voc_root, out, ["all-foreground"], "--episodes", "12")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "different config" in err and "episodes" in err and len(err.splitlines()) == 1
    assert snapshot(out) == before


def test_overwrite_recomputes_only_the_commands_methods(voc_root, grown, tmp_path, evaluations):
    out = tmp_path / "run"
    shutil.copytree(grown / "grown", out)
    assert main(args(voc_root, out, ["all-foreground"], "--overwrite")) == 0
    assert sorted(evaluations) == sorted(f"all-foreground split{k}_shot1_seed{s}" for k in (1, 2) for s in (0, 1))
    assert (out / "episodes.csv").read_bytes() == (grown / "both" / "episodes.csv").read_bytes()


def test_a_run_written_before_runs_could_grow_still_resumes(voc_root, grown, tmp_path, evaluations, capsys):
    """Its config.json had the methods and training options in its identity and no `methods` map (nor code
    hashes: resuming says that the cells are kept as the current code's)."""
    out = tmp_path / "legacy"
    shutil.copytree(grown / "both", out)
    config = json.loads((out / "config.json").read_text())
    config["identity"].update(methods=["support-copy", "all-foreground"], training=config["config"]["training"])
    del config["methods"]
    (out / "config.json").write_text(json.dumps(config))
    assert set(load_results(out).episodes.method) == {"support-copy", "all-foreground"}
    assert main(args(voc_root, out, ["support-copy", "all-foreground"])) == 0
    assert evaluations == []
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and all("recorded before runs held a method's code hash" in w for w in warnings)


def test_results_json_follows_its_schema_and_the_episodes(grown):
    doc = json.loads((grown / "grown" / "results.json").read_text())
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    assert set(doc) == set(get_type_hints(ResultsFile))
    assert all(set(cell) == set(get_type_hints(CellResult)) for cell in doc["cells"])
    assert all(set(row) == set(get_type_hints(SplitResult)) for row in doc["splits"])
    episodes = load_results(grown / "grown").episodes
    cells = cell_metrics(episodes)
    assert len(doc["cells"]) == len(cells) == 2 * 2 * 2
    by_key = {(c["method"], c["split"], c["seed"]): c for c in doc["cells"]}
    for row in cells.itertuples():
        assert by_key[(row.method, row.split, row.seed)]["miou"] == pytest.approx(row.miou, abs=1e-12)
    summary = summarize(episodes)
    means = [r for r in doc["splits"] if r["aggregate"] == "mean"]
    assert len(means) == 2 and all(r["split"] is None for r in means)
    expected = summary[summary.split == "mean"].set_index("method").miou_mean
    assert {r["method"]: r["miou_mean"] for r in means} == pytest.approx(expected.to_dict())
    assert all(r["miou_train_std"] is None for r in doc["splits"])  # one training seed: null, not NaN
    config = json.loads((grown / "grown" / "config.json").read_text())
    assert doc["manifests"] == config["manifests"] and doc["dataset"]["hash"] == config["dataset"]["hash"]
    assert doc["methods"]["support-copy"]["identity"]["method"] == "support-copy"
    assert "bench report" in doc["intervals"] and doc["interval_resamples"] == INTERVAL_RESAMPLES


def test_results_json_intervals_are_bench_reports(grown):
    """The stored intervals are `bench report`'s (its table, from the saved episodes, same resamples and seed),
    and each cell's and each mean over splits' those of `analyses.stats` on its rows."""
    doc = json.loads((grown / "grown" / "results.json").read_text())
    episodes = load_results(grown / "grown").episodes
    shown = bootstrap_table(episodes, INTERVAL_RESAMPLES).set_index(["method", "split", "shot"])
    splits = [r for r in doc["splits"] if r["aggregate"] is None]
    assert len(splits) == len(shown) == 4
    for row in splits:
        expected = shown.loc[(row["method"], row["split"], row["shot"])]
        assert (row["miou_ci_low"], row["miou_ci_high"]) == (expected.ci_low, expected.ci_high)
        assert row["miou_ci_low"] <= row["miou_mean"] <= row["miou_ci_high"]
    for row in (r for r in doc["splits"] if r["aggregate"] == "mean"):
        rows = episodes[(episodes.method == row["method"]) & (episodes.shot == row["shot"])]
        _, low, high = bootstrap_mean_over_splits(rows, INTERVAL_RESAMPLES)
        assert (row["miou_ci_low"], row["miou_ci_high"]) == (low, high)
    for cell in doc["cells"]:
        rows = episodes[(episodes.method == cell["method"]) & (episodes.split == cell["split"])
                        & (episodes.seed == cell["seed"])]
        assert (cell["miou_ci_low"], cell["miou_ci_high"]) == bootstrap_miou(rows, INTERVAL_RESAMPLES)[1:]


def test_summary_csv_loads_as_numbers(grown):
    summary = pd.read_csv(grown / "grown" / "summary.csv")
    assert summary.split.dtype.kind in "fi" and set(summary.split.dropna()) == {1, 2}
    assert list(summary["aggregate"].fillna("")) == ["", "", "mean"] * 2


def test_report_merges_runs_of_one_protocol(voc_root, grown, tmp_path, capsys):
    (tmp_path / "a").mkdir()
    assert main(args(voc_root, tmp_path / "a" / "run", ["support-copy"])) == 0
    assert main(args(voc_root, tmp_path / "b", ["all-foreground"])) == 0
    merged = load_runs([tmp_path / "a" / "run", tmp_path / "b"])
    assert merged.methods == ["support-copy", "all-foreground"]
    pd.testing.assert_frame_equal(merged.episodes, load_results(grown / "both").episodes)
    assert main(["report", "--runs", str(tmp_path / "a" / "run"), str(tmp_path / "b"), "--out",
                 str(tmp_path / "merged.html"), "--resamples", "50"]) == 0
    html = (tmp_path / "merged.html").read_text()
    assert "support-copy" in html and "all-foreground" in html
    assert main(["report", "--runs", str(tmp_path / "a" / "run"), str(tmp_path / "b"), "--resamples", "50"]) == 2
    assert "give the report's file with --out" in capsys.readouterr().err
    assert main(["report", "--runs", str(tmp_path / "a" / "run"), str(grown / "grown"), "--out",
                 str(tmp_path / "r.html"), "--resamples", "50"]) == 2
    assert "support-copy is in both" in capsys.readouterr().err
    assert main(args(voc_root, tmp_path / "other", ["all-foreground"], "--episodes", "12")) == 0
    capsys.readouterr()
    assert main(["report", "--runs", str(tmp_path / "a" / "run"), str(tmp_path / "other"), "--out",
                 str(tmp_path / "r.html"), "--resamples", "50"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "different manifests" in err and len(err.splitlines()) == 1


def test_summary_over_training_seeds_and_episode_sets_separately():
    rng = np.random.default_rng(0)
    rows = []
    for train_seed in (0, 1, 2):
        for seed in (0, 1):
            for episode in range(6):
                inter = int(rng.integers(0, 50))
                rows.append(dict(method="m", split=1, shot=1, seed=seed, train_seed=train_seed, episode=episode,
                                 class_id=1 + episode % 2, query=f"q{episode}", fg_inter=inter, fg_union=60,
                                 bg_inter=100, bg_union=120))
    episodes = pd.DataFrame(rows)
    cells = cell_metrics(episodes)
    assert len(cells) == 6
    row = summarize(episodes).iloc[0]
    grid = cells.pivot(index="seed", columns="train_seed", values="miou")
    assert row.miou_mean == pytest.approx(grid.values.mean())
    assert row.miou_std == pytest.approx(grid.mean(axis=1).std(ddof=1))  # over episode sets
    assert row.miou_train_std == pytest.approx(grid.mean(axis=0).std(ddof=1))  # over training seeds
    assert (row.seeds, row.train_seeds) == (2, 3)
    single = summarize(episodes[episodes.train_seed == 0].drop(columns="train_seed"))
    with_column = summarize(episodes[episodes.train_seed == 0])
    pd.testing.assert_frame_equal(single, with_column)  # one training seed: the summary over seeds alone
    assert np.isnan(single.miou_train_std).all()
