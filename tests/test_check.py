"""`bench check`: passes on its own baseline, fails on a degraded or incomplete run."""
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.cli.commands import main
from methods import METHODS


@pytest.fixture(scope="module")
def run_dir(voc_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("check") / "run"
    args = ["run", "--methods", "support-copy", "all-foreground", "--dataset", "pascal5i", "--data-root", str(voc_root),
            "--lists", str(voc_root / "lists"), "--splits", "1", "2", "--shots", "1", "--seeds", "0", "1",
            "--episodes", "20", "--out", str(out), "--quiet"]
    assert main(args) == 0
    return out


@pytest.fixture()
def baseline(run_dir, tmp_path):
    path = tmp_path / "baseline.json"
    assert main(["check", "--run", str(run_dir), "--baseline", str(path), "--update"]) == 0
    return path


def test_baseline_records_every_cell(baseline):
    entries = json.loads(baseline.read_text())["entries"]
    assert len(entries) == 2 * 3  # two methods x (split 1, split 2, mean)
    assert {e["dataset"] for e in entries} == {"pascal5i"}


def test_check_passes_on_the_baseline_itself(run_dir, baseline, capsys):
    assert main(["check", "--run", str(run_dir), "--baseline", str(baseline)]) == 0
    assert "OK: 6 baseline entries" in capsys.readouterr().out


def raised(baseline, tmp_path, rise):
    """The baseline with support-copy's split-2 entry raised: the run then looks degraded by `rise`.

    (The run's own files cannot be edited for this: check recomputes from the verified episodes.)"""
    data = json.loads(baseline.read_text())
    for entry in data["entries"]:
        if entry["method"] == "support-copy" and entry["split"] == "2":
            entry["miou"] += rise
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "raised.json"
    path.write_text(json.dumps(data))
    return path


def test_check_fails_on_a_degraded_result(run_dir, baseline, tmp_path, capsys):
    assert main(["check", "--run", str(run_dir), "--baseline", str(raised(baseline, tmp_path, 1.5))]) == 1
    out = capsys.readouterr().out
    assert "REGRESSED" in out and "FAILED: 1 regressed" in out


def test_tolerance_is_respected(run_dir, baseline, tmp_path):
    assert main(["check", "--run", str(run_dir), "--baseline", str(raised(baseline, tmp_path, 0.5))]) == 0
    assert main(["check", "--run", str(run_dir), "--baseline", str(raised(baseline, tmp_path / "x", 0.5)),
                 "--tolerance", "0.1"]) == 1


def test_missing_entries_fail(run_dir, baseline, tmp_path, capsys):
    data = json.loads(baseline.read_text())
    data["entries"].append({**data["entries"][0], "method": "canet"})
    path = tmp_path / "more.json"
    path.write_text(json.dumps(data))
    assert main(["check", "--run", str(run_dir), "--baseline", str(path)]) == 1
    assert "MISSING" in capsys.readouterr().out


def test_an_edited_summary_cannot_hide_a_regression(run_dir, baseline, tmp_path, capsys):
    """summary.csv is derived data: the check recomputes from the verified per-episode rows."""
    out = tmp_path / "edited"
    shutil.copytree(run_dir, out)
    summary = pd.read_csv(out / "summary.csv", dtype={"split": str})
    summary["miou_mean"] += 5
    summary.to_csv(out / "summary.csv", index=False)
    assert main(["check", "--run", str(out), "--baseline", str(raised(baseline, tmp_path, 1.5))]) == 1
    assert "FAILED: 1 regressed" in capsys.readouterr().out


def test_bad_inputs_are_one_line_errors(run_dir, tmp_path, capsys):
    assert main(["check", "--run", str(tmp_path), "--baseline", str(tmp_path / "b.json")]) == 2
    assert "not a finished run directory" in capsys.readouterr().err
    assert main(["check", "--run", str(run_dir), "--baseline", str(tmp_path / "none.json")]) == 2
    assert "baseline file not found" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{")
    assert main(["check", "--run", str(run_dir), "--baseline", str(tmp_path / "bad.json")]) == 2
    assert "not a valid baseline file" in capsys.readouterr().err


def test_compare_same_run_gives_zero_differences(run_dir, capsys):
    assert main(["compare", str(run_dir), str(run_dir), "--resamples", "100"]) == 0
    out = capsys.readouterr().out
    assert "+0.00" in out and "yes" not in out.split("real", 1)[1]


def test_compare_refuses_different_episodes(run_dir, voc_root, tmp_path, capsys):
    other = tmp_path / "other"
    args = ["run", "--methods", "support-copy", "--dataset", "pascal5i", "--data-root", str(voc_root),
            "--lists", str(voc_root / "lists"), "--splits", "1", "2", "--shots", "1", "--seeds", "5", "6",
            "--episodes", "20", "--out", str(other), "--quiet"]
    assert main(args) == 0
    assert main(["compare", str(run_dir), str(other)]) == 2
    assert "not evaluated on identical episodes" in capsys.readouterr().err


def test_baseline_records_what_produced_it(baseline):
    identity = json.loads(baseline.read_text())["identity"]
    assert identity["protocol"]["dataset"] == "pascal5i" and len(identity["protocol"]["manifests"]) == 4
    assert "methods" not in identity["protocol"]  # adding a method does not change the protocol
    assert set(identity["numerics"]) >= {"ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_CBWR", "torch_threads"}


def test_a_run_of_another_configuration_is_one_line(run_dir, baseline, voc_root, tmp_path, capsys):
    other = tmp_path / "fewer"
    args = ["run", "--methods", "support-copy", "all-foreground", "--dataset", "pascal5i", "--data-root",
            str(voc_root), "--lists", str(voc_root / "lists"), "--splits", "1", "2", "--shots", "1", "--seeds", "0",
            "1", "--episodes", "10", "--out", str(other), "--quiet"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["check", "--run", str(other), "--baseline", str(baseline)]) == 2
    captured = capsys.readouterr()
    assert "REGRESSED" not in captured.out and "MISSING" not in captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "not the baseline's configuration" in lines[0] and "episodes (run 10, baseline 20)" in lines[0]


def test_other_numerics_are_said_before_the_table(run_dir, baseline, tmp_path, capsys):
    data = json.loads(baseline.read_text())
    data["identity"]["numerics"]["ONEDNN_MAX_CPU_ISA"] = "AVX512_CORE"
    path = tmp_path / "numerics.json"
    path.write_text(json.dumps(data))
    assert main(["check", "--run", str(run_dir), "--baseline", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("note: CPU numerics differ") and "ONEDNN_MAX_CPU_ISA" in out


def test_a_baseline_without_identity_still_compares(run_dir, baseline, tmp_path, capsys):
    data = json.loads(baseline.read_text())
    del data["identity"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    assert main(["check", "--run", str(run_dir), "--baseline", str(path)]) == 0
    assert "records no identity" in capsys.readouterr().out


def test_ci_checks_every_registered_method():
    """.ci/run names no methods: `--methods all` reads them from the registry."""
    script = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "--methods all" in script
    baseline = json.loads((Path(__file__).resolve().parent.parent / "reports" / "baselines" /
                           "ci-synthetic-tiny.json").read_text())
    assert {e["method"] for e in baseline["entries"]} == set(METHODS.names())
