"""`--precision`: a recorded choice of the run's identity (another precision is another run), applied to
evaluation through torch.autocast; bf16 on CPU changes the counts of a tiny learned run only a little."""
import json
from dataclasses import replace

import pandas as pd
import pytest
import torch

from bench.cli.commands import main
from bench.core.errors import BenchError
from bench.evaluation.precision import autocast, check_precision
from bench.runs.config import RunConfig
from bench.runs.run import default_out


def learned(trained, out, *extra):
    return ["run", "--methods", "panet", "--dataset", "synthetic-tiny", "--splits", "1", "--shots", "1", "--seeds",
            "0", "--episodes", "12", "--checkpoints", str(trained), "--no-train", "--out", str(out), "--quiet", *extra]


@pytest.fixture(scope="module")
def runs(trained, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("precision")
    assert main(learned(trained, tmp / "fp32")) == 0
    assert main(learned(trained, tmp / "bf16", "--precision", "bf16")) == 0
    return tmp


def test_the_default_identity_has_no_precision_and_another_is_another_run():
    full, half = RunConfig(methods=["panet"]), RunConfig(methods=["panet"], precision="bf16")
    assert "precision" not in full.identity()  # runs recorded before the option keep their identity
    assert half.protocol()["precision"] == "bf16"
    assert default_out(full) != default_out(half) != default_out(replace(half, precision="fp16"))


def test_config_and_results_record_the_precision(runs):
    config = json.loads((runs / "bf16" / "config.json").read_text())
    results = json.loads((runs / "bf16" / "results.json").read_text())
    assert config["identity"]["precision"] == config["config"]["precision"] == results["config"]["precision"] == "bf16"
    assert "precision bf16" in config["protocol"]
    meta = json.loads(next((runs / "bf16" / "episodes").glob("*.json")).read_text())
    assert meta["precision"] == "bf16"
    assert json.loads((runs / "fp32" / "config.json").read_text())["config"]["precision"] == "fp32"


def test_a_bf16_run_is_refused_in_the_fp32_directory(runs, trained, capsys):
    assert main(learned(trained, runs / "fp32", "--precision", "bf16")) == 2
    assert "error:" in capsys.readouterr().err


def test_bf16_counts_differ_little_from_fp32(runs):
    full, half = (pd.read_csv(runs / name / "episodes.csv") for name in ("fp32", "bf16"))
    assert list(full["episode"]) == list(half["episode"])
    pixels = full["fg_union"] + full["bg_union"]
    changed = (full["fg_inter"] - half["fg_inter"]).abs() + (full["fg_union"] - half["fg_union"]).abs()
    assert (changed <= 0.02 * pixels).all(), changed.describe()


def test_an_unknown_or_unsupported_precision_is_one_line(monkeypatch):
    with pytest.raises(BenchError, match="unknown precision"):
        check_precision("cpu", "fp8")

    class Disabled:
        _enabled = False

    monkeypatch.setattr(torch, "autocast", lambda *a, **k: Disabled())
    with pytest.raises(BenchError, match="not supported on cpu"):
        check_precision("cpu", "fp16")


def test_autocast_runs_the_forward_at_the_precision():
    conv = torch.nn.Conv2d(3, 2, 3)
    with autocast("cpu", "bf16"):
        assert conv(torch.randn(1, 3, 8, 8)).dtype == torch.bfloat16
    with autocast("cpu", "fp32"):
        assert conv(torch.randn(1, 3, 8, 8)).dtype == torch.float32
