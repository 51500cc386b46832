"""Published weights with several files: GF-SAM's DINOv2 ViT-L/14 and SAM ViT-H files, shared by every fold.

The registered entries have the real architecture (GBs of weights), so the loading tests use them reduced
(tests/foundation_fixture.py: same tags, file names, key maps and reported numbers, the GF-SAM profiles' small
DINOv2 and SAM): seeded files laid out as the authors' (`models/...`, DINOv2's own names with `mask_token`,
SAM's `Sam` state dict) load bit-exactly, a run records the entry and each file's sha256, and bad files are one
error line. The real architecture is checked on the meta device: its weights are exactly the two files' parts.
"""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

pytest.importorskip("timm")
pytest.importorskip("segment_anything")

from bench.cli.commands import main  # noqa: E402
from bench.core.fileio import sha256_file  # noqa: E402
from bench.runs.cells import Cell  # noqa: E402
from bench.runs.rundir import RunDir  # noqa: E402
from bench.training.published import PublishedModels, PublishedOptions  # noqa: E402
from methods.foundation import foundation_files  # noqa: E402
from methods.gf_sam import GFSAM, PAPER_OPTIONS, REPORTED, WEIGHT_FILES  # noqa: E402
from methods.registry import MethodError  # noqa: E402
from methods.weights import WEIGHTS, PublishedWeights, WeightFile  # noqa: E402
from tests.foundation_fixture import REDUCED_SIZE, use_reduced, write_foundation_files  # noqa: E402

NAME = "gf-sam.pascal5i-fold0"
DINO, SAM = WEIGHT_FILES["dinov2"][0], WEIGHT_FILES["sam"][0]


def test_one_entry_per_dataset_and_fold_all_pointing_at_the_same_two_files():
    entries = WEIGHTS.for_method("gf-sam")
    assert sorted(e.tag for e in entries) == sorted(f"{d}-fold{f}" for d in ("pascal5i", "coco20i") for f in range(4))
    for e in entries:
        assert [(p.part, p.file_name, p.sha256) for p in e.parts] == [
            ("dinov2", "models/dinov2_vitl14_pretrain.pth", None), ("sam", "models/sam_vit_h_4b8939.pth", None)]
        assert e.parts == foundation_files() and dict(e.options) == PAPER_OPTIONS and e.input_size == 1024
        assert e.reported == {k: {"miou": REPORTED[e.dataset][k][e.fold][0], "fbiou": REPORTED[e.dataset][k][e.fold][1]}
                              for k in (1, 5)}
        assert e.fold_verifiable and e.file_name == f"{DINO} + {SAM}"
    assert WEIGHT_FILES["sam"][1] == "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth"


def test_the_real_architecture_is_exactly_the_two_files_parts():
    """On the meta device (no memory): every weight of GF-SAM's paper architecture is under the DINOv2 file's
    prefix or the SAM file's, and DINOv2 runs at 518 (37 x 37 tokens, its released position embedding)."""
    with torch.device("meta"):
        model = GFSAM(**PAPER_OPTIONS)
    state = model.state_dict()
    prefixes = [p.keys.rules[0][1] for p in WEIGHTS.get(NAME).parts]
    assert prefixes == ["encoder.vit.", "sam."]
    assert all(any(k.startswith(p) for p in prefixes) for k in state)
    assert state["encoder.vit.pos_embed"].shape == (1, 37 * 37 + 1, 1024)
    assert state["sam.image_encoder.pos_embed"].shape == (1, 64, 64, 1280)


def test_an_entry_with_several_files_gives_keys_and_hashes_per_file():
    part = WeightFile("a", "a.pth", "u")
    with pytest.raises(MethodError, match="per file"):
        PublishedWeights(method="m", tag="t", file_name="", url="", dataset="d", fold=0, files=(part,), sha256="ab")
    with pytest.raises(MethodError, match="distinct"):
        PublishedWeights(method="m", tag="t", file_name="", url="", dataset="d", fold=0, files=(part, part))


@pytest.fixture()
def reduced(monkeypatch):
    use_reduced(monkeypatch)
    return WEIGHTS.get(NAME)


def test_seeded_files_laid_out_as_the_authors_load_bit_exactly(reduced, tmp_path):
    model = write_foundation_files(tmp_path / "w", reduced, seed=1)
    for folder_args in ([str(tmp_path / "w")], [f"{NAME}={tmp_path / 'w'}"]):  # --weights DIR, TAG=DIR
        published = PublishedModels(PublishedOptions(weights=folder_args), "pascal5i")
        published.resolve(["gf-sam"], [1])
        loaded, info = published.load("gf-sam", 1)
        assert loaded.state_dict().keys() == model.state_dict().keys()
        assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
        digests = {"dinov2": sha256_file(tmp_path / "w" / DINO), "sam": sha256_file(tmp_path / "w" / SAM)}
        assert info["files"] == digests and info["fold_verified"] is True
        assert info["sha256"] == f"dinov2={digests['dinov2']},sam={digests['sam']}"
        worker = PublishedModels(PublishedOptions(weights=published.arguments()), "pascal5i")
        worker.resolve(["gf-sam"], [1])
        assert worker.record() == published.record()


def run_args(voc_root, out, *extra):
    return ["run", "--methods", "gf-sam", "--dataset", "pascal5i", "--data-root", str(voc_root), "--lists",
            str(voc_root / "lists"), "--splits", "1", "--shots", "1", "--seeds", "0", "--episodes", "2",
            "--out", str(out), "--quiet", *extra]


def test_a_run_records_the_entry_and_each_files_sha256(reduced, voc_root, tmp_path):
    write_foundation_files(tmp_path / "w", reduced, seed=2)
    out = tmp_path / "run"
    assert main(run_args(voc_root, out, "--weights", str(tmp_path / "w"))) == 0
    digests = {"dinov2": sha256_file(tmp_path / "w" / DINO), "sam": sha256_file(tmp_path / "w" / SAM)}
    meta = RunDir(out).cell_meta(Cell("gf-sam", 1, 1, 0))
    assert (meta["weights"], meta["weights_files"], meta["weights_fold_verified"]) == (NAME, digests, True)
    assert meta["weights_sha256"] == meta["checkpoint_sha256"] == f"dinov2={digests['dinov2']},sam={digests['sam']}"
    record = json.loads((out / "config.json").read_text())["weights"]["gf-sam/split1"]
    assert {p: f["sha256"] for p, f in record["files"].items()} == digests and record["input_size"] == REDUCED_SIZE


def _bad_shape(part, state):
    if part == "sam":
        state["mask_decoder.iou_token.weight"] = torch.zeros(1, 3)


BAD = {
    "missing-sam-file": (lambda f: (f / SAM).unlink(), (),
                         f"published weights {NAME}: file {SAM} not found; download it from "
                         "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth and put it at"),
    "wrong-shapes": (None, (), "wrong shapes (file vs model) (sam.mask_decoder.iou_token.weight [1, 3] vs"),
    "tag-equals-one-file": (None, ("TAG", DINO), f"--weights {NAME}="),
    "tag-equals-a-missing-folder": (None, ("TAG", "nowhere"), "not a folder (give the folder holding"),
    "dinov2-state-dict-nested": (lambda f: torch.save({"model": torch.load(f / DINO)}, f / DINO), (),
                                 f"({NAME}'s dinov2 file) holds entries that are not tensors: model"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_are_one_error_line(name, reduced, voc_root, tmp_path, capsys):
    change, given, message = BAD[name]
    write_foundation_files(tmp_path / "w", reduced, seed=3, edit=_bad_shape if name == "wrong-shapes" else None)
    if change is not None:
        change(tmp_path / "w")
    weights = f"{NAME}={tmp_path / 'w' / given[1]}" if given else str(tmp_path / "w")
    capsys.readouterr()
    assert main(run_args(voc_root, tmp_path / "out", "--weights", weights)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err, err
    if name == "tag-equals-one-file":
        assert "is 2 files" in err and f"give {NAME}=DIR" in err
    assert not (tmp_path / "out").exists()


def test_a_files_sha256_is_checked_where_known(reduced, monkeypatch, voc_root, tmp_path, capsys):
    parts = tuple(dataclasses.replace(p, sha256="ab" * 32) if p.part == "sam" else p for p in reduced.files)
    monkeypatch.setitem(WEIGHTS._entries, NAME, dataclasses.replace(reduced, files=parts))
    write_foundation_files(tmp_path / "w", reduced, seed=3)
    capsys.readouterr()
    assert main(run_args(voc_root, tmp_path / "out", "--weights", str(tmp_path / "w"))) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"the published {NAME} has abababab" in err, err


def test_bench_weights_lists_them(capsys):
    assert main(["weights", "gf-sam.pascal5i*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("gf-sam.pascal5i-fold") for line in lines) == 4
    assert all(f"{DINO} + {SAM}" in line for line in lines if line.startswith("gf-sam."))


def test_the_gf_sam_card_plans_on_the_paper_dataset_with_weights(voc_root, tmp_path, monkeypatch, capsys):
    """`bench reproduce gf-sam --plan` with --weights: both methods evaluate published weights, nothing trains."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w").mkdir()
    capsys.readouterr()
    assert main(["reproduce", "gf-sam", "--plan", "--dataset", "pascal5i", "--data-root", str(voc_root), "--lists",
                 str(voc_root / "lists"), "--weights", str(tmp_path / "w")]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    for method in ("gf-sam", "hsnet"):  # no "trainings" after either
        assert [method, "24/24", "cells", "to", "evaluate"] in lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]  # --plan writes nothing
