"""AMP: base-class training over the split's classes, imprinted masked proxies, k-shot proxy averaging."""
import pytest
import torch
import torch.nn.functional as F

from methods.amp import base_training_labels, imprint, nearest_masked_mean
from methods.common import OTHER_CLASS, TrainingContext
from tests.method_helpers import square_episode, tiny_method


def small(**options):
    return tiny_method("amp", **options)


def episode(shots=1, size=48):
    return square_episode(shots, size)


def test_imprinting_appends_the_proxy_and_adapts_background_only():
    rows = torch.randn(4, 3)
    fg, bg = torch.randn(2, 3), torch.randn(2, 3)
    out = imprint(rows, fg, bg, alpha=0.25821)
    unit = F.normalize(rows, dim=1)
    assert out.shape == (2, 5, 3)
    assert torch.allclose(out[:, -1], F.normalize(fg, dim=1))
    assert torch.allclose(out[:, 0], F.normalize(0.74179 * unit[0] + 0.25821 * bg, dim=1), atol=1e-6)
    assert torch.allclose(out[:, 1:4], unit[1:].expand(2, -1, -1))


def test_pixel_matching_the_proxy_is_foreground():
    """With every level's query feature equal to the support's normalised proxy, the novel row scores
    cos = 1, the highest possible: the pixel is foreground."""
    method = small().eval()
    query, supports, masks = episode()
    with torch.no_grad():
        s_code = method.support_code(method.encode(supports[:, 0]), masks[:, 0])
        q_code = tuple(F.normalize(s_code[2 * i], dim=1)[:, :, None, None].expand(-1, -1, 3, 3).clone()
                       for i in range(len(method.levels)))
        logits = method.decode(q_code, tuple(c[:, None] for c in s_code))
    assert (logits[:, 1] > logits[:, 0]).all()


def test_binary_output_is_novel_against_every_other_row():
    method = small().eval()
    query, supports, masks = episode()
    with torch.no_grad():
        q_code = method.query_code(method.encode(query))
        s_code = tuple(c[:, None] for c in method.support_code(method.encode(supports[:, 0]), masks[:, 0]))
        full = 0
        for i, feats in enumerate(q_code):
            rows = imprint(method.rows[i], s_code[2 * i][:, 0], s_code[2 * i + 1][:, 0], method.alpha)
            full = full + method.scales[i] * torch.einsum("bchw,brc->brhw", feats, rows)
        logits = method.decode(q_code, s_code)
        method.base_rows_compete = False
        background_only = method.decode(q_code, s_code)
    assert full.shape[1] == method.num_base_classes + 2
    assert torch.allclose(logits[:, 1], full[:, -1], atol=1e-5)
    assert torch.allclose(logits[:, 0], full[:, :-1].amax(dim=1), atol=1e-5)
    assert torch.allclose(background_only[:, 0], full[:, 0], atol=1e-5)


def test_k_shot_averages_the_proxies():
    method = small().eval()
    query, supports, masks = episode(shots=2)
    masks[:, 1] = 0
    masks[:, 1, 20:44, 10:40] = 1
    with torch.no_grad():
        q_code = method.query_code(method.encode(query))
        codes = [method.support_code(method.encode(supports[:, k]), masks[:, k]) for k in range(2)]
        two = method.decode(q_code, tuple(torch.stack([c[p] for c in codes], dim=1) for p in range(len(codes[0]))))
        mean = method.decode(q_code, tuple(((codes[0][p] + codes[1][p]) / 2)[:, None] for p in range(len(codes[0]))))
    assert torch.allclose(two, mean, atol=1e-5)


def test_base_training_is_multiclass_over_the_query_labels():
    method = small().train()
    query, supports, masks = episode()
    labels = torch.zeros(2, 48, 48, dtype=torch.long)
    labels[:, :24] = 3
    labels[:, 40:] = 255
    labels[:, 30:34] = OTHER_CLASS
    context = TrainingContext(class_ids=torch.tensor([3, 3]), query_labels=labels, base_classes=list(range(1, 16)))
    q_feats, s_feats = method.encode_episode(query, supports)
    torch.manual_seed(1)
    loss = method.training_loss(q_feats, s_feats, masks, masks[:, 0], context=context)
    torch.manual_seed(1)
    logits = F.interpolate(method.base_logits(q_feats), size=(48, 48), mode="bilinear", align_corners=False)
    assert logits.shape[1] == 16
    target = labels.clone()
    target[labels == 255] = 0  # void is background, as the original's loader
    target[labels == OTHER_CLASS] = 255  # novel classes are ignored (its label 250)
    assert torch.allclose(loss, F.cross_entropy(logits, target, ignore_index=255))
    torch.manual_seed(1)
    other_support = method.training_loss(q_feats, s_feats * 0, masks * 0, masks[:, 0] * 0, context=context)
    assert torch.allclose(loss, other_support)  # base training ignores the episode's support and binary mask
    loss.backward()
    assert all(p.grad is not None for p in method.rows) and method.embed.weight.grad is not None
    too_many = TrainingContext(class_ids=context.class_ids, query_labels=labels, base_classes=list(range(1, 20)))
    with pytest.raises(ValueError, match="num_base_classes"):
        method.training_loss(q_feats, s_feats, masks, masks[:, 0], context=too_many)


def test_proxies_pool_the_raw_maps_over_nearest_upsampled_features():
    """As `extract` / `masked_embeddings`: the embedding before its ReLU and the frozen levels as they are,
    upsampled (nearest) to the mask and averaged over its pixels; not the normalised classifier inputs."""
    method = small().eval()
    query, supports, masks = episode()
    masks[:, 0, 0, :] = 255  # ignored: in neither proxy
    with torch.no_grad():
        feats = method.encode(supports[:, 0])
        code = method.support_code(feats, masks[:, 0])
        c2 = method.backbone.channels["layer2"]
        raw = {"embedding": method.embed(feats), "layer2": feats[:, :c2], "layer3": feats[:, c2:]}
    assert (raw["embedding"] < 0).any()  # the ReLU would change the embedding's proxies
    for i, level in enumerate(method.levels):
        up = F.interpolate(raw[level], size=masks.shape[-2:], mode="nearest")
        for value, proxy in ((1, code[2 * i]), (0, code[2 * i + 1])):
            m = (masks[:, 0] == value).float()[:, None]
            expected = (up * m).sum(dim=(2, 3)) / m.sum(dim=(2, 3))
            torch.testing.assert_close(proxy, expected, rtol=1e-5, atol=1e-6)
            assert not torch.allclose(proxy.norm(dim=1), torch.ones(2))


def test_nearest_masked_mean_of_an_empty_mask_is_zero():
    feats = torch.randn(2, 3, 5, 7)
    masks = torch.zeros(2, 11, 13)
    masks[0, 3, 4] = 1
    out = nearest_masked_mean(feats, masks)
    assert torch.equal(out[1], torch.zeros(3))
    torch.testing.assert_close(out[0], F.interpolate(feats, size=(11, 13), mode="nearest")[0, :, 3, 4])


def test_classifier_reads_relu_then_normalisation_with_one_scale_per_level():
    method = small().eval()
    query, _, _ = episode()
    with torch.no_grad():
        feats = method.encode(query)
        code = method.query_code(feats)
    torch.testing.assert_close(code[0], F.normalize(F.relu(method.embed(feats)), dim=1))
    assert method.scales.shape == (len(method.levels),) and torch.equal(method.scales, torch.full((3,), 20.0))
    with torch.no_grad():
        method.scales[1] = 0.0
        without = method.base_logits(feats)
        method.scales[1] = 20.0
        level = 20.0 * torch.einsum("bchw,rc->brhw", code[1], F.normalize(method.rows[1], dim=1))
    torch.testing.assert_close(method.base_logits(feats).detach(), without + level, rtol=1e-4, atol=1e-4)


def test_base_training_labels_follow_the_original_loader():
    labels = torch.zeros(3, 4, 4, dtype=torch.long)
    labels[0, 0] = 2
    labels[0, 1] = OTHER_CLASS
    labels[0, 2] = 255
    labels[1, 0] = OTHER_CLASS  # background and a novel class only: the whole image is ignored
    labels[2] = 255
    labels[2, 0, 0] = 1
    out = base_training_labels(labels, num_rows=16)
    assert out[0, 0].eq(2).all() and out[0, 1].eq(255).all() and out[0, 2].eq(0).all() and out[0, 3].eq(0).all()
    assert out[1].eq(255).all()
    assert out[2, 0, 0] == 1 and out[2].eq(0).sum() == 15


def test_training_labels_mark_other_classes_for_amp():
    """bench's training batch: training classes 1..n in order, background 0, void 255, and every other class
    OTHER_CLASS (AMP ignores those pixels; before, they were background)."""
    import numpy as np
    import pandas as pd
    from types import SimpleNamespace

    from bench.training.train import training_batch

    label = np.zeros((4, 4), dtype=np.uint8)
    label[0] = 7  # a training class
    label[1] = 3  # a novel class
    label[2] = 255
    store = SimpleNamespace(input_size=4, dataset=SimpleNamespace(ignore_label=255),
                            image=lambda i: torch.zeros(3, 4, 4, dtype=torch.uint8),
                            mask=lambda i, c: (label == c).astype(np.uint8), label=lambda i: label)
    rows = pd.DataFrame({"query": ["q"], "class_id": [7], "flip_query": [False], "supports": ["s"],
                         "flip_support": [False], "gray": [False]})
    labels = training_batch(store, rows, base_classes=[5, 7])[-1][0]
    assert labels[0].eq(2).all() and labels[1].eq(OTHER_CLASS).all()
    assert labels[2].eq(255).all() and labels[3].eq(0).all()
