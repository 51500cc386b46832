"""AMP: base-class training over the split's classes, imprinted masked proxies, k-shot proxy averaging."""
import pytest
import torch
import torch.nn.functional as F

from methods.amp import imprint
from methods.common import TrainingContext
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
            full = full + torch.einsum("bchw,brc->brhw", feats, rows)
        full = method.scale * full
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
    context = TrainingContext(class_ids=torch.tensor([3, 3]), query_labels=labels, base_classes=list(range(1, 16)))
    q_feats, s_feats = method.encode_episode(query, supports)
    torch.manual_seed(1)
    loss = method.training_loss(q_feats, s_feats, masks, masks[:, 0], context=context)
    torch.manual_seed(1)
    logits = F.interpolate(method.base_logits(q_feats), size=(48, 48), mode="bilinear", align_corners=False)
    assert logits.shape[1] == 16
    assert torch.allclose(loss, F.cross_entropy(logits, labels, ignore_index=255))
    torch.manual_seed(1)
    other_support = method.training_loss(q_feats, s_feats * 0, masks * 0, masks[:, 0] * 0, context=context)
    assert torch.allclose(loss, other_support)  # base training ignores the episode's support and binary mask
    loss.backward()
    assert all(p.grad is not None for p in method.rows) and method.embed.weight.grad is not None
    too_many = TrainingContext(class_ids=context.class_ids, query_labels=labels, base_classes=list(range(1, 20)))
    with pytest.raises(ValueError, match="num_base_classes"):
        method.training_loss(q_feats, s_feats, masks, masks[:, 0], context=too_many)
