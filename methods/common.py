"""Building blocks shared by the CANet-family methods (CANet, SimPropNet, PGN ...)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from methods.backbones import FrozenBackbone, build_backbone
from methods.base import IGNORE_INDEX, FewShotSegmenter, foreground

MAP_EPS = 5e-4  # CANet's epsilon in masked average pooling
OTHER_CLASS = -1  # TrainingContext.query_labels: a pixel of a class outside the split's training classes


def resize_mask_to(masks: torch.Tensor, size) -> torch.Tensor:
    """Float masks [N, H, W] -> [N, h, w] by bilinear resampling (soft, as CANet)."""
    return F.interpolate(masks[:, None].float(), size=size, mode="bilinear", align_corners=True)[:, 0]


def masked_average_pool(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Masked average pooling (SG-One, Zhang et al. 2018): [N, C, h, w], [N, H, W] -> [N, C].

    The mask is resized to the feature map; the result is sum(F * m) / (sum(m) + eps).
    """
    weights = resize_mask_to(masks, features.shape[-2:])
    total = (features * weights[:, None]).sum(dim=(2, 3))
    return total / (weights.sum(dim=(1, 2))[:, None] + MAP_EPS)


def interpolation_weights(size_in: int, size_out: int, like: torch.Tensor) -> torch.Tensor:
    """[size_in, size_out]: entry (i, j) is the weight of input i in output j of 1-D linear resizing
    (align_corners=False), the per-axis factor of bilinear resizing."""
    eye = torch.eye(size_in, dtype=like.dtype, device=like.device)[None]
    return F.interpolate(eye, size=size_out, mode="linear", align_corners=False)[0]


def upsampled_average_pool(features: torch.Tensor, masks: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """MAP of [N, C, h, w] features bilinearly upsampled to the [N, H, W] masks (PANet's `getFeatures`, eps theirs),
    without the upsampled features: sum(up(F) * m) = sum(F * (R_h m R_w^T))."""
    (h, w), (height, width) = features.shape[-2:], masks.shape[-2:]
    masks = masks.to(features.dtype)
    rows, cols = interpolation_weights(h, height, features), interpolation_weights(w, width, features)
    weights = rows @ masks @ cols.T  # [N, h, w]
    return (features * weights[:, None]).sum(dim=(2, 3)) / (masks.sum(dim=(1, 2))[:, None] + eps)


def tile(vector: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[N, C] -> [N, C, h, w] with the spatial size of `like`."""
    return vector[:, :, None, None].expand(-1, -1, *like.shape[-2:])


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, align_corners: bool = False) -> torch.Tensor:
    """Cross-entropy of 2-channel logits resized (bilinear, `align_corners` as the method's authors: True
    for CANet and FWB) to a {0, 1, 255} target."""
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=align_corners)
    return F.cross_entropy(logits, target.long(), ignore_index=IGNORE_INDEX)


def _trainable_convs(module: nn.Module):
    if isinstance(module, FrozenBackbone):
        return
    if isinstance(module, nn.Conv2d):
        yield module
    for child in module.children():
        yield from _trainable_convs(child)


def init_head(module: nn.Module, std: float = 0.01) -> None:
    """CANet's initialisation of trainable convs: N(0, std) weights, zero bias (frozen backbones untouched)."""
    for layer in _trainable_convs(module):
        nn.init.normal_(layer.weight, 0.0, std)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


class ASPP(nn.Module):
    """CANet's ASPP decoder head: global pool, 1x1 and three dilated 3x3 branches, then two 1x1 convs.

    Every branch and the fusing 1x1 conv end in ReLU + Dropout2d(`dropout`), as `layer6_*` / `layer7` of
    CANet's code. Output: 2-channel logits at the input's resolution (1/8 of the image).
    """

    def __init__(self, width: int, rates: Sequence[int] = (6, 12, 18), dropout: float = 0.5):
        super().__init__()

        def branch(conv: nn.Conv2d) -> nn.Sequential:
            return nn.Sequential(conv, nn.ReLU(inplace=True), nn.Dropout2d(dropout))

        self.pool_branch = branch(nn.Conv2d(width, width, 1))
        self.branches = nn.ModuleList([branch(nn.Conv2d(width, width, 1))]
                                      + [branch(nn.Conv2d(width, width, 3, padding=r, dilation=r)) for r in rates])
        self.project = nn.Sequential(nn.Conv2d(width * (len(rates) + 2), width, 1), nn.ReLU(inplace=True),
                                     nn.Dropout2d(dropout))
        self.classifier = nn.Conv2d(width, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool_branch(F.adaptive_avg_pool2d(x, 1)).expand(-1, -1, *x.shape[-2:])
        out = torch.cat([pooled] + [branch(x) for branch in self.branches], dim=1)
        return self.classifier(self.project(out))


class Encoder(nn.Module):
    """The trainable part of the shared encoder: 3x3 conv (dilation 2) + ReLU + Dropout2d (CANet)."""

    def __init__(self, in_channels: int, width: int, dropout: float = 0.5):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=2, dilation=2)
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor, with_linear: bool = False):
        linear = self.conv(x)
        out = self.dropout(F.relu(linear))
        return (out, linear) if with_linear else out


@dataclass
class TrainingContext:
    """What a training step knows beyond the episode tensors (for methods that need it, e.g. AMP).

    class_ids:    [B] 1-based dataset class of each episode
    query_labels: [B, H, W] query label over the split's training classes: 1..n in `base_classes`
                  order, 0 for background, OTHER_CLASS for every other class (the novel ones), 255 void
    """

    class_ids: torch.Tensor
    query_labels: torch.Tensor
    base_classes: List[int]


class BackboneMethod(FewShotSegmenter):
    """A learned method on a frozen backbone: `encode` (cacheable) then `forward_features`.

    Subclasses implement `forward_features(query_feats, support_feats, support_masks)` and
    `training_loss(query_feats, support_feats, support_masks, query_mask)`.
    """

    takes_backbone = True

    def __init__(self, backbone: str = "resnet50", backbone_weights: Optional[str] = None,
                 backbone_enum: Optional[str] = "IMAGENET1K_V1", backbone_layers: Sequence[str] = ("layer2", "layer3")):
        super().__init__()
        if backbone in ("resnet50", "vgg16"):
            self.backbone: FrozenBackbone = build_backbone(backbone, weights=backbone_enum, weights_path=backbone_weights,
                                                           layers=backbone_layers)
        else:
            self.backbone = build_backbone(backbone, weights_path=backbone_weights, layers=backbone_layers)
        self.backbone_name = backbone
        self.feature_channels = self.backbone.channels["layer2"] + self.backbone.channels["layer3"]
        self._options: Dict = {"backbone": backbone}

    def options(self) -> Dict:
        return {**self._options, "backbone_identity": self.backbone.identity}

    def trainable_state(self) -> Dict[str, torch.Tensor]:
        """Parameters and buffers outside the frozen backbone (what a checkpoint stores)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen backbone features (layer2 ++ layer3, stride 8) of [N, 3, H, W] images."""
        return self.backbone.mid_level(images)

    def encode_episode(self, query: torch.Tensor, supports: torch.Tensor):
        batch, shots = supports.shape[:2]
        query_feats = self.encode(query)
        support_feats = self.encode(supports.flatten(0, 1)).unflatten(0, (batch, shots))
        return query_feats, support_feats

    def forward(self, query, supports, support_masks):
        return self.forward_features(*self.encode_episode(query, supports), support_masks)

    def forward_features(self, query_feats, support_feats, support_masks, **decode_options):
        """Logits from backbone features: [B, C, h, w], [B, K, C, h, w], masks [B, K, H, W] (`decode_options`
        for the method's own `decode`)."""
        batch, shots = support_feats.shape[:2]
        code = self.support_code(support_feats.flatten(0, 1), support_masks.flatten(0, 1))
        return self.decode(self.query_code(query_feats), tuple(v.unflatten(0, (batch, shots)) for v in code),
                           **decode_options)

    # Evaluation caches what does not depend on the other side of the episode: the query's code
    # per image and each support's code per (image, class). Codes are tuples of batched tensors.
    def query_code(self, query_feats: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def support_code(self, support_feats: torch.Tensor, support_masks: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Code of N support images [N, C, h, w] with their masks [N, H, W]."""
        raise NotImplementedError

    def decode(self, query_code, support_code) -> torch.Tensor:
        """Logits [B, 2, h, w] from query codes (batch B) and support codes (each [B, K, ...])."""
        raise NotImplementedError

    def training_loss(self, query_feats, support_feats, support_masks, query_mask,
                      context: Optional[TrainingContext] = None) -> torch.Tensor:
        """Loss of one training batch (default: cross-entropy of the query prediction)."""
        return segmentation_loss(self.forward_features(query_feats, support_feats, support_masks), query_mask)

    def query_grayscale_probability(self, progress: float) -> float:
        """Probability of the ICA augmentation at training progress in [0, 1] (0: none)."""
        return 0.0

    def training_shots(self, step: int) -> int:
        """Support images per training episode at optimisation step `step` (1: one-shot training)."""
        return 1


def input_channel_average(images: torch.Tensor) -> torch.Tensor:
    """ICA (SimPropNet): normalised RGB [N, 3, H, W] -> its channel mean replicated to 3 channels."""
    return images.mean(dim=1, keepdim=True).expand_as(images).contiguous()


def support_vectors(features: torch.Tensor, support_masks: torch.Tensor):
    """Foreground and background MAP vectors per shot: [B, K, C, h, w], [B, K, H, W] -> 2 x [B, K, C].

    Background is the support's non-class, non-ignore area.
    """
    batch, shots = features.shape[:2]
    flat = features.flatten(0, 1)
    masks = support_masks.flatten(0, 1)
    fg = masked_average_pool(flat, foreground(masks))
    bg = masked_average_pool(flat, (masks == 0).float())
    return fg.unflatten(0, (batch, shots)), bg.unflatten(0, (batch, shots))
