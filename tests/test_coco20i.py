"""COCO-20i: rendering of COCO annotations, both sources, both fold conventions, HSNet pkl lists, bad input."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pycocotools import mask as mask_api

from bench.cli.commands import main
from bench.core.errors import BenchError
from bench.data.catalog import open_dataset
from bench.data.coco import COCO20iDataset
from bench.data.coco_lists import read_safe_pickle
from bench.data.coco_masks import label_map

H, W = 32, 40
CAT_IDS = [i + i // 10 for i in range(1, 81)]  # gaps, as COCO's ids: class index = sorted position


def cat(class_index):
    return CAT_IDS[class_index - 1]


def box(y0, y1, x0, x1):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def polygon(y0, y1, x0, x1):  # pycocotools fills [y0, y1) x [x0, x1) for this outline
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def compressed(m):
    rle = mask_api.encode(np.asfortranarray(m))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def uncompressed(m):
    flat = m.flatten(order="F")
    counts, value, run = [], 0, 0
    for v in flat:
        if v != value:
            counts.append(run)
            value, run = v, 0
        run += 1
    counts.append(run)
    return {"size": [H, W], "counts": [int(c) for c in counts]}


def val_name(n):
    return f"COCO_val2014_{n:012d}"


# (image number, [(ann id, class, kind, (y0, y1, x0, x1), iscrowd)]) ; kind: poly | rle | crowd
VAL = [
    (1, [(10, 1, "poly", (3, 9, 2, 10), 0), (11, 5, "rle", (20, 28, 25, 36), 0)]),
    (2, [(20, 1, "poly", (0, 16, 0, 20), 0), (21, 2, "crowd", (20, 31, 5, 16), 1)]),
    (3, [(30, 5, "rle", (0, 32, 0, 20), 0), (31, 2, "poly", (4, 12, 4, 12), 0), (32, 1, "poly", (2, 10, 30, 38), 0)]),
    (4, [(40, 2, "poly", (10, 20, 20, 30), 0)]),
]


def expected_label(anns):
    """Paint larger boxes first (the documented rule), crowd as its class."""
    label = np.zeros((H, W), np.uint8)
    for _, cls, _, (y0, y1, x0, x1), _ in sorted(anns, key=lambda a: (-(a[3][1] - a[3][0]) * (a[3][3] - a[3][2]), a[0])):
        label[y0:y1, x0:x1] = cls
    return label


def coco_json(images, with_train=False):
    data = {"images": [], "annotations": [],
            "categories": [{"id": c, "name": f"cat{c}", "supercategory": "x"} for c in CAT_IDS]}
    for number, anns in images:
        prefix = "COCO_train2014_" if with_train else "COCO_val2014_"
        data["images"].append({"id": number, "file_name": f"{prefix}{number:012d}.jpg", "height": H, "width": W})
        for ann_id, cls, kind, b, crowd in anns:
            seg = {"poly": lambda: polygon(*b), "rle": lambda: compressed(box(*b)),
                   "crowd": lambda: uncompressed(box(*b))}[kind]()
            data["annotations"].append({"id": ann_id, "image_id": number, "category_id": cat(cls), "iscrowd": crowd,
                                        "segmentation": seg, "area": 0, "bbox": [0, 0, 1, 1]})
    return data


def write_jpg(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path, quality=90)


TRAIN = [(101, [(100, 3, "poly", (0, 10, 0, 10), 0)]), (102, [(101, 3, "rle", (5, 15, 5, 15), 0)])]


def make_root(root, layout="json"):
    for number, anns in VAL:
        write_jpg(root / "val2014" / f"{val_name(number)}.jpg", number)
    for number, _ in TRAIN:
        write_jpg(root / "train2014" / f"COCO_train2014_{number:012d}.jpg", number)
    ann_dir = root / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    if layout == "json":
        (ann_dir / "instances_val2014.json").write_text(json.dumps(coco_json(VAL)))
        (ann_dir / "instances_train2014.json").write_text(json.dumps(coco_json(TRAIN, with_train=True)))
    else:
        for subset, prefix, images in (("val2014", "COCO_val2014_", VAL), ("train2014", "COCO_train2014_", TRAIN)):
            (ann_dir / subset).mkdir()
            for number, anns in images:
                Image.fromarray(expected_label(anns), mode="L").save(ann_dir / subset / f"{prefix}{number:012d}.png")
    return root


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FSS_BENCH_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("layout", ["json", "png"])
def test_labels_match_the_drawn_shapes(tmp_path, layout):
    ds = open_dataset("coco20i", data_root=make_root(tmp_path / "coco", layout))
    assert ds.ignore_label is None
    for number, anns in VAL:
        label = ds.read_label(val_name(number))
        np.testing.assert_array_equal(label, expected_label(anns))
        image, _ = ds.read_sample(val_name(number))
        assert image.shape == (H, W, 3)
    # overlap: the small class-2 square lies on the big class-5 box and stays visible
    label = ds.read_label(val_name(3))
    assert (label[4:12, 4:12] == 2).all() and label[20, 5] == 5
    assert ds.class_pixel_count(val_name(3), 5) == 32 * 20 - 64
    assert ds.class_pixel_count(val_name(2), 2) == 11 * 11  # crowd painted as its class


def test_both_sources_give_the_same_pairs_and_a_cached_table(tmp_path):
    json_ds = open_dataset("coco20i", data_root=make_root(tmp_path / "a", "json"))
    png_ds = open_dataset("coco20i", data_root=make_root(tmp_path / "b", "png"))
    assert json_ds.pairs(1, "test") == png_ds.pairs(1, "test")
    assert json_ds.pairs(1, "test") == [(val_name(1), 1), (val_name(2), 1), (val_name(3), 1),
                                        (val_name(1), 5), (val_name(3), 5)]
    tables = sorted((tmp_path / "cache" / "coco20i").glob("val2014-*.csv"))
    assert len(tables) == 2
    again = COCO20iDataset(tmp_path / "a")
    assert again.class_pixel_count(val_name(1), 5) == 8 * 11
    assert json_ds.fingerprint([1]) == again.fingerprint([1]) != png_ds.fingerprint([1])


def test_coco2014_subfolder_and_fold_conventions(tmp_path):
    make_root(tmp_path / "out" / "COCO2014", "png")
    inter = open_dataset("coco20i", data_root=tmp_path / "out")
    contig = open_dataset("coco20i", data_root=tmp_path / "out", fold_convention="contiguous")
    assert inter.test_classes(1) == list(range(1, 81, 4)) and inter.test_classes(4) == list(range(4, 81, 4))
    assert contig.test_classes(1) == list(range(1, 21)) and contig.test_classes(3) == list(range(41, 61))
    assert {c for _, c in inter.pairs(1, "test")} == {1, 5}
    assert {c for _, c in contig.pairs(1, "test")} == {1, 2, 5}
    assert {c for _, c in inter.pairs(1, "train")} == {3}
    assert inter.fingerprint([1]) != contig.fingerprint([1])
    with pytest.raises(BenchError, match="does not apply|conventions"):
        open_dataset("pascal5i", data_root=tmp_path, fold_convention="contiguous")


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_hsnet_pkl_lists_are_read_without_unpickling(tmp_path, protocol):
    root = make_root(tmp_path / "coco", "png")
    names = [f"val2014/{val_name(n)}.jpg" for n in (2, 3)]
    fold = {c: [] for c in range(80)}
    fold[0], fold[4], fold[1] = names, names[1:], names  # class 2 (0-based 1) is no test class of split 1
    (tmp_path / "lists" / "val").mkdir(parents=True)
    (tmp_path / "lists" / "val" / "fold0.pkl").write_bytes(pickle.dumps(fold, protocol=protocol))
    assert read_safe_pickle(tmp_path / "lists" / "val" / "fold0.pkl") == fold
    ds = open_dataset("coco20i", data_root=root, lists=tmp_path / "lists")
    assert ds.pairs(1, "test") == [(val_name(2), 1), (val_name(3), 1), (val_name(3), 5)]


class Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch EVIL_RAN",))


def one_line_error(call):
    with pytest.raises(BenchError) as info:
        call()
    assert len(str(info.value).splitlines()) == 1, str(info.value)
    return str(info.value)


def test_bad_inputs_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "lists" / "val" / "fold0.pkl"
    evil.parent.mkdir(parents=True)
    evil.write_bytes(pickle.dumps({0: [Evil()]}))
    msg = one_line_error(lambda: read_safe_pickle(evil))
    assert "STACK_GLOBAL" in msg or "GLOBAL" in msg
    assert not (tmp_path / "EVIL_RAN").exists()
    (tmp_path / "trunc.pkl").write_bytes(pickle.dumps({0: ["a"]})[:-3])
    one_line_error(lambda: read_safe_pickle(tmp_path / "trunc.pkl"))

    root = make_root(tmp_path / "coco", "json")
    (root / "annotations" / "instances_val2014.json").write_text('{"images": [')
    assert "corrupt annotation JSON" in one_line_error(lambda: open_dataset("coco20i", data_root=root).pairs(1, "test"))

    data = coco_json(VAL)
    data["annotations"][1]["segmentation"] = compressed(np.ones((10, 12), np.uint8))
    (root / "annotations" / "instances_val2014.json").write_text(json.dumps(data))
    msg = one_line_error(lambda: open_dataset("coco20i", data_root=root).read_label(val_name(1)))
    assert "annotation 11" in msg and "image 1" in msg and "10x12" in msg

    (root / "annotations" / "instances_val2014.json").write_text(json.dumps(coco_json(VAL)))
    (root / "val2014" / f"{val_name(4)}.jpg").unlink()
    ds = open_dataset("coco20i", data_root=root, fold_convention="contiguous")
    msg = one_line_error(lambda: ds.check_files(1, "test"))
    assert val_name(4) in msg and "instances_val2014.json" in msg
    with pytest.raises(BenchError, match="val2014/ image folder"):
        open_dataset("coco20i", data_root=tmp_path / "lists")


def test_label_map_ties_by_annotation_id():
    anns = [{"id": 7, "image_id": 1, "category_id": 3, "segmentation": polygon(0, 4, 0, 4)},
            {"id": 2, "image_id": 1, "category_id": 9, "segmentation": polygon(0, 4, 0, 4)}]
    label = label_map(anns, H, W, {3: 1, 9: 2})
    assert label.dtype == np.uint8 and (label[:4, :4] == 1).all() and label.sum() == 16  # id 7 painted last


@pytest.mark.parametrize("convention", ["interleaved", "contiguous"])
def test_run_end_to_end(tmp_path, convention):
    root = make_root(tmp_path / "coco", "json")
    out = tmp_path / "run"
    args = ["run", "--methods", "support-copy", "all-foreground", "--dataset", "coco20i", "--data-root", str(root),
            "--splits", "1", "--shots", "1", "--seeds", "0", "--episodes", "6", "--out", str(out), "--quiet",
            "--fold-convention", convention]
    assert main(args) == 0
    episodes = pd.read_csv(out / "episodes.csv")
    assert len(episodes) == 12
    assert set(episodes["class_id"]) <= ({1, 5} if convention == "interleaved" else {1, 2, 5})
    ident = tmp_path / "ident"
    assert main(["run", "--methods", "support-copy", "--dataset", "coco20i", "--data-root", str(root),
                 "--splits", "1", "--shots", "1", "--seeds", "0", "--episodes", "6", "--identical-input",
                 "--fold-convention", convention, "--out", str(ident), "--quiet"]) == 0
    summary = pd.read_csv(ident / "summary.csv")
    assert (summary["miou_mean"] == 100.0).all()
