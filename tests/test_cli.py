"""End-to-end `bench run` on a VOC-layout fixture: run directory, determinism, resume, bad input."""
import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

import bench.runs.runner as run_module
from analyses.summary import summarize
from bench.cli.commands import main
from bench.core.fileio import host_tag


def base_args(voc_root, out, *extra):
    return ["run", "--methods", "support-copy", "all-foreground", "--dataset", "pascal5i",
            "--data-root", str(voc_root), "--lists", str(voc_root / "lists"), "--splits", "1", "2",
            "--shots", "1", "3", "--seeds", "0", "1", "--episodes", "20", "--out", str(out), "--quiet", *extra]


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(voc_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(base_args(voc_root, out)) == 0
    return out


def test_run_directory_contents(finished_run):
    config = json.loads((finished_run / "config.json").read_text())
    assert config["config"]["methods"] == ["support-copy", "all-foreground"]
    assert config["config"]["input_size"] == 321
    env = config["environment"]
    assert {"torch", "numpy", "python"} <= set(env["versions"]) and env["git_revision"]
    assert len(config["dataset"]["hash"]) == 64
    assert len(config["manifests"]) == 2 * 2 * 2
    for cell, digest in config["manifests"].items():
        manifest = pd.read_csv(finished_run / "manifests" / f"{cell}.csv")
        assert list(manifest.columns[:7]) == ["episode", "split", "shot", "seed", "class_id", "query", "supports"]
        assert len(manifest) == 20 and len(digest) == 64
    episodes = pd.read_csv(finished_run / "episodes.csv")
    assert len(episodes) == 2 * 8 * 20
    assert list(episodes.columns) == ["method", "split", "shot", "seed", "episode", "class_id", "query",
                                      "fg_inter", "fg_union", "bg_inter", "bg_union"]
    summary = pd.read_csv(finished_run / "summary.csv", dtype={"split": str})
    recomputed = summarize(episodes)
    pd.testing.assert_series_equal(summary["miou_mean"], recomputed["miou_mean"].round(4), check_names=False)
    assert (finished_run / "class_iou.csv").is_file()


def test_same_command_gives_byte_identical_results(voc_root, finished_run, tmp_path):
    assert main(base_args(voc_root, tmp_path / "again")) == 0
    assert (tmp_path / "again" / "episodes.csv").read_bytes() == (finished_run / "episodes.csv").read_bytes()


def test_results_do_not_depend_on_batch_size(voc_root, finished_run, tmp_path):
    assert main(base_args(voc_root, tmp_path / "b1", "--batch-size", "1")) == 0
    assert (tmp_path / "b1" / "episodes.csv").read_bytes() == (finished_run / "episodes.csv").read_bytes()


def test_rerun_skips_finished_cells_and_redoes_damaged_ones(voc_root, finished_run, tmp_path, monkeypatch):
    out = tmp_path / "resume"
    shutil.copytree(finished_run, out)
    (out / "episodes" / "support-copy__split1_shot1_seed0.csv").unlink()
    (out / "episodes" / "all-foreground__split2_shot3_seed1.csv").write_text("method,episode\n")  # truncated
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = host_tag()
    (out / "episodes" / f".canet__split1_shot1_seed0.json.{dead.stdout.strip()}-{host}-a1b2c3.tmp").write_text("{")
    live = out / "episodes" / f".canet__split1_shot2_seed0.json.{os.getpid()}-{host}-a1b2c3.tmp"  # a live writer's
    live.write_text("{")
    calls = []
    original = run_module.evaluate_manifest
    monkeypatch.setattr(run_module, "evaluate_manifest", lambda *a, **k: calls.append(k["desc"]) or original(*a, **k))
    assert main(base_args(voc_root, out)) == 0
    assert sorted(calls) == ["all-foreground split2_shot3_seed1", "support-copy split1_shot1_seed0"]
    assert (out / "episodes.csv").read_bytes() == (finished_run / "episodes.csv").read_bytes()
    assert list(out.rglob("*.tmp")) == [live]  # the killed writer's temporary is gone, the live one's kept


def test_interrupted_run_resumes_to_the_same_result(voc_root, finished_run, tmp_path, monkeypatch, capsys):
    out = tmp_path / "interrupted"
    original = run_module.evaluate_manifest
    calls = []

    def interrupt_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(run_module, "evaluate_manifest", interrupt_third)
    assert main(base_args(voc_root, out)) == 130
    assert "re-run the same command to resume" in capsys.readouterr().err
    assert len(list((out / "episodes").glob("*.csv"))) == 2
    assert not list(out.rglob("*.tmp"))
    monkeypatch.setattr(run_module, "evaluate_manifest", original)
    assert main(base_args(voc_root, out)) == 0
    assert (out / "episodes.csv").read_bytes() == (finished_run / "episodes.csv").read_bytes()


def test_different_config_is_refused_and_nothing_is_lost(voc_root, finished_run, tmp_path, capsys):
    out = tmp_path / "refuse"
    shutil.copytree(finished_run, out)
    before = snapshot(out)
    assert main(base_args(voc_root, out, "--class-sampling", "uniform")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "different config" in err and "class_sampling" in err
    assert len(err.splitlines()) == 1
    assert snapshot(out) == before
    assert main(base_args(voc_root, out, "--class-sampling", "uniform", "--overwrite")) == 0
    assert json.loads((out / "config.json").read_text())["config"]["class_sampling"] == "uniform"


def test_identical_input_support_copy_scores_100(voc_root, tmp_path):
    args = ["run", "--methods", "support-copy", "--dataset", "pascal5i", "--data-root", str(voc_root),
            "--lists", str(voc_root / "lists"), "--shots", "1", "--seeds", "0", "--episodes", "30",
            "--identical-input", "--out", str(tmp_path / "ident"), "--quiet"]
    assert main(args) == 0
    summary = pd.read_csv(tmp_path / "ident" / "summary.csv")
    assert (summary["miou_mean"] == 100.0).all() and (summary["fbiou_mean"] == 100.0).all()


def test_episodes_from_replays_manifests_exactly(voc_root, finished_run, tmp_path):
    out = tmp_path / "replay"
    args = ["run", "--methods", "support-copy", "--dataset", "pascal5i", "--data-root", str(voc_root),
            "--lists", str(voc_root / "lists"), "--episodes-from", str(finished_run / "manifests"),
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    assert snapshot(out / "manifests") == snapshot(finished_run / "manifests")
    ours = pd.read_csv(out / "episodes.csv")
    theirs = pd.read_csv(finished_run / "episodes.csv")
    pd.testing.assert_frame_equal(ours, theirs[theirs.method == "support-copy"].reset_index(drop=True))


def test_fixed_evaluation_size(voc_root, tmp_path):
    args = base_args(voc_root, tmp_path / "eval400", "--eval-size", "64")
    assert main(args) == 0
    episodes = pd.read_csv(tmp_path / "eval400" / "episodes.csv")
    valid = episodes.fg_inter + episodes.bg_inter + (episodes.fg_union - episodes.fg_inter)
    assert (valid <= 64 * 64).all() and (valid > 64 * 64 * 0.8).all()


BAD_INPUTS = [
    (["--methods", "nope"], "unknown method 'nope'; known methods: all-foreground"),
    (["--dataset", "coco"], "unknown dataset 'coco'"),
    (["--shots", "0"], "shots must be >= 1"),
    (["--splits", "5"], "split 5 is outside 1..4"),
    (["--shots", "5"], "5-shot episodes need 6 usable images per class"),
    (["--data-root", "/no/such/dir"], "data root does not exist: /no/such/dir"),
]
#: a missing data root also shows the layout and where to get each part (the dataset card), in a few lines
MULTI_LINE = {"data root does not exist: /no/such/dir": ("VOC2012/SegmentationClassAug", "get SBD: http",
                                                         "python -m bench prepare pascal5i")}


@pytest.mark.parametrize("extra,message", BAD_INPUTS)
def test_bad_input_gives_one_clear_line(voc_root, tmp_path, capsys, extra, message):
    args = ["run", "--methods", "support-copy", "--dataset", "pascal5i", "--data-root", str(voc_root),
            "--lists", str(voc_root / "lists"), "--episodes", "5", "--seeds", "0", "--shots", "1",
            "--out", str(tmp_path / "bad"), "--quiet"]
    for i in range(0, len(extra), 2):
        flag = extra[i]
        if flag in args:
            position = args.index(flag)
            args[position + 1] = extra[i + 1]
        else:
            args += extra[i : i + 2]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err.splitlines()[0], err
    assert "Traceback" not in err
    if message in MULTI_LINE:
        assert 3 <= len(err.splitlines()) <= 8 and all(part in err for part in MULTI_LINE[message]), err
    else:
        assert len(err.splitlines()) == 1, err
    assert not (tmp_path / "bad").exists()


def test_missing_list_files_are_reported(tmp_path, voc_root, capsys):
    root = tmp_path / "voc"
    shutil.copytree(voc_root, root)
    for image_id in ("val_01_0", "val_02_0"):
        (root / "VOC2012" / "JPEGImages" / f"{image_id}.jpg").unlink()
    args = ["run", "--methods", "support-copy", "--dataset", "pascal5i", "--data-root", str(root),
            "--lists", str(root / "lists"), "--out", str(tmp_path / "r"), "--quiet"]
    assert main(args) == 2
    assert "2 images listed in the test list of split 1 are missing" in capsys.readouterr().err


def test_module_entry_point_lists_methods_and_datasets():
    result = subprocess.run([sys.executable, "-m", "bench", "list"], capture_output=True, text=True, check=True)
    assert "support-copy" in result.stdout and "synthetic" in result.stdout and "pascal5i" in result.stdout


def test_end_to_end_on_tiny_synthetic_benchmark(tmp_path, capsys):
    data = tmp_path / "synthetic-tiny"
    out = tmp_path / "syn"
    args = ["run", "--methods", "support-copy", "all-foreground", "--dataset", "synthetic-tiny",
            "--data-root", str(data), "--shots", "1", "5", "--episodes", "40", "--out", str(out), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "mIoU (%)" in printed and "FB-IoU (%)" in printed and "split-4" in printed
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 2 * 2 * 5
    assert summary.split.dtype.kind == "f" and summary.split.dropna().isin([1, 2, 3, 4]).all()  # numbers
    assert list(summary["aggregate"].fillna("")) == ["", "", "", "", "mean"] * 4 and summary.split.isna().sum() == 4
    rows = summary[summary["aggregate"] == "mean"].set_index(["method", "shot"])
    # all-foreground scores the mean object fraction: low but non-zero on this benchmark
    assert 3 < rows.loc[("all-foreground", 1), "miou_mean"] < 30
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"]["name"] == "synthetic-tiny" and config["config"]["input_size"] == 48
    assert config["dataset"]["class_names"]["1"]


def test_void_as_background_scores_the_ignore_band(voc_root, finished_run, tmp_path):
    assert main(base_args(voc_root, tmp_path / "void", "--void-as-background")) == 0
    void = pd.read_csv(tmp_path / "void" / "episodes.csv")
    ignored = pd.read_csv(finished_run / "episodes.csv")
    assert (void.bg_union >= ignored.bg_union).all() and (void.bg_union > ignored.bg_union).any()
    support_copy = void.method == "support-copy"
    assert (void[support_copy].fg_inter == ignored[support_copy].fg_inter).all()


def test_a_closed_pipe_ends_quietly():
    """`bench weights | head`: the reader leaving is no error and no traceback."""
    code = ("import sys\nfrom bench.cli.guard import exit_status\n"
            "def command():\n    raise BrokenPipeError\n"
            "sys.exit(exit_status(command))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (0, "")
