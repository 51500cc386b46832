"""The pretrained synthnet shipped with the package: it is the default spec's, intact, loadable, and used instead of
pretraining unless FSS_BENCH_PRETRAIN=here."""
import json

import pytest

from bench.core.errors import BenchError
from bench.core.fileio import sha256_file
from bench.training import pretrain
from bench.training.checkpoints import load_tensors
from methods.backbones import SynthNetBackbone


def test_the_default_spec_is_shipped_intact_and_loads_strictly():
    """A change of the default spec (or of the generator) without a new shipped copy fails here."""
    weights, report = pretrain.shipped_synthnet(pretrain.PretrainSpec())
    assert report["key"] == pretrain.PretrainSpec().key() and report["sha256"] == sha256_file(weights)
    SynthNetBackbone().load_state_dict(load_tensors(weights), strict=True)


def refuse_pretraining(spec, quiet=False):
    raise AssertionError("pretrained although a shipped copy exists")


def test_a_fresh_cache_gets_the_shipped_copy_without_pretraining(tmp_path, monkeypatch):
    monkeypatch.delenv(pretrain.PRETRAIN_VARIABLE, raising=False)
    monkeypatch.setattr(pretrain, "pretrain", refuse_pretraining)
    path = pretrain.ensure_synthnet(pretrain.PretrainSpec(), cache_dir=tmp_path, quiet=True)
    shipped, report = pretrain.shipped_synthnet(pretrain.PretrainSpec())
    assert path.read_bytes() == shipped.read_bytes()
    stamp = json.loads(path.with_suffix(".json").read_text())
    assert stamp["source"] == "shipped" and stamp["sha256"] == report["sha256"]
    assert pretrain.ensure_synthnet(pretrain.PretrainSpec(), cache_dir=tmp_path, quiet=True) == path  # cached now


def test_pretrain_here_pretrains_and_an_unknown_value_is_refused(tmp_path, monkeypatch):
    calls = []

    def fake_pretrain(spec, quiet=False):
        calls.append(spec)
        return SynthNetBackbone().state_dict(), {"key": spec.key()}

    monkeypatch.setattr(pretrain, "pretrain", fake_pretrain)
    monkeypatch.setenv(pretrain.PRETRAIN_VARIABLE, "here")
    pretrain.ensure_synthnet(pretrain.PretrainSpec(), cache_dir=tmp_path, quiet=True)
    assert len(calls) == 1
    monkeypatch.setenv(pretrain.PRETRAIN_VARIABLE, "yes")
    with pytest.raises(BenchError, match="FSS_BENCH_PRETRAIN must be 'here'"):
        pretrain.ensure_synthnet(pretrain.PretrainSpec(seed=5), cache_dir=tmp_path, quiet=True)


def test_a_damaged_shipped_copy_is_refused_in_one_line(tmp_path, monkeypatch):
    spec = pretrain.PretrainSpec()
    shipped, _ = pretrain.shipped_synthnet(spec)
    (tmp_path / shipped.name).write_bytes(shipped.read_bytes()[:-10] + b"0" * 10)
    (tmp_path / shipped.with_suffix(".json").name).write_text(shipped.with_suffix(".json").read_text())
    monkeypatch.setattr(pretrain, "SHIPPED_DIR", tmp_path)
    with pytest.raises(BenchError, match="does not match its recorded sha256") as error:
        pretrain.shipped_synthnet(spec)
    assert "\n" not in str(error.value)


def test_specs_without_a_shipped_copy_pretrain(tmp_path, monkeypatch):
    monkeypatch.delenv(pretrain.PRETRAIN_VARIABLE, raising=False)
    assert pretrain.shipped_synthnet(pretrain.TINY_PRETRAIN) is None
    monkeypatch.setattr(pretrain, "pretrain", lambda spec, quiet=False: (SynthNetBackbone().state_dict(), {}))
    path = pretrain.ensure_synthnet(pretrain.TINY_PRETRAIN, cache_dir=tmp_path, quiet=True)
    assert path.is_file() and "source" not in json.loads(path.with_suffix(".json").read_text())
