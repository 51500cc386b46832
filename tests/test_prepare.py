"""`bench prepare`: tiny VOC/SBD/COCO-like archives built here, outputs checked pixel by pixel."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io as scipy_io
from PIL import Image

from bench.core.errors import BenchError
from bench.core.fileio import is_temporary
from bench.data.prepare.pascal import prepare_pascal
from bench.data.synthetic.layout import voc_palette

PALETTE = voc_palette()



def _jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((6, 8, 3), seed * 40, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _png(label: np.ndarray) -> bytes:
    image = Image.fromarray(label.astype(np.uint8), mode="P")
    image.putpalette(PALETTE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _mat(label: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    scipy_io.savemat(buffer, {"GTcls": {"Segmentation": label.astype(np.uint8),
                                        "Boundaries": np.zeros(1), "CategoriesPresent": np.unique(label)}})
    return buffer.getvalue()


def _tar(path: Path, members: dict, mode: str) -> Path:
    with tarfile.open(path, mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


VOC_LABEL = np.zeros((6, 8), np.uint8)
VOC_LABEL[1:4, 1:4] = 1
VOC_LABEL[0, :] = 255
SBD_LABEL = np.zeros((6, 8), np.uint8)
SBD_LABEL[2:, 4:] = 15


@pytest.fixture
def archives(tmp_path):
    ids = ["2007_000032", "2008_000002", "2009_000003"]
    voc = {f"VOCdevkit/VOC2012/JPEGImages/{i}.jpg": _jpeg(n) for n, i in enumerate(ids)}
    voc["VOCdevkit/VOC2012/SegmentationClass/2007_000032.png"] = _png(VOC_LABEL)
    voc["VOCdevkit/VOC2012/Annotations/2007_000032.xml"] = b"<annotation/>"
    sbd = {f"benchmark_RELEASE/dataset/cls/{i}.mat": _mat(SBD_LABEL) for i in ids[:2] + ["2010_000001"]}
    sbd["benchmark_RELEASE/dataset/train.txt"] = "\n".join(ids).encode()
    sbd["benchmark_RELEASE/dataset/cls/../../../../evil.mat"] = _mat(SBD_LABEL)
    voc["VOCdevkit/VOC2012/JPEGImages/../../../../evil.jpg"] = _jpeg(5)
    lists = tmp_path / "lists"
    (lists / "trn").mkdir(parents=True)
    (lists / "trn" / "fold0.txt").write_text("2007_000032__01\n2008_000002__15\n")
    return (_tar(tmp_path / "voc.tar", voc, "w"), _tar(tmp_path / "benchmark.tgz", sbd, "w:gz"), lists)


def test_mat_roundtrip_as_sbd_struct():
    mat = scipy_io.loadmat(io.BytesIO(_mat(SBD_LABEL)), struct_as_record=False, squeeze_me=True)
    assert np.array_equal(mat["GTcls"].Segmentation, SBD_LABEL)


def test_pascal_outputs_and_precedence(archives, tmp_path):
    voc, sbd, lists = archives
    out = tmp_path / "root"
    summary = prepare_pascal(voc, sbd, out, lists_dir=lists, quiet=True)
    masks = out / "VOC2012" / "SegmentationClassAug"
    voc_mask = Image.open(masks / "2007_000032.png")
    assert voc_mask.mode == "L" and PALETTE[3:6] == [128, 0, 0] and PALETTE[45:48] == [192, 128, 128]
    assert np.array_equal(np.array(voc_mask), VOC_LABEL)  # VOC wins over SBD, 255 kept
    assert np.array_equal(np.array(Image.open(masks / "2008_000002.png")), SBD_LABEL)
    assert (masks / "2010_000001.png").is_file()  # SBD-only ids get a mask; no image: not listed
    assert not (out / "VOC2012" / "JPEGImages" / "2010_000001.jpg").exists()
    assert sorted(p.name for p in masks.iterdir() if not p.name.startswith(".")) == \
        ["2007_000032.png", "2008_000002.png", "2010_000001.png"]
    assert not list(tmp_path.rglob("evil*"))  # traversing member names are skipped
    assert summary["listed_images"] == 2 and summary["written"] == 6
    again = prepare_pascal(voc, sbd, out, lists_dir=lists, quiet=True)
    assert again["written"] == 0


def test_pascal_resumes_after_interrupt(archives, tmp_path, monkeypatch):
    voc, sbd, lists = archives
    out = tmp_path / "root"
    import bench.data.prepare.pascal as pascal
    real = pascal._sbd_mask
    calls = []

    def dying(data, name):
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(data, name)

    monkeypatch.setattr(pascal, "_sbd_mask", dying)
    with pytest.raises(KeyboardInterrupt):
        prepare_pascal(voc, sbd, out, lists_dir=lists, quiet=True)
    root = out / "VOC2012"
    assert not (root / ".prepare_done").exists()
    assert not any(is_temporary(p.name) for p in root.rglob("*"))
    assert len(calls) == 2 and not (root / "SegmentationClassAug" / "2010_000001.png").exists()
    monkeypatch.setattr(pascal, "_sbd_mask", real)
    summary = prepare_pascal(voc, sbd, out, lists_dir=lists, quiet=True)
    assert summary["written"] == 1 and (root / ".prepare_done").exists()  # only the mask not yet written


def test_pascal_bad_inputs_one_line(archives, tmp_path):
    voc, sbd, lists = archives
    truncated = tmp_path / "cut.tgz"
    truncated.write_bytes(sbd.read_bytes()[:200])
    notarchive = tmp_path / "x.tar"
    notarchive.write_text("hello")
    cases = [(sbd, sbd, "not the VOC"), (voc, voc, "not the SBD"), (notarchive, sbd, "not a readable"),
             (voc, truncated, "not a readable"), (tmp_path / "nope.tar", sbd, "not found")]
    for n, (v, s, words) in enumerate(cases):
        out = tmp_path / f"out{n}"
        with pytest.raises(BenchError) as info:
            prepare_pascal(v, s, out, lists_dir=lists, quiet=True)
        assert words in str(info.value) and "\n" not in str(info.value)
        assert not (out / "VOC2012" / ".prepare_done").exists()
        if v is not voc or s is not truncated:  # all but a late truncation are found before any write
            assert not (out / "VOC2012").exists()


def test_pascal_missing_listed_image(archives, tmp_path):
    voc, sbd, lists = archives
    (lists / "trn" / "fold1.txt").write_text("2010_000001__01\n")
    with pytest.raises(BenchError, match="1 listed images lack"):
        prepare_pascal(voc, sbd, tmp_path / "root", lists_dir=lists, quiet=True)


# --- COCO -------------------------------------------------------------------------------------

import json  # noqa: E402
import zipfile  # noqa: E402

import bench.data.prepare.coco as coco  # noqa: E402
from bench.data.prepare.coco import prepare_coco  # noqa: E402

COCO_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]  # COCO's 80 category ids
CATEGORIES = [{"id": i, "name": f"cat{i}"} for i in reversed(COCO_IDS)]  # any order: classes follow sorted ids
DOG, TOOTHBRUSH = COCO_IDS.index(18) + 1, COCO_IDS.index(90) + 1  # 17 and 80


def _stub_label_map(anns, height, width, category_to_class):
    """Test stand-in for bench.data.coco_masks.label_map: fills each bbox with its class."""
    label = np.zeros((height, width), np.uint8)
    for ann in anns:
        if ann.get("bad"):
            raise ValueError("RLE of the wrong size")
        x, y, w, h = ann["bbox"]
        label[y:y + h, x:x + w] = category_to_class[ann["category_id"]]
    return label


def _zip(path: Path, members: dict) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _coco(tmp_path, val_annotations=None, drop_image=False):
    poly = {"id": 1, "image_id": 1, "category_id": 18, "iscrowd": 0, "bbox": [1, 1, 3, 2],
            "segmentation": [[1, 1, 4, 1, 4, 3, 1, 3]]}
    rle = {"id": 2, "image_id": 2, "category_id": 90, "iscrowd": 1, "bbox": [0, 0, 2, 6],
           "segmentation": {"size": [6, 8], "counts": [0, 12, 36]}}
    train = {"images": [{"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "height": 6, "width": 8},
                        {"id": 2, "file_name": "COCO_train2014_000000000002.jpg", "height": 6, "width": 8}],
             "annotations": [poly, rle], "categories": CATEGORIES}
    val = {"images": [{"id": 3, "file_name": "COCO_val2014_000000000003.jpg", "height": 6, "width": 8}],
           "annotations": val_annotations or [], "categories": CATEGORIES}
    train_names = [im["file_name"] for im in train["images"]][: 1 if drop_image else 2]
    return (_zip(tmp_path / "train2014.zip", {f"train2014/{n}": _jpeg(1) for n in train_names}),
            _zip(tmp_path / "val2014.zip", {"val2014/COCO_val2014_000000000003.jpg": _jpeg(2)}),
            _zip(tmp_path / "ann.zip", {"annotations/instances_train2014.json": json.dumps(train),
                                        "annotations/instances_val2014.json": json.dumps(val)}))


def test_coco_layout_classes_and_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(coco, "label_map", _stub_label_map)
    train, val, ann = _coco(tmp_path)
    out = tmp_path / "root"
    summary = prepare_coco(train, val, ann, out, quiet=True)
    root = out / "COCO2014"
    first = np.array(Image.open(root / "annotations/train2014/COCO_train2014_000000000001.png"))
    assert first[1:3, 1:4].tolist() == [[DOG] * 3] * 2 and first.sum() == DOG * 6
    second = np.array(Image.open(root / "annotations/train2014/COCO_train2014_000000000002.png"))
    assert (second[:, :2] == TOOTHBRUSH).all()
    assert (root / "val2014/COCO_val2014_000000000003.jpg").read_bytes() == _jpeg(2)
    assert summary["written"] == 6 and summary["train2014"] == 2
    assert prepare_coco(train, val, ann, out, quiet=True)["written"] == 0


def test_coco_bad_inputs_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(coco, "label_map", _stub_label_map)
    train, val, ann = _coco(tmp_path)
    junk = tmp_path / "junk.zip"
    junk.write_text("not a zip")
    cut = tmp_path / "cut.zip"
    cut.write_bytes(train.read_bytes()[:-30])
    bad_json = _zip(tmp_path / "badjson.zip", {"annotations/instances_train2014.json": "{oops",
                                                "annotations/instances_val2014.json": "{}"})
    cases = [((val, val, ann), "no train2014/"), ((junk, val, ann), "not a readable"),
             ((cut, val, ann), "not a readable"), ((train, val, bad_json), "corrupt annotation JSON"),
             ((train, val, train), "lacks annotations/instances_train2014.json")]
    sub = tmp_path / "missing"
    sub.mkdir()
    cases.append((_coco(sub, drop_image=True), "missing from"))
    sub = tmp_path / "rle"
    sub.mkdir()
    cases.append((_coco(sub, val_annotations=[{"id": 9, "image_id": 3, "category_id": 1, "bad": True, "bbox": [0, 0, 1, 1],
                                             "segmentation": [[0, 0, 1, 0, 1, 1]]}]),
                  "COCO_val2014_000000000003.jpg in instances_val2014.json cannot be rendered"))
    for n, (inputs, words) in enumerate(cases):
        out = tmp_path / f"out{n}"
        with pytest.raises(BenchError) as info:
            prepare_coco(*inputs, out, quiet=True)
        assert words in str(info.value) and "\n" not in str(info.value), str(info.value)
        assert not (out / "COCO2014" / ".prepare_done").exists()
        if "cannot be rendered" not in words:  # every other bad input is found before any file is written
            assert not (out / "COCO2014").exists()


def test_coco_with_real_renderer(tmp_path):
    train, val, ann = _coco(tmp_path)
    prepare_coco(train, val, ann, tmp_path / "root", quiet=True)
    first = np.array(Image.open(tmp_path / "root/COCO2014/annotations/train2014/COCO_train2014_000000000001.png"))
    assert first[2, 2] == DOG and first[5, 7] == 0


def test_cli_prepare_pascal(archives, tmp_path, capsys):
    import argparse

    from bench.cli.prepare import add_prepare_parser, prepare_command
    voc, sbd, lists = archives
    parser = argparse.ArgumentParser()
    add_prepare_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["prepare", "pascal5i", "--voc", str(voc), "--sbd", str(sbd), "--out",
                              str(tmp_path / "r"), "--lists", str(lists), "--quiet"])
    assert prepare_command(args) == 0
    assert "all 2 listed images present" in capsys.readouterr().out
    args = parser.parse_args(["prepare", "coco20i", "--train-zip", "a", "--val-zip", "b", "--annotations", "c",
                              "--out", "d"])
    assert args.train_zip == Path("a") and args.annotations == Path("c")
