"""Tests of the synthetic few-shot segmentation benchmark generator (bench.data.synthetic)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.core.errors import BenchError
from bench.data.synthetic import (
    CLASS_NAMES,
    CLASSES,
    GENERATOR_VERSION,
    TINY_SPEC,
    SyntheticSpec,
    check_class_table,
    default_cache_dir,
    ensure_synthetic,
    fold_classes,
    synthetic_content_hash,
    verify_synthetic,
)
from bench.data.synthetic.generate import OWNER_MARKER, STAMP_NAME
from bench.data.synthetic.layout import IMAGE_DIR, LABEL_DIR, voc_palette
from bench.data.synthetic.render import MIN_PIXELS

LINE = re.compile(r"^\w+__\d\d$")
MICRO = SyntheticSpec(n_train=20, n_val=20)          # mechanics tests: same code path, 40 images


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return ensure_synthetic(tmp_path_factory.mktemp("syn") / "tiny", TINY_SPEC, workers=2)


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> Path:
    return ensure_synthetic(tmp_path_factory.mktemp("syn") / "micro", MICRO, workers=1)


def copy_of(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def tiny_data(tiny):
    """{id: (rgb image size, label array)} for every image of the TINY dataset."""
    out = {}
    for png in sorted((tiny / LABEL_DIR).glob("*.png")):
        with Image.open(png) as lab, Image.open(tiny / IMAGE_DIR / f"{png.stem}.jpg") as img:
            assert lab.mode == "P" and img.mode == "RGB"
            assert lab.getpalette()[:63] == voc_palette()[:63]
            out[png.stem] = (img.size, np.array(lab))
    return out


def read_list(root: Path, split: str, fold: int) -> list[str]:
    return (root / "lists" / split / f"fold{fold}.txt").read_text().splitlines()


def test_class_table_is_a_genuine_few_shot_design():
    check_class_table()
    assert len(CLASS_NAMES) == 20 and len(set(CLASS_NAMES)) == 20
    for fold in range(4):
        members = [CLASSES[c - 1] for c in fold_classes(fold)]
        shared = (len({c.texture for c in members}) < 5) or (len({c.palette for c in members}) < 5)
        assert shared, f"fold {fold} has no within-fold shared texture or palette"


def test_spec_name_and_validation():
    assert SyntheticSpec().name == "synthetic-v1-s0-3000x1000-96to128"
    assert TINY_SPEC.name.startswith(f"synthetic-v{GENERATOR_VERSION}-s0-")
    with pytest.raises(BenchError):
        SyntheticSpec(seed=-1)
    with pytest.raises(BenchError):
        SyntheticSpec(min_size=130, max_size=128)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FSS_BENCH_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("FSS_BENCH_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "fss-bench"


def test_deterministic_across_worker_counts(tiny, tmp_path):
    """Two forked workers (in a fresh interpreter: a test process has threads, so it generates in-process)
    give the same images as one."""
    forked = tmp_path / "w2"
    subprocess.run([sys.executable, "-c", "import sys; from bench.data.synthetic.generate import TINY_SPEC, "
                    "ensure_synthetic; ensure_synthetic(sys.argv[1], TINY_SPEC, workers=2)", str(forked)],
                   check=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert synthetic_content_hash(forked) == synthetic_content_hash(tiny) == verify_synthetic(tiny)
    a = json.loads((forked / STAMP_NAME).read_text())
    b = json.loads((tiny / STAMP_NAME).read_text())
    assert a["content_hash"] == b["content_hash"] and a["workers"] == 2


def test_no_fork_while_other_threads_run(tmp_path):
    """A fork copies only its own thread (locks held by the others stay held): with another thread alive the
    generator works in this process."""
    stop = threading.Event()
    waiting = threading.Thread(target=stop.wait)
    waiting.start()
    try:
        root = ensure_synthetic(tmp_path / "threads", MICRO, workers=2)
    finally:
        stop.set()
        waiting.join()
    assert json.loads((root / STAMP_NAME).read_text())["workers"] == 1


def test_different_seed_differs(tmp_path, micro):
    h0 = verify_synthetic(micro)
    h1 = verify_synthetic(ensure_synthetic(tmp_path / "s1", SyntheticSpec(seed=1, n_train=20, n_val=20), workers=1))
    assert h0 != h1


def test_stamp(tiny):
    stamp = json.loads((tiny / STAMP_NAME).read_text())
    assert stamp["version"] == GENERATOR_VERSION
    assert stamp["spec"] == {"seed": 0, "n_train": TINY_SPEC.n_train, "n_val": TINY_SPEC.n_val,
                             "min_size": TINY_SPEC.min_size, "max_size": TINY_SPEC.max_size}
    assert stamp["class_names"] == CLASS_NAMES
    assert [c["name"] for c in stamp["classes"]] == CLASS_NAMES
    assert stamp["generation_seconds"] > 0
    assert ensure_synthetic(tiny, TINY_SPEC) == tiny          # valid: returned as is
    assert json.loads((tiny / STAMP_NAME).read_text()) == stamp


def test_layout_and_lists(tiny, tiny_data):
    ids = set(tiny_data)
    assert ids == {p.stem for p in (tiny / IMAGE_DIR).glob("*.jpg")}
    assert sum(i.startswith("train_") for i in ids) == TINY_SPEC.n_train
    assert sum(i.startswith("val_") for i in ids) == TINY_SPEC.n_val
    for fold in range(4):
        test = set(fold_classes(fold))
        for split, prefix in (("trn", "train_"), ("val", "val_")):
            lines = read_list(tiny, split, fold)
            assert lines and lines == sorted(lines) and len(set(lines)) == len(lines)
            for line in lines:
                assert LINE.match(line), line
                name, cls = line.rsplit("__", 1)
                assert name.startswith(prefix) and name in ids
                assert (int(cls) in test) == (split == "val")
        val_classes = Counter(int(x[-2:]) for x in read_list(tiny, "val", fold))
        assert set(val_classes) == test and min(val_classes.values()) >= 6


def test_images_and_labels(tiny_data):
    allowed = set(range(21)) | {255}
    for name, (size, label) in tiny_data.items():
        w, h = size
        assert label.shape == (h, w)
        assert TINY_SPEC.min_size <= h <= TINY_SPEC.max_size and TINY_SPEC.min_size <= w <= TINY_SPEC.max_size
        assert set(np.unique(label).tolist()) <= allowed
    sizes = {size for size, _ in tiny_data.values()}
    assert len(sizes) > 50        # sizes vary per image


def test_lists_are_exactly_the_visible_pairs(tiny, tiny_data):
    listed = {split: set() for split in ("trn", "val")}
    for split in listed:
        for fold in range(4):
            listed[split].update(read_list(tiny, split, fold))
    expected = {"trn": set(), "val": set()}
    for name, (_, label) in tiny_data.items():
        counts = np.bincount(label.ravel(), minlength=256)
        for c in range(1, 21):
            if counts[c] >= MIN_PIXELS:
                expected["trn" if name.startswith("train_") else "val"].add(f"{name}__{c:02d}")
    assert listed == expected
    # every trn pair appears in exactly the 3 folds where its class is a training class
    trn = [set(read_list(tiny, "trn", f)) for f in range(4)]
    for line in listed["trn"]:
        c = int(line[-2:])
        assert [f for f in range(4) if line in trn[f]] == [f for f in range(4) if c not in fold_classes(f)]


def test_ignore_band_around_every_object(tiny_data):
    for name, (_, label) in tiny_data.items():
        ignore = label == 255
        near = ignore.copy()
        near[1:] |= ignore[:-1]
        near[:-1] |= ignore[1:]
        near[:, 1:] |= ignore[:, :-1]
        near[:, :-1] |= ignore[:, 1:]
        for c in set(np.unique(label).tolist()) - {0, 255}:
            assert (near & (label == c)).any(), f"{name}: class {c} has no ignore band"
        assert ignore.mean() < 0.15, name      # a thin band, not a blanket


def test_genuine_few_shot_statistics(tiny, tiny_data):
    stamp = json.loads((tiny / STAMP_NAME).read_text())
    classes = stamp["classes"]
    present = set()
    for _, label in tiny_data.values():
        present |= set(np.unique(label).tolist()) - {0, 255}
    assert present == set(range(1, 21))
    used = [c for c in classes if c["index"] in present]
    for attr, minimum in (("shape", 2), ("texture", 3), ("palette", 3)):
        counts = Counter(c[attr] for c in used)
        assert min(counts.values()) >= minimum, (attr, counts)
    assert len({(c["texture"], c["palette"]) for c in classes}) == 20
    multi = np.mean([len(set(np.unique(lab).tolist()) - {0, 255}) >= 2 for _, lab in tiny_data.values()])
    assert multi >= 0.30, multi
    assert stamp["stats"]["trn"]["fraction_multi_object"] >= 0.30
    # backgrounds carry cues but do not give the answer away: no scene holds > 80% of a class's images
    scenes = stamp["stats"]["scene_images"]
    assert len(scenes) == 6 and min(scenes.values()) > 0
    by_anchor = np.array(stamp["stats"]["scene_by_anchor"])          # (20 classes, 6 scenes)
    assert by_anchor.shape == (20, 6)
    assert (by_anchor.max(axis=1) <= 0.8 * by_anchor.sum(axis=1)).all()
    assert ((by_anchor > 0).sum(axis=1) >= 3).all()


def test_tampered_file_is_detected_and_repaired(tmp_path, micro):
    root = copy_of(micro, tmp_path / "d")
    good = verify_synthetic(root)
    victim = root / IMAGE_DIR / "val_00003.jpg"
    original = victim.read_bytes()
    with Image.open(tmp_path / "d" / IMAGE_DIR / "val_00004.jpg") as other:
        other.save(victim, "JPEG", quality=50)
    with pytest.raises(BenchError, match="do not match"):
        verify_synthetic(root)
    assert ensure_synthetic(root, MICRO, workers=1) == root
    assert verify_synthetic(root) == good and victim.read_bytes() == original
    (root / LABEL_DIR / "train_00001.png").unlink()             # a missing file is also repaired
    ensure_synthetic(root, MICRO, workers=1)
    assert verify_synthetic(root) == good


def test_other_version_or_spec_is_regenerated(tmp_path, micro):
    root = copy_of(micro, tmp_path / "d")
    stamp = json.loads((root / STAMP_NAME).read_text())
    stamp["version"] = GENERATOR_VERSION - 1
    (root / STAMP_NAME).write_text(json.dumps(stamp))
    ensure_synthetic(root, MICRO, workers=1)
    assert json.loads((root / STAMP_NAME).read_text())["version"] == GENERATOR_VERSION
    other = SyntheticSpec(seed=3, n_train=20, n_val=20)
    ensure_synthetic(root, other, workers=1)
    assert json.loads((root / STAMP_NAME).read_text())["spec"]["seed"] == 3


def test_foreign_folder_is_refused_and_untouched(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("precious")
    (root / "VOC2012").mkdir()
    with pytest.raises(BenchError, match="refusing"):
        ensure_synthetic(root, MICRO, workers=1)
    assert sorted(p.name for p in root.iterdir()) == ["VOC2012", "notes.txt"]
    assert (root / "notes.txt").read_text() == "precious" and not any((root / "VOC2012").iterdir())
    with pytest.raises(BenchError, match="no synthetic dataset stamp"):
        verify_synthetic(root)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert verify_synthetic(ensure_synthetic(empty, MICRO, workers=1))   # an empty folder may be used


def test_interrupted_generation_is_regenerated(tmp_path, micro):
    good = verify_synthetic(micro)
    # 1) a killed run left its temp sibling and a half-written folder it had created (marker, no stamp)
    root = tmp_path / "d"
    (root / IMAGE_DIR).mkdir(parents=True)
    (root / OWNER_MARKER).write_text("{}")
    (root / IMAGE_DIR / "train_00000.jpg").write_bytes(b"partial")
    leftover = tmp_path / f".{root.name}.tmp-abc123"
    (leftover / IMAGE_DIR).mkdir(parents=True)
    (leftover / OWNER_MARKER).write_text("{}")
    assert ensure_synthetic(root, MICRO, workers=1) == root
    assert verify_synthetic(root) == good
    assert not leftover.exists()
    assert not list(tmp_path.glob(".d.tmp-*")) and not list(tmp_path.glob(".d.old-*"))
    # 2) the stamp is there but files are missing (e.g. copied partially)
    shutil.rmtree(root / LABEL_DIR)
    ensure_synthetic(root, MICRO, workers=1)
    assert verify_synthetic(root) == good
