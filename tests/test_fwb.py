"""FWB: feature relevance, test-time boosting of the prototype and the IoU-weighted expert ensemble."""
import pytest
import torch
import torch.nn.functional as F

from methods.fwb import relevance, support_iou, weighted_similarity
from tests.method_helpers import square_episode, tiny_method


def small(**options):
    return tiny_method("fwb", **options)


def episode(shots=1, size=48):
    return square_episode(shots, size, ignore_top_row=True)


def codes(method, query, supports, masks):
    with torch.no_grad():
        q = method.query_code(method.encode(query))
        parts = [method.support_code(method.encode(supports[:, k]), masks[:, k]) for k in range(supports.shape[1])]
    return q, tuple(torch.stack([p[i] for p in parts], dim=1) for i in range(len(parts[0])))


def test_relevance_is_the_normalised_difference():
    r = relevance(torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]]))
    assert torch.allclose(r, torch.tensor([[1.0, -1.0, 0.0]]) / 2 ** 0.5)


def test_weighted_similarity_ignores_irrelevant_channels_and_peaks_at_one():
    r = torch.tensor([[1.0, 0.0]])
    prototype = torch.tensor([[2.0, 0.0]])
    feats = torch.tensor([[1.0, 0.5], [3.0, -4.0]]).T.reshape(1, 2, 1, 2)  # channel 2 has zero relevance
    s = weighted_similarity(feats, r, prototype)
    assert torch.allclose(s, torch.ones(1, 1, 1, 2))


def test_support_iou_ignores_void():
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 1, 0] = 1.0  # predicts the top row
    masks = torch.tensor([[[1, 255], [1, 0]]])
    assert support_iou(logits, masks).item() == pytest.approx(1 / 2)


def test_boosting_steps_change_the_prototype():
    method = small(boost_steps=3).eval()
    q, s = codes(method, *episode())
    query, low, r, prototype = method._plain(q, s)
    experts, ious = method.boost(prototype, r, *s[2:])
    assert experts.shape == (2, 4, prototype.shape[1]) and ious.shape == (2, 4)
    assert torch.equal(experts[:, 0], prototype)
    for t in range(3):
        assert not torch.allclose(experts[:, t + 1], experts[:, t])
    assert ((ious >= 0) & (ious <= 1)).all()


def thresholding_head(method, q, s):
    """Head: foreground where the mean of (low-level x similarity) exceeds its query average, so that
    the experts' support IoUs differ."""
    conv1, conv2 = method.head[0], method.head[2]
    conv1.weight.data.zero_()
    conv1.bias.data.zero_()
    conv1.weight.data[:, :, 1, 1] = 1.0
    conv2.weight.data.zero_()
    conv2.weight.data[1] = 1.0 / conv1.weight.shape[0]
    query, low, r, prototype = method._plain(q, s)
    conv2.bias.data[1] = -(low * weighted_similarity(query, r, prototype)).sum(1).mean()


def test_ensemble_weights_follow_support_iou():
    method = small(boost_steps=3, boost_lr=0.1).eval()
    q, s = codes(method, *episode())
    thresholding_head(method, q, s)
    query, low, r, prototype = method._plain(q, s)
    experts, ious = method.boost(prototype, r, *s[2:])
    assert len(set(ious.flatten().tolist())) > 3  # the experts differ on the support
    probs = torch.stack([torch.softmax(method.segment(query, low, r, experts[:, t]), dim=1)[:, 1] for t in range(4)], 1)
    with torch.no_grad():
        out = method.decode(q, s)
    weights = ious / ious.sum(dim=1, keepdim=True)
    assert torch.allclose(out.softmax(dim=1)[:, 1], (weights[:, :, None, None] * probs).sum(1), atol=1e-5)


def test_zero_iou_expert_gets_no_weight(monkeypatch):
    import methods.fwb as fwb

    method = small(boost_steps=2).eval()
    q, s = codes(method, *episode())
    query, low, r, prototype = method._plain(q, s)
    calls = iter([torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0])])
    monkeypatch.setattr(fwb, "support_iou", lambda logits, masks: next(calls).repeat_interleave(logits.shape[0] // 2))
    experts, _ = method.boost(prototype, r, *s[2:])
    only = torch.softmax(method.segment(query, low, r, experts[:, 1]), dim=1)[:, 1]
    calls = iter([torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0])])
    with torch.no_grad():
        out = method.decode(q, s)
    assert torch.allclose(out.softmax(dim=1)[:, 1], only, atol=1e-5)


def test_no_boosting_is_the_plain_prediction_and_duplicated_shots_match():
    method = small(boost_steps=0).eval()
    q, s = codes(method, *episode())
    query, low, r, prototype = method._plain(q, s)
    with torch.no_grad():
        assert torch.allclose(method.decode(q, s), method.segment(query, low, r, prototype))
    boosted = small(boost_steps=2).eval()
    one = boosted(*episode())
    query_img, supports, masks = episode()
    two = boosted(query_img, supports.repeat(1, 2, 1, 1, 1), masks.repeat(1, 2, 1, 1))
    assert torch.allclose(one, two, atol=1e-4)  # summed vectors, summed loss, mean IoU: same experts


def test_boosting_and_training_upsample_with_align_corners_as_the_author():
    """One plain (SGD) boosting step equals the step computed with the logits upsampled align_corners=True
    (the author's `few_shot_model.py`); the training loss upsamples the same way."""
    method = small(boost_steps=1, boost_optimizer="sgd", boost_lr=0.5).eval()
    query_img, supports, masks = episode()
    q, s = codes(method, query_img, supports, masks)
    query, low, r, prototype = method._plain(q, s)
    experts, _ = method.boost(prototype, r, *s[2:])
    f = prototype.clone().requires_grad_(True)
    flat_masks = masks[:, 0]
    logits = F.interpolate(method.segment(s[2][:, 0], s[3][:, 0], r, f), size=flat_masks.shape[-2:],
                           mode="bilinear", align_corners=True)
    pixel = F.cross_entropy(logits, flat_masks, ignore_index=255, reduction="none")
    loss = (pixel.sum(dim=(1, 2)) / (flat_masks != 255).sum(dim=(1, 2))).sum()
    (grad,) = torch.autograd.grad(loss, f)
    torch.testing.assert_close(experts[:, 1], prototype - 0.5 * grad, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        feats = method.encode_episode(query_img, supports)
        train_loss = method.training_loss(*feats, masks, masks[:, 0])
        logits = method.segment(*method._plain(method.query_code(feats[0]), codes(method, query_img, supports, masks)[1]))
        up = F.interpolate(logits, size=(48, 48), mode="bilinear", align_corners=True)
    torch.testing.assert_close(train_loss, F.cross_entropy(up, masks[:, 0], ignore_index=255))
