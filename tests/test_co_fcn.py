"""co-FCN: annotations fused early with the support features, pooled over space and over all shots."""
import torch

from methods.co_fcn import annotation_maps
from tests.method_helpers import tiny_method


def small(seed=0, **options):
    return tiny_method("co-fcn", seed, **options).eval()


def test_annotation_maps_are_positive_and_negative_with_void_in_neither():
    mask = torch.tensor([[[1, 0], [255, 1]]])
    maps = annotation_maps(mask, (2, 2))
    assert torch.equal(maps[0, 0], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert torch.equal(maps[0, 1], torch.tensor([[0.0, 1.0], [0.0, 0.0]]))


def test_annotations_enter_the_support_encoder_with_the_features():
    """Early fusion: the code is the support encoder applied to features ++ (positive, negative) maps,
    then averaged over space; a full-foreground, a full-background and an all-void mask give exactly
    the encoder of features ++ (1, 0), ++ (0, 1) and ++ (0, 0)."""
    method = small()
    feats = torch.randn(1, method.feature_channels, 6, 6)
    ones, zeros = torch.ones(1, 1, 6, 6), torch.zeros(1, 1, 6, 6)
    with torch.no_grad():
        for value, maps in ((1, (ones, zeros)), (0, (zeros, ones)), (255, (zeros, zeros))):
            (code,) = method.support_code(feats, torch.full((1, 6, 6), value, dtype=torch.long))
            expected = method.support_encoder(torch.cat([feats, *maps], dim=1)).mean(dim=(2, 3))
            assert torch.allclose(code, expected, atol=1e-6)
        codes = [method.support_code(feats, torch.full((1, 6, 6), v, dtype=torch.long))[0] for v in (0, 1)]
    assert not torch.allclose(*codes)


def test_k_shot_pools_over_all_shots():
    method = small()
    with torch.no_grad():
        for p in method.score.parameters():  # the score conv starts at zero: give it weights to compare
            p.normal_()
        gen = torch.Generator().manual_seed(0)
        query, supports = torch.randn(1, 3, 48, 48, generator=gen), torch.randn(1, 3, 3, 48, 48, generator=gen)
        masks = torch.zeros(1, 3, 48, 48, dtype=torch.long)
        masks[0, 0, :20] = 1
        masks[0, 1, :, :30] = 1
        masks[0, 2, 10:40, 10:40] = 1
        three = method(query, supports, masks)
        (q,) = method.query_code(method.encode(query))
        codes = [method.support_code(method.encode(supports[:, k]), masks[:, k])[0] for k in range(3)]
        expected = method.decode((q,), (torch.stack(codes, dim=1),))
        pooled = method.decode((q,), (torch.stack(codes).mean(dim=0)[:, None],))  # one averaged vector
    assert torch.allclose(three, expected, atol=1e-5)
    assert torch.allclose(three, pooled, atol=1e-5)


def test_score_layer_starts_at_zero():
    method = small()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        logits = method(torch.randn(1, 3, 48, 48, generator=gen), torch.randn(1, 1, 3, 48, 48, generator=gen),
                        torch.ones(1, 1, 48, 48, dtype=torch.long))
    assert torch.equal(logits, torch.zeros_like(logits))
