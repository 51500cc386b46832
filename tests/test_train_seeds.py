"""--train-seeds (one checkpoint per training seed, a train_seed coordinate) and FSS_BENCH_HOME (where runs
and checkpoints go by default); synthetic-tiny, tiny profile, one epoch."""
import json
from pathlib import Path

import pandas as pd
import pytest

import bench.runs.runner as runner_module
from bench.cli.commands import main
from bench.core.environment import home_path
from bench.runs.cells import Cell
from bench.runs.results import load_results
from bench.training.options import TrainingOptions


def run_args(out, checkpoints, *extra):
    return ["run", "--methods", "panet", "all-foreground", "--dataset", "synthetic-tiny", "--profile", "tiny",
            "--epochs", "1", "--splits", "1", "--seeds", "0", "1", "--shots", "1", "--episodes", "10",
            "--checkpoints", str(checkpoints), "--out", str(out), "--quiet", *extra]


@pytest.fixture(scope="module")
def seeded(cache_env, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seeds")
    assert main(run_args(tmp / "run", tmp / "ck", "--train-seeds", "0", "1")) == 0
    return tmp


def test_cells_and_episodes_gain_a_train_seed_coordinate(seeded):
    out = seeded / "run"
    episodes = pd.read_csv(out / "episodes.csv")
    assert list(episodes.columns[:5]) == ["method", "split", "shot", "seed", "train_seed"]
    panet = episodes[episodes.method == "panet"]
    assert sorted(panet.train_seed.unique()) == [0, 1] and len(panet) == 2 * 2 * 10
    assert episodes[episodes.method == "all-foreground"].train_seed.isna().all()  # not trained: no coordinate
    assert (out / "episodes" / "panet__split1_shot1_seed1_train1.csv").is_file()
    assert (out / "episodes" / "all-foreground__split1_shot1_seed1.csv").is_file()
    config = json.loads((out / "config.json").read_text())
    first, second = config["checkpoints"]["panet/split1/train0"], config["checkpoints"]["panet/split1/train1"]
    assert first != second
    assert config["methods"]["panet"]["training"]["train_seeds"] == [0, 1]
    metas = {(m["cell"], m.get("train_seed")): m for m in load_results(out).metas if m["method"] == "panet"}
    assert metas[("split1_shot1_seed0", 0)]["checkpoint_sha256"] != metas[("split1_shot1_seed0", 1)]["checkpoint_sha256"]


def test_summary_gives_both_spreads(seeded):
    summary = pd.read_csv(seeded / "run" / "summary.csv")
    panet = summary[summary.method == "panet"]
    assert (panet.train_seeds == 2).all() and (panet.seeds == 2).all() and panet.miou_train_std.notna().all()
    assert summary[summary.method == "all-foreground"].miou_train_std.isna().all()
    doc = json.loads((seeded / "run" / "results.json").read_text())
    assert {c["train_seed"] for c in doc["cells"] if c["method"] == "panet"} == {0, 1}
    assert set(doc["methods"]["panet"]["checkpoints"]) == {"panet/split1/train0", "panet/split1/train1"}


def test_rerun_resumes_and_other_options_are_refused(seeded, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(runner_module, "evaluate_manifest", lambda *a, **k: calls.append(1))
    capsys.readouterr()
    assert main(run_args(seeded / "run", seeded / "ck", "--train-seeds", "0", "1")) == 0
    assert calls == []
    assert "std over training seeds" in capsys.readouterr().out
    before = (seeded / "run" / "config.json").read_bytes()
    assert main(run_args(seeded / "run", seeded / "ck", "--train-seeds", "0", "1", "--epochs", "2")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "cells of panet with other method options" in err and "epochs" in err
    assert len(err.splitlines()) == 1 and (seeded / "run" / "config.json").read_bytes() == before


def test_one_train_seed_keeps_the_single_seed_layout(seeded, tmp_path, capsys):
    assert main(run_args(tmp_path / "one", seeded / "ck", "--train-seeds", "1")) == 0
    episodes = pd.read_csv(tmp_path / "one" / "episodes.csv")
    assert "train_seed" not in episodes.columns
    config = json.loads((tmp_path / "one" / "config.json").read_text())
    seeded_config = json.loads((seeded / "run" / "config.json").read_text())
    assert config["checkpoints"]["panet/split1"] == seeded_config["checkpoints"]["panet/split1/train1"]  # reused
    mine = episodes[episodes.method == "panet"].drop(columns="method").reset_index(drop=True)
    theirs = pd.read_csv(seeded / "run" / "episodes.csv")
    theirs = theirs[(theirs.method == "panet") & (theirs.train_seed == 1)].drop(columns=["method", "train_seed"])
    pd.testing.assert_frame_equal(mine, theirs.reset_index(drop=True))


def test_bench_train_reports_every_seed_and_where_checkpoints_are(seeded, capsys):
    capsys.readouterr()
    assert main(["train", "--methods", "panet", "--dataset", "synthetic-tiny", "--profile", "tiny", "--epochs", "1",
                 "--splits", "1", "--train-seeds", "0", "1", "--checkpoints", str(seeded / "ck"), "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"checkpoints: {(seeded / 'ck').absolute()}")
    config = json.loads((seeded / "run" / "config.json").read_text())
    for key in ("panet/split1/train0", "panet/split1/train1"):
        assert any(config["checkpoints"][key] in line for line in lines[1:])


def test_fss_bench_home_sets_both_defaults(seeded, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("FSS_BENCH_HOME", raising=False)
    assert home_path("runs") == Path("runs") and TrainingOptions().checkpoint_root() == Path("checkpoints")
    home = tmp_path / "home"
    monkeypatch.setenv("FSS_BENCH_HOME", str(home))
    monkeypatch.chdir(tmp_path)  # another folder: the defaults do not depend on it
    assert TrainingOptions().checkpoint_root() == home / "checkpoints"
    assert TrainingOptions(checkpoints="mine").checkpoint_root() == Path("mine")
    capsys.readouterr()
    assert main(["train", "--methods", "panet", "--dataset", "synthetic-tiny", "--profile", "tiny", "--splits", "1",
                 "--no-train", "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert out.startswith(f"checkpoints: {home / 'checkpoints'} ") and str(home / "checkpoints") in err
    assert main(["run", "--methods", "all-foreground", "--dataset", "synthetic-tiny", "--splits", "1", "--seeds", "0",
                 "--shots", "1", "--episodes", "5", "--quiet"]) == 0
    runs = list((home / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("synthetic-tiny-") and (runs[0] / "results.json").is_file()
    assert "checkpoints:" not in capsys.readouterr().out  # no learned method: no checkpoint is read
    assert not (tmp_path / "runs").exists() and not (tmp_path / "checkpoints").exists()


def test_report_shows_the_training_seed_spread_and_each_seeds_panels(seeded):
    out = seeded / "report.html"
    assert main(["report", "--run", str(seeded / "run"), "--out", str(out), "--resamples", "50"]) == 0
    html = out.read_text()
    assert 'title="std over training seeds"' in html
    assert "panet (training seed 0)" in html and "panet (training seed 1)" in html


def test_log_lines_name_the_training_seed_of_a_cell():
    assert Cell.of("simpropnet", "split1_shot1_seed0").label == "simpropnet split1_shot1_seed0"
    assert Cell.of("simpropnet", "split1_shot1_seed0", 2).label == "simpropnet split1_shot1_seed0 train seed 2"
