"""`bench verify`: published-weights cells against their entries' reported numbers."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from bench.cli.commands import main
from methods.weights import WEIGHTS
from tests.published_fixture import ENTRIES, weights_dir
from tests.test_weights import run_args


@pytest.fixture(scope="module")
def published_run(voc_root, tmp_path_factory):
    """A run of the test PANet entries on splits 1 and 2, shots 1 and 3, seeds 0 and 1."""
    patch = pytest.MonkeyPatch()
    patch.setattr(WEIGHTS, "_entries", {e.name: e for e in ENTRIES})
    tmp = tmp_path_factory.mktemp("verify")
    out = tmp / "run"
    try:
        assert main(run_args(voc_root, out, "--weights", str(weights_dir(tmp / "weights")), "--shots", "1", "3",
                             "--seeds", "0", "1")) == 0
    finally:
        patch.undo()
    summary = pd.read_csv(out / "summary.csv", dtype={"split": str}).set_index(["split", "shot"])
    return out, summary


def report(monkeypatch, reported_by_fold):
    """Register the test entries with the given reported numbers {fold: {shot: {...}}}."""
    entries = [dataclasses.replace(e, reported=reported_by_fold.get(e.fold, {})) for e in ENTRIES]
    monkeypatch.setattr(WEIGHTS, "_entries", {e.name: e for e in entries})


def measured(summary, split, shot, metric="miou"):
    return float(summary.loc[(str(split), shot), f"{metric}_mean"])


def test_numbers_within_the_tolerance_pass(published_run, monkeypatch, capsys):
    out, summary = published_run
    report(monkeypatch, {0: {1: {"miou": measured(summary, 1, 1) + 0.5, "fbiou": measured(summary, 1, 1, "fbiou") - 0.9},
                             3: {"miou": measured(summary, 1, 3) - 0.2}},
                         1: {1: {"miou": measured(summary, 2, 1), "fbiou": None}}})
    assert main(["verify", "--run", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["weights", "shot", "metric", "seeds", "fold", "pipeline", "reported", "measured", "diff", "status"]
    assert lines[-1] == "reported numbers: test"  # the entries' source, so a reader knows what was compared
    rows = [line.split() for line in lines[1:-2]]
    assert [(r[0], r[1], r[2], r[3], r[-1]) for r in rows] == [
        ("panet.fold0", "1", "mIoU", "2", "ok"), ("panet.fold0", "1", "FB-IoU", "2", "ok"),
        ("panet.fold0", "3", "mIoU", "2", "ok"), ("panet.fold1", "1", "mIoU", "2", "ok")]
    assert rows[0][-2] == "-0.50" and rows[1][-2] == "+0.90"
    assert lines[-2] == "4 of 4 within +/- 1 points of the reported numbers"


def test_a_number_beyond_the_tolerance_is_a_miss(published_run, monkeypatch, capsys):
    out, summary = published_run
    report(monkeypatch, {0: {1: {"miou": measured(summary, 1, 1) + 30.0}}, 1: {1: {"miou": measured(summary, 2, 1)}}})
    assert main(["verify", "--run", str(out)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].split()[-2:] == ["-30.00", "MISS"] and lines[2].split()[-1] == "ok"
    assert lines[-2].endswith("; 1 missed")
    assert main(["verify", "--run", str(out), "--tolerance", "31"]) == 0


def test_nothing_to_verify_is_one_line(published_run, voc_root, tmp_path, monkeypatch, capsys):
    out, _ = published_run
    report(monkeypatch, {0: {5: {"miou": 60.0}}})
    assert main(["verify", "--run", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: no reported number to compare with: the entries report none for panet.fold0 1-shot, "
                   "panet.fold0 3-shot, panet.fold1 1-shot, panet.fold1 3-shot"]
    plain = tmp_path / "plain"
    assert main(["run", "--methods", "support-copy", "--dataset", "pascal5i", "--data-root", str(voc_root), "--lists",
                 str(voc_root / "lists"), "--splits", "1", "--shots", "1", "--seeds", "0", "--episodes", "4",
                 "--out", str(plain), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["verify", "--run", str(plain)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no cell evaluated from published weights" in err[0]
    assert main(["verify", "--run", str(out), "--tolerance", "-1"]) == 2
    monkeypatch.setattr(WEIGHTS, "_entries", {})
    assert main(["verify", "--run", str(out)]) == 2
    assert "published weights 'panet.fold0', which are not registered" in capsys.readouterr().err
