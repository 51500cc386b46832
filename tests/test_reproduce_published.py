"""`bench reproduce hsnet` and `bench reproduce dcama` on a VOC-layout fixture with files laid out as the authors'
(seeded weights): they run and render, the tables have the cards' shape, and HSNet's paper and measured numbers
are `bench verify`'s.

Slow (HSNet ResNet-50 at 400 x 400 on CPU, 5-shot episodes: about 20 s an episode on two cores): `-m slow`."""
import json
import os

import pytest

import methods  # noqa: F401  (the method modules register their published weights)
from bench.cli.commands import main
from bench.runs.verify import verify_run
from methods.weights import WEIGHTS
from tests.published_fixture import write_authors_file
from tests.voc_fixture import make_voc_tree

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def voc7(tmp_path_factory):
    """A VOC tree with 7 images per class: enough for 5-shot episodes."""
    root = tmp_path_factory.mktemp("voc7")
    make_voc_tree(root, per_class=7)
    return root


def seeded_weights(folder, names):
    """One seeded file per method laid out as the authors' for every fold (linked: ResNet-50 files are large)."""
    for name in names:
        entries = [WEIGHTS.get(name.format(fold=fold)) for fold in range(4)]
        first = write_authors_file(folder / entries[0].file_name, entries[0], seed=0, ignored=None)
        for entry in entries[1:]:
            (folder / entry.file_name).parent.mkdir(parents=True, exist_ok=True)
            os.link(first, folder / entry.file_name)
    return folder


def reproduce_on_fixture(card, voc7, root, *extra):
    out = root / "out"
    assert main(["reproduce", card, "--dataset", "pascal5i", "--data-root", str(voc7), "--lists", str(voc7 / "lists"),
                 "--weights", str(root / "weights"), "--seeds", "0", "--episodes", "1", "--out", str(out), "--quiet",
                 "--resamples", "50", *extra]) == 0
    return out


@pytest.fixture(scope="module")
def reproduced(voc7, tmp_path_factory):
    root = tmp_path_factory.mktemp("hsnet")
    seeded_weights(root / "weights", ["hsnet.pascal5i-fold{fold}-resnet50"])
    return reproduce_on_fixture("hsnet", voc7, root, "--only", "resnet50")


def test_the_table_has_the_cards_shape(reproduced):
    record = json.loads((reproduced / "reproduction.json").read_text())
    assert record["on_paper_dataset"] and record["dataset"] == "pascal5i"
    table = next(t for t in record["tables"] if t["id"] == "table1-resnet50")
    assert [(r["key"], r["shot"]) for r in table["rows"]] == [("hsnet", 1), ("hsnet", 5)]
    assert all([c["column"] for c in r["cells"]] == ["1", "2", "3", "4", "mean"] for r in table["rows"])
    assert all(c["measured"] is not None and c["difference"] is not None for r in table["rows"] for c in r["cells"])
    not_run = [t["id"] for t in record["tables"] if t["note"] == "not run"]
    assert sorted(not_run) == ["table1-fbiou-resnet101", "table1-fbiou-vgg16", "table1-resnet101", "table1-vgg16"]
    assert "the paper's dataset" in (reproduced / "reproduction.md").read_text()


def test_bench_verify_and_the_card_agree(reproduced):
    record = json.loads((reproduced / "reproduction.json").read_text())
    table = next(t for t in record["tables"] if t["id"] == "table1-resnet50")
    checks = [c for c in verify_run(reproduced / "runs" / "resnet50", tolerance=100.0) if c.metric == "mIoU"]
    assert len(checks) == 8  # 4 folds x 2 shots
    for check in checks:
        cell = next(r for r in table["rows"] if r["shot"] == check.shot)["cells"][check.split - 1]
        assert cell["paper"] == check.reported
        assert cell["measured"] == pytest.approx(check.measured, abs=1e-3)


def test_the_dcama_card_compares_dcama_with_hsnet_on_one_episode_set(voc7, tmp_path_factory):
    """Both methods' files laid out as their authors' in one --weights folder; one run, both methods on its
    episodes, each at its own input size; no reported number, so the table shows measured values only."""
    root = tmp_path_factory.mktemp("dcama")
    seeded_weights(root / "weights", ["dcama.pascal5i-resnet50-fold{fold}", "hsnet.pascal5i-fold{fold}-resnet50"])
    out = reproduce_on_fixture("dcama", voc7, root)
    record = json.loads((out / "reproduction.json").read_text())
    table = next(t for t in record["tables"] if t["id"] == "table1-resnet50")
    assert [(r["key"], r["shot"]) for r in table["rows"]] == [("dcama", 1), ("dcama", 5), ("hsnet", 1), ("hsnet", 5)]
    assert all(c["measured"] is not None and c["paper"] is None for r in table["rows"] for c in r["cells"])
    assert {c["id"]: c["outcome"] != "not run" for c in record["claims"]} == {"beats-hsnet": True,
                                                                           "one-pass-five-shots-help": True}
    config = json.loads((out / "runs" / "resnet50" / "config.json").read_text())
    assert config["checkpoints"]["dcama/split1"] == "published/dcama.pascal5i-resnet50-fold0"
    assert config["checkpoints"]["hsnet/split4"] == "published/hsnet.pascal5i-fold3-resnet50"
