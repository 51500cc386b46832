"""What a dataset's card declares: its default training profile and the step `bench prepare` runs for it."""
import argparse
import importlib
from dataclasses import replace
from pathlib import Path

import pytest

import bench.data.deepglobe
from bench.cli.prepare import add_prepare_parser, prepare_command, prepare_steps
from bench.core.errors import BenchError
from bench.data.catalog import CARDS, DATASETS, card_of
from bench.data.prepare.step import KINDS
from bench.training.profiles import PROFILES, get_profile


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_declares_a_known_profile(name):
    assert card_of(name).profile in PROFILES
    assert get_profile(None, name).name == card_of(name).profile
    assert get_profile("tiny", name).name == "tiny"  # --profile wins


def test_the_declared_profiles():
    assert {n: card_of(n).profile for n in ("synthetic", "synthetic-tiny", "pascal5i", "coco20i", "deepglobe")} == {
        "synthetic": "synthetic-quick", "synthetic-tiny": "tiny", "pascal5i": "paper-pascal", "coco20i": "paper-coco",
        "deepglobe": "paper-pascal"}
    assert get_profile(None, "synthetic-tiny-context0.5").name == "tiny"  # a family member: its base's


def test_a_card_without_a_profile_is_refused_clearly(monkeypatch):
    monkeypatch.setitem(CARDS, "fss1000", replace(CARDS["fss1000"], profile=""))
    with pytest.raises(BenchError, match="dataset fss1000 declares no default training profile.*--profile"):
        get_profile(None, "fss1000")
    assert get_profile("paper-pascal", "fss1000").name == "paper-pascal"


def test_an_unknown_dataset_is_a_bench_error():
    with pytest.raises(BenchError, match="no-such-dataset"):
        get_profile(None, "no-such-dataset")


def parser():
    parser = argparse.ArgumentParser()
    add_prepare_parser(parser.add_subparsers(dest="command"))
    return parser


def test_prepare_has_a_sub_command_per_card_that_declares_a_step():
    declared = {n for n in DATASETS.names() if CARDS[n].prepare_step}
    assert set(prepare_steps()) == declared == {"pascal5i", "coco20i", "deepglobe", "lvis92i"}
    choices = next(a for a in parser()._subparsers._group_actions[0].choices["prepare"]._actions
                   if isinstance(a, argparse._SubParsersAction)).choices
    assert set(choices) == declared
    for name, step in prepare_steps().items():
        assert CARDS[name].prepare.startswith(f"python -m bench prepare {name} ")  # the card's command is its own
        assert all(option.kind in KINDS for option in step.options)
    for card in CARDS.values():  # a card that tells how to build its root names a step that exists
        if card.prepare:
            assert card.prepare.split()[4] in declared, card.name


@pytest.mark.parametrize("name", ["pascal5i", "coco20i", "deepglobe", "lvis92i"])
def test_prepare_dispatches_to_the_cards_step(name, monkeypatch, capsys):
    module = importlib.import_module(CARDS[name].prepare_step)
    monkeypatch.setattr(module, "STEP", replace(module.STEP, run=lambda args: f"ran {args.dataset} -> {args.out}"))
    argv = ["prepare", name] + [x for o in module.STEP.options if o.required for x in (o.flag, "somewhere")]
    args = parser().parse_args(argv)
    assert prepare_command(args) == 0
    assert capsys.readouterr().out == f"ran {name} -> somewhere\n" and args.out == Path("somewhere")


def test_deepglobes_conversion_is_a_prepare_step():
    assert CARDS["deepglobe"].prepare_step == "bench.data.prepare.deepglobe"
    assert not hasattr(bench.data.deepglobe, "make_deepglobe_tiles")
