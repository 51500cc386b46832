"""Frozen backbones: ResNet-50 (torchvision enum or local file, offline error) and synthnet."""
import pytest
import torch

from methods import MethodError
from methods.backbones import ResNet50Backbone, SynthNetBackbone, build_backbone


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    from torchvision.models import resnet50

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet50-local.pth"
    torch.save(resnet50(weights=None).state_dict(), path)
    return path


def test_resnet50_from_local_file_is_frozen_at_stride_8(resnet_file):
    backbone = ResNet50Backbone(weights_path=str(resnet_file))
    assert backbone.identity["source"] == "file" and len(backbone.identity["sha256"]) == 64
    backbone.train()
    assert not backbone.training and not any(m.training for m in backbone.modules())
    assert not any(p.requires_grad for p in backbone.parameters())
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 64, 64))
    assert feats["layer2"].shape == (1, 512, 8, 8) and feats["layer3"].shape == (1, 1024, 8, 8)
    assert backbone.mid_level(torch.randn(1, 3, 64, 64)).shape == (1, 1536, 8, 8)


def test_resnet50_enum_offline_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(MethodError) as info:
        ResNet50Backbone(weights="IMAGENET1K_V1")
    message = str(info.value)
    assert "ResNet50_Weights.IMAGENET1K_V1" in message and str(tmp_path / "checkpoints" / "resnet50-0676ba61.pth") in message
    assert "--backbone-weights" in message


def test_resnet50_uses_the_cached_enum_file(tmp_path, monkeypatch, resnet_file):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "resnet50-0676ba61.pth").write_bytes(resnet_file.read_bytes())
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    backbone = ResNet50Backbone(weights="IMAGENET1K_V1")
    assert backbone.identity["weights"] == "ResNet50_Weights.IMAGENET1K_V1"


def test_bad_weights_are_clear_errors(tmp_path):
    with pytest.raises(MethodError, match="backbone weights file not found"):
        ResNet50Backbone(weights_path=str(tmp_path / "none.pth"))
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(MethodError, match="cannot read backbone weights"):
        ResNet50Backbone(weights_path=str(tmp_path / "junk.pth"))
    with pytest.raises(MethodError, match="unknown ResNet50 weights 'NOPE'"):
        ResNet50Backbone(weights="NOPE")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(MethodError, match="does not hold synthnet weights"):
        SynthNetBackbone(weights_path=str(tmp_path / "other.pth"))


def test_synthnet_layers_and_freezing():
    backbone = build_backbone("synthnet")
    with torch.no_grad():
        feats = backbone(torch.randn(2, 3, 48, 48))
    assert feats["layer2"].shape == (2, 64, 6, 6) and feats["layer3"].shape == (2, 128, 6, 6)
    assert not backbone.train().training
    trainable = SynthNetBackbone(frozen=False)
    assert trainable.train().training


def test_vgg16_deeplab_style_at_stride_8(tmp_path):
    from torchvision.models import vgg16

    path = tmp_path / "vgg16.pth"
    torch.save(vgg16(weights=None).state_dict(), path)
    backbone = build_backbone("vgg16", weights_path=str(path), layers=("layer1", "layer2", "layer3"))
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 64, 64))
    assert feats["layer1"].shape == (1, 256, 16, 16)
    assert feats["layer2"].shape == (1, 512, 8, 8) and feats["layer3"].shape == (1, 512, 8, 8)
    assert not backbone.train().training and not any(p.requires_grad for p in backbone.parameters())


def test_resnet50_dilates_every_block_of_layer3_and_layer4_as_canet_and_pfenet(resnet_file):
    """torchvision leaves layer3[0] at dilation 1 and layer4[0] at 2; CANet's / PFENet's backbones dilate every
    block (2 in layer3, 4 in layer4). Reference: a plain ResNet-50 with the same weights, made stride-1 and
    dilated by hand in every block."""
    from torchvision.models import resnet50

    backbone = ResNet50Backbone(weights_path=str(resnet_file), layers=("layer2", "layer3", "layer4"))
    assert [b.conv2.dilation for b in backbone.layer3] == [(2, 2)] * 6
    assert [b.conv2.padding for b in backbone.layer3] == [(2, 2)] * 6
    assert [b.conv2.dilation for b in backbone.layer4] == [(4, 4)] * 3
    reference = resnet50(weights=None)
    reference.load_state_dict(torch.load(resnet_file, weights_only=True))
    for layer, rate in ((reference.layer3, 2), (reference.layer4, 4)):
        for block in layer:
            block.conv2.stride, block.conv2.dilation, block.conv2.padding = (1, 1), (rate, rate), (rate, rate)
        layer[0].downsample[0].stride = (1, 1)
    reference.eval()
    images = torch.randn(2, 3, 65, 65, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = backbone(images)
        x = reference.layer2(reference.layer1(reference.maxpool(reference.relu(reference.bn1(reference.conv1(images))))))
        x3 = reference.layer3(x)
        x4 = reference.layer4(x3)
    assert ours["layer3"].shape == (2, 1024, 9, 9)
    torch.testing.assert_close(ours["layer2"], x)
    torch.testing.assert_close(ours["layer3"], x3)
    torch.testing.assert_close(ours["layer4"], x4)
