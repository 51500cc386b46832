"""Frozen feature extractors shared by the methods, with explicit weight identities.

* ``resnet50``: torchvision ResNet-50 (He et al., CVPR 2016), layer3 dilated (rate 2) so that
  layer2 and layer3 both have output stride 8, as in CANet (Zhang et al., CVPR 2019) and SimPropNet;
  EVERY block of layer3 has dilation 2 and every block of layer4 dilation 4, as the backbones of CANet's
  and PFENet's code (torchvision's `replace_stride_with_dilation` gives each layer's first block the
  previous layer's dilation: 1 in layer3[0], 2 in layer4[0]; `dilate_every_block` sets them after building).
  Weights are named through torchvision's enum (``IMAGENET1K_V1``), never a moving default, or
  loaded from a local file.
* ``synthnet``: a small ResNet-style network with the same interface (``layer2`` + ``layer3`` at
  stride 8) for the synthetic benchmark, pretrained by the harness on classes the benchmark never
  uses (see ``bench/pretrain.py``), then frozen exactly like ResNet-50.

Frozen means: no parameter takes gradients and batch norm always uses its running statistics
(``train()`` cannot switch it back), unlike CANet's code where BN statistics drift in training.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from methods.registry import MethodError, Registry

BACKBONES = Registry("backbone")


class FrozenBackbone(nn.Module):
    """Base: `forward(images) -> {layer name: features}`; parameters frozen, BN in eval mode."""

    #: channels of each returned feature map
    channels: Dict[str, int] = {}
    #: output stride of the returned feature maps
    stride: int = 8

    def __init__(self) -> None:
        super().__init__()
        self.identity: Dict[str, object] = {}

    def freeze(self) -> "FrozenBackbone":
        for param in self.parameters():
            param.requires_grad_(False)
        return self.train(False)

    def train(self, mode: bool = True) -> "FrozenBackbone":
        return super().train(False)  # always eval: frozen BN statistics

    def mid_level(self, images: torch.Tensor) -> torch.Tensor:
        """layer2 ++ layer3 concatenated, the features CANet-style methods encode."""
        feats = self(images)
        return torch.cat([feats["layer2"], feats["layer3"]], dim=1)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_state_file(path: Path) -> Dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise MethodError(f"backbone weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line error
        raise MethodError(f"cannot read backbone weights {path}: {exc}") from None
    return state.get("state_dict", state) if isinstance(state, dict) else state


def torchvision_weights(enum_member) -> tuple[Dict[str, torch.Tensor], Path]:
    """State dict of a torchvision weights enum member from the hub cache (downloading if online).

    Offline with no cached file: one MethodError saying where to put the file.
    """
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum_member.url).name
    if not cached.is_file():
        try:
            torch.hub.load_state_dict_from_url(enum_member.url, progress=False, check_hash=True)
        except Exception:  # noqa: BLE001 - network errors come in many types
            raise MethodError(
                f"{type(enum_member).__name__}.{enum_member.name} weights are not cached and cannot be downloaded: "
                f"put {Path(enum_member.url).name} (from {enum_member.url}) at {cached}, "
                "or pass --backbone-weights PATH"
            ) from None
    return load_state_file(cached), cached


def _weights_identity(kind: str, name: str, path: Path) -> Dict[str, object]:
    return {"weights": name, "source": kind, "file": str(path), "sha256": _sha256(path)}


def dilate_every_block(layer: nn.Sequential, rate: int) -> None:
    """Set the 3x3 conv of every bottleneck of a (stride-1) ResNet layer to dilation = padding = `rate`."""
    for block in layer:
        block.conv2.dilation, block.conv2.padding = (rate, rate), (rate, rate)


@BACKBONES.register("resnet50")
class ResNet50Backbone(FrozenBackbone):
    """ResNet-50 up to layer3 (or layer4), layer3/4 dilated to keep output stride 8."""

    channels = {"layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}

    def __init__(self, weights: Optional[str] = "IMAGENET1K_V1", weights_path: Optional[str] = None,
                 layers: Sequence[str] = ("layer2", "layer3")):
        super().__init__()
        from torchvision.models import ResNet50_Weights, resnet50

        net = resnet50(weights=None, replace_stride_with_dilation=[False, True, True])
        dilate_every_block(net.layer3, 2)
        dilate_every_block(net.layer4, 4)
        if weights_path:
            state, path = load_state_file(Path(weights_path)), Path(weights_path)
            self.identity = _weights_identity("file", "local", path)
        elif weights:
            try:
                member = ResNet50_Weights[weights]
            except KeyError:
                raise MethodError(f"unknown ResNet50 weights '{weights}'; known: "
                                 f"{', '.join(ResNet50_Weights.__members__)}") from None
            state, path = torchvision_weights(member)
            self.identity = _weights_identity("torchvision", f"ResNet50_Weights.{weights}", path)
        else:
            state = None
            self.identity = {"weights": "random-init", "source": "none"}
        if state is not None:
            missing, unexpected = net.load_state_dict(state, strict=False)
            if [k for k in missing if not k.startswith("fc.")] or unexpected:
                raise MethodError(f"backbone weights do not fit ResNet-50 (missing {missing[:3]}, unexpected {unexpected[:3]})")
        self.layers = tuple(layers)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        self.layer4 = net.layer4 if "layer4" in self.layers else None
        self.freeze()

    def forward(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        out = {}
        x = self.layer1(self.stem(images))
        out["layer1"] = x
        x = self.layer2(x)
        out["layer2"] = x
        x = self.layer3(x)
        out["layer3"] = x
        if self.layer4 is not None:
            out["layer4"] = self.layer4(x)
        return {k: out[k] for k in self.layers}


@BACKBONES.register("vgg16")
class VGG16Backbone(FrozenBackbone):
    """VGG16 (Simonyan & Zisserman, ICLR 2015), DeepLab-style at output stride 8: pool4 with stride 1,
    conv5 dilated (rate 2), pool5 dropped, as PANet's encoder. Named features: `layer1` = conv3_3
    (256, stride 4), `layer2` = conv4_3 (512, stride 8), `layer3` = conv5_3 (512, stride 8)."""

    channels = {"layer1": 256, "layer2": 512, "layer3": 512}

    def __init__(self, weights: Optional[str] = "IMAGENET1K_V1", weights_path: Optional[str] = None,
                 layers: Sequence[str] = ("layer2", "layer3")):
        super().__init__()
        from torchvision.models import VGG16_Weights, vgg16

        net = vgg16(weights=None)
        if weights_path:
            state, path = load_state_file(Path(weights_path)), Path(weights_path)
            self.identity = _weights_identity("file", "local", path)
        elif weights:
            try:
                member = VGG16_Weights[weights]
            except KeyError:
                raise MethodError(f"unknown VGG16 weights '{weights}'; known: {', '.join(VGG16_Weights.__members__)}") from None
            state, path = torchvision_weights(member)
            self.identity = _weights_identity("torchvision", f"VGG16_Weights.{weights}", path)
        else:
            state = None
            self.identity = {"weights": "random-init", "source": "none"}
        if state is not None:
            missing, unexpected = net.load_state_dict(state, strict=False)
            if [k for k in missing if k.startswith("features.")] or [k for k in unexpected if k.startswith("features.")]:
                raise MethodError(f"backbone weights do not fit VGG16 (missing {missing[:3]}, unexpected {unexpected[:3]})")
        features = list(net.features.children())
        features[23] = nn.MaxPool2d(3, stride=1, padding=1)  # pool4: keep stride 8
        for index in (24, 26, 28):  # conv5 dilated
            features[index].dilation, features[index].padding = (2, 2), (2, 2)
        self.layers = tuple(layers)
        self.block3 = nn.Sequential(*features[:16])  # up to conv3_3 + ReLU
        self.block4 = nn.Sequential(*features[16:23])  # pool3 .. conv4_3 + ReLU
        self.block5 = nn.Sequential(*features[23:30])  # pool4 .. conv5_3 + ReLU
        self.freeze()

    def forward(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        out = {"layer1": self.block3(images)}
        out["layer2"] = self.block4(out["layer1"])
        out["layer3"] = self.block5(out["layer2"])
        return {k: out[k] for k in self.layers}


def _conv_bn(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _Block(nn.Module):
    """A basic residual block (two 3x3 convs)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, stride, dilation)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation, bias=False),
                                   nn.BatchNorm2d(cout))
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        return F.relu(self.conv2(self.conv1(x)) + self.skip(x))


@BACKBONES.register("synthnet")
class SynthNetBackbone(FrozenBackbone):
    """Small ResNet-style backbone for the synthetic benchmark: layer2 (64 ch) + layer3 (128 ch) at stride 8."""

    channels = {"layer1": 32, "layer2": 64, "layer3": 128}

    def __init__(self, weights_path: Optional[str] = None, layers: Sequence[str] = ("layer2", "layer3"),
                 frozen: bool = True):
        super().__init__()
        self.layers = tuple(layers)
        self.stem = nn.Sequential(_conv_bn(3, 24, stride=2), _conv_bn(24, 32))
        self.layer1 = _Block(32, 32, stride=2)
        self.layer2 = nn.Sequential(_Block(32, 64, stride=2), _Block(64, 64))
        self.layer3 = nn.Sequential(_Block(64, 128, dilation=2), _Block(128, 128, dilation=2))
        if weights_path:
            path = Path(weights_path)
            missing, unexpected = self.load_state_dict(load_state_file(path), strict=False)
            if missing or unexpected:
                raise MethodError(f"{path} does not hold synthnet weights (missing {missing[:3]}, unexpected {unexpected[:3]})")
            self.identity = _weights_identity("file", "synthnet-pretrained", path)
        else:
            self.identity = {"weights": "random-init", "source": "none"}
        if frozen:
            self.freeze()

    def train(self, mode: bool = True):
        # only the frozen copy is pinned to eval mode; pretraining trains it normally
        if any(p.requires_grad for p in self.parameters()):
            return nn.Module.train(self, mode)
        return super().train(mode)

    def forward(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        x = self.layer1(self.stem(images))
        out = {"layer1": x}
        out["layer2"] = x = self.layer2(x)
        out["layer3"] = self.layer3(x)
        return {k: out[k] for k in self.layers}


def build_backbone(name: str, **options) -> FrozenBackbone:
    return BACKBONES.get(name)(**options)
