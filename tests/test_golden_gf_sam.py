"""GF-SAM equals the authors' GFSAM on a reduced configuration (fixture from tests/golden/make_gf_sam.py; no clone
needed; needs timm and segment-anything)."""
import pytest
import torch

pytest.importorskip("timm")
pytest.importorskip("segment_anything")

from tests.golden.authors import load_fixture  # noqa: E402
from tests.golden.make_gf_sam import EPISODES, NAME, episode, fingerprint, seeded_model  # noqa: E402

# SAM's masks are thresholded logits and the prompt points a top-k: a float32 summation order (thread count) may
# flip a pixel at a mask's edge, not a point
MAX_PIXELS = 0.001


@pytest.fixture(scope="module")
def golden():
    tensors, meta = load_fixture(NAME)
    assert meta["repository"] == "ANDYZAQ/GF-SAM" and len(meta["commit"]) == 40
    return tensors, seeded_model(meta["seed"])


def test_seeded_weights_are_the_fixture_s(golden):
    tensors, model = golden
    torch.testing.assert_close(fingerprint(model), tensors["fingerprint"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shots,seed", EPISODES)
def test_prediction_equals_theirs(golden, shots, seed):
    tensors, model = golden
    query, supports, masks = episode(shots, seed)
    with torch.no_grad():
        prompt_map = model.priors(query, supports, masks)[0]
        pred, points, states = model.predict(query, supports, masks, details=True)
    torch.testing.assert_close(prompt_map, tensors[f"prompt_map{shots}-{seed}"], rtol=1e-4, atol=1e-5)
    scale = model.prompter.img_size / prompt_map.shape[-1]  # theirs: the points in SAM's frame
    assert torch.equal(torch.as_tensor(points, dtype=torch.float64) * scale, tensors[f"points{shots}-{seed}"])
    assert torch.equal(states, tensors[f"states{shots}-{seed}"])
    theirs = tensors[f"pred{shots}-{seed}"]
    assert 0.01 < theirs.float().mean() < 0.99  # not trivially one class
    assert (pred.bool() != theirs).float().mean() <= MAX_PIXELS
