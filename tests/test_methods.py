"""Registry behaviour and interface tests parametrized over every registered method."""
import pytest
import torch

from methods import METHODS, FewShotSegmenter, RegistryError, build_method, list_methods
from methods.registry import Registry

ALL_METHODS = list_methods()
LEARNED = [n for n in ALL_METHODS if METHODS.card(n).trainable]


def build(name, **options):
    """Learned methods with their `tiny` profile options on a random-init synthnet (no weights needed); training-free
    methods with a `synthetic` profile with its options."""
    if name in LEARNED:
        from bench.training.profiles import PROFILES

        options = {"backbone": "synthnet", **PROFILES["tiny"].options_for(name), **options}
    elif "synthetic" in METHODS.card(name).profiles:  # training-free foundation models (gf-sam): their small ones
        pytest.importorskip("timm")
        pytest.importorskip("segment_anything")
        options = {**METHODS.card(name).profiles["synthetic"]["options"], **options}
    return build_method(name, **options)


def test_registry_refuses_duplicates_and_lists_known_names():
    registry = Registry("thing")
    registry.register("a")(object)
    with pytest.raises(RegistryError, match="already registered.*known things: a"):
        registry.register("a")(object)
    with pytest.raises(RegistryError, match="unknown thing 'b'; known things: a"):
        registry.get("b")


def test_unknown_method_error_lists_methods():
    with pytest.raises(RegistryError) as info:
        build_method("no-such-method")
    for name in ALL_METHODS:
        assert name in str(info.value)


def test_registry_pattern_filter():
    assert "support-copy" in METHODS.names("support-*")
    assert "all-foreground" not in METHODS.names("support-*")


def _episode(batch=2, shots=1, size=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    query = torch.randn(batch, 3, size, size, generator=gen)
    supports = torch.randn(batch, shots, 3, size, size, generator=gen)
    masks = (torch.rand(batch, shots, size, size, generator=gen) > 0.5).long()
    masks[..., 0, :] = 255
    return query, supports, masks


@pytest.mark.parametrize("name", ALL_METHODS)
@pytest.mark.parametrize("shots", [1, 5])
def test_forward_gives_two_channel_logits(name, shots):
    method = build(name)
    assert isinstance(method, FewShotSegmenter)
    query, supports, masks = _episode(shots=shots)
    with torch.no_grad():
        logits = method.eval()(query, supports, masks)
    assert logits.shape[:2] == (2, 2)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ALL_METHODS)
def test_forward_is_deterministic(name):
    method = build(name).eval()
    with torch.no_grad():
        first = method(*_episode(shots=5))
        second = method(*_episode(shots=5))
    assert torch.equal(first, second)


def test_support_copy_reproduces_support_mask_and_votes():
    method = build_method("support-copy")
    query, supports, masks = _episode(batch=1, shots=3, size=8)
    masks[:] = 0
    masks[0, 0, :4] = 1  # shot 1: top half
    masks[0, 1, :4] = 1  # shot 2: top half
    masks[0, 2, :, :4] = 1  # shot 3: left half
    pred = method(query, supports, masks).argmax(1)[0]
    assert pred[:4].all() and not pred[4:].any()  # 2 of 3 votes win; 1 of 3 loses


def test_support_copy_ignores_void_pixels_of_the_support():
    method = build_method("support-copy")
    query, supports, masks = _episode(batch=1, shots=1, size=8)
    masks[:] = 255
    assert not method(query, supports, masks).argmax(1).any()


def test_all_foreground_predicts_foreground_everywhere():
    logits = build_method("all-foreground")(*_episode())
    assert logits.argmax(1).all()


def test_method_patterns_and_all_expand_against_the_registry():
    assert METHODS.expand(["all"]) == METHODS.names()
    assert METHODS.expand(["simpropnet*"]) == [n for n in METHODS.names() if n.startswith("simpropnet")]
    assert METHODS.expand(["panet", "simpropnet*", "panet"])[0] == "panet"  # order kept, each once
    for bad in (["nope"], ["nomatch*"]):
        with pytest.raises(RegistryError):
            METHODS.expand(bad)
