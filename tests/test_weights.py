"""Published checkpoints end to end: `bench weights`, `bench run --weights`, and their bad inputs.

The test entries (tests/published_fixture.py: PANet on synthnet, and a native-resolution variant) are
patched into the registries per test, so no global state leaks.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.cli.commands import main
from bench.core.fileio import sha256_file
from bench.data.catalog import open_dataset
from bench.data.episodes import read_manifest
from bench.data.images import ImageStore
from bench.evaluation.loop import evaluate_manifest
from bench.runs.cells import Cell
from bench.runs.config import RunConfig
from bench.runs.rundir import RunDir
from bench.training.published import PublishedModels, PublishedOptions
from methods.registry import MethodError, Registry, RegistryError
from methods.weights import WEIGHTS, PublishedWeights, WeightsRegistry
from tests.published_fixture import (
    ENTRIES,
    OPTIONS,
    SIZE,
    URL,
    entry,
    register,
    seeded_model,
    use_entries,
    weights_dir,
    write_authors_file,
)

@pytest.fixture()
def registered(monkeypatch):
    """The test entries (and the native test method) registered for one test."""
    use_entries(monkeypatch)
    return monkeypatch


def run_args(voc_root, out, *extra, methods=("panet",)):
    return ["run", "--methods", *methods, "--dataset", "pascal5i", "--data-root", str(voc_root), "--lists",
            str(voc_root / "lists"), "--splits", "1", "2", "--shots", "1", "--seeds", "0", "--episodes", "6",
            "--input-size", str(SIZE), "--checkpoints", str(Path(out).parent / "no-checkpoints"), "--out", str(out),
            "--quiet", *extra]


@pytest.fixture()
def published_run(registered, voc_root, tmp_path):
    folder = weights_dir(tmp_path / "weights")
    out = tmp_path / "run"
    assert main(run_args(voc_root, out, "--weights", str(folder))) == 0
    return out, folder


def test_run_records_the_weights_and_trains_nothing(published_run):
    out, folder = published_run
    config = json.loads((out / "config.json").read_text())
    for split, e in ((1, ENTRIES[0]), (2, ENTRIES[1])):
        sha256 = sha256_file(folder / e.file_name)
        assert config["weights"][f"panet/split{split}"] == {
            "weights": e.name, "file": str(folder / e.file_name), "sha256": sha256, "url": URL, "input_size": SIZE,
            "fold_verified": False}
        assert config["methods"]["panet"]["weights"][f"panet/split{split}"] == e.name
        meta = RunDir(out).cell_meta(Cell("panet", split, 1, 0))
        assert (meta["weights"], meta["weights_sha256"], meta["checkpoint_sha256"]) == (e.name, sha256, sha256)
        assert meta["weights_fold_verified"] is False  # the test entries have no sha256 and their files no fold
        assert meta["checkpoint"] == f"published/{e.name}"
    assert config["config"]["published"]["weights"] == [str(folder)]
    assert not (out.parent / "no-checkpoints").exists()


def test_loading_gives_the_outputs_of_the_same_seeded_model(published_run, voc_root):
    out, _ = published_run
    dataset = open_dataset("pascal5i", str(voc_root), str(voc_root / "lists"))
    store = ImageStore(dataset, SIZE)
    for split, seed in ((1, 3), (2, 4)):
        cell = Cell("panet", split, 1, 0)
        direct = evaluate_manifest(seeded_model(ENTRIES[split - 1], seed), store,
                                   read_manifest(RunDir(out).manifest_path(cell.manifest)), quiet=True)
        saved = RunDir(out).read_cell(cell)
        pd.testing.assert_frame_equal(saved, direct, check_dtype=False)
        assert (saved.fg_inter > 0).any()


def test_a_rerun_with_another_file_redoes_the_cells(published_run, voc_root, capsys):
    out, folder = published_run
    capsys.readouterr()
    assert main(run_args(voc_root, out, "--weights", str(folder))) == 0
    assert "2 finished cells kept, 0 to run" in capsys.readouterr().err
    write_authors_file(folder / ENTRIES[1].file_name, ENTRIES[1], seed=11)
    assert main(run_args(voc_root, out, "--weights", str(folder))) == 0
    assert "1 finished cells kept, 1 to run" in capsys.readouterr().err
    meta = RunDir(out).cell_meta(Cell("panet", 2, 1, 0))
    assert meta["weights_sha256"] == sha256_file(folder / ENTRIES[1].file_name)
    config = json.loads((out / "config.json").read_text())
    assert config["weights"]["panet/split2"]["sha256"] == meta["weights_sha256"]


def test_tag_equals_file_and_a_native_resolution_method(registered, voc_root, tmp_path):
    native = [entry(f"native-fold{f}", f, method="panet-native", options={**OPTIONS, "input_size": 40}, input_size=40)
              for f in (0, 1)]
    register(registered, *native)
    folder = weights_dir(tmp_path / "weights", [ENTRIES[0], native[0]])
    mine = write_authors_file(tmp_path / "mine.bin", ENTRIES[1], seed=5)
    theirs = write_authors_file(tmp_path / "theirs.bin", native[1], seed=6)
    out = tmp_path / "run"
    # split 1 from the folder, split 2 from TAG=FILE; panet-native (at 40 x 40) beside panet (at the run's 32)
    assert main(run_args(voc_root, out, "--weights", str(folder), f"panet.fold1={mine}", "--weights",
                         f"panet-native.native-fold1={theirs}", methods=("panet", "panet-native"))) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["weights"]["panet/split2"]["file"] == str(mine)
    assert config["weights"]["panet-native/split1"]["file"] == str(folder / native[0].file_name)
    meta = RunDir(out).cell_meta(Cell("panet-native", 2, 1, 0))
    assert (meta["weights"], meta["weights_sha256"]) == ("panet-native.native-fold1", sha256_file(theirs))
    assert meta["options"]["backbone"] == "synthnet"


def test_weights_variant_chooses_among_several(registered, voc_root, tmp_path, capsys):
    wide = entry("fold0-wide", 0, options={**OPTIONS, "width": 16})
    register(registered, wide)
    folder = weights_dir(tmp_path / "weights", ENTRIES[:2] + [wide])
    args = run_args(voc_root, tmp_path / "run", "--weights", str(folder))
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "2 published checkpoints fit panet split 1: panet.fold0, panet.fold0-wide" in err
    assert len(err.splitlines()) == 1
    assert main(args + ["--weights-variant", "panet.fold?-wide", "panet.fold1", "hsnet.*"]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["methods"]["panet"]["weights"] == {"panet/split1": "panet.fold0-wide", "panet/split2": "panet.fold1"}


def drop_key(state):
    del state["proj.bias"]


def add_key(state):
    state["proj.extra"] = torch.zeros(1)


def wrong_shape(state):
    state["proj.weight"] = torch.zeros(3, 3, 1, 1)


def bad_case(folder_edit=None, extra=(), entries=None):
    def build(monkeypatch, tmp: Path, voc_root: Path):
        if entries is not None:
            register(monkeypatch, *entries)
        folder = weights_dir(tmp / "weights")
        if folder_edit is not None:
            folder_edit(folder)
        return [str(folder) if a == "DIR" else a.replace("TMP", str(tmp)) for a in ("--weights", "DIR", *extra)]
    return build


def rewrite(split: int, edit):
    return lambda folder: write_authors_file(folder / ENTRIES[split - 1].file_name, ENTRIES[split - 1], 3, edit)


BAD = {
    "missing-file": (bad_case(lambda f: (f / ENTRIES[1].file_name).unlink()),
                     f"published weights panet.fold1: file sub/fold1.pth not found; download it from {URL} and put "
                     "it at "),
    "missing-key": (bad_case(rewrite(2, drop_key)), "does not fit panet with the options of panet.fold1: 1 missing keys "
                    "(projection.bias)"),
    "unexpected-key": (bad_case(rewrite(1, add_key)), "1 unexpected keys (projection.extra)"),
    "wrong-shape": (bad_case(rewrite(1, wrong_shape)), "1 wrong shapes (file vs model) (projection.weight [3, 3, 1, 1] "
                    "vs [8, 192, 1, 1])"),
    "wrong-fold-tag": (bad_case(extra=("--weights", "panet.fold3=TMP/weights/sub/fold3.pth")),
                       "--weights panet.fold3 is the checkpoint of pascal5i fold 3 (split 4); this run evaluates "
                       "pascal5i split(s) 1 2"),
    "unknown-tag": (bad_case(extra=("--weights", "panet.fold9=x.pth")), "unknown published weights 'panet.fold9'"),
    "two-folders": (bad_case(extra=("--weights", "TMP")), "--weights takes one folder"),
    "no-such-folder": (bad_case(extra=("--weights", "TMP/none")), "--weights folder does not exist"),
    "variant-matches-none": (bad_case(extra=("--weights-variant", "panet.fold[23]", "other.*")),
                             "no published weights of panet for pascal5i split 1 match --weights-variant "
                             "panet.fold[23]; candidates: panet.fold0"),
    "no-method-uses-them": (bad_case(extra=("--methods", "support-copy")),
                            "--weights: none of --methods support-copy has published weights for pascal5i"),
    "not-a-tensor-file": (bad_case(lambda f: (f / ENTRIES[0].file_name).write_text("nope")),
                          "not a weights-only tensor file"),
    "other-normalisation": (bad_case(entries=[entry("fold0", 0, normalisation={"mean": (0.5,) * 3, "std": (0.5,) * 3})]),
                            "published weights panet.fold0 expect inputs normalised with mean (0.5, 0.5, 0.5)"),
    "input-size-differs": (bad_case(entries=[entry("fold1", 1, input_size=473)]),
                           "published weights panet.fold1 are evaluated at 473 x 473 and panet does not resize its "
                           "input: run with --input-size 473"),
    "sha256-differs": (bad_case(entries=[entry("fold0", 0, sha256="ab" * 32)]), "the published panet.fold0 has abababab"),
    "no-state-dict": (bad_case(entries=[entry("fold0", 0, state_key="model")]), "holds no 'model' state dict"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_weights_are_one_error_line_and_write_nothing(name, registered, voc_root, tmp_path, capsys):
    build, message = BAD[name]
    args = run_args(voc_root, tmp_path / "out", *build(registered, tmp_path, voc_root))
    before = sorted(p for p in tmp_path.rglob("*"))
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_bench_weights_lists_the_entries(registered, capsys):
    register(registered, entry("fold0-wide", 0, reported={1: {"miou": 55.25, "fbiou": 70.0}, 5: {"miou": 60.0}}))
    assert main(["weights"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "dataset", "fold", "size", "1-shot", "mIoU/FB-IoU", "5-shot", "mIoU/FB-IoU",
                                "file", "download"]
    assert lines[2].split() == ["panet.fold0-wide", "pascal5i", "0", "32", "55.2/70.0", "60.0/-",
                                "sub/fold0-wide.pth", URL]
    assert sum(line.startswith("panet.") for line in lines) == 5
    assert main(["weights", "wide"]) == 0
    assert sum(line.startswith("panet.") for line in capsys.readouterr().out.splitlines()) == 1
    assert main(["weights", "hsnet.*"]) == 1
    assert capsys.readouterr().out.strip().splitlines() == [
        "no published weights match 'hsnet.*' (5 registered; `bench weights` lists them)"]


def test_the_chosen_checkpoints_travel_as_tag_equals_file(registered, tmp_path):
    """What a Ray worker is given (`arguments`) resolves to the same checkpoints; the config round-trips."""
    folder = weights_dir(tmp_path / "weights")
    driver = PublishedModels(PublishedOptions(weights=[str(folder)]), "pascal5i")
    driver.resolve(["panet", "support-copy"], [1, 3], SIZE)
    worker = PublishedModels(PublishedOptions(weights=driver.arguments()), "pascal5i")
    worker.resolve(["panet", "support-copy"], [1, 3], SIZE)
    assert worker.identity() == driver.identity() == {"panet/split1": "panet.fold0", "panet/split3": "panet.fold2"}
    assert worker.record() == driver.record() and worker.get("support-copy", 1) is None
    config = RunConfig(methods=["panet"], published=PublishedOptions(weights=driver.arguments()))
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert "published" not in RunConfig(methods=["panet"]).identity()  # older runs keep their identity


AUTHORS = ("hsnet.pascal5i-fold0-resnet50", "pfenet.pascal5i-fold0-resnet50")


@pytest.mark.slow
def test_the_authors_architectures_load_files_laid_out_like_theirs(voc_root, tmp_path):
    """HSNet and PFENet (the authors' architectures) from seeded files in the authors' layout (HSNet: the
    state dict at the top level; PFENet: under "state_dict"), in one run at their own input sizes."""
    missing = [name for name in AUTHORS if name not in WEIGHTS]
    if missing:
        pytest.skip(f"not registered: {', '.join(missing)}")
    folder = tmp_path / "weights"
    for seed, name in enumerate(AUTHORS):
        write_authors_file(folder / WEIGHTS.get(name).file_name, WEIGHTS.get(name), seed, ignored=None)
    out = tmp_path / "run"
    assert main(["run", "--methods", "hsnet", "pfenet", "--dataset", "pascal5i", "--data-root", str(voc_root),
                 "--lists", str(voc_root / "lists"), "--splits", "1", "--shots", "1", "--seeds", "0", "--episodes",
                 "1", "--weights", str(folder), "--weights-variant", "hsnet.*-resnet50",
                 "--checkpoints", str(tmp_path / "no-checkpoints"), "--out", str(out), "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    for name in AUTHORS:
        method, published = name.split(".")[0], WEIGHTS.get(name)
        sha256 = sha256_file(folder / published.file_name)
        assert config["weights"][f"{method}/split1"]["sha256"] == sha256
        assert config["weights"][f"{method}/split1"]["input_size"] == published.input_size
        meta = RunDir(out).cell_meta(Cell(method, 1, 1, 0))
        assert (meta["weights"], meta["weights_sha256"]) == (name, sha256)
    assert not (tmp_path / "no-checkpoints").exists()


def test_the_weights_registry_is_the_generic_one():
    """Built on `methods.registry.Registry`: its strictness, its names and lookups, its messages."""
    registry = WeightsRegistry()
    assert isinstance(registry, Registry)
    entry = PublishedWeights(method="m", tag="pascal5i-fold0", file_name="f.pth", url="u", dataset="pascal5i", fold=0)
    registry.register(entry)
    assert registry.get("m.pascal5i-fold0") is entry and registry.names() == ["m.pascal5i-fold0"]
    assert "m.pascal5i-fold0" in registry and registry.find("m", "pascal5i", 0) == [entry]
    with pytest.raises(RegistryError, match="published weights 'm.pascal5i-fold0' is already registered"):
        registry.register(entry)
    with pytest.raises(RegistryError, match="unknown published weights 'm.x'; known published weights: m.pascal5i"):
        registry.get("m.x")
    with pytest.raises(MethodError, match="weights tag 'Bad' of m"):
        registry.register(PublishedWeights(method="m", tag="Bad", file_name="f", url="u", dataset="d", fold=0))
    assert WEIGHTS.names("hsnet.*") and all(WEIGHTS.get(n).method == "hsnet" for n in WEIGHTS.names("hsnet.*"))
