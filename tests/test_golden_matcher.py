"""Matcher equals the authors' Matcher on a reduced configuration, in both of their configurations (fixture from
tests/golden/make_matcher.py; no clone needed; needs timm and segment-anything)."""
import numpy as np
import pytest
import torch

pytest.importorskip("timm")
pytest.importorskip("segment_anything")

from tests.golden.authors import load_fixture  # noqa: E402
from tests.golden.make_matcher import (EPISODES, MATCHING, NAME, REDUCED, episode, fingerprint, mask_stats,  # noqa: E402
                                       seeded_model)

# SAM's masks are thresholded logits: a float32 summation order (thread count) may flip a pixel at an edge
MAX_PIXELS = 0.001


@pytest.fixture(scope="module")
def golden():
    tensors, meta = load_fixture(NAME)
    assert meta["repository"] == "aim-uofa/Matcher" and len(meta["commit"]) == 40
    return tensors, {config: seeded_model(config, meta["seed"]) for config in REDUCED}


@pytest.mark.parametrize("config", list(REDUCED))
def test_seeded_weights_are_the_fixture_s(golden, config):
    tensors, models = golden
    torch.testing.assert_close(fingerprint(models[config]), tensors[f"fingerprint-{config}"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("config,shots,seed", EPISODES)
def test_prediction_equals_theirs(golden, config, shots, seed):
    tensors, models = golden
    model = models[config]
    expected = {key.split("-", 3)[3]: value for key, value in tensors.items()
                if key.startswith(f"{config}-{shots}-{seed}-")}
    query, supports, masks = episode(shots, seed, model.input_size)
    pred, out = model.predict(query, supports, masks, details=True)
    assert torch.equal(torch.as_tensor(out["points"]), expected["points"])
    prompt_sets = [expected[f"prompts{i}"] for i in range(sum(k.startswith("prompts") for k in expected))]
    assert len(out["samples"]) == len(prompt_sets)
    for ours, theirs in zip(out["samples"], prompt_sets):
        assert torch.equal(torch.as_tensor(ours), theirs)
    stats = mask_stats(out["proposals"])
    assert stats.shape == expected["proposals"].shape
    assert (stats[:, 0] - expected["proposals"][:, 0]).abs().max() <= MAX_PIXELS * query.shape[-1] ** 2
    assert (stats[:, 1:5] - expected["proposals"][:, 1:5]).abs().max() <= 1  # boxes
    for name in ("emd", "purity", "coverage"):
        torch.testing.assert_close(out["metrics"][name], expected[name], rtol=1e-4, atol=1e-6)
    theirs = torch.from_numpy(np.unpackbits(expected["pred"].numpy())[:pred.numel()].astype(bool)).view(pred.shape)
    assert 0.01 < theirs.float().mean() < 0.99  # not trivially one class
    assert (pred.bool() != theirs).float().mean() <= MAX_PIXELS


@pytest.mark.parametrize("config,shots,seed", MATCHING)
def test_bidirectional_matching_equals_theirs(golden, config, shots, seed):
    """At 16 x 16 tokens: more than 40 pairs, of which the most similar half (5 shots)."""
    tensors, models = golden
    model = models[config]
    with torch.no_grad():
        points = model.match(*model.similarity(*episode(shots, seed, model.input_size)))
    assert torch.equal(torch.as_tensor(points), tensors[f"{config}-{shots}-{seed}-matched"])
