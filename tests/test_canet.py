"""CANet as the authors' code: Dropout2d in every ASPP branch, training logits upsampled with align_corners=True."""
import torch
import torch.nn.functional as F
from torch import nn

from methods.common import ASPP, segmentation_loss
from tests.method_helpers import square_episode, tiny_method


def test_every_aspp_branch_ends_in_relu_and_dropout_as_layer6():
    aspp = ASPP(8, rates=(1, 2, 3), dropout=0.5)
    for branch in [aspp.pool_branch, *aspp.branches, aspp.project]:
        assert isinstance(branch[1], nn.ReLU) and isinstance(branch[2], nn.Dropout2d) and branch[2].p == 0.5
    x = torch.randn(2, 8, 9, 9)
    aspp.eval()
    with torch.no_grad():
        pooled = aspp.pool_branch[:2](F.adaptive_avg_pool2d(x, 1)).expand(-1, -1, 9, 9)
        plain = torch.cat([pooled] + [b[:2](x) for b in aspp.branches], dim=1)
        torch.testing.assert_close(aspp(x), aspp.classifier(aspp.project[:2](plain)))  # eval: no dropout
    aspp.train()
    torch.manual_seed(0)
    with torch.no_grad():
        dropped = [b(x) for b in aspp.branches]
    assert all((d.abs().sum(dim=(2, 3)) == 0).any() for d in dropped)  # whole channels dropped in training


def test_canet_training_loss_upsamples_with_align_corners():
    method = tiny_method("canet", history_probability=0.0).eval()
    query, supports, masks = square_episode(1, 48)
    with torch.no_grad():
        q, s = method.encode_episode(query, supports)
        loss = method.training_loss(q, s, masks, masks[:, 0])
        logits = method.refine(method.compare(q, s, masks), torch.zeros(2, 2, *q.shape[-2:]))
        expected = F.cross_entropy(F.interpolate(logits, size=(48, 48), mode="bilinear", align_corners=True),
                                   masks[:, 0])
        other = segmentation_loss(logits, masks[:, 0])
    torch.testing.assert_close(loss, expected)
    assert not torch.allclose(loss, other)
