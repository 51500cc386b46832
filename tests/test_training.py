"""Training, checkpoints, resume, determinism and the feature cache (tiny profile, synthetic-tiny)."""
import dataclasses
import json
import re

import pandas as pd
import pytest
import torch

import bench.training.train as train_module
from bench.cli.commands import main
from bench.core.errors import BenchError
from bench.data.catalog import open_dataset
from bench.data.episodes import EpisodeSpec, sample_episodes
from bench.data.images import ImageStore
from bench.evaluation.features import CodeCache
from bench.evaluation.loop import evaluate_manifest
from bench.training.checkpoints import load_tensors as load_checkpoint
from bench.training.models import ModelProvider
from bench.training.options import TrainingOptions
from bench.training.profiles import PROFILES
from bench.training.train import load_trained, split_held_out

TINY = PROFILES["tiny"]


@pytest.fixture(scope="module")
def tiny(cache_env):
    return open_dataset("synthetic-tiny")


@pytest.fixture(scope="module")
def provider_factory(tiny, tmp_path_factory):
    def make(root=None, **kwargs):
        root = root or tmp_path_factory.mktemp("ckpt")
        return ModelProvider(tiny, TrainingOptions(profile="tiny", checkpoints=str(root), **kwargs), quiet=True)

    return make


def state_of(path):
    return load_checkpoint(path)["model"]


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_held_out_images_are_never_trained_on(tiny):
    train_pairs, held = split_held_out(tiny.pairs(1, "train"))
    assert held and train_pairs
    assert not {i for i, _ in train_pairs} & {i for i, _ in held}


def test_checkpoint_records_what_produced_it(provider_factory):
    provider = provider_factory()
    method, meta = provider.get("simpropnet", 1)
    for key in ("method", "split", "method_options", "dataset_hash", "profile", "best_epoch", "val_miou",
                "select_on", "backbone", "sha256"):
        assert key in meta, key
    assert meta["select_on"] == "held-out" and meta["backbone"]["sha256"]
    assert meta["method_options"]["backbone_weights_sha256"] == meta["backbone"]["sha256"]


def test_checkpoint_round_trip_gives_the_same_predictions(provider_factory, tiny):
    provider = provider_factory()
    method, meta = provider.get("simpropnet-dpr", 2)
    again, _ = load_trained(meta["path"], provider.backbone_options())
    query = torch.randn(2, 3, 48, 48)
    supports = torch.randn(2, 1, 3, 48, 48)
    masks = (torch.rand(2, 1, 48, 48) > 0.5).long()
    with torch.no_grad():
        assert torch.equal(method(query, supports, masks), again(query, supports, masks))
    # another backbone than the one it was trained on is refused, not silently used
    with pytest.raises(BenchError, match="was trained on the backbone weights synthnet-pretrained"):
        load_trained(meta["path"], {**provider.backbone_options(), "backbone_weights": None})


def test_training_is_deterministic(provider_factory, tmp_path):
    first = provider_factory(tmp_path / "a")
    second = provider_factory(tmp_path / "b")
    first.get("canet", 1)
    second.get("canet", 1)
    folder = first.checkpoint_id("canet", 1)
    assert_same_state(state_of(tmp_path / "a" / folder / "best.pt"), state_of(tmp_path / "b" / folder / "best.pt"))


def test_interrupted_training_resumes_to_the_same_checkpoint(provider_factory, tiny, tmp_path, monkeypatch):
    clean = provider_factory(tmp_path / "clean")
    clean.get("simpropnet", 3)
    folder = clean.checkpoint_id("simpropnet", 3)
    original = train_module.training_batch
    calls = []

    def interrupt_in_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == TINY.episodes_per_epoch // TINY.batch_size + 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "training_batch", interrupt_in_second_epoch)
    interrupted = provider_factory(tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        interrupted.get("simpropnet", 3)
    assert load_checkpoint(tmp_path / "resumed" / folder / "last.pt")["state"]["epoch"] == 1
    monkeypatch.setattr(train_module, "training_batch", original)
    interrupted.get("simpropnet", 3)
    for name in ("best.pt", "last.pt"):
        assert_same_state(state_of(tmp_path / "clean" / folder / name), state_of(tmp_path / "resumed" / folder / name))


def test_select_on_test_is_recorded(provider_factory):
    _, meta = provider_factory(select_on="test").get("simpropnet-fbaf", 1)
    assert meta["select_on"] == "test"


def test_cached_and_uncached_evaluation_give_the_same_counts(provider_factory, tiny):
    method, _ = provider_factory().get("simpropnet", 4)
    store = ImageStore(tiny, TINY.input_size)
    manifest = sample_episodes(tiny, EpisodeSpec(4, 5, seed=0, episodes=24))
    uncached = evaluate_manifest(method, store, manifest, batch_size=5, quiet=True)
    cache = CodeCache(store)
    cached = evaluate_manifest(method, store, manifest, batch_size=7, quiet=True, features=cache)
    pd.testing.assert_frame_equal(uncached, cached)
    unique = set(manifest["query"]) | {i for s in manifest["supports"] for i in s.split(" ")}
    assert cache.encoded == len(unique) < 24 * 6


def test_run_trains_missing_checkpoints_then_evaluates(cache_env, tmp_path, capsys):
    """Also: with stderr not a terminal (captured here) training and evaluation write log lines; --log-file too."""
    log_file = tmp_path / "bench.log"
    args = ["run", "--methods", "simpropnet", "--dataset", "synthetic-tiny", "--splits", "1", "--shots", "1", "5",
            "--seeds", "0", "--episodes", "12", "--checkpoints", str(tmp_path / "ck"), "--out", str(tmp_path / "run"),
            "--log-file", str(log_file)]
    assert main(args + ["--no-train"]) == 2
    assert "no trained checkpoint for simpropnet split 1" in capsys.readouterr().err
    assert "error: no trained checkpoint for simpropnet split 1" in log_file.read_text().splitlines()[-1]
    log_file.unlink()
    assert main(args) == 0
    printed, err = capsys.readouterr()
    err = [line for line in err.splitlines() if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line)]
    epochs = [line for line in err if "training simpropnet split 1: epoch" in line]
    assert len(epochs) == TINY.epochs
    assert re.search(r"epoch 2/2, loss \d+\.\d{4}, held-out validation mIoU \d+\.\d\d \(best \d+\.\d\d at "
                     r"epoch [12]\), \d+ s, ETA 0 s$", epochs[-1]), epochs
    cells = [line for line in err if re.search(r" simpropnet split1_shot[15]_seed0: mIoU \d+\.\d\d, FB-IoU "
                                               r"\d+\.\d\d, 12 episodes in ", line)]
    assert len(cells) == 2, err
    in_file = log_file.read_text().splitlines()
    assert "bench run started" in in_file[0] and in_file[1:] == err
    config = pd.read_json(tmp_path / "run" / "config.json", typ="series")
    assert "simpropnet/split1" in config["checkpoints"]
    meta = json.loads((tmp_path / "run" / "episodes" / "simpropnet__split1_shot1_seed0.json").read_text())
    assert meta["checkpoint_train_seconds"] > 0 and meta["checkpoint_best_epoch"] >= 1
    lines = printed.splitlines()
    method, cells, _, checkpoints, training = lines[lines.index("wall time per method (s)") + 2].split()
    assert (method, cells, checkpoints) == ("simpropnet", "2", "1")
    assert float(training) == pytest.approx(meta["checkpoint_train_seconds"], abs=1)
    episodes = pd.read_csv(tmp_path / "run" / "episodes.csv")
    assert len(episodes) == 24 and set(episodes.method) == {"simpropnet"}
    assert main(args + ["--no-train", "--out", str(tmp_path / "run2")]) == 0  # checkpoint now exists


def test_train_command_reports_checkpoints(cache_env, tmp_path, capsys):
    args = ["train", "--methods", "simpropnet-dpr", "--dataset", "synthetic-tiny", "--splits", "2",
            "--checkpoints", str(tmp_path), "--quiet", "--epochs", "1", "--log-file", str(tmp_path / "train.log")]
    assert main(args) == 0
    printed, err = capsys.readouterr()
    assert "simpropnet-dpr split 2:" in printed and "epoch" not in err  # --quiet: no log lines on stderr
    assert "training simpropnet-dpr split 2: epoch 1/1, loss " in (tmp_path / "train.log").read_text()
    assert main(["train", "--methods", "support-copy", "--dataset", "synthetic-tiny"]) == 2
    assert main(["train", "--methods", "simpropnet", "--dataset", "synthetic-tiny", "--profile", "nope"]) == 2
    assert "unknown training profile 'nope'" in capsys.readouterr().err


def test_profiles_are_serialisable_and_complete():
    for profile in PROFILES.values():
        assert dataclasses.asdict(profile)["name"] == profile.name
    paper = PROFILES["paper-pascal"]
    assert (paper.lr, paper.batch_size, paper.epochs, paper.input_size, paper.momentum, paper.weight_decay) == (
        2.5e-3, 8, 180, 321, 0.9, 5e-4)
