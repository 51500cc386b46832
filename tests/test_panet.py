"""PANet: 20 x cosine logits on MAP prototypes, prototype alignment (PAR), k-shot prototype averaging."""
import math

import pytest
import torch
import torch.nn.functional as F

from methods.common import upsampled_average_pool
from methods.panet import PROTOTYPE_EPS, alignment_loss, cosine_logits, prototypes
from methods.registry import MethodError
from tests.method_helpers import tiny_method


def small(seed=0, **options):
    return tiny_method("panet", seed, **options)


def two_region_features(size=6):
    """Embedding [1, 4, s, s]: the left half is the vector e0, the right half e1 (orthogonal); mask = right half."""
    feats = torch.zeros(1, 4, size, size)
    feats[0, 0, :, : size // 2] = 1.0
    feats[0, 1, :, size // 2:] = 1.0
    mask = torch.zeros(1, size, size, dtype=torch.long)
    mask[0, :, size // 2:] = 1
    return feats, mask


def test_prototypes_and_scaled_cosine_logits():
    feats, mask = two_region_features()
    mask[0, 0, :] = 255  # void counts as background for PANet's background prototype
    fg, bg = prototypes(feats, mask)
    logits = cosine_logits(feats, bg, fg, 20.0)
    assert logits.abs().max() <= 20.0 + 1e-4
    right = logits[0, :, 3:, 3:]  # foreground pixels: cos 1 to fg, ~0 to bg
    assert torch.allclose(right[1], torch.full_like(right[1], 20.0), atol=1e-3)
    assert (right[0] < 20.0 * 0.6).all()
    right_half = torch.zeros(1, 6, 6, dtype=torch.long)
    right_half[..., 3:] = 1
    assert torch.equal(logits.argmax(1), right_half)  # the void row follows its features


def test_alignment_loss_uses_the_query_prediction():
    """Query = support = two orthogonal regions. A correct query prediction gives query prototypes that
    segment the support almost perfectly (CE ~ log(1 + e^-20)); a swapped prediction swaps the
    prototypes, so every support pixel costs ~20 nats."""
    feats, mask = two_region_features()
    correct = torch.stack([(mask == 0), (mask == 1)], dim=1).float()  # logits whose argmax = the mask
    supports, masks = feats[:, None], mask[:, None]
    good = alignment_loss(feats, correct, supports, masks, 20.0)
    swapped = alignment_loss(feats, correct.flip(1), supports, masks, 20.0)
    assert good.item() < 1e-6
    assert math.isclose(swapped.item(), 20.0, rel_tol=1e-3)


def test_alignment_loss_skips_episodes_without_predicted_foreground():
    feats, mask = two_region_features()
    all_background = torch.stack([torch.ones_like(mask), torch.zeros_like(mask)], dim=1).float()
    assert alignment_loss(feats, all_background, feats[:, None], mask[:, None], 20.0).item() == 0.0


def test_par_sends_gradient_to_the_trainable_encoder():
    method = small().train()
    gen = torch.Generator().manual_seed(0)
    query, supports = torch.randn(2, 3, 48, 48, generator=gen), torch.randn(2, 1, 3, 48, 48, generator=gen)
    masks = torch.zeros(2, 1, 48, 48, dtype=torch.long)
    masks[..., 12:36, 12:36] = 1
    query_mask = masks[:, 0].clone()
    query_feats, support_feats = method.encode_episode(query, supports)
    with_par = method.training_loss(query_feats, support_feats, masks, query_mask)
    method.par_weight = 0.0
    without = method.training_loss(query_feats, support_feats, masks, query_mask)
    par = with_par - without
    assert par.item() > 0
    par.backward()
    assert method.projection.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in method.backbone.parameters())


def test_k_shot_averages_prototypes():
    method = small().eval()
    gen = torch.Generator().manual_seed(1)
    query, supports = torch.randn(1, 3, 48, 48, generator=gen), torch.randn(1, 2, 3, 48, 48, generator=gen)
    masks = torch.zeros(1, 2, 48, 48, dtype=torch.long)
    masks[0, 0, :24] = 1
    masks[0, 1, :, :24] = 1
    with torch.no_grad():
        q_code = method.query_code(method.encode(query))
        codes = [method.support_code(method.encode(supports[:, k]), masks[:, k]) for k in range(2)]
        fg = (codes[0][0] + codes[1][0]) / 2
        bg = (codes[0][1] + codes[1][1]) / 2
        expected = cosine_logits(q_code[0], bg, fg, 20.0)
        assert torch.allclose(method(query, supports, masks), expected, atol=1e-5)


def test_upsampled_average_pool_equals_pooling_the_upsampled_features():
    """PANet's `getFeatures` (features upsampled to the mask, then MAP), computed without the upsampling."""
    gen = torch.Generator().manual_seed(2)
    feats = torch.randn(3, 5, 7, 9, generator=gen, dtype=torch.float64)
    masks = (torch.rand(3, 29, 40, generator=gen) > 0.6).double()
    up = F.interpolate(feats, size=masks.shape[-2:], mode="bilinear", align_corners=False)
    expected = (up * masks[:, None]).sum(dim=(2, 3)) / (masks.sum(dim=(1, 2))[:, None] + PROTOTYPE_EPS)
    torch.testing.assert_close(upsampled_average_pool(feats, masks), expected, rtol=1e-12, atol=1e-12)


def test_authors_encoder_needs_vgg16_and_keeps_the_default_unchanged():
    with pytest.raises(MethodError, match="vgg16"):
        small(encoder="authors")
    with pytest.raises(MethodError, match="pooling"):
        small(pooling="nearest")
    assert set(small().trainable_state()) == {"projection.weight", "projection.bias"}
    assert not small(kernel=0).trainable_state()  # no projection: the embedding is the backbone's
