"""What the harness does with inputs that are damaged or changed but can be recovered from: the command
that follows the fix resumes, changed checkpoints and predictions are redone, user files stay."""
from __future__ import annotations

import shutil
import threading
import time

import pandas as pd
import pytest
import torch

import bench.runs.runner as run_module
from bench.cli.commands import main
from bench.core.fileio import folder_lock
from tests.bad_input_builders import write_checkpoint


def pascal_args(voc, out, *extra):
    return ["run", "--methods", "support-copy", "all-foreground", "--dataset", "pascal5i", "--data-root", str(voc),
            "--lists", str(voc / "lists"), "--splits", "1", "--shots", "1", "--seeds", "0", "--episodes", "60",
            "--out", str(out), "--quiet", *extra]


@pytest.fixture(scope="module")
def finished(voc_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("integrity") / "run"
    assert main(pascal_args(voc_root, out)) == 0
    return out


def count_cells(monkeypatch):
    calls = []
    original = run_module.evaluate_manifest
    monkeypatch.setattr(run_module, "evaluate_manifest", lambda *a, **k: calls.append(k["desc"]) or original(*a, **k))
    return calls


def test_after_fixing_a_corrupt_image_the_same_command_runs(voc_root, finished, tmp_path, capsys):
    voc = tmp_path / "voc"
    shutil.copytree(voc_root, voc)
    image_id = (voc / "lists" / "val" / "fold0.txt").read_text().split()[0].rsplit("__", 1)[0]
    jpeg = voc / "VOC2012" / "JPEGImages" / f"{image_id}.jpg"
    good = jpeg.read_bytes()
    jpeg.write_bytes(good[:200])
    out = tmp_path / "run"
    assert main(pascal_args(voc, out)) == 2
    assert "corrupt image file" in capsys.readouterr().err
    assert not out.exists()  # refused before anything was written
    jpeg.write_bytes(good)
    assert main(pascal_args(voc, out)) == 0
    assert (out / "episodes.csv").read_bytes() == (finished / "episodes.csv").read_bytes()


def test_a_start_that_failed_is_replaced_by_the_corrected_command(voc_root, finished, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "evaluate_manifest", fail)
    assert main(pascal_args(voc_root, out, "--class-sampling", "uniform")) == 130  # config written, no cell
    monkeypatch.undo()
    assert main(pascal_args(voc_root, out)) == 0  # a different config, but nothing of the first was finished
    assert "replacing the unfinished run" in capsys.readouterr().err
    assert (out / "episodes.csv").read_bytes() == (finished / "episodes.csv").read_bytes()


def test_overwrite_removes_only_what_the_harness_wrote(voc_root, finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    mine = {out / "notes.md": "mine", out / "episodes" / "extra.csv": "a,b\n", out / "manifests" / "README": "x",
            out / "qualitative" / "keep.png": "png"}
    for path, text in mine.items():
        path.write_text(text)
    assert main(pascal_args(voc_root, out, "--class-sampling", "uniform", "--overwrite")) == 0
    for path, text in mine.items():
        assert path.read_text() == text, path
    replaced = out / "manifests" / "split1_shot1_seed0.csv"
    assert replaced.read_bytes() != (finished / "manifests" / "split1_shot1_seed0.csv").read_bytes()


def test_a_second_run_waits_for_the_first_with_wait(voc_root, finished, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    held = threading.Event()

    def hold():
        with folder_lock(out):
            held.set()
            time.sleep(1.5)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait()
    start = time.monotonic()
    assert main(pascal_args(voc_root, out, "--wait")) == 0
    assert time.monotonic() - start > 1.0
    thread.join()
    assert "waiting for process" in capsys.readouterr().err


def test_repeated_methods_are_run_once(voc_root, finished, tmp_path):
    out = tmp_path / "run"
    args = pascal_args(voc_root, out)
    args[args.index("--methods") + 1:args.index("--dataset")] = ["support-copy", "all-foreground", "support-copy"]
    assert main(args) == 0
    assert (out / "episodes.csv").read_bytes() == (finished / "episodes.csv").read_bytes()


def test_damaged_predictions_are_redone_by_the_next_run(voc_root, finished, tmp_path, monkeypatch):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    npz = out / "qualitative" / "all-foreground__split1_shot1_seed0.npz"
    good = npz.read_bytes()
    npz.write_bytes(good[:50])
    assert main(["report", "--run", str(out)]) == 2
    calls = count_cells(monkeypatch)
    assert main(pascal_args(voc_root, out)) == 0
    assert calls == ["all-foreground split1_shot1_seed0"] and npz.read_bytes() == good
    assert main(["report", "--run", str(out), "--resamples", "20"]) == 0


def test_report_states_the_resamples_it_used(finished, tmp_path):
    assert main(["report", "--run", str(finished), "--out", str(tmp_path / "r.html"), "--resamples", "37"]) == 0
    html = (tmp_path / "r.html").read_text()
    assert "37 resamples" in html and "1000 resamples" not in html


@pytest.fixture(scope="module")
def learned_run(cache_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("learned")
    args = ["run", "--methods", "panet", "--dataset", "synthetic-tiny", "--splits", "1", "--shots", "1",
            "--seeds", "0", "--episodes", "8", "--checkpoints", str(root / "ckpt"), "--out", str(root / "run"),
            "--quiet"]
    assert main(args) == 0
    return root, args


def test_cells_record_and_follow_their_checkpoint(learned_run, tmp_path, monkeypatch):
    source, args = learned_run
    root = tmp_path / "copy"
    shutil.copytree(source, root)
    args = [str(root / a[len(str(source)) + 1:]) if a.startswith(str(source)) else a for a in args]
    best = next((root / "ckpt").glob("synthetic-tiny/panet/split1-*/best.pt"))
    meta = pd.read_json(root / "run" / "episodes" / "panet__split1_shot1_seed0.json", typ="series")
    assert meta["checkpoint_sha256"] == __import__("hashlib").sha256(best.read_bytes()).hexdigest()
    calls = count_cells(monkeypatch)
    assert main(args + ["--no-train"]) == 0 and calls == []  # unchanged checkpoint: the cell is kept
    # the checkpoint is replaced by other weights with a consistent record (retrained, or restored from
    # elsewhere): the run's cell is redone with them instead of being kept
    payload = torch.load(best, weights_only=True)
    payload["model"] = {k: v * 0.5 if v.is_floating_point() else v for k, v in payload["model"].items()}
    write_checkpoint(best, payload)
    assert main(args + ["--no-train"]) == 0 and calls == ["panet split1_shot1_seed0"]
