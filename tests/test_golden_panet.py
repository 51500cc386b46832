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
    """The fixture, our model, and our frozen features of the query and the 5 supports (computed once)."""
    tensors, meta = load_fixture(NAME)
    assert meta["authors_repo"] == "kaixin96/PANet" and meta["seed"] == SEED
    model = build_ours(meta["seed"])
    query, supports = tensors["query"].double(), tensors["supports"].double()
    with torch.no_grad():
        features = model.encode_episode(query, supports)
    return tensors, model, features


def episode(golden, shots):
    tensors, model, (query_feats, support_feats) = golden
    return (tensors, model, query_feats, support_feats[:, :shots], tensors["support_masks"][:, :shots].long(),
            tensors["query_mask"].long())


@pytest.mark.parametrize("shots", [1, 5])
def test_logits_equal_the_authors(golden, shots):
    tensors, model, query_feats, support_feats, masks, _ = episode(golden, shots)
    with torch.no_grad():
        if shots == 1:  # the whole forward once, backbone included
            logits = model(tensors["query"].double(), tensors["supports"][:, :1].double(), masks)
        else:
            logits = model.forward_features(query_feats, support_feats, masks)
    # their output is the stride-8 logits upsampled to the image, as the harness's evaluator does
    logits = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
    torch.testing.assert_close(logits, tensors[f"logits_{shots}shot"], **TOLERANCE)


@pytest.mark.parametrize("shots", [1, 5])
def test_alignment_and_training_loss_equal_the_authors(golden, shots):
    tensors, model, query_feats, support_feats, masks, query_mask = episode(golden, shots)
    with torch.no_grad():
        code = model.query_code(query_feats)[0]
        logits = model.forward_features(query_feats, support_feats, masks)
        embedded = model.projection(support_feats.flatten(0, 1)).unflatten(0, support_feats.shape[:2])
        par = alignment_loss(code, logits, embedded, masks, model.scale)
        loss = model.training_loss(query_feats, support_feats, masks, query_mask)
    torch.testing.assert_close(par, tensors[f"align_{shots}shot"], **TOLERANCE)
    torch.testing.assert_close(loss, tensors[f"loss_{shots}shot"], **TOLERANCE)


def test_key_map_covers_every_weight_both_ways(golden):
    state = golden[1].state_dict()
    theirs = AUTHORS_KEYS.to_authors(state)
    assert all(k.startswith("encoder.backbone.features.") for k in theirs) and len(theirs) == 26
    assert AUTHORS_KEYS.to_harness(theirs).keys() == state.keys()
