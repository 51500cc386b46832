"""`python -m bench.benchmarks.device` on CPU: it says there is no GPU, runs every part in its reduced form
(about 20 s) and writes device.json and device.md; its comparisons and verdicts on known inputs."""
import json

import pandas as pd
import pytest

from bench.benchmarks import device
from bench.benchmarks.gpu_measure import Utilisation, compare_counts


@pytest.fixture(scope="module")
def checked(cache_env, tmp_path_factory):
    out = tmp_path_factory.mktemp("device")
    code = device.main(["--out", str(out), "--device", "cpu"])
    return code, out, json.loads((out / "device.json").read_text())


def test_on_cpu_every_part_runs_reduced_and_passes(checked, capsys):
    code, out, record = checked
    assert code == 0
    assert record["device"] == "cpu" and record["reduced"] and record["gpu"] is None
    assert {k: p["status"] for k, p in record["parts"].items()} == {
        "tests": "skipped", "main_job": "ok", "speed": "ok", "counts": "ok", "precision": "ok"}
    assert (out / "main-job" / "results.json").is_file()


def test_the_figures_are_measured(checked):
    _, out, record = checked
    hsnet = record["parts"]["speed"]["hsnet@64"]
    assert hsnet["cache_applies"] and hsnet["cached"]["episodes"] == hsnet["uncached"]["episodes"] == 4
    assert hsnet["cached"]["episodes_per_s"] > 0 and hsnet["cached"]["peak_gpu_mib"] is None
    assert "cached" not in record["parts"]["speed"]["pfenet@65"]  # the authors' PFENet: nothing to cache
    counts = record["parts"]["counts"]
    assert counts["episodes"] == counts["identical"] == 4  # two CPU runs: deterministic
    assert record["parts"]["precision"]["bf16"]["settings"][1] == {"device": "cpu", "precision": "bf16"}
    trained = record["parts"]["precision"]["main job bf16"]  # the main job's checkpoints at bf16
    assert trained["episodes"] == 8 and set(trained["miou_by_shot"]) == {"1"}
    assert json.loads((out / "main-job-bf16" / "config.json").read_text())["identity"]["precision"] == "bf16"
    text = (out / "device.md").read_text()
    assert "no GPU visible" in text and "| hsnet@64 | cached | 4 |" in text


def rows(fg_inter, bg_inter, fg_union=100):
    n = len(fg_inter)
    return pd.DataFrame({"episode": range(n), "class_id": [1] * n, "query": ["q"] * n, "fg_inter": fg_inter,
                         "fg_union": [fg_union] * n, "bg_inter": bg_inter, "bg_union": [1000] * n})


def test_compare_counts_and_the_handful():
    compared = compare_counts(rows([50, 60, 70], [900, 900, 900]), rows([50, 58, 70], [900, 901, 700]))
    assert compared["episodes"] == 3 and compared["identical"] == 1
    assert compared["changed_pixels_median"] == 3 and compared["changed_pixels_max"] == 200
    assert device.verdict(compared) == "failed"
    assert device.verdict(compare_counts(rows([50], [900]), rows([49], [903]))) == "ok"
    assert device.verdict({"episodes": 0}) == "budget"


def test_a_failing_part_is_recorded_and_fails_the_check(cache_env, tmp_path, monkeypatch):
    monkeypatch.setitem(device.PARTS, "counts", lambda *a: 1 / 0)
    assert device.main(["--out", str(tmp_path), "--device", "cpu", "--parts", "tests", "counts"]) == 1
    record = json.loads((tmp_path / "device.json").read_text())
    assert record["parts"]["counts"] == {"status": "failed", "error": "ZeroDivisionError: division by zero",
                                         "wall_s": record["parts"]["counts"]["wall_s"]}


def test_no_utilisation_without_a_gpu():
    with Utilisation("cpu") as gpu:
        pass
    assert gpu.read() is None and gpu.mean is None
