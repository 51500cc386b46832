"""PFENet: the training-free prior mask, its k-shot averaging, and the auxiliary FEM losses."""
import torch

from methods.pfenet import PFENet, prior_mask
from tests.method_helpers import square_episode, tiny_method


def small(**options):
    return tiny_method("pfenet", **options)


def episode(shots=1, size=48):
    return square_episode(shots, size)


def test_prior_is_max_cosine_then_min_max_normalised():
    support = torch.zeros(1, 3, 1, 2)
    support[0, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0])  # one foreground pixel; the other is masked (zero)
    query = torch.zeros(1, 3, 1, 3)
    query[0, :, 0, 0] = torch.tensor([2.0, 0.0, 0.0])  # same direction: cos 1
    query[0, :, 0, 1] = torch.tensor([0.0, 1.0, 0.0])  # orthogonal: cos 0
    query[0, :, 0, 2] = torch.tensor([1.0, 1.0, 0.0])  # cos 1/sqrt(2)
    prior = prior_mask(query, support)
    assert prior.shape == (1, 1, 1, 3)
    expected = torch.tensor([1.0, 0.0, 2 ** -0.5])
    assert torch.allclose(prior[0, 0, 0], expected, atol=1e-5)


def test_prior_ignores_support_background():
    """The support's high-level feature is computed from (input x mask) and masked again, so feature
    cells outside the mask cannot change it."""
    method = small().eval()
    query, supports, masks = episode()
    with torch.no_grad():
        feats = method.encode(supports[:, 0])
        changed = feats.clone()
        c2 = method.backbone.channels["layer2"]
        changed[:, :c2, :, -1] += 5.0  # the last feature column lies outside the mask (rows/cols 8..31 of 48)
        _, high = method.support_code(feats, masks[:, 0])
        _, high_changed = method.support_code(changed, masks[:, 0])
    assert torch.allclose(high, high_changed)
    assert high[..., -1].abs().sum() == 0


def test_k_shot_averages_prototypes_and_priors():
    method = small().eval()
    query, supports, masks = episode(shots=2)
    masks[:, 1] = 0
    masks[:, 1, 20:44, 20:44] = 1
    with torch.no_grad():
        q_code = method.query_code(method.encode(query))
        codes = [method.support_code(method.encode(supports[:, k]), masks[:, k]) for k in range(2)]
        two = method.decode(q_code, tuple(torch.stack([c[p] for c in codes], dim=1) for p in range(2)))
        prior = (prior_mask(q_code[1], codes[0][1]) + prior_mask(q_code[1], codes[1][1])) / 2
        expected, _ = method.enrich(q_code[0], (codes[0][0] + codes[1][0]) / 2, prior)
        one = method.decode(q_code, tuple(c[:, None] for c in codes[0]))
    assert torch.allclose(two, expected, atol=1e-5)
    assert not torch.allclose(two, one)


def test_auxiliary_losses_one_per_bin():
    method = small(bins=[1.0, 0.5, 0.25]).train()
    assert isinstance(method, PFENet) and len(method.inner_cls) == 3 and len(method.alpha_conv) == 2
    query, supports, masks = episode()
    query_mask = masks[:, 0]
    feats = method.encode_episode(query, supports)
    torch.manual_seed(1)
    with_aux = method.training_loss(*feats, masks, query_mask)
    method.aux_weight = 0.0
    torch.manual_seed(1)
    without = method.training_loss(*feats, masks, query_mask)
    assert with_aux > without  # the auxiliary cross-entropies are positive
    with_aux.backward()
    assert all(p.grad is not None for p in method.inner_cls.parameters())


def test_synthnet_uses_layer3_as_high_level():
    method = small()
    assert not method.has_layer4 and method.options()["high_level"] == "layer3"
    assert method.high_channels == method.backbone.channels["layer3"]
