"""SG-One: the cosine similarity map multiplies the segmentation features; k-shot rules."""
import pytest
import torch
import torch.nn.functional as F

from methods.registry import MethodError
from tests.method_helpers import tiny_method


def small(seed=0, **options):
    return tiny_method("sg-one", seed, **options).eval()


def episode(shots=1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    query, supports = torch.randn(2, 3, 48, 48, generator=gen), torch.randn(2, shots, 3, 48, 48, generator=gen)
    masks = torch.zeros(2, shots, 48, 48, dtype=torch.long)
    for k in range(shots):
        masks[:, k, 6 * k: 24 + 6 * k, 10:40] = 1
    return query, supports, masks


def test_guidance_vector_is_the_masked_average_of_guidance_features():
    method = small()
    feats = torch.randn(1, method.feature_channels, 6, 6)
    mask = torch.zeros(1, 6, 6, dtype=torch.long)
    mask[0, :2, :3] = 1
    with torch.no_grad():
        (vector,) = method.support_code(feats, mask)
        expected = method.guidance(feats)[0, :, :2, :3].mean(dim=(1, 2))
    assert torch.allclose(vector[0], expected, atol=1e-3)


def test_similarity_map_multiplies_the_segmentation_features():
    """A guidance vector equal to a query pixel's guidance feature gives similarity 1 there, so the head
    sees the unscaled segmentation features; a vector of the opposite direction flips their sign."""
    method = small()
    query, _, _ = episode()
    with torch.no_grad():
        guidance, segmentation = method.query_code(method.encode(query))
        vector = guidance[:, :, 2, 3]
        similarity = F.cosine_similarity(guidance, vector[:, :, None, None].expand_as(guidance), dim=1)
        assert torch.allclose(similarity[:, 2, 3], torch.ones(2), atol=1e-5)
        assert torch.allclose(method.segment(guidance, segmentation, vector),
                              method.head(segmentation * similarity[:, None]), atol=1e-6)
        flipped = method.segment(guidance, segmentation, -vector)
        assert torch.allclose(flipped, method.head(-segmentation * similarity[:, None]), atol=1e-6)


def test_average_rule_averages_guidance_vectors():
    method = small()
    query, supports, masks = episode(shots=3)
    with torch.no_grad():
        guidance, segmentation = method.query_code(method.encode(query))
        vectors = [method.support_code(method.encode(supports[:, k]), masks[:, k])[0] for k in range(3)]
        expected = method.segment(guidance, segmentation, torch.stack(vectors).mean(dim=0))
        assert torch.allclose(method(query, supports, masks), expected, atol=1e-5)


def test_or_rule_is_the_union_of_the_one_shot_masks():
    method = small(kshot="or")
    query, supports, masks = episode(shots=3)
    with torch.no_grad():
        five = method(query, supports, masks).argmax(dim=1).bool()
        ones = [method(query, supports[:, k:k + 1], masks[:, k:k + 1]).argmax(dim=1).bool() for k in range(3)]
    assert torch.equal(five, ones[0] | ones[1] | ones[2])
    with pytest.raises(ValueError):
        small(kshot="vote")


def test_authors_encoder_needs_vgg16_and_keeps_the_default_unchanged():
    with pytest.raises(MethodError, match="vgg16"):
        small(encoder="authors")
    assert {k.split(".")[0] for k in small().trainable_state()} == {"guidance", "side_low", "side_high", "head"}
    assert small().head[2].padding == (0, 0)
