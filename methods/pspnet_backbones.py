"""The backbones of PFENet's released code (Tian et al., "Prior Guided Feature Enrichment Network for
Few-Shot Segmentation", TPAMI 2020; github.com/dvlab-research/PFENet `model/resnet.py`, `model/vgg.py`,
`model/PFENet.py`), laid out module for module as theirs so that their checkpoints load by renaming only.

* ``resnet50-deepstem`` / ``resnet101-deepstem``: PSPNet's ResNet (Zhao et al., CVPR 2017) with the deep
  stem (three 3x3 convs 64-64-128, then max-pool) as `layer0`; in `layer3` every block's 3x3 conv has
  dilation 2 and stride 1, in `layer4` dilation 4 (the first blocks' 1x1 shortcut stride 1 too): output
  stride 8 from layer2 on (473 -> 60).
* ``vgg16bn-pfenet``: VGG16 with batch norm (Simonyan & Zisserman, ICLR 2015), max-pools with
  `ceil_mode=True`, cut as PFENet's `get_vgg16_layer`: layer0 = conv1 block + pool1, layer1 = conv2 block +
  pool2, layer2 = conv3 block + pool3 (256 ch, stride 8), layer3 = conv4 block + pool4 (512, stride 16),
  layer4 = conv5 block without pool5 (512, stride 16).

Weights: random init (the published PFENet checkpoints hold layer0..layer4), or `weights_path`: an
ImageNet file as PFENet's `initmodel/` ones (PSPNet's `resnet50_v2.pth` names, torchvision's
`vgg16_bn` names) or a state dict already in these names. Registered in `methods.backbones.BACKBONES`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck

from methods.backbones import BACKBONES, FrozenBackbone, _weights_identity, load_state_file
from methods.registry import MethodError

#: the backbones registered here (those of PFENet's code)
PFENET_BACKBONES = ("resnet50-deepstem", "resnet101-deepstem", "vgg16bn-pfenet")
#: PSPNet ImageNet file names of the deep stem -> index in `layer0`
_STEM = {"conv1": 0, "bn1": 1, "conv2": 3, "bn2": 4, "conv3": 6, "bn3": 7}


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _stage(inplanes: int, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
    """Bottleneck stage; `dilation` > 1: every 3x3 conv dilated, no stride (as PFENet patches theirs)."""
    stride = 1 if dilation > 1 else stride
    out = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
    layers = [Bottleneck(inplanes, planes, stride, downsample, dilation=dilation)]
    layers += [Bottleneck(out, planes, dilation=dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _load(module: nn.Module, state: Dict[str, torch.Tensor], what: str, path: Path) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise MethodError(f"{path} does not fit {what} (missing {missing[:3]}, unexpected {unexpected[:3]})")


class _FiveLayerBackbone(FrozenBackbone):
    """Base: modules `layer0` .. `layer4` run in order; weights from a file in the subclass's names."""

    def _load_weights(self, weights_path: Optional[str], what: str) -> None:
        """Random init (identity says so), or the file at `weights_path` renamed by `_own_names`."""
        self.identity = {"weights": "random-init", "source": "none"}
        if weights_path:
            path = Path(weights_path)
            _load(self, self._own_names(load_state_file(path)), what, path)
            self.identity = _weights_identity("file", "local", path)

    @staticmethod
    def _own_names(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        out = {}
        x = images
        for name in ("layer0", "layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
            out[name] = x
            if all(k in out for k in self.layers):
                break
        return {k: out[k] for k in self.layers}


class DeepStemResNet(_FiveLayerBackbone):
    """PSPNet's deep-stem ResNet, layer3/4 dilated 2/4 in all blocks, output stride 8."""

    channels = {"layer0": 128, "layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}
    depth: Sequence[int] = (3, 4, 6, 3)

    def __init__(self, weights_path: Optional[str] = None, layers: Sequence[str] = ("layer2", "layer3", "layer4")):
        super().__init__()
        self.layers = tuple(layers)
        self.layer0 = nn.Sequential(
            _conv3x3(3, 64, 2), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            _conv3x3(64, 64), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            _conv3x3(64, 128), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1))
        self.layer1 = _stage(128, 64, self.depth[0], 1, 1)
        self.layer2 = _stage(256, 128, self.depth[1], 2, 1)
        self.layer3 = _stage(512, 256, self.depth[2], 2, 2)
        self.layer4 = _stage(1024, 512, self.depth[3], 2, 4)
        self._load_weights(weights_path, type(self).__name__)
        self.freeze()

    @staticmethod
    def _own_names(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """PSPNet's ImageNet names (conv1, bn1, ... layer1 ..., fc) -> ours; the classifier dropped."""
        out = {}
        for key, value in state.items():
            head, _, rest = key.partition(".")
            if head in _STEM:
                out[f"layer0.{_STEM[head]}.{rest}"] = value
            elif not head.startswith("fc"):
                out[key] = value
        return out


@BACKBONES.register("resnet50-deepstem")
class DeepStemResNet50(DeepStemResNet):
    depth = (3, 4, 6, 3)


@BACKBONES.register("resnet101-deepstem")
class DeepStemResNet101(DeepStemResNet):
    depth = (3, 4, 23, 3)


#: VGG16 configuration D; "M" a max-pool (ceil mode). PFENet's cut points in `features`: 7, 14, 24, 34, 43.
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_VGG_CUTS = (0, 7, 14, 24, 34, 43)


@BACKBONES.register("vgg16bn-pfenet")
class PFENetVGG16BN(_FiveLayerBackbone):
    """VGG16-BN cut into layer0..layer4 as PFENet (pool5 dropped): layer2 stride 8, layer3/4 stride 16."""

    channels = {"layer0": 64, "layer1": 128, "layer2": 256, "layer3": 512, "layer4": 512}

    def __init__(self, weights_path: Optional[str] = None, layers: Sequence[str] = ("layer2", "layer3", "layer4")):
        super().__init__()
        self.layers = tuple(layers)
        features, cin = [], 3
        for v in _VGG16:
            if v == "M":
                features.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
            else:
                features += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                cin = v
        for index in range(5):
            setattr(self, f"layer{index}", nn.Sequential(*features[_VGG_CUTS[index]:_VGG_CUTS[index + 1]]))
        self._load_weights(weights_path, "PFENet's VGG16-BN")
        self.freeze()

    @staticmethod
    def _own_names(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """torchvision's `features.N.*` -> `layerK.(N - cut).*`; the classifier and unused pool5 dropped."""
        out = {}
        for key, value in state.items():
            if key.startswith("features."):
                _, index, rest = key.split(".", 2)
                layer = max(k for k in range(5) if _VGG_CUTS[k] <= int(index))
                out[f"layer{layer}.{int(index) - _VGG_CUTS[layer]}.{rest}"] = value
            elif key.startswith("layer"):
                out[key] = value
        return out
