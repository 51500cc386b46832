"""HSNet: shapes, k-shot voting, native resolution, training, the published entries' options and key maps."""
import pytest
import torch

from bench.training.profiles import PROFILES
from methods import build_method
from methods.hsnet import HSNet, vote_scores
from methods.hsnet_layers import CenterPivotConv4d
from methods.registry import MethodError
from methods.weights import WEIGHTS
from tests.method_helpers import square_episode, tiny_method, toy_training_losses


def synthetic(**options):
    torch.manual_seed(0)
    return build_method("hsnet", **{"backbone": "synthnet", **PROFILES["synthetic"].options_for("hsnet"), **options})


@pytest.mark.parametrize("shots", [1, 5])
def test_shapes_tiny_and_synthetic(shots):
    query, supports, masks = square_episode(shots=shots, size=48)
    with torch.no_grad():
        assert tiny_method("hsnet").eval()(query, supports, masks).shape == (2, 2, 6, 6)
        assert synthetic().eval()(query, supports, masks).shape == (2, 2, 48, 48)  # bilinear to the input


def test_vote_follows_predict_mask_nshot():
    """Sum of per-shot argmax masks / max(vote, 1) >= 0.5, per image; ties at exactly 0.5 are foreground."""
    def logits(mask):
        return torch.stack([1 - mask, mask], dim=1).float()

    a = torch.tensor([[[1, 1, 0, 0]]])
    b = torch.tensor([[[1, 0, 1, 0]]])
    scores = vote_scores([logits(a), logits(b)])
    assert scores.argmax(dim=1).tolist() == [[[1, 1, 1, 0]]]  # votes 2,1,1,0 over max 2
    three = vote_scores([logits(a), logits(a), logits(b)]).argmax(dim=1)
    assert three.tolist() == [[[1, 1, 0, 0]]]  # votes 3,2,1,0: 1/3 < 0.5
    empty = torch.zeros(1, 1, 4, dtype=torch.long)
    assert vote_scores([logits(empty)] * 3).argmax(dim=1).sum() == 0  # max(vote, 1) = 1
    lonely = torch.tensor([[[0, 0, 0, 1]]])
    assert vote_scores([logits(lonely), logits(empty)]).argmax(dim=1).tolist() == [[[0, 0, 0, 1]]]  # 1 / 1


def test_identical_shots_vote_the_one_shot_mask():
    method = synthetic().eval()
    query, supports, masks = square_episode(shots=1, size=48)
    with torch.no_grad():
        one = method(query, supports, masks)
        five = method(query, supports.expand(-1, 5, -1, -1, -1), masks.expand(-1, 5, -1, -1))
    assert torch.equal(one.argmax(dim=1), five.argmax(dim=1))


def test_native_resolution_resizes_inside_and_returns_its_own_size():
    assert not synthetic().native_resolution
    method = synthetic(input_size=64).eval()
    assert method.native_resolution
    gen = torch.Generator().manual_seed(0)
    query, supports = torch.randn(1, 3, 40, 50, generator=gen), torch.randn(1, 2, 3, 40, 50, generator=gen)
    masks = torch.zeros(1, 2, 40, 50, dtype=torch.long)
    masks[..., 10:30, 10:40] = 1
    with torch.no_grad():
        logits = method(query, supports, masks)
    assert logits.shape == (1, 2, 64, 64)
    assert method.options()["input_size"] == 64


def test_void_support_pixels_are_not_foreground():
    method = synthetic().eval()
    query, supports, masks = square_episode(size=48)
    feats = method.encode(supports[:, 0])
    with torch.no_grad():
        void = method.support_code(feats, torch.where(masks[:, 0] == 1, 255, 0))
    assert all(v.abs().sum() == 0 for v in void)


def test_training_loss_decreases_on_a_toy_batch():
    losses = toy_training_losses("hsnet")
    assert losses[-1] < losses[0] - 1e-3


def test_center_pivot_conv_is_the_sum_of_two_2d_convs():
    """Output at support position (i, j): the query-dims conv at the pivot (2i, 2j) plus, at each query
    position, the strided support-dims conv."""
    torch.manual_seed(0)
    conv = CenterPivotConv4d(2, 4, 3, support_stride=2)
    x = torch.randn(1, 2, 5, 5, 6, 6)
    with torch.no_grad():
        out = conv(x)
        i, j = 1, 2
        over_query = conv.query_conv(x[..., 2 * i, 2 * j])
        over_support = torch.stack([torch.stack([conv.support_conv(x[:, :, a, b])[:, :, i, j] for b in range(5)], -1)
                                    for a in range(5)], -2)
    assert out.shape == (1, 4, 5, 5, 3, 3)
    torch.testing.assert_close(out[..., i, j], over_query + over_support, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backbone,maps,groups", [("resnet50", 13, (4, 6, 3)), ("resnet101", 30, (4, 23, 3)),
                                                  ("vgg16", 7, (3, 3, 1))])
def test_torchvision_backbones_give_every_bottleneck(backbone, maps, groups):
    method = HSNet(backbone=backbone, backbone_enum=None)
    assert method.group_sizes == groups
    feats = method.features(torch.randn(1, 3, 64, 64))
    assert len(feats) == maps
    assert (feats[0] < 0).any()  # before the final ReLU
    assert not method.backbone.training


def test_published_entries_build_and_their_keys_map_both_ways():
    entries = WEIGHTS.entries("hsnet.*")
    assert len(entries) == 27 and {e.dataset for e in entries} == {"pascal5i", "coco20i", "fss1000"}
    assert all(e.input_size == 400 and e.options["input_size"] == 400 for e in entries)
    assert WEIGHTS.get("hsnet.pascal5i-fold0-resnet50").reported[1]["miou"] == 64.3
    built = {}
    for entry in entries:
        key = tuple(sorted(entry.options.items()))
        if key not in built:
            built[key] = HSNet(**entry.options, backbone_enum=None)
        state = built[key].state_dict()
        theirs = entry.keys.to_authors(state)
        assert all(k.startswith(("backbone.", "hpn_learner.")) for k in theirs)
        assert entry.keys.to_harness({f"module.{k}": v for k, v in theirs.items()}).keys() == state.keys()
    assert len(built) == 4


def test_bad_options_are_one_line_errors():
    with pytest.raises(MethodError, match="unknown HSNet backbone"):
        HSNet(backbone="alexnet")
    with pytest.raises(MethodError, match="network order"):
        HSNet(backbone="synthnet", groups=[["layer2.1"], ["layer2.0"], ["layer3.0"]])
    with pytest.raises(MethodError, match="fixed"):
        HSNet(backbone="resnet50", backbone_enum=None, groups=[["layer1"], ["layer2.0"], ["layer3.0"]])
