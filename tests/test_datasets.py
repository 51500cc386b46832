"""The VOC / PASCAL-5i and FSS-1000 loaders on small fixtures built by the tests."""
import shutil

import numpy as np
import pytest
from PIL import Image

from bench.core.errors import BenchError
from bench.data.catalog import open_dataset
from bench.data.lists import read_pair_list, shipped_lists
from tests.voc_fixture import make_fss_tree, make_voc_tree


@pytest.fixture()
def voc_copy(tmp_path, voc_root):
    root = tmp_path / "voc"
    shutil.copytree(voc_root, root)
    return root


def open_voc(root):
    return open_dataset("pascal5i", root, root / "lists")


def test_shipped_pascal_lists_are_the_standard_ones():
    counts = [len(read_pair_list(shipped_lists("pascal5i") / "val" / f"fold{f}.txt")) for f in range(4)]
    assert counts == [346, 451, 725, 346]
    trn = [len(read_pair_list(shipped_lists("pascal5i") / "trn" / f"fold{f}.txt")) for f in range(4)]
    assert trn == [2286, 3425, 5883, 2086]
    assert (shipped_lists("pascal5i").parent / "PROVENANCE.md").is_file()


def test_shipped_fss_lists():
    sizes = [len((shipped_lists("fss1000") / f"{p}.txt").read_text().split()) for p in ("trn", "val", "test")]
    assert sizes == [520, 240, 240]


def test_voc_loader_reads_palette_png_with_ignore_and_several_classes(voc_root):
    dataset = open_voc(voc_root)
    pairs = dataset.pairs(1, "test")
    assert {c for _, c in pairs} == {1, 2, 3, 4, 5}
    assert ("val_01_2", 1) in pairs and ("val_01_2", 2) in pairs  # a class-1 image holding class 2 too
    image, label = dataset.read_sample("val_01_2")
    assert image.dtype == np.uint8 and image.shape == (*label.shape, 3)
    assert {0, 1, 2, 255} <= set(np.unique(label).tolist())
    mask = dataset.binary_mask(label, 2)
    assert set(np.unique(mask).tolist()) == {0, 1, 255}
    assert (mask[label == 1] == 0).all()  # another class is background for class 2


def test_train_lists_hold_only_training_classes(voc_root):
    dataset = open_voc(voc_root)
    assert {c for _, c in dataset.pairs(2, "train")} == set(range(1, 21)) - set(range(6, 11))


def test_default_lists_are_the_shipped_ones(voc_root):
    dataset = open_dataset("pascal5i", voc_root)
    assert len(dataset.pairs(1, "test")) == 346


def test_missing_data_root_and_folders(tmp_path):
    with pytest.raises(BenchError, match="pascal5i needs --data-root"):
        open_dataset("pascal5i", None)
    with pytest.raises(BenchError, match="data root does not exist"):
        open_dataset("pascal5i", tmp_path / "nope")
    with pytest.raises(BenchError, match="has no VOC2012/JPEGImages"):
        open_dataset("pascal5i", tmp_path)


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(BenchError, match="unknown dataset 'coco'.*pascal5i.*synthetic"):
        open_dataset("coco")


def test_missing_files_are_counted_and_named(voc_copy):
    for image_id in ("val_01_0", "val_02_1", "val_03_2", "val_04_3"):
        (voc_copy / "VOC2012" / "JPEGImages" / f"{image_id}.jpg").unlink()
    dataset = open_voc(voc_copy)
    with pytest.raises(BenchError, match=r"^4 images listed in the test list of split 1 are missing: .*val_01_0.jpg.* and 1 more$"):
        dataset.check_files(1, "test")
    (voc_copy / "VOC2012" / "SegmentationClassAug" / "val_16_0.png").unlink()
    with pytest.raises(BenchError, match="1 masks listed .* split 4 .*val_16_0.png"):
        dataset.check_files(4, "test")


def test_corrupt_image_and_mask_are_named(voc_copy):
    (voc_copy / "VOC2012" / "JPEGImages" / "val_01_0.jpg").write_bytes(b"not a jpeg")
    (voc_copy / "VOC2012" / "SegmentationClassAug" / "val_01_1.png").write_bytes(b"\x89PNG broken")
    dataset = open_voc(voc_copy)
    with pytest.raises(BenchError, match="corrupt image file: .*val_01_0.jpg"):
        dataset.read_sample("val_01_0")
    with pytest.raises(BenchError, match="corrupt mask file: .*val_01_1.png"):
        dataset.read_sample("val_01_1")


def test_size_mismatch_and_rgb_mask_are_errors(voc_copy):
    Image.new("RGB", (7, 9)).save(voc_copy / "VOC2012" / "JPEGImages" / "val_01_0.jpg")
    Image.new("RGB", (7, 9)).save(voc_copy / "VOC2012" / "SegmentationClassAug" / "val_01_1.png")
    dataset = open_voc(voc_copy)
    with pytest.raises(BenchError, match="image and mask sizes differ for val_01_0"):
        dataset.read_sample("val_01_0")
    with pytest.raises(BenchError, match="has mode RGB; expected a palette or grayscale PNG"):
        dataset.read_sample("val_01_1")


def test_malformed_list_line_names_file_and_line(voc_copy):
    path = voc_copy / "lists" / "val" / "fold0.txt"
    path.write_text(path.read_text() + "oops\n")
    with pytest.raises(BenchError, match=r"malformed line \d+ in .*fold0.txt: 'oops'"):
        open_voc(voc_copy).pairs(1, "test")


def test_list_with_class_outside_split_is_refused(voc_copy):
    path = voc_copy / "lists" / "val" / "fold0.txt"
    path.write_text(path.read_text() + "val_07_0__07\n")
    with pytest.raises(BenchError, match=r"lists classes \[7\] that do not belong to the test classes of split 1"):
        open_voc(voc_copy).pairs(1, "test")


def test_split_outside_range():
    from bench.data.voc import VOCLayoutDataset

    with pytest.raises(BenchError, match="split 5 is outside 1..4"):
        VOCLayoutDataset.check_split(type("D", (), {"num_splits": 4, "name": "x"})(), 5)


def test_fingerprint_changes_with_content_not_location(voc_copy, voc_root):
    original = open_voc(voc_root).fingerprint([1])
    assert open_voc(voc_copy).fingerprint([1]) == original
    Image.new("RGB", (40, 40), "red").save(voc_copy / "VOC2012" / "JPEGImages" / "val_01_0.jpg")
    assert open_voc(voc_copy).fingerprint([1]) != original
    assert open_voc(voc_copy).fingerprint([2]) == open_voc(voc_root).fingerprint([2])


def test_fss1000_layout(tmp_path):
    names = (shipped_lists("fss1000") / "test.txt").read_text().split()
    make_fss_tree(tmp_path, names, images=3)
    dataset = open_dataset("fss1000", tmp_path)
    pairs = dataset.pairs(1, "test")
    assert len(pairs) == 240 * 3
    image_id, class_id = pairs[0]
    assert class_id == 761 and dataset.class_names()[761] == names[0]
    image, label = dataset.read_sample(image_id)
    assert set(np.unique(label).tolist()) == {0, class_id}
    assert set(np.unique(dataset.binary_mask(label, class_id)).tolist()) == {0, 1}
    with pytest.raises(BenchError, match="split 2 is outside 1 for dataset fss1000"):
        dataset.pairs(2, "test")


def test_fss1000_missing_class_folders(tmp_path):
    dataset = open_dataset("fss1000", tmp_path)
    with pytest.raises(BenchError, match="240 FSS-1000 class folders are missing"):
        dataset.pairs(1, "test")
