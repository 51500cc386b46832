"""Dataset cards and protocol choices: `bench datasets`, --queries every-image (HSNet's FSS-1000
protocol), --fold-convention, and the protocol header in the output, config.json and the report."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.cli.commands import main
from bench.data.catalog import CARDS, DATASETS
from bench.data.episodes import EpisodeSpec, sample_episodes, support_ids
from bench.data.catalog import open_dataset
from tests.voc_fixture import make_fss_tree

TEST_CLASSES = ["c_one", "c_two", "c_three"]


@pytest.fixture()
def fss_root(tmp_path):
    root, lists = tmp_path / "fss", tmp_path / "fss-lists"
    make_fss_tree(root, TEST_CLASSES + ["train_class"], images=4)
    lists.mkdir()
    for part, names in (("trn", ["train_class"]), ("val", ["val_class"]), ("test", TEST_CLASSES)):
        (lists / f"{part}.txt").write_text("".join(f"{n}\n" for n in names))
    return root, lists


def test_every_dataset_has_a_card_with_layout_and_sources(capsys):
    assert set(DATASETS.names()) == set(CARDS)
    for name, card in CARDS.items():
        assert card.layout and card.downloads and card.citation and card.licence, name
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in DATASETS.names())
    assert main(["datasets", "pascal5i"]) == 0
    assert "python -m bench prepare pascal5i" in capsys.readouterr().out
    assert main(["datasets", "nope"]) == 2


def test_every_image_makes_each_pair_a_query_once(fss_root):
    root, lists = fss_root
    dataset = open_dataset("fss1000", root, lists)
    pairs = dataset.pairs(1, "test")
    a = sample_episodes(dataset, EpisodeSpec(1, 2, seed=0, queries="every-image"))
    b = sample_episodes(dataset, EpisodeSpec(1, 2, seed=1, queries="every-image"))
    assert list(zip(a["query"], a["class_id"])) == pairs == list(zip(b["query"], b["class_id"]))
    assert (a["supports"] != b["supports"]).any()  # the seed draws the supports
    for row in a.itertuples():
        shots = support_ids(row.supports)
        assert len(set(shots)) == 2 and row.query not in shots
        assert all(s.split("/")[0] == row.query.split("/")[0] for s in shots)


def test_hsnet_fss_protocol_end_to_end(fss_root, tmp_path, capsys):
    root, lists = fss_root
    out = tmp_path / "run"
    args = ["run", "--methods", "support-copy", "--dataset", "fss1000", "--data-root", str(root), "--lists",
            str(lists), "--splits", "1", "--shots", "1", "--seeds", "0", "1", "--queries", "every-image", "--input-size", "40",
            "--eval-size", "40", "--out", str(out), "--quiet"]
    assert main(args) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith("fss1000: splits 1") and "every test pair a query once" in header
    assert "scored at 40 x 40" in header
    config = json.loads((out / "config.json").read_text())
    assert config["protocol"] == header
    assert config["config"]["queries"] == "every-image" and config["config"]["episodes"] == 4 * len(TEST_CLASSES)
    episodes = pd.read_csv(out / "episodes.csv")
    assert len(episodes) == 2 * 4 * len(TEST_CLASSES)
    assert main(["report", "--run", str(out), "--resamples", "10"]) == 0
    assert "every test pair a query once" in (out / "report.html").read_text()
    assert main(args + ["--episodes", "10"]) == 2
    assert "leave out --episodes" in capsys.readouterr().err


def test_fold_convention_only_where_a_dataset_has_several(fss_root, tmp_path, capsys):
    root, lists = fss_root
    assert main(["run", "--methods", "support-copy", "--dataset", "fss1000", "--data-root", str(root), "--lists",
                 str(lists), "--fold-convention", "contiguous", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--fold-convention applies to" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_dataset_defaults_fill_unset_options():
    from bench.runs.config import RunConfig
    from bench.runs.run import with_dataset_defaults

    coco = with_dataset_defaults(RunConfig(methods=["support-copy"], dataset="coco20i"))
    assert (coco.class_sampling, coco.fold_convention, coco.episodes, coco.queries) == \
        ("uniform", "interleaved", 1000, "sampled")
    chosen = with_dataset_defaults(RunConfig(methods=["support-copy"], dataset="coco20i", class_sampling="list",
                                             fold_convention="contiguous", episodes=7))
    assert (chosen.class_sampling, chosen.fold_convention, chosen.episodes) == ("list", "contiguous", 7)
    pascal = with_dataset_defaults(RunConfig(methods=["support-copy"], dataset="pascal5i"))
    assert (pascal.class_sampling, pascal.fold_convention, pascal.scoring.eval_size) == ("list", None, None)


def test_cross_domain_trains_on_pascal_with_all_classes(voc_root, tmp_path, capsys):
    """A learned method evaluated on a test-only benchmark trains on pascal-all (every class, one split)."""
    from tests.test_crossdomain import chest_root

    root = chest_root(tmp_path / "chest")
    common = ["run", "--methods", "panet", "--dataset", "chest-xray", "--data-root", str(root), "--splits", "1",
              "--shots", "1", "--seeds", "0", "--episodes", "4", "--input-size", "32", "--eval-size", "32",
              "--profile", "tiny", "--checkpoints", str(tmp_path / "ckpt"), "--quiet"]
    assert main(common + ["--out", str(tmp_path / "no-root")]) == 2
    assert "--train-data-root" in capsys.readouterr().err
    pascal_all = open_dataset("pascal-all", voc_root, voc_root / "lists")
    assert pascal_all.test_classes(1) == list(range(1, 21))
    assert {c for _, c in pascal_all.pairs(1, "train")} == set(range(1, 21))
    out = tmp_path / "run"
    # the fixture is too small for held-out validation images: select on the pascal-all val pairs
    assert main(common + ["--train-data-root", str(voc_root), "--train-lists", str(voc_root / "lists"), "--select-on", "test",
                          "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert all(c.startswith("pascal-all/panet/split1-") for c in config["checkpoints"].values())
    assert (tmp_path / "ckpt" / "pascal-all" / "panet").is_dir()


def test_fold_convention_reaches_training_workers(tmp_path, monkeypatch):
    """A Ray training task reopens the dataset from its spec: the convention must travel with it."""
    from bench.runs.executors.base import dataset_spec
    from tests.test_coco20i import make_root

    monkeypatch.setenv("FSS_BENCH_CACHE", str(tmp_path / "cache"))
    root = make_root(tmp_path / "coco")
    spec = dataset_spec(open_dataset("coco20i", root, fold_convention="contiguous"), str(root), None)
    assert open_dataset(**spec).test_classes(1) == list(range(1, 21))
    assert open_dataset(**{**spec, "fold_convention": None}).test_classes(1) == list(range(1, 78, 4))
