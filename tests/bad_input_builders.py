"""The environments and inputs of the bad-input cases (tests/test_bad_inputs.py): damaged data trees,
hostile manifests and checkpoints, run directories in use, injected write faults."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, List

import numpy as np
import pandas as pd
import torch
from PIL import Image

from bench.cli.commands import main
from bench.core.fileio import folder_lock
from tests.published_fixture import ENTRIES, SIZE, use_entries, weights_dir, write_authors_file
from tests.voc_fixture import make_fss_tree, save_palette_png


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
    old = json.loads(text)["sha256"]
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


# ---- published checkpoints (the test entries of tests/published_fixture.py, registered for one command) ----

def published(env: Env, edit: Callable[[Path], object] | None = None, *weights: str) -> List[str]:
    """PANet on split 1 from a --weights folder laid out like the authors' (after `edit`), plus `weights`."""
    use_entries(env.patch)
    folder = weights_dir(env.tmp / "weights", ENTRIES[:1])
    if edit is not None:
        edit(folder)
    return env.pascal("--methods", "panet", "--input-size", str(SIZE), "--weights", str(folder), *weights)


def published_extra_key(env: Env) -> List[str]:
    return published(env, lambda folder: write_authors_file(folder / ENTRIES[0].file_name, ENTRIES[0], 3,
                                                             lambda state: state.update(extra=torch.zeros(1))))


def published_wrong_fold(env: Env) -> List[str]:
    other = write_authors_file(env.tmp / "fold2.pth", ENTRIES[2], 4)
    return published(env, None, f"{ENTRIES[2].name}={other}")


def published_runs_code(env: Env) -> List[str]:
    def hostile(folder: Path) -> None:
        path = folder / ENTRIES[0].file_name
        payload = torch.load(path, weights_only=True)
        payload["note"] = MakesAFile(str(env.tmp.parent / f"{env.tmp.name}-pwned"))
        torch.save(payload, path)
    return published(env, hostile)

