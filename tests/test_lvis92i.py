"""LVIS-92i: Matcher's fold rule, union masks, the more-images-than-shots rule (no endless sampling), prepare."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.cli.commands import main
from bench.core.errors import BenchError
from bench.data.catalog import card_of, open_dataset
from bench.data.episodes import EpisodeSpec, sample_episodes, sample_from_pairs
from bench.data.prepare.lvis import prepare_lvis

H, W = 16, 20
N_VAL = 8
RARE = 22  # one image only: fewer than any shot count needs


def subset(n):
    return "train2017" if n % 3 == 0 else "val2017"  # LVIS v1 val draws images from both COCO subsets


def box(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def val_images(c):
    """Images (0..7) holding category c: 1..10 six images, 11..21 two, 22 one."""
    if c <= 10:
        return [(c + j) % N_VAL for j in range(6)]
    return [c % N_VAL, (c + 1) % N_VAL] if c < RARE else [0]


def lvis_json(numbers, categories, first_ann=1):
    images = [{"id": 100 + n, "height": H, "width": W, "coco_url": f"http://images.cocodataset.org/{subset(n)}/"
               f"{100 + n:012d}.jpg", "neg_category_ids": [], "not_exhaustive_category_ids": []} for n in numbers]
    anns, ann_id = [], first_ann
    for c, held in categories.items():
        for n in held:
            anns.append({"id": ann_id, "image_id": 100 + n, "category_id": c, "segmentation": box(2, 2, 6, 6),
                         "area": 16.0, "bbox": [2, 2, 4, 4]})
            ann_id += 1
    cats = [{"id": c, "name": f"cat{c}", "synset": f"cat{c}.n.01", "frequency": "r" if c == RARE else "f",
             "image_count": len(held), "instance_count": len(held)} for c, held in categories.items()]
    return {"images": images, "annotations": anns, "categories": cats, "info": {}, "licenses": []}


def fixture_data():
    val = lvis_json(range(N_VAL), {c: val_images(c) for c in range(1, RARE + 1)})
    # image 1 (class 1): a second instance of class 1 and a class-2 instance lying over it
    val["annotations"] += [
        {"id": 9001, "image_id": 101, "category_id": 1, "segmentation": box(10, 8, 14, 12)},
        {"id": 9002, "image_id": 101, "category_id": 2, "segmentation": box(4, 4, 12, 10)}]
    train = lvis_json(range(10, 14), {c: [10, 11] for c in (1, 2, 11, 23)}, first_ann=5000)
    return val, train


def write_image(path, n):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((H, W, 3), n * 15, np.uint8)).save(path, "JPEG")


@pytest.fixture()
def root(tmp_path):
    base = tmp_path / "lvis"
    val, train = fixture_data()
    (base / "annotations").mkdir(parents=True)
    (base / "annotations" / "lvis_v1_val.json").write_text(json.dumps(val))
    (base / "annotations" / "lvis_v1_train.json").write_text(json.dumps(train))
    for n in [*range(N_VAL), *range(10, 14)]:
        write_image(base / subset(n) / f"{100 + n:012d}.jpg", n)
    return base


def test_matchers_fold_rule_keeps_classes_with_more_images_than_shots(root):
    one = open_dataset("lvis92i", root)
    assert one.num_splits == 10
    # eligible: 1..21 (22 has one image); 21 // 10 = 2 per fold, interleaved; class 21 is left over as in Matcher
    assert [one.test_classes(k) for k in (1, 2, 10)] == [[1, 11], [2, 12], [10, 20]]
    assert all(RARE not in one.test_classes(k) for k in range(1, 11))
    assert one.part_classes(1, "train") == [2, 23]  # the train file's eligible classes minus the fold's
    five = open_dataset("lvis92i", root, fold_convention="matcher-5shot")
    assert [five.test_classes(k) for k in (1, 10)] == [[1], [10]]  # only 1..10 have more than 5 images
    with pytest.raises(BenchError, match="split 11 is outside 1..10"):
        one.test_classes(11)
    with pytest.raises(BenchError, match="not one of lvis92i's: matcher-1shot, matcher-5shot"):
        open_dataset("lvis92i", root, fold_convention="contiguous")


def test_pairs_name_their_class_and_masks_are_the_union_of_its_instances(root):
    dataset = open_dataset("lvis92i", root)
    pairs = dataset.pairs(1, "test")
    assert {c for _, c in pairs} == {1, 11} and len(pairs) == 6 + 2
    assert ("val2017_000000000101_c1", 1) in pairs and ("train2017_000000000103_c1", 1) in pairs
    image, label = dataset.read_sample("val2017_000000000101_c1")
    assert image.shape == (H, W, 3) and label.shape == (H, W)
    expected = np.zeros((H, W), np.int32)
    expected[2:6, 2:6] = expected[8:12, 10:14] = 1  # both instances, also under the class-2 instance
    assert (label == expected).all()
    other = dataset.read_label("val2017_000000000101_c2")
    assert set(np.unique(other).tolist()) == {0, 2} and other[4:10, 4:12].all()
    assert dataset.image_path("train2017_000000000103_c1") == root / "train2017" / "000000000103.jpg"
    with pytest.raises(BenchError, match="not an LVIS-92i image id"):
        dataset.image_path("../etc/passwd_c1")
    dataset.check_files(1, "test")
    assert len(dataset.fingerprint([1])) == 64


def test_a_class_with_fewer_images_than_shots_is_refused_not_sampled_forever(root):
    dataset = open_dataset("lvis92i", root)
    names = dataset.class_names()
    rare = [(f"val2017_000000000100_c{RARE}", RARE), ("val2017_000000000101_c1", 1), ("val2017_000000000102_c1", 1)]
    with pytest.raises(BenchError, match=rf"need 2 usable images per class; split 1 has fewer for: cat{RARE} \(1\)"):
        sample_from_pairs(rare, EpisodeSpec(split=1, shot=1, seed=0, episodes=5), names)
    # 1-shot folds keep two-image classes, which 5-shot episodes cannot use: refused, naming them
    with pytest.raises(BenchError, match=r"5-shot episodes need 6 usable images per class.*cat11 \(2\)"):
        sample_episodes(dataset, EpisodeSpec(split=1, shot=5, seed=0, episodes=5))
    five = open_dataset("lvis92i", root, fold_convention="matcher-5shot")
    manifest = sample_episodes(five, EpisodeSpec(split=1, shot=5, seed=0, episodes=7, class_sampling="uniform"))
    assert (manifest.class_id == 1).all() and len(manifest) == 7
    for row in manifest.itertuples():
        supports = row.supports.split()
        assert len(set(supports)) == 5 and row.query not in supports


def test_the_card_declares_matchers_protocol():
    card = card_of("lvis92i")
    assert card.defaults == {"class_sampling": "uniform", "episodes": 2300, "input_size": 518, "eval_size": 518}
    assert card.fold_conventions == ("matcher-1shot", "matcher-5shot")
    assert "Matcher" in card.citation and card.prepare_step == "bench.data.prepare.lvis"


def test_bad_annotations_are_one_clear_error(tmp_path):
    val, _ = fixture_data()
    val["images"][0]["coco_url"] = "http://images.cocodataset.org/val2017/../../x.jpg"
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "lvis_v1_val.json").write_text(json.dumps(val))
    with pytest.raises(BenchError, match="does not name a COCO 2017 image"):
        open_dataset("lvis92i", tmp_path).pairs(1, "test")
    with pytest.raises(BenchError, match="no annotations/lvis_v1_val.json"):
        open_dataset("lvis92i", tmp_path / "annotations")


def test_a_run_on_lvis92i(root, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--methods", "support-copy", "--dataset", "lvis92i", "--data-root", str(root), "--splits", "2",
                 "--shots", "1", "--seeds", "0", "--episodes", "4", "--identical-input",
                 "--out", str(out), "--quiet"]) == 0
    summary = pd.read_csv(out / "summary.csv")  # scored at 518 x 518: only resampling at the box edges is lost
    assert (summary["miou_mean"] > 95).all()


def make_zips(tmp_path):
    val, train = fixture_data()
    zips = {}
    for name in ("train2017", "val2017"):
        zips[name] = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(zips[name], "w") as archive:
            archive.writestr(f"{name}/", "")
            for n in [*range(N_VAL), *range(10, 14)]:
                if subset(n) == name:
                    write_image(tmp_path / "img" / f"{n}.jpg", n)
                    archive.write(tmp_path / "img" / f"{n}.jpg", f"{name}/{100 + n:012d}.jpg")
    for part, data in (("val", val), ("train", train)):
        zips[part] = tmp_path / f"lvis_v1_{part}.json.zip"
        with zipfile.ZipFile(zips[part], "w") as archive:
            archive.writestr(f"lvis_v1_{part}.json", json.dumps(data))
    return zips


def test_prepare_lays_out_lvis_and_writes_the_derived_folds(tmp_path):
    zips = make_zips(tmp_path)
    summary = prepare_lvis(zips["train2017"], zips["val2017"], zips["val"], tmp_path / "out", zips["train"], quiet=True)
    assert summary["test images"] == N_VAL and summary["train images"] == 4
    dataset = open_dataset("lvis92i", tmp_path / "out")  # finds LVIS/ inside
    assert dataset.test_classes(1) == [1, 11]
    dataset.check_files(1, "test")
    folds = pd.read_csv(tmp_path / "out" / "LVIS" / "folds.csv")
    one = folds[(folds.convention == "matcher-1shot") & (folds.split == 1)]
    assert one[one.part == "test"].category.tolist() == [1, 11]
    assert one[one.part == "train"].category.tolist() == [2, 23]
    assert RARE not in folds.category.tolist()
    written = json.loads((tmp_path / "out" / "LVIS" / "annotations" / "lvis_v1_val.json").read_text())
    assert written == fixture_data()[0]


def test_prepare_without_the_training_file_serves_the_test_folds_only(tmp_path):
    zips = make_zips(tmp_path)
    summary = prepare_lvis(zips["train2017"], zips["val2017"], zips["val"], tmp_path / "out", quiet=True)
    assert "train images" not in summary
    dataset = open_dataset("lvis92i", tmp_path / "out" / "LVIS")
    assert len(dataset.pairs(3, "test")) == 6 + 2
    with pytest.raises(BenchError, match="lvis92i training needs .*lvis_v1_train.json"):
        dataset.pairs(3, "train")


def test_prepare_refuses_a_missing_image_before_writing(tmp_path):
    zips = make_zips(tmp_path)
    with zipfile.ZipFile(zips["val2017"], "w") as archive:  # val2017.zip without its images
        archive.writestr("val2017/", "")
    with pytest.raises(BenchError, match="listed in lvis_v1_val.json is missing from"):
        prepare_lvis(zips["train2017"], zips["val2017"], zips["val"], tmp_path / "out", quiet=True)
    assert not (tmp_path / "out" / "LVIS" / "annotations").exists()
