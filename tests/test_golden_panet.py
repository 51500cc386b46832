"""PANet with `AUTHORS_OPTIONS` equals the authors' FewShotSeg (kaixin96/PANet) on seeded weights.

The fixture holds their outputs (`tests/golden/make_panet.py`); this test needs no clone. Double
precision on both sides, so the tolerance only absorbs summation order (upsampling vs its adjoint).
"""
import pytest
import torch
import torch.nn.functional as F

from methods.panet import AUTHORS_KEYS, alignment_loss
from tests.golden.authors import load_fixture
from tests.golden.make_panet import NAME, SEED, build_ours

TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


@pytest.fixture(scope="module")
def golden():
    tensors, meta = load_fixture(NAME)
    assert meta["authors_repo"] == "kaixin96/PANet" and meta["seed"] == SEED
    return tensors, meta, build_ours(meta["seed"])


def inputs(tensors, shots):
    masks = tensors["support_masks"][:, :shots].long()
    return tensors["query"].double(), tensors["supports"][:, :shots].double(), masks, tensors["query_mask"].long()


@pytest.mark.parametrize("shots", [1, 5])
def test_logits_equal_the_authors(golden, shots):
    tensors, _, model = golden
    query, supports, masks, _ = inputs(tensors, shots)
    with torch.no_grad():
        logits = model(query, supports, masks)
    # their output is the stride-8 logits upsampled to the image, as the harness's evaluator does
    logits = F.interpolate(logits, size=query.shape[-2:], mode="bilinear", align_corners=False)
    torch.testing.assert_close(logits, tensors[f"logits_{shots}shot"], **TOLERANCE)


@pytest.mark.parametrize("shots", [1, 5])
def test_alignment_and_training_loss_equal_the_authors(golden, shots):
    tensors, _, model = golden
    query, supports, masks, query_mask = inputs(tensors, shots)
    with torch.no_grad():
        query_feats, support_feats = model.encode_episode(query, supports)
        code = model.query_code(query_feats)[0]
        logits = model.forward_features(query_feats, support_feats, masks)
        embedded = model.projection(support_feats.flatten(0, 1)).unflatten(0, supports.shape[:2])
        par = alignment_loss(code, logits, embedded, masks, model.scale)
        loss = model.training_loss(query_feats, support_feats, masks, query_mask)
    torch.testing.assert_close(par, tensors[f"align_{shots}shot"], **TOLERANCE)
    torch.testing.assert_close(loss, tensors[f"loss_{shots}shot"], **TOLERANCE)


def test_key_map_covers_every_weight_both_ways(golden):
    state = golden[2].state_dict()
    theirs = AUTHORS_KEYS.to_authors(state)
    assert all(k.startswith("encoder.backbone.features.") for k in theirs) and len(theirs) == 26
    assert AUTHORS_KEYS.to_harness(theirs).keys() == state.keys()
