"""Bad inputs and faults, as a careless or hostile user would give them.

Every case must end with exit status 2 and exactly one `error:` line (no traceback), and every file
present before the command must be byte-identical after it, with nothing new left behind.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from bench.cli.commands import main
from bench.core.fileio import folder_lock
from tests.voc_fixture import make_fss_tree, save_palette_png


@pytest.fixture(scope="module")
def pascal_run(voc_root, tmp_path_factory):
    """A finished run (reference methods, PASCAL-5i fixture, shots 1 and 3, qualitative files)."""
    out = tmp_path_factory.mktemp("bad") / "run"
    assert main(["run", "--methods", "support-copy", "all-foreground", "--dataset", "pascal5i", "--data-root",
                 str(voc_root), "--lists", str(voc_root / "lists"), "--splits", "1", "--shots", "1", "3",
                 "--seeds", "0", "--episodes", "10", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def trained(cache_env, tmp_path_factory):
    """A checkpoint root holding a finished PANet checkpoint for synthetic-tiny split 1 (tiny profile)."""
    root = tmp_path_factory.mktemp("ckpt")
    assert main(["train", "--methods", "panet", "--dataset", "synthetic-tiny", "--splits", "1",
                 "--checkpoints", str(root), "--quiet"]) == 0
    return root


class Env:
    """What a case works with: a private temporary folder and lazily made copies of the fixtures."""

    def __init__(self, tmp: Path, voc_root: Path, pascal_run: Path, trained: Path, monkeypatch, stack):
        self.tmp, self._voc, self._run, self._trained = tmp, voc_root, pascal_run, trained
        self.patch, self.stack = monkeypatch, stack
        self.out = tmp / "out"

    def copy(self, source: Path, name: str) -> Path:
        target = self.tmp / name
        if not target.exists():
            shutil.copytree(source, target)
        return target

    def voc(self) -> Path:
        return self.copy(self._voc, "voc")

    def run_dir(self) -> Path:
        return self.copy(self._run, "run")

    def best(self) -> Path:
        root = self.copy(self._trained, "ckpt")
        return next(root.glob("synthetic-tiny/panet/split1-*/best.pt"))

    def pascal(self, *extra: str, voc: Path | None = None) -> List[str]:
        voc = voc or self._voc
        return override(["run", "--methods", "support-copy", "--dataset", "pascal5i", "--data-root", str(voc),
                         "--lists", str(voc / "lists"), "--splits", "1", "--shots", "1", "--seeds", "0",
                         "--episodes", "5", "--out", str(self.out), "--quiet"], extra)

    def learned(self, *extra: str) -> List[str]:
        root = self.copy(self._trained, "ckpt")
        return override(["run", "--methods", "panet", "--dataset", "synthetic-tiny", "--splits", "1", "--shots", "1",
                         "--seeds", "0", "--episodes", "5", "--checkpoints", str(root), "--no-train",
                         "--out", str(self.out), "--quiet"], extra)

    def manifest(self, edit: Callable[[pd.DataFrame], pd.DataFrame], shot: int = 1) -> str:
        frame = pd.read_csv(self._run / "manifests" / f"split1_shot{shot}_seed0.csv", dtype=str, keep_default_na=False)
        path = self.tmp / "manifest.csv"
        edit(frame).to_csv(path, index=False)
        return str(path)

    def first_test_image(self, voc: Path) -> str:
        return (voc / "lists" / "val" / "fold0.txt").read_text().split()[0].rsplit("__", 1)[0]


def override(args: List[str], extra) -> List[str]:
    """`args` with the flags in `extra` replacing their values there (or appended)."""
    args, extra = list(args), list(extra)
    i = 0
    while i < len(extra):
        flag = extra[i]
        values = []
        i += 1
        while i < len(extra) and not extra[i].startswith("--"):
            values.append(extra[i])
            i += 1
        if flag in args:
            start = args.index(flag) + 1
            end = start
            while end < len(args) and not args[end].startswith("--"):
                end += 1
            args[start:end] = values
        else:
            args += [flag, *values]
    return args


def edit_cell(frame: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frame


# ---- data trees ----

def append_list_line(env: Env, line: str) -> List[str]:
    voc = env.voc()
    with open(voc / "lists" / "val" / "fold0.txt", "a") as handle:
        handle.write(line + "\n")
    return env.pascal("--episodes", "60", voc=voc)  # 60 episodes use every test image of split 1


def paint_mask(env: Env, values, mode: str = "P") -> List[str]:
    voc = env.voc()
    image_id = env.first_test_image(voc)
    path = voc / "VOC2012" / "SegmentationClassAug" / f"{image_id}.png"
    label = np.asarray(Image.open(path)).astype(np.int64)
    for k, value in enumerate(values):
        label[k, :3] = value
    if mode == "P":
        save_palette_png(label, path)
    else:
        Image.fromarray(label.astype(np.uint16)).save(path)
        assert Image.open(path).mode.startswith("I")
    return env.pascal("--episodes", "60", voc=voc)  # 60 episodes use every test image of split 1


def truncate_jpeg(env: Env) -> List[str]:
    voc = env.voc()
    path = voc / "VOC2012" / "JPEGImages" / f"{env.first_test_image(voc)}.jpg"
    path.write_bytes(path.read_bytes()[:200])
    return env.pascal("--episodes", "60", voc=voc)  # 60 episodes use every test image of split 1


def resize_mask_file(env: Env) -> List[str]:
    voc = env.voc()
    path = voc / "VOC2012" / "SegmentationClassAug" / f"{env.first_test_image(voc)}.png"
    save_palette_png(np.zeros((5, 7), dtype=np.uint8), path)
    return env.pascal("--episodes", "60", voc=voc)  # 60 episodes use every test image of split 1


def remove_image(env: Env) -> List[str]:
    voc = env.voc()
    (voc / "VOC2012" / "JPEGImages" / f"{env.first_test_image(voc)}.jpg").unlink()
    return env.pascal("--episodes", "60", voc=voc)  # 60 episodes use every test image of split 1


def fss_tree(env: Env, test_names: List[str]) -> List[str]:
    root = env.tmp / "fss"
    make_fss_tree(root, [n for n in test_names if "/" not in n], images=3)
    lists = env.tmp / "fss-lists"
    lists.mkdir()
    for part, names in (("trn", ["train_class"]), ("val", ["val_class"]), ("test", test_names)):
        (lists / f"{part}.txt").write_text("".join(f"{n}\n" for n in names))
    return ["run", "--methods", "support-copy", "--dataset", "fss1000", "--data-root", str(root), "--lists",
            str(lists), "--splits", "1", "--shots", "1", "--seeds", "0", "--episodes", "4", "--out", str(env.out),
            "--quiet"]


# ---- run directories ----

def user_folder(env: Env) -> List[str]:
    env.out.mkdir()
    (env.out / "summary.csv").write_text("my,own,numbers\n")
    (env.out / "episodes").mkdir()
    (env.out / "episodes" / "notes.txt").write_text("keep me\n")
    return env.pascal()


def damaged_config(env: Env) -> List[str]:
    run = env.run_dir()
    (run / "config.json").write_text("{")
    return env.pascal("--out", str(run))


def locked_run(env: Env) -> List[str]:
    run = env.run_dir()
    env.stack.enter_context(folder_lock(run))  # another `bench run` holds it
    return override(env.pascal("--out", str(run)), ["--methods", "support-copy", "all-foreground", "--shots", "1", "3",
                                                    "--episodes", "10"])


def fail_fsync(env: Env) -> List[str]:
    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    env.patch.setattr(os, "fsync", no_space)
    return env.pascal()


def read_only(env: Env) -> List[str]:
    original = Path.mkdir

    def refuse(self, *args, **kwargs):
        if str(self).startswith(str(env.out)):
            raise OSError(errno.EROFS, "Read-only file system")
        return original(self, *args, **kwargs)

    env.patch.setattr(Path, "mkdir", refuse)
    return env.pascal()


def truncate_episodes(env: Env, command: str) -> List[str]:
    run = env.run_dir()
    if command == "check":
        assert main(["check", "--run", str(run), "--baseline", str(run / "baseline.json"), "--update"]) == 0
    data = (run / "episodes.csv").read_bytes()
    (run / "episodes.csv").write_bytes(data[: len(data) // 2].rsplit(b"\n", 1)[0] + b"\n")
    if command == "report":
        return ["report", "--run", str(run), "--resamples", "20"]
    if command == "compare":
        return ["compare", str(env._run), str(run), "--resamples", "20"]
    return ["check", "--run", str(run), "--baseline", str(run / "baseline.json")]


def edit_cell_file(env: Env) -> List[str]:
    run = env.run_dir()
    path = run / "episodes" / "support-copy__split1_shot1_seed0.csv"
    frame = pd.read_csv(path)
    frame.loc[0, "fg_inter"] = frame.loc[0, "fg_union"]  # a better score than it earned
    frame.to_csv(path, index=False)
    return ["report", "--run", str(run), "--resamples", "20"]


def damage_npz(env: Env) -> List[str]:
    run = env.run_dir()
    path = run / "qualitative" / "support-copy__split1_shot1_seed0.npz"
    path.write_bytes(path.read_bytes()[:100])
    return ["report", "--run", str(run), "--resamples", "20"]


# ---- checkpoints ----

class MakesAFile:
    """Unpickling this creates a file: what a hostile checkpoint would do."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def write_checkpoint(best: Path, payload) -> None:
    torch.save(payload, best)
    record = best.with_suffix(".json")
    text = record.read_text()
    old = __import__("json").loads(text)["sha256"]
    record.write_text(text.replace(old, hashlib.sha256(best.read_bytes()).hexdigest()))  # a consistent record


def hostile_checkpoint(env: Env) -> List[str]:
    best = env.best()
    payload = torch.load(best, weights_only=True)
    payload["meta"]["note"] = MakesAFile(str(env.tmp.parent / f"{env.tmp.name}-pwned"))
    write_checkpoint(best, payload)
    return env.learned()


def flip_signs(env: Env) -> List[str]:
    best = env.best()
    payload = torch.load(best, weights_only=True)
    payload["model"] = {k: -v if v.is_floating_point() else v for k, v in payload["model"].items()}
    torch.save(payload, best)  # the record keeps the trained file's hash
    return env.learned()


def drop_method_options(env: Env) -> List[str]:
    best = env.best()
    payload = torch.load(best, weights_only=True)
    del payload["meta"]["method_options"]
    write_checkpoint(best, payload)
    return env.learned()


def damage_record(env: Env) -> List[str]:
    best = env.best()
    best.with_suffix(".json").write_text("{")
    return env.learned()


def remove_best(env: Env) -> List[str]:
    env.best().unlink()
    return env.learned()


@dataclass
class Case:
    name: str
    build: Callable[[Env], List[str]]
    message: str


def replay(edit, shot: int = 1, *extra: str):
    return lambda env: env.pascal("--episodes-from", env.manifest(edit, shot), *extra)


CASES = [
    # command-line values
    Case("negative-seed", lambda e: e.pascal("--seeds", "-1"), "--seeds must be >= 0, got -1"),
    Case("input-size-0", lambda e: e.pascal("--input-size", "0"), "--input-size must be >= 16"),
    Case("eval-size-negative", lambda e: e.pascal("--eval-size", "-3"), "--eval-size must be >= 1, got -3"),
    Case("episodes-0", lambda e: e.pascal("--episodes", "0"), "--episodes must be >= 1"),
    Case("shots-0", lambda e: e.pascal("--shots", "0"), "shots must be >= 1"),
    Case("batch-size-0", lambda e: e.pascal("--batch-size", "0"), "--batch-size must be >= 1"),
    Case("epochs-0", lambda e: e.pascal("--epochs", "0"), "--epochs must be >= 1"),
    Case("train-seed-negative", lambda e: e.pascal("--train-seed", "-1"), "--train-seed must be >= 0"),
    Case("min-object-pixels-negative", lambda e: e.pascal("--min-object-pixels", "-5"), "--min-object-pixels must be >= 0"),
    Case("unknown-method", lambda e: e.pascal("--methods", "nope"), "unknown method 'nope'"),
    Case("unknown-dataset", lambda e: e.pascal("--dataset", "coco"), "unknown dataset 'coco'"),
    Case("split-5", lambda e: e.pascal("--splits", "5"), "split 5 is outside 1..4"),
    Case("missing-data-root", lambda e: e.pascal("--data-root", "/no/such/dir"), "data root does not exist"),
    Case("identical-5-shot", lambda e: e.pascal("--identical-input", "--shots", "5"), "identical-input test is 1-shot"),
    Case("ray-cpus-0", lambda e: e.pascal("--executor", "ray", "--cpus-per-task", "0"), "--cpus-per-task must be >= 1"),
    Case("train-seed-negative-train", lambda e: ["train", "--methods", "panet", "--train-seed", "-1"],
         "--train-seed must be >= 0"),
    Case("train-reference-method", lambda e: ["train", "--methods", "support-copy"], "has no parameters to train"),
    Case("train-epochs-0", lambda e: ["train", "--methods", "panet", "--epochs", "0"], "--epochs must be >= 1"),
    Case("train-unknown-method", lambda e: ["train", "--methods", "nope"], "unknown method 'nope'"),
    # output folders and faults
    Case("out-is-a-file", lambda e: (e.tmp / "file").write_text("x") and e.pascal("--out", str(e.tmp / "file")),
         "output path exists and is not a directory"),
    Case("out-is-a-user-folder", user_folder, "is a folder that is not an fss-bench run directory"),
    Case("out-under-proc", lambda e: e.pascal("--out", "/proc/fss-bench-test/run"), "cannot create folder /proc/fss-bench-test"),
    Case("out-read-only", read_only, "Read-only file system"),
    Case("disk-full", fail_fsync, "config.json: No space left on device"),
    Case("damaged-run-config", damaged_config, "is damaged; use --overwrite"),
    Case("run-in-use", locked_run, "is in use by process"),
    Case("different-config", lambda e: e.pascal("--out", str(e.run_dir()), "--class-sampling", "uniform"),
         "holds a run with a different config"),
    # replayed manifests
    Case("support-is-query", replay(lambda f: edit_cell(f, 2, "supports", f.loc[2, "query"])),
         "episode 2 uses its query"),
    Case("repeated-supports", replay(lambda f: edit_cell(f, 1, "supports", " ".join([f.loc[1, "supports"].split()[0]] * 3)), 3),
         "episode 1 repeats a support image"),
    Case("empty-supports", replay(lambda f: edit_cell(f, 0, "supports", "")), "line 2 (episode 0): the supports field is empty"),
    Case("class-id-abc", replay(lambda f: edit_cell(f, 3, "class_id", "abc")), "line 5: class_id 'abc' is not"),
    Case("too-many-supports", replay(lambda f: edit_cell(f, 0, "supports", "a b")), "episode 0 has 2 supports, expected 1"),
    Case("id-outside-list", replay(lambda f: edit_cell(f, 4, "query", "../../../../outside/secret")),
         "episode 4 uses (../../../../outside/secret"),
    Case("identical-run-regular-manifest", replay(lambda f: f, 1, "--identical-input"),
         "the support must be the query itself"),
    Case("repeated-episode", replay(lambda f: edit_cell(f, 1, "episode", "0")), "episode 0 appears twice"),
    Case("manifest-missing-column", replay(lambda f: f.drop(columns=["seed"])), "lacks columns: seed"),
    Case("manifest-mixed-splits", replay(lambda f: edit_cell(f, 1, "split", "2")), "mixes several values of 'split'"),
    # data trees
    Case("list-id-escapes-root", lambda e: append_list_line(e, "../../../../outside/secret__01"), "is not a plain file name"),
    Case("list-id-absolute", lambda e: append_list_line(e, "/etc/passwd__01"), "is not a plain file name"),
    Case("mask-value-30", lambda e: paint_mask(e, [30, 100]), "unexpected values 30, 100"),
    Case("mask-16-bit", lambda e: paint_mask(e, [257, 65535], mode="I;16"), "unexpected values 257, 65535"),
    Case("truncated-jpeg", truncate_jpeg, "corrupt image file"),
    Case("mask-size-differs", resize_mask_file, "image and mask sizes differ"),
    Case("missing-image", remove_image, "images listed in the test list of split 1 are missing"),
    Case("fss-class-with-space", lambda e: fss_tree(e, ["ice cream", "b", "c"]), "contains whitespace"),
    Case("fss-class-escapes-root", lambda e: fss_tree(e, ["../b", "c"]), "is not a plain folder name"),
    # finished runs read by report, compare and check
    Case("report-invalid-config", lambda e: (e.run_dir() / "config.json").write_text("{") and
         ["report", "--run", str(e.run_dir())], "is not valid JSON"),
    Case("report-not-a-run", lambda e: ["report", "--run", str(e.tmp)], "not a finished run directory"),
    Case("report-resamples-0", lambda e: ["report", "--run", str(e.run_dir()), "--resamples", "0"],
         "--resamples must be >= 1"),
    Case("report-out-is-folder", lambda e: ["report", "--run", str(e.run_dir()), "--out", str(e.tmp)], "is a folder"),
    Case("report-truncated-episodes", lambda e: truncate_episodes(e, "report"), "does not match the cells"),
    Case("report-edited-cell", edit_cell_file, "does not match its record"),
    Case("report-damaged-predictions", damage_npz, "does not match the hash its cell recorded"),
    Case("compare-resamples-0", lambda e: ["compare", str(e.run_dir()), str(e.run_dir()), "--resamples", "0"],
         "--resamples must be >= 1"),
    Case("compare-truncated-episodes", lambda e: truncate_episodes(e, "compare"), "does not match the cells"),
    Case("check-truncated-episodes", lambda e: truncate_episodes(e, "check"), "does not match the cells"),
    # checkpoints
    Case("checkpoint-runs-code", hostile_checkpoint, "not a weights-only tensor file"),
    Case("checkpoint-sign-flipped", flip_signs, "was changed after training"),
    Case("checkpoint-without-method-options", drop_method_options, "lacks 'method_options'"),
    Case("checkpoint-record-damaged", damage_record, "is not valid JSON"),
    Case("checkpoint-missing-beside-record", remove_best, "is missing beside its record"),
]


def tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_there_are_enough_cases():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_error_line_and_touches_nothing(case, tmp_path, voc_root, pascal_run, trained, monkeypatch,
                                                         capsys):
    with contextlib.ExitStack() as stack:
        env = Env(tmp_path / "case", voc_root, pascal_run, trained, monkeypatch, stack)
        env.tmp.mkdir()
        args = case.build(env)
        before = tree(env.tmp)
        capsys.readouterr()
        code = main(args)
        err = capsys.readouterr().err
        monkeypatch.undo()
        after = tree(env.tmp)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert case.message in lines[0], lines[0]
    assert after.keys() == before.keys(), sorted(set(after) ^ set(before))
    changed = [name for name in before if before[name] != after[name]]
    assert not changed
    assert not (tmp_path / "case-pwned").exists()  # the hostile checkpoint ran nothing
