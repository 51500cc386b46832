"""Golden test: our CANet head equals the authors' (icoz69/CaNet `one_shot_network.ResNet`) on the fixture
`tests/golden/make_canet.py` made by running their code on fixed features with our seeded weights."""
import pytest
import torch

from tests.golden.authors import load_fixture
from tests.golden.make_canet import SEED, STEPS, build_ours


@pytest.fixture(scope="module")
def fixture():
    tensors, meta = load_fixture("canet-head")
    assert meta["authors_repo"] == "icoz69/CaNet" and meta["seed"] == SEED
    return tensors


@pytest.fixture(scope="module")
def ours():
    return build_ours(SEED)


def episode(tensors):
    query, support = tensors["query_feats"].double(), tensors["support_feats"][:, None].double()
    return query, support, tensors["support_mask"][:, None].long()


def close(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-6)


def test_refinement_passes_equal_theirs(fixture, ours):
    query, support, masks = episode(fixture)
    with torch.no_grad():
        for steps, key in ((1, "logits_1pass"), (STEPS, f"logits_{STEPS}pass")):
            ours.refine_steps = steps
            close(ours.forward_features(query, support, masks), fixture[key])
        compared = ours.compare(query, support, masks)
        close(ours.refine(compared, fixture["history"].double()), fixture["logits_seeded_history"])


def test_training_loss_equals_theirs(fixture, ours):
    """Their train.py: logits upsampled with align_corners=True, CrossEntropyLoss(ignore_index=255); with no
    history and no dropout (eval) ours is the same computation."""
    query, support, masks = episode(fixture)
    ours.history_probability = 0.0
    with torch.no_grad():
        loss = ours.training_loss(query, support, masks, fixture["query_mask"].long())
    close(loss, fixture["loss"])
