"""HSNet's layers (Min, Kang, Cho: "Hypercorrelation Squeeze for Few-Shot Segmentation", ICCV 2021,
arXiv:2104.01538): the hypercorrelation, the center-pivot 4D convolution and the squeeze / mix learner.

A 4D tensor is laid out [B, C, ha, wa, hb, wb]: query positions (ha, wa), support positions (hb, wb).
Group order in the learner is deepest first (the paper's layer4, layer3, layer2).
"""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from methods.registry import MethodError

CORRELATION_EPS = 1e-5  # added to the L2 norm of every feature vector (as the released code)
#: the paper's squeeze blocks, deepest group first: kernel size and support-dim stride of each 4D conv
PAPER_KERNELS = ((3, 3, 3), (5, 3, 3), (5, 5, 3))
PAPER_STRIDES = ((2, 2, 2), (4, 2, 2), (4, 4, 2))
PAPER_CHANNELS = (16, 64, 128)


def l2_normalise(features: torch.Tensor) -> torch.Tensor:
    """Feature vectors [N, C, h, w] divided by (their L2 norm + eps)."""
    return features / (features.norm(dim=1, p=2, keepdim=True) + CORRELATION_EPS)


def relu_cosine(query: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """ReLU of the dot products of normalised features: [B, C, ha, wa], [B, C, hb, wb] -> [B, ha, wa, hb, wb]."""
    batch, _, ha, wa = query.shape
    hb, wb = support.shape[-2:]
    corr = torch.bmm(query.flatten(2).transpose(1, 2), support.flatten(2))
    return corr.view(batch, ha, wa, hb, wb).clamp(min=0)


def hypercorrelation(query: Sequence[torch.Tensor], support: Sequence[torch.Tensor],
                     group_sizes: Sequence[int]) -> List[torch.Tensor]:
    """Per layer group, the stacked correlations [B, n, ha, wa, hb, wb] of its n layers (normalised
    features, shallow to deep in the inputs); returned deepest group first."""
    groups, start = [], 0
    for size in group_sizes:
        groups.append(torch.stack([relu_cosine(q, s) for q, s in zip(query[start:start + size], support[start:start + size])],
                                  dim=1))
        start += size
    return groups[::-1]


class CenterPivotConv4d(nn.Module):
    """Center-pivot 4D convolution: a 2D conv over the query dims at every strided support position
    plus a 2D conv over the support dims (strided) at every query position; the two are summed."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, support_stride: int):
        super().__init__()
        self.support_stride = support_stride
        self.query_conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)
        self.support_conv = nn.Conv2d(in_channels, out_channels, kernel, stride=support_stride, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, ha, wa, hb, wb = x.shape
        step = self.support_stride
        pivots = x[..., ::step, ::step]  # the support positions the strided support conv is centred on
        ph, pw = pivots.shape[-2:]
        over_query = self.query_conv(pivots.permute(0, 4, 5, 1, 2, 3).reshape(batch * ph * pw, channels, ha, wa))
        out = over_query.shape[1]
        over_query = over_query.view(batch, ph, pw, out, ha, wa).permute(0, 3, 4, 5, 1, 2)
        over_support = self.support_conv(x.permute(0, 2, 3, 1, 4, 5).reshape(batch * ha * wa, channels, hb, wb))
        over_support = over_support.view(batch, ha, wa, out, *over_support.shape[-2:]).permute(0, 3, 1, 2, 4, 5)
        return over_query + over_support


def block(in_channels: int, channels: Sequence[int], kernels: Sequence[int], strides: Sequence[int],
          groups: int = 4) -> nn.Sequential:
    """Three (center-pivot 4D conv, GroupNorm(4), ReLU) triples."""
    layers: List[nn.Module] = []
    for out, kernel, stride in zip(channels, kernels, strides):
        layers += [CenterPivotConv4d(in_channels, out, kernel, stride), nn.GroupNorm(groups, out), nn.ReLU(inplace=True)]
        in_channels = out
    return nn.Sequential(*layers)


def resize_query_dims(x: torch.Tensor, size) -> torch.Tensor:
    """Bilinear (align_corners) resize of the query dims of a 4D tensor."""
    batch, channels, ha, wa, hb, wb = x.shape
    flat = x.permute(0, 4, 5, 1, 2, 3).reshape(batch * hb * wb, channels, ha, wa)
    flat = F.interpolate(flat, size=tuple(size), mode="bilinear", align_corners=True)
    return flat.view(batch, hb, wb, channels, *flat.shape[-2:]).permute(0, 3, 4, 5, 1, 2)


class HypercorrelationLearner(nn.Module):
    """Squeeze each group's 4D tensor, mix deep into shallow (upsample query dims + add + 3 convs),
    average over the support dims, decode to 2-channel logits (upsampled x `decoder_scale` inside)."""

    def __init__(self, in_channels: Sequence[int], channels: Sequence[int] = PAPER_CHANNELS,
                 kernels: Sequence[Sequence[int]] = PAPER_KERNELS, strides: Sequence[Sequence[int]] = PAPER_STRIDES,
                 decoder_scale: int = 2):
        super().__init__()
        if len(in_channels) != 3 or len(kernels) != 3 or len(strides) != 3 or len(channels) != 3:
            raise MethodError("HSNet's learner takes three layer groups, with three kernels, strides and widths each")
        if any(c % 4 for c in channels):
            raise MethodError(f"HSNet's channels must be multiples of 4 (GroupNorm(4)), got {list(channels)}")
        top = channels[-1]
        self.squeeze = nn.ModuleList(block(c, channels, k, s) for c, k, s in zip(in_channels, kernels, strides))
        self.mix = nn.ModuleList(block(top, [top] * 3, [3] * 3, [1] * 3) for _ in range(2))
        self.decoder1 = nn.Sequential(nn.Conv2d(top, top, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(top, channels[1], 3, padding=1), nn.ReLU())
        self.decoder2 = nn.Sequential(nn.Conv2d(channels[1], channels[1], 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(channels[1], 2, 3, padding=1))
        self.decoder_scale = decoder_scale

    def forward(self, pyramid: Sequence[torch.Tensor]) -> torch.Tensor:
        squeezed = [layer(x) for layer, x in zip(self.squeeze, pyramid)]
        mixed = squeezed[0]
        for mix, finer in zip(self.mix, squeezed[1:]):
            if mixed.shape[-2:] != finer.shape[-2:]:
                raise MethodError(f"HSNet's squeezed support dims differ between layer groups ({tuple(mixed.shape[-2:])} vs "
                                  f"{tuple(finer.shape[-2:])}): change the input size or the support strides")
            mixed = mix(resize_query_dims(mixed, finer.shape[2:4]) + finer)
        encoded = mixed.flatten(-2).mean(dim=-1)
        decoded = self.decoder1(encoded)
        if self.decoder_scale != 1:
            size = (decoded.shape[-2] * self.decoder_scale, decoded.shape[-1] * self.decoder_scale)
            decoded = F.interpolate(decoded, size=size, mode="bilinear", align_corners=True)
        return self.decoder2(decoded)
