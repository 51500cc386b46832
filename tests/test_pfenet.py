"""PFENet: the training-free prior mask, its k-shot averaging, the auxiliary FEM losses, and the authors'
architecture's backbones and options."""
import pytest
import torch

from methods.backbones import BACKBONES, build_backbone
from methods.pfenet import PFENet, prior_mask
from methods.registry import MethodError
from tests.method_helpers import square_episode, tiny_method


def small(**options):
    return tiny_method("pfenet", **options)


def episode(shots=1, size=48):
    return square_episode(shots, size)


def test_prior_is_max_cosine_then_min_max_normalised():
    support = torch.zeros(1, 3, 1, 2)
    support[0, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0])  # one foreground pixel; the other is masked (zero)
    query = torch.zeros(1, 3, 1, 3)
    query[0, :, 0, 0] = torch.tensor([2.0, 0.0, 0.0])  # same direction: cos 1
    query[0, :, 0, 1] = torch.tensor([0.0, 1.0, 0.0])  # orthogonal: cos 0
    query[0, :, 0, 2] = torch.tensor([1.0, 1.0, 0.0])  # cos 1/sqrt(2)
    prior = prior_mask(query, support)
    assert prior.shape == (1, 1, 1, 3)
    expected = torch.tensor([1.0, 0.0, 2 ** -0.5])
    assert torch.allclose(prior[0, 0, 0], expected, atol=1e-5)


def test_prior_ignores_support_background():
    """The support's high-level feature is computed from (input x mask) and masked again, so feature
    cells outside the mask cannot change it."""
    method = small().eval()
    query, supports, masks = episode()
    with torch.no_grad():
        feats = method.encode(supports[:, 0])
        changed = feats.clone()
        c2 = method.backbone.channels["layer2"]
        changed[:, :c2, :, -1] += 5.0  # the last feature column lies outside the mask (rows/cols 8..31 of 48)
        _, high = method.support_code(feats, masks[:, 0])
        _, high_changed = method.support_code(changed, masks[:, 0])
    assert torch.allclose(high, high_changed)
    assert high[..., -1].abs().sum() == 0


def test_k_shot_averages_prototypes_and_priors():
    method = small().eval()
    query, supports, masks = episode(shots=2)
    masks[:, 1] = 0
    masks[:, 1, 20:44, 20:44] = 1
    with torch.no_grad():
        q_code = method.query_code(method.encode(query))
        codes = [method.support_code(method.encode(supports[:, k]), masks[:, k]) for k in range(2)]
        two = method.decode(q_code, tuple(torch.stack([c[p] for c in codes], dim=1) for p in range(2)))
        prior = (prior_mask(q_code[1], codes[0][1]) + prior_mask(q_code[1], codes[1][1])) / 2
        expected, _ = method.enrich(q_code[0], (codes[0][0] + codes[1][0]) / 2, prior)
        one = method.decode(q_code, tuple(c[:, None] for c in codes[0]))
    assert torch.allclose(two, expected, atol=1e-5)
    assert not torch.allclose(two, one)


def test_auxiliary_losses_one_per_bin():
    method = small(bins=[1.0, 0.5, 0.25]).train()
    assert isinstance(method, PFENet) and len(method.inner_cls) == 3 and len(method.alpha_conv) == 2
    query, supports, masks = episode()
    query_mask = masks[:, 0]
    feats = method.encode_episode(query, supports)
    torch.manual_seed(1)
    with_aux = method.training_loss(*feats, masks, query_mask)
    method.aux_weight = 0.0
    torch.manual_seed(1)
    without = method.training_loss(*feats, masks, query_mask)
    assert with_aux > without  # the auxiliary cross-entropies are positive
    with_aux.backward()
    assert all(p.grad is not None for p in method.inner_cls.parameters())


def test_synthnet_uses_layer3_as_high_level():
    method = small()
    assert not method.has_layer4 and method.options()["high_level"] == "layer3"
    assert method.high_channels == method.backbone.channels["layer3"]


# --- the authors' architecture (equality with their code: tests/test_golden_pfenet.py)


def test_deep_stem_resnet_is_pspnets_dilated_layout():
    net = build_backbone("resnet50-deepstem", layers=("layer1", "layer2", "layer3", "layer4"))
    stem = [m for m in net.layer0 if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in stem] == [
        (3, 64, (3, 3), (2, 2)), (64, 64, (3, 3), (1, 1)), (64, 128, (3, 3), (1, 1))]
    assert isinstance(net.layer0[9], torch.nn.MaxPool2d) and net.layer1[0].conv1.in_channels == 128
    for layer, rate in ((net.layer3, 2), (net.layer4, 4)):  # every block, the first included, as theirs
        assert all(b.conv2.dilation == (rate, rate) and b.conv2.padding == (rate, rate) and b.conv2.stride == (1, 1)
                   for b in layer)
        assert layer[0].downsample[0].stride == (1, 1)
    feats = net(torch.randn(1, 3, 65, 65))
    assert {k: tuple(v.shape[1:]) for k, v in feats.items()} == {
        "layer1": (256, 17, 17), "layer2": (512, 9, 9), "layer3": (1024, 9, 9), "layer4": (2048, 9, 9)}
    assert len(BACKBONES.get("resnet101-deepstem")().layer3) == 23


def test_deep_stem_reads_pspnet_imagenet_names(tmp_path):
    """PFENet's initmodel/resnet50_v2.pth names (conv1, bn1, ..., fc) load into layer0.*."""
    torch.manual_seed(0)
    source = build_backbone("resnet50-deepstem")
    stem_names = {0: "conv1", 1: "bn1", 3: "conv2", 4: "bn2", 6: "conv3", 7: "bn3"}
    state = {}
    for key, value in source.state_dict().items():
        if key.startswith("layer0."):
            _, index, rest = key.split(".", 2)
            key = f"{stem_names[int(index)]}.{rest}"
        state[key] = value
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    torch.save(state, tmp_path / "resnet50_v2.pth")
    loaded = build_backbone("resnet50-deepstem", weights_path=str(tmp_path / "resnet50_v2.pth"))
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in source.state_dict().items())
    assert loaded.identity["source"] == "file"


def test_pfenet_vgg16bn_cut_and_torchvision_names(tmp_path):
    net = build_backbone("vgg16bn-pfenet")
    assert [len(getattr(net, f"layer{k}")) for k in range(5)] == [7, 7, 10, 10, 9]
    assert all(m.ceil_mode for m in net.modules() if isinstance(m, torch.nn.MaxPool2d))
    feats = net(torch.randn(1, 3, 113, 113))
    assert {k: tuple(v.shape[1:]) for k, v in feats.items()} == {
        "layer2": (256, 15, 15), "layer3": (512, 8, 8), "layer4": (512, 8, 8)}
    cuts = (0, 7, 14, 24, 34)
    state = {}
    for key, value in net.state_dict().items():  # layerK.i.* -> torchvision's features.(cut_K + i).*
        layer, index, rest = key.split(".", 2)
        state[f"features.{cuts[int(layer[5])] + int(index)}.{rest}"] = value
    torch.save(state, tmp_path / "vgg16_bn.pth")
    loaded = build_backbone("vgg16bn-pfenet", weights_path=str(tmp_path / "vgg16_bn.pth"))
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in net.state_dict().items())


def test_authors_architecture_options_and_refusals():
    method = PFENet(architecture="authors", bins=[4, 2], width=8)
    assert method.native_resolution and method.backbone_name == "resnet50-deepstem"
    assert method.options()["architecture"] == "authors" and method.options()["input_size"] == 473
    q_feats = method.encode(torch.randn(1, 3, 33, 33))
    assert q_feats.shape[1] == 1024 + 512 + 2048  # layer3 ++ layer2 ++ layer4, their order
    with pytest.raises(MethodError, match="architecture"):
        PFENet(architecture="theirs")
    with pytest.raises(MethodError, match="backbones"):
        PFENet(architecture="authors", backbone="synthnet")
    with pytest.raises(MethodError, match="8k"):
        PFENet(architecture="authors", backbone="vgg16bn-pfenet", input_size=480)


def test_default_architecture_is_unchanged():
    method = small()
    assert not method.native_resolution and "architecture" not in method.options()
    assert "input_size" not in method.options() and method.architecture == "harness"
