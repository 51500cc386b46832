"""Matcher through the harness interface, its optional packages and its pieces."""
import random
import sys

import numpy as np
import pytest
import torch

from methods.registry import MethodError


@pytest.mark.parametrize("package,module", [("timm", "timm"), ("segment-anything", "segment_anything")])
def test_a_missing_package_is_one_line_naming_it(monkeypatch, package, module):
    from methods.matcher import Matcher
    monkeypatch.setitem(sys.modules, module, None)  # import fails
    with pytest.raises(MethodError) as error:
        Matcher(dino="vit_small", input_size=28, dino_overrides={"depth": 1})
    assert f"'{package}'" in str(error.value) and "\n" not in str(error.value)


def test_unknown_config_or_option_is_refused():
    from methods.matcher import Matcher
    with pytest.raises(ValueError, match="known: coco20i"):
        Matcher(config="pascal")
    with pytest.raises(TypeError, match="alpah"):
        Matcher(alpah=1.0)


def test_earth_movers_distance_is_the_transport_optimum():
    from methods.matcher import earth_movers
    assert earth_movers(np.array([[0.0, 1.0], [1.0, 0.0]])) == 0.0
    # one source, two sinks: everything moves, half to each
    assert earth_movers(np.array([[0.2, 0.6]])) == pytest.approx(0.4)
    # two sources, three sinks by hand: 1/2 each from rows, 1/3 to each column
    cost = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert earth_movers(cost) == pytest.approx(1 / 6)


def test_every_combination_or_random_subsets():
    pytest.importorskip("timm")
    pytest.importorskip("segment_anything")
    from tests.golden.make_matcher import seeded_model
    model = seeded_model("fss1000")  # sample_range (3, 4)
    points = np.arange(10).reshape(5, 2)
    sets = model.sample(points, random.Random(0))
    assert [s.shape for s in sets] == [(10, 3, 2), (5, 4, 2)]
    assert sets[0][1].tolist() == [[0, 1], [2, 3], [6, 7]]  # (0, 1, 3) follows (0, 1, 2)
    many = np.arange(40).reshape(20, 2)
    first, again = model.sample(many, random.Random(3)), model.sample(many, random.Random(3))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert first[0].shape == (model.cfg["max_sample_iterations"], 3, 2)


def test_forward_returns_two_channel_masks_at_the_input_size_and_is_deterministic():
    pytest.importorskip("timm")
    pytest.importorskip("segment_anything")
    from tests.golden.make_matcher import seeded_model
    model = seeded_model("coco20i")
    query, supports = torch.randn(1, 3, 70, 90), torch.randn(1, 2, 3, 70, 90)
    masks = torch.zeros(1, 2, 70, 90, dtype=torch.long)
    masks[..., 20:50, 30:60] = 1
    logits = model(query, supports, masks)
    assert logits.shape == (1, 2, 112, 112)
    assert torch.equal(logits.sum(1), torch.ones(1, 112, 112))
    assert torch.equal(model(query, supports, masks), logits)


def test_an_empty_support_gets_a_centre_square():
    pytest.importorskip("timm")
    pytest.importorskip("segment_anything")
    from tests.golden.make_matcher import episode, seeded_model
    model = seeded_model("fss1000")
    query, supports, masks = episode(1, 3)
    pred, out = model.predict(query, supports, torch.zeros_like(masks), details=True)
    assert pred.shape == masks.shape[-2:] and len(out["points"]) >= 1


def test_shots_pick_the_merging_count():
    from methods.matcher import CONFIGS, DEFAULTS
    assert CONFIGS["coco20i"]["num_merging_mask"] == (9, 5) and CONFIGS["fss1000"]["num_merging_mask"] == (10, 5)
    assert set(CONFIGS["coco20i"]) <= set(DEFAULTS)
