"""Learned methods: interface over the registry, the paper's equations, ablation switches."""
import pytest
import torch

from methods import METHODS, build_method, list_methods
from methods.canet import CANet
from methods.common import input_channel_average, masked_average_pool, support_vectors
from methods.simpropnet import SimPropNet, attention_maps
from tests.method_helpers import tiny_options

LEARNED = [n for n in list_methods() if METHODS.card(n).trainable]


def episode(batch=2, shots=1, size=48, seed=0):
    gen = torch.Generator().manual_seed(seed)
    query = torch.randn(batch, 3, size, size, generator=gen)
    supports = torch.randn(batch, shots, 3, size, size, generator=gen)
    masks = torch.zeros(batch, shots, size, size, dtype=torch.long)
    masks[..., size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1
    masks[..., 0, :] = 255
    query_mask = torch.zeros(batch, size, size, dtype=torch.long)
    query_mask[:, size // 3:, size // 3:] = 1
    return query, supports, masks, query_mask


def small(name, seed=0, **options):
    torch.manual_seed(seed)
    return build_method(name, **{**tiny_options(name), **options})


def test_registry_has_the_paper_methods():
    assert {"simpropnet", "simpropnet-dpr", "simpropnet-fbaf", "simpropnet-dpr-fbaf", "canet"} <= set(LEARNED)


@pytest.mark.parametrize("name", LEARNED)
def test_backward_reaches_the_head_but_not_the_backbone(name):
    method = small(name).train()
    query, supports, masks, query_mask = episode()
    loss = method.training_loss(*method.encode_episode(query, supports), masks, query_mask)
    loss.backward()
    assert torch.isfinite(loss)
    head = [p for n, p in method.named_parameters() if not n.startswith("backbone.")]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in head)
    assert all(p.grad is None for p in method.backbone.parameters())
    assert not method.backbone.training  # frozen BN stays in eval mode


@pytest.mark.parametrize("name", LEARNED)
@pytest.mark.parametrize("shots", [1, 5])
def test_k_shot_logits_at_stride_8(name, shots):
    method = small(name).eval()
    query, supports, masks, _ = episode(shots=shots)
    with torch.no_grad():
        logits = method(query, supports, masks)
    assert logits.shape == (2, 2, 6, 6)


@pytest.mark.parametrize("name", LEARNED)
def test_forward_features_equals_forward(name):
    method = small(name).eval()
    query, supports, masks, _ = episode(shots=2)
    with torch.no_grad():
        direct = method(query, supports, masks)
        cached = method.forward_features(*method.encode_episode(query, supports), masks)
    assert torch.equal(direct, cached)


@pytest.mark.parametrize("name", LEARNED)
def test_codes_do_not_depend_on_the_rest_of_the_batch(name):
    """What the evaluation cache relies on: an image's query code and a support's code, computed
    alone, give the same logits as the whole batch computed together."""
    method = small(name).eval()
    query, supports, masks, _ = episode(batch=3, shots=2)
    with torch.no_grad():
        together = method(query, supports, masks)
        feats_q, feats_s = method.encode_episode(query, supports)
        alone = []
        for b in range(3):
            q_code = method.query_code(feats_q[b:b + 1])
            s_codes = [method.support_code(feats_s[b, k:k + 1], masks[b, k:k + 1]) for k in range(2)]
            s_code = tuple(torch.stack([c[p][0] for c in s_codes])[None] for p in range(len(s_codes[0])))
            alone.append(method.decode(q_code, s_code))
    assert torch.allclose(together, torch.cat(alone), atol=1e-4)


def test_masked_average_pool_of_full_mask_is_spatial_mean():
    feats = torch.randn(3, 8, 5, 7)
    pooled = masked_average_pool(feats, torch.ones(3, 40, 56))
    assert torch.allclose(pooled, feats.mean(dim=(2, 3)), atol=1e-3)


def test_masked_average_pool_averages_inside_the_mask():
    feats = torch.zeros(1, 2, 4, 4)
    feats[0, :, :2, :2] = 3.0
    mask = torch.zeros(1, 4, 4)
    mask[0, :2, :2] = 1
    assert torch.allclose(masked_average_pool(feats, mask), torch.full((1, 2), 3.0), atol=1e-3)


def test_support_vectors_exclude_ignore_from_background():
    feats = torch.zeros(1, 1, 1, 4, 4)
    feats[..., 0, :] = 10.0  # the ignored row carries a large value
    masks = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    masks[..., 0, :] = 255
    masks[..., 3, 3] = 1
    _, bg = support_vectors(feats, masks)
    assert bg.item() < 1.0


def test_attention_maps_sum_to_one_and_prefer_the_closer_vector():
    feats = torch.randn(2, 16, 5, 5)
    z_fg, z_bg = torch.randn(2, 16), torch.randn(2, 16)
    maps = attention_maps(feats, z_fg, z_bg)
    assert torch.allclose(maps.sum(dim=1), torch.ones(2, 5, 5), atol=1e-5)
    aligned = attention_maps(z_fg[:, :, None, None].expand(-1, -1, 5, 5), z_fg, -z_fg)
    assert torch.allclose(aligned[:, 0], torch.ones(2, 5, 5), atol=1e-4)  # cos = 1 vs cos = -1


def test_k_shot_averages_the_map_vectors():
    """Eq. 4: two identical shots give exactly the 1-shot prediction."""
    method = small("simpropnet").eval()
    query, supports, masks, _ = episode(shots=1)
    with torch.no_grad():
        one = method(query, supports, masks)
        two = method(query, supports.repeat(1, 2, 1, 1, 1), masks.repeat(1, 2, 1, 1))
    assert torch.allclose(one, two, atol=1e-5)


def test_dpr_adds_the_support_loss():
    query, supports, masks, query_mask = episode()
    with_dpr = small("simpropnet-dpr-fbaf", seed=3).eval()
    without = small("simpropnet-fbaf", seed=3).eval()
    without.load_state_dict(with_dpr.state_dict())
    feats = with_dpr.encode_episode(query, supports)
    assert with_dpr.training_loss(*feats, masks, query_mask) > without.training_loss(*feats, masks, query_mask)


def test_fbaf_makes_the_background_vector_matter():
    """Without FBAF only Z^f enters; marking support background as void changes Z^b alone."""
    query, supports, masks, _ = episode()
    void_bg = masks.clone()
    void_bg[..., : masks.shape[-2] // 4, :] = 255
    outputs = {}
    for name in ("simpropnet-dpr", "simpropnet-dpr-fbaf"):
        method = small(name).eval()
        with torch.no_grad():
            outputs[name] = (method(query, supports, masks), method(query, supports, void_bg))
    assert torch.equal(*outputs["simpropnet-dpr"])
    assert not torch.allclose(*outputs["simpropnet-dpr-fbaf"])


def test_ica_schedule_and_grayscale():
    method = small("simpropnet")
    assert method.query_grayscale_probability(0.0) == pytest.approx(0.25)
    assert method.query_grayscale_probability(0.5) < method.query_grayscale_probability(0.1)
    assert small("simpropnet-dpr-fbaf").query_grayscale_probability(0.0) == 0.0
    gray = input_channel_average(torch.randn(2, 3, 4, 4))
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])


@pytest.mark.parametrize("option,values", [("g1_residual", ["feature", "project", "none"]),
                                           ("cosine_on", ["relu", "linear"]),
                                           ("fusion_relu", [True, False])])
def test_ambiguity_options_change_the_computation(option, values):
    query, supports, masks, _ = episode()
    outputs = []
    for value in values:
        method = small("simpropnet", **{option: value}).eval()
        with torch.no_grad():
            outputs.append(method(query, supports, masks))
    for other in outputs[1:]:
        assert not torch.allclose(outputs[0], other)
    with pytest.raises(ValueError):
        small("simpropnet", g1_residual="bogus")


def test_canet_attention_weights_and_fixed_refinement():
    method = small("canet", refine_steps=3).eval()
    assert isinstance(method, CANet)
    query, supports, masks, _ = episode(shots=3)
    with torch.no_grad():
        feats = method.encode_episode(query, supports)
        one = method.compare(feats[0], feats[1][:, :1], masks[:, :1])
        same = method.compare(feats[0], feats[1][:, :1].repeat(1, 3, 1, 1, 1), masks[:, :1].repeat(1, 3, 1, 1))
    assert torch.allclose(one, same, atol=1e-5)  # identical shots: weights sum to 1
    assert [method.training_shots(s) for s in range(8)] == [1, 1, 1, 5, 1, 1, 1, 5]
    assert isinstance(small("simpropnet"), SimPropNet)


def test_canet_refinement_steps_change_the_output():
    query, supports, masks, _ = episode()
    outputs = []
    for steps in (1, 3):
        method = small("canet", refine_steps=steps).eval()
        with torch.no_grad():
            outputs.append(method(query, supports, masks))
    assert not torch.allclose(*outputs)


@pytest.mark.parametrize("name", LEARNED)
def test_head_initialisation_leaves_the_pretrained_backbone_alone(name, tmp_path):
    from methods.backbones import SynthNetBackbone

    torch.manual_seed(1)
    weights = tmp_path / "synthnet.pt"
    torch.save(SynthNetBackbone(frozen=False).state_dict(), weights)
    method = build_method(name, **{**tiny_options(name), "backbone_weights": str(weights)})
    saved = torch.load(weights)
    for key, value in method.backbone.state_dict().items():
        assert torch.equal(value, saved[key]), key
