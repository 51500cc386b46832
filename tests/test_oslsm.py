"""OSLSM: a 1x1 classifier whose weights come from the masked support; k-shot = OR of the 1-shot outputs."""
import torch
import torch.nn.functional as F

from methods.common import segmentation_loss
from tests.method_helpers import tiny_method


def small(seed=0, **options):
    return tiny_method("oslsm", seed, **options).eval()


def episode(shots=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    query, supports = torch.randn(2, 3, 48, 48, generator=gen), torch.randn(2, shots, 3, 48, 48, generator=gen)
    masks = torch.zeros(2, shots, 48, 48, dtype=torch.long)
    for k in range(shots):
        masks[:, k, 4 * k: 20 + 4 * k, 8 * k: 16 + 8 * k] = 1
    masks[..., 0, :] = 255
    return query, supports, masks


def test_five_shot_output_is_the_or_of_five_one_shot_outputs():
    """Exactly, on the same support codes; and through `forward` up to batched-conv rounding."""
    method = small()
    query, supports, masks = episode()
    with torch.no_grad():
        q_code = method.query_code(method.encode(query))
        s_feats = method.encode(supports.flatten(0, 1))
        s_code = tuple(c.unflatten(0, (2, 5)) for c in method.support_code(s_feats, masks.flatten(0, 1)))
        five = method.decode(q_code, s_code)
        ones = torch.stack([method.decode(q_code, tuple(c[:, k:k + 1] for c in s_code)) for k in range(5)])
        forward_ones = torch.stack([method(query, supports[:, k:k + 1], masks[:, k:k + 1]) for k in range(5)])
    assert torch.equal(five, ones.amax(dim=0))  # logits: max over shots
    union = ones.argmax(dim=2).bool().any(dim=0)
    assert torch.equal(five.argmax(dim=1).bool(), union)  # masks: logical OR
    assert torch.allclose(method(query, supports, masks), forward_ones.amax(dim=0), atol=1e-4)


def test_logits_are_the_support_conditioned_linear_classifier():
    method = small()
    query, supports, masks = episode(shots=1)
    with torch.no_grad():
        (features,) = method.query_code(method.encode(query))
        weight, bias = method.support_code(method.encode(supports[:, 0]), masks[:, 0])
        logits = method(query, supports, masks)
        expected = (features * weight[:, :, None, None]).sum(dim=1) + bias[:, :, None]
    assert torch.allclose(logits[:, 1], expected, atol=1e-5)
    assert torch.equal(logits[:, 0], torch.zeros_like(logits[:, 0]))


def test_conditioning_sees_only_the_masked_support():
    """Features outside the support foreground do not change (w, b); the mask itself does."""
    method = small()
    feats = torch.randn(1, method.feature_channels, 6, 6)
    mask = torch.zeros(1, 6, 6, dtype=torch.long)
    mask[0, 1:4, 2:5] = 1
    changed = feats.clone()
    changed[..., mask[0] == 0] = torch.randn_like(changed[..., mask[0] == 0])
    other = mask.clone()
    other[0, 4, 2] = 1
    with torch.no_grad():
        w, b = method.support_code(feats, mask)
        w2, b2 = method.support_code(changed, mask)
        w3, _ = method.support_code(feats, other)
    assert torch.equal(w, w2) and torch.equal(b, b2)
    assert not torch.allclose(w, w3)


def test_loss_is_the_sigmoid_cross_entropy_of_the_foreground_logit():
    logit = torch.randn(2, 6, 6)
    target = torch.randint(0, 2, (2, 6, 6))
    target[:, 0] = 255
    ours = segmentation_loss(torch.stack([torch.zeros_like(logit), logit], dim=1), target)
    valid = target != 255
    sigmoid_ce = F.binary_cross_entropy_with_logits(logit[valid], target[valid].float())
    assert torch.allclose(ours, sigmoid_ce, atol=1e-6)
