"""Cross-domain test sets (PATNet's Deepglobe, ISIC 2018, Chest X-ray): layouts, label conversion, the
DeepGlobe tile maker and an end-to-end run on tiny trees built here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.cli.commands import main
from bench.core.errors import BenchError
from bench.data.catalog import card_of, open_dataset
from bench.data.deepglobe import CLASSES
from bench.data.prepare.deepglobe import colour_to_label, keep_tile, make_deepglobe_tiles, tile_bounds

RNG = np.random.default_rng(0)
SIDE = 48


def _rgb(side=SIDE):
    return RNG.integers(0, 255, (side, side, 3), dtype=np.uint8)


def _save(array, path: Path, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def _blob_mask(side=SIDE, shift=0):
    mask = np.zeros((side, side), np.uint8)
    mask[8 + shift:30 + shift, 10:34] = 255
    return mask


# DeepGlobe -------------------------------------------------------------------------------------

def _deepglobe_mask(side: int) -> np.ndarray:
    """Quadrants of agriculture / urban / forest / unknown, with off-pure values (the readme's warning)."""
    h = side // 2
    mask = np.zeros((side, side, 3), np.uint8)
    mask[:h, :h] = (250, 240, 3)      # agriculture
    mask[:h, h:] = (5, 200, 255)      # urban
    mask[h:, :h] = (0, 255, 0)        # forest
    return mask                        # bottom right: unknown


def test_tile_geometry_is_patnets():
    bounds = tile_bounds(2448)
    assert len(bounds) == 6 and all(stop - start == 408 for start, stop in bounds)
    assert bounds[0][0] == 0 and bounds[-1][1] == 2448
    assert tile_bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]


def test_colour_to_label_pixel_by_pixel(tmp_path):
    colours = np.array([[c for _, c in CLASSES] + [(0, 0, 0)]], np.uint8)  # 1 x 7
    label = colour_to_label(colours, tmp_path / "m.png")
    assert label.tolist() == [[1, 2, 3, 4, 5, 6, 0]]
    with pytest.raises(BenchError, match="m.png holds 1 pixels of red"):
        colour_to_label(np.array([[[200, 10, 10]]], np.uint8), tmp_path / "m.png")


def test_keep_tile_filter():
    one = np.ones((10, 10), np.int32)
    assert not keep_tile(one)  # a single colour
    two = one.copy()
    two[0, :4] = 2  # 4 % < 4.8 %
    assert not keep_tile(two)
    two[1, :1] = 2  # 5 %
    assert keep_tile(two)


def _deepglobe_src(tmp_path, side=96, n=2):
    src = tmp_path / "src" / "train"
    for k in range(n):
        _save(_rgb(side), src / f"{100 + k}_sat.jpg")
        _save(_deepglobe_mask(side), src / f"{100 + k}_mask.png")
    return src.parent


def test_tile_maker_layout_and_resume(tmp_path):
    src, out = _deepglobe_src(tmp_path), tmp_path / "tiles"
    stats = make_deepglobe_tiles(src, out, progress=False, grid=2)
    # 2 x 2 grid of a 96 x 96 quadrant mask: each tile holds one colour and is dropped
    assert stats == {"sources": 2, "skipped_sources": 0, "tiles_kept": 0, "tiles_dropped": 8}
    out3 = tmp_path / "tiles3"
    stats = make_deepglobe_tiles(src, out3, progress=False, grid=3)
    # 3 x 3 grid: the middle row/column tiles straddle quadrant borders
    lines = (out3 / "tiles.txt").read_text().split("\n")
    kept = [line.split() for line in lines if line]
    assert stats["tiles_kept"] == len(kept) == 2 * 5 and stats["tiles_dropped"] == 2 * 4
    by_id = {k[0]: [int(c) for c in k[1:]] for k in kept}
    assert by_id["100_01"] == [1, 2] and by_id["100_11"] == [1, 2, 4] and by_id["100_12"] == [2]
    label = np.asarray(Image.open(out3 / "labels" / "100_11.png"))
    assert label.shape == (32, 32) and Image.open(out3 / "labels" / "100_11.png").mode == "L"
    expected = colour_to_label(_deepglobe_mask(96), Path("x"))[32:64, 32:64]
    assert (label == expected).all()
    assert np.asarray(Image.open(out3 / "images" / "100_11.jpg")).shape == (32, 32, 3)
    again = make_deepglobe_tiles(src, out3, progress=False, grid=3)
    assert again["skipped_sources"] == 2 and again["tiles_kept"] == 10
    assert (out3 / "tiles.txt").read_text() == "\n".join(lines)


def test_tile_maker_missing_source(tmp_path):
    with pytest.raises(BenchError, match="no DeepGlobe"):
        make_deepglobe_tiles(tmp_path, tmp_path / "out", progress=False)


def deepglobe_root(tmp_path):
    out = tmp_path / "deepglobe"
    make_deepglobe_tiles(_deepglobe_src(tmp_path, side=144, n=3), out, progress=False, grid=3)
    return out


def test_deepglobe_dataset(tmp_path):
    dataset = open_dataset("deepglobe", deepglobe_root(tmp_path))
    pairs = dataset.pairs(1, "test")
    assert ("100_11", 4) in pairs and ("100_00", 1) not in pairs
    assert dataset.test_classes(1) == [1, 2, 4]
    label = dataset.read_label("100_11")
    assert set(np.unique(label)) == {0, 1, 2, 4}
    for image_id, class_id in pairs:
        assert (dataset.read_label(image_id) == class_id).any()
    with pytest.raises(BenchError, match="test-only.*PASCAL"):
        dataset.pairs(1, "train")
    assert len(dataset.fingerprint([1])) == 64
    bad = np.asarray(Image.open(dataset.label_path("101_11"))).copy()
    bad[0, 0] = 9
    _save(bad, dataset.label_path("101_11"), mode="L")
    with pytest.raises(BenchError, match=r"101_11\.png holds unexpected values 9"):
        dataset.read_label("101_11")
    with pytest.raises(BenchError, match="tiles.txt is missing"):
        open_dataset("deepglobe", tmp_path)


def patnet_deepglobe_root(tmp_path):
    """PATNet's preprocessed layout, made from the harness's tiles: one binary mask per class folder."""
    ours = deepglobe_root(tmp_path)
    root = tmp_path / "patnet" / "Deepglobe"
    for class_id in range(1, 7):
        (root / str(class_id) / "test" / "origin").mkdir(parents=True)
        (root / str(class_id) / "test" / "groundtruth").mkdir(parents=True)
    for line in (ours / "tiles.txt").read_text().split("\n"):
        if not line:
            continue
        tile, *classes = line.split()
        label = np.asarray(Image.open(ours / "labels" / f"{tile}.png"))
        for c in classes:
            folder = root / c / "test"
            (folder / "origin" / f"{tile}.jpg").write_bytes((ours / "images" / f"{tile}.jpg").read_bytes())
            _save(np.where(label == int(c), 255, 0).astype(np.uint8), folder / "groundtruth" / f"{tile}.png", mode="L")
    return ours, root.parent


def test_deepglobe_patnet_layout_matches_ours(tmp_path):
    ours_root, patnet_root = patnet_deepglobe_root(tmp_path)
    ours, theirs = open_dataset("deepglobe", ours_root), open_dataset("deepglobe", patnet_root)
    assert type(theirs).__name__ == "PatnetDeepGlobeDataset"
    assert sorted(ours.pairs(1, "test")) == sorted(theirs.pairs(1, "test"))
    assert theirs.test_classes(1) == ours.test_classes(1) == [1, 2, 4]
    for tile in ("100_01", "100_11", "102_21"):
        assert (theirs.read_label(tile) == ours.read_label(tile)).all()
        assert (theirs.read_image(tile) == ours.read_image(tile)).all()
    assert len(theirs.fingerprint([1])) == 64
    theirs.check_files(1, "test")


# ISIC ------------------------------------------------------------------------------------------

def isic_root(tmp_path, n_per_class=3):
    root = tmp_path / "isic"
    lines = ["id,class"]
    for k, cls in enumerate(["melanoma", "nevus", "seborrheic_keratosis"] * n_per_class):
        image_id = f"ISIC_{k:07d}"
        lines.append(f"{image_id},{cls}")
        _save(_rgb(), root / "ISIC2018_Task1-2_Training_Input" / f"{image_id}.jpg")
        _save(_blob_mask(shift=k % 4), root / "ISIC2018_Task1_Training_GroundTruth" / f"{image_id}_segmentation.png")
    lists = tmp_path / "isic_lists"
    lists.mkdir()
    (lists / "classes.txt").write_text("\n".join(lines) + "\n")
    return root, lists


def test_isic_dataset(tmp_path):
    root, lists = isic_root(tmp_path)
    dataset = open_dataset("isic2018", root, lists)
    assert dataset.class_names() == {1: "melanoma", 2: "nevus", 3: "seborrheic_keratosis"}
    assert dataset.test_classes(1) == [1, 2, 3]
    assert ("ISIC_0000001", 2) in dataset.pairs(1, "test")
    label = dataset.read_label("ISIC_0000001")
    mask = np.asarray(Image.open(dataset.label_path("ISIC_0000001")))
    assert ((label == 2) == (mask >= 128)).all() and set(np.unique(label)) == {0, 2}
    (lists / "classes.txt").write_text("id,class\nISIC_9,melanoma\n")
    with pytest.raises(BenchError, match="1 images of the ISIC class table are missing"):
        open_dataset("isic2018", root, lists)
    (lists / "classes.txt").write_text("id,class\nISIC_9,naevus\n")
    with pytest.raises(BenchError, match="line 2 of"):
        open_dataset("isic2018", root, lists)


def test_isic_shipped_table():
    from bench.data.isic import read_class_table
    from bench.data.lists import shipped_lists

    table = read_class_table(shipped_lists("isic2018") / "classes.txt")
    counts = pd.Series(list(table.values())).value_counts().to_dict()
    assert counts == {"nevus": 1867, "melanoma": 519, "seborrheic_keratosis": 208}


# Chest X-ray -----------------------------------------------------------------------------------

def chest_root(tmp_path, n=4):
    root = tmp_path / "chest" / "Lung Segmentation"
    for k in range(n):
        grey = RNG.integers(0, 255, (SIDE, SIDE), dtype=np.uint8)
        _save(grey, root / "CXR_png" / f"CHNCXR_{k:04d}_0.png", mode="L")
        _save(_blob_mask(shift=k), root / "masks" / f"CHNCXR_{k:04d}_0_mask.png", mode="L")
    _save(_blob_mask(), root / "masks" / "MCUCXR_0001_0.png", mode="L")  # Montgomery naming: not used
    return root.parent


def test_chest_xray_dataset(tmp_path):
    dataset = open_dataset("chest-xray", chest_root(tmp_path))
    assert [i for i, _ in dataset.pairs(1, "test")] == [f"CHNCXR_{k:04d}_0" for k in range(4)]
    assert dataset.test_classes(1) == [1] and dataset.ignore_label is None
    label = dataset.read_label("CHNCXR_0002_0")
    assert ((label == 1) == (_blob_mask(shift=2) >= 128)).all()
    assert dataset.read_image("CHNCXR_0002_0").shape == (SIDE, SIDE, 3)
    (tmp_path / "chest" / "Lung Segmentation" / "CXR_png" / "CHNCXR_0000_0.png").unlink()
    with pytest.raises(BenchError, match="1 images of the masks .* are missing"):
        open_dataset("chest-xray", tmp_path / "chest")
    with pytest.raises(BenchError, match="CXR_png is missing"):
        open_dataset("chest-xray", tmp_path)


def test_cards_carry_patnet_defaults():
    for name in ("deepglobe", "isic2018", "chest-xray"):
        card = card_of(name)
        assert card.defaults["episodes"] == 600 and card.defaults["input_size"] == 400
        assert "PASCAL" in card.folds and "all 20 classes" in card.train_on


# End to end ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["deepglobe", "deepglobe-patnet-layout", "isic2018", "chest-xray"])
def test_end_to_end(name, tmp_path):
    extra = []
    if name == "deepglobe":
        root = deepglobe_root(tmp_path)
    elif name == "deepglobe-patnet-layout":
        name, root = "deepglobe", patnet_deepglobe_root(tmp_path)[1]
    elif name == "isic2018":
        root, lists = isic_root(tmp_path)
        extra = ["--lists", str(lists)]
    else:
        root = chest_root(tmp_path)
    base = ["run", "--methods", "support-copy", "all-foreground", "--dataset", name, "--data-root", str(root),
            "--splits", "1", "--shots", "1", "--seeds", "0", "--episodes", "6", "--input-size", "32", "--quiet"]
    assert main(base + extra + ["--out", str(tmp_path / "run")]) == 0
    episodes = pd.read_csv(tmp_path / "run" / "episodes.csv")
    assert len(episodes) == 2 * 6
    # scored at the input size: the cards' default eval size (400) would compare a 32-pixel prediction
    # upsampled bilinearly with a nearest-resized label, which is not exact
    assert main(base + extra + ["--identical-input", "--eval-size", "32", "--out", str(tmp_path / "ident")]) == 0
    summary = pd.read_csv(tmp_path / "ident" / "summary.csv")
    copy = summary[summary["method"] == "support-copy"]
    assert len(copy) == 2 and (copy["miou_mean"] == 100.0).all() and (copy["fbiou_mean"] == 100.0).all()
    assert (summary[summary["method"] == "all-foreground"]["miou_mean"] < 100.0).all()
