"""PGN (Zhang, Lin, Liu, Guo, Wu, Yao: "Pyramid Graph Networks with Connection Attentions for
Region-Based One-Shot Semantic Segmentation", ICCV 2019), written from the paper and the spec notes
(no official code; the third-party lizhaoliu-Lec/DENet `model/head/pgn.py` was read for the details
the paper leaves open).

* encoder: frozen backbone layer2 ++ layer3 (stride 8) -> 3x3 conv, dilation 2, `width` + ReLU +
  Dropout2d, shared by query and support (as CANet);
* graph: the support nodes are the support pixels with their features multiplied by the (resized)
  mask, plus a small constant (5e-4, as the third-party code) so that masked-out nodes are not exactly
  zero; the query nodes are the query regions of an adaptive-average-pooled grid;
* graph attention unit (GAU), one per pyramid level: attention a_ij = softmax_j(theta(q_i)^T phi(s_j))
  over all support nodes, message m_i = sum_j a_ij g(s_j), output = ReLU(1x1([m_i; g(q_i)])), where
  g is a shared 1x1 conv + ReLU and g(q) is average-pooled to the grid;
* pyramid: GAUs at `grids` (fractions of the feature map: full, 1/2, 1/4 by default), each output
  upsampled bilinearly to the full map and summed;
* decoder: three residual blocks ReLU(x + conv3(ReLU(conv3(x)))), CANet's ASPP and a 1x1 classifier;
  cross-entropy on the query.
* k-shot: all shots' nodes form one support graph (the attention softmax runs over K x h x w nodes),
  as the third-party code does; the paper reports 5-shot results without stating its rule, and this is
  the graph-native reading (no averaging of per-shot outputs).

Deviations / choices:
* frozen shared backbone with BN in eval mode (the paper follows CANet: frozen weights, drifting BN);
* `global_branch=False`: the third-party code also sums a "global" GAU with uniform attention; it is
  not described in the paper, so it is an option, off by default;
* no multi-scale test and no iterative refinement; a single forward pass.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from methods.base import foreground
from methods.common import ASPP, BackboneMethod, Encoder, init_head, resize_mask_to
from methods.registry import register_method

NODE_EPS = 5e-4


class GraphAttentionUnit(nn.Module):
    """Attention from query nodes to support nodes, message passing, fusion with the query node."""

    def __init__(self, width: int):
        super().__init__()
        self.theta = nn.Conv2d(width, width, 1)
        self.phi = nn.Conv2d(width, width, 1)
        self.fuse = nn.Sequential(nn.Conv2d(2 * width, width, 1), nn.ReLU(inplace=True))

    def attention(self, query_nodes: torch.Tensor, support_nodes: torch.Tensor) -> torch.Tensor:
        """[B, C, g, g'] query nodes, [B, K, C, h, w] support nodes -> [B, g*g', K*h*w] (rows sum to 1)."""
        batch, shots = support_nodes.shape[:2]
        keys = self.phi(support_nodes.flatten(0, 1)).unflatten(0, (batch, shots))
        keys = keys.permute(0, 2, 1, 3, 4).flatten(2)  # [B, C, K*h*w]: all shots in one graph
        queries = self.theta(query_nodes).flatten(2).transpose(1, 2)
        return torch.softmax(torch.bmm(queries, keys), dim=2)

    def forward(self, query_nodes, query_values, support_nodes, support_values, uniform: bool = False):
        """query_values = g(q) pooled like the query nodes; support_values = g(s) as [B, C, K*h*w]."""
        if uniform:
            message = support_values.mean(dim=2)[:, :, None, None].expand_as(query_values)
        else:
            attn = self.attention(query_nodes, support_nodes)
            message = torch.bmm(support_values, attn.transpose(1, 2)).view_as(query_values)
        return self.fuse(torch.cat([message, query_values], dim=1))


class _Residual(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1))

    def forward(self, x):
        return F.relu(x + self.body(x))


PROFILES = {
    # Same head scaling and initialisation rule as CANet/SimPropNet on the 14 x 14 synthetic map.
    "synthetic": {"options": {"width": 128, "aspp_rates": [2, 4, 6], "init_std": None}},
    "tiny": {"options": {"width": 16, "aspp_rates": [1, 2, 3], "init_std": None}},
    # The third-party recipe (CANet's): SGD lr 2.5e-3, momentum 0.9, wd 5e-4, constant, batch 8.
    "paper-pascal": {"recipe": {"optimizer": "sgd", "lr": 2.5e-3, "momentum": 0.9, "weight_decay": 5e-4,
                                "schedule": "constant", "batch_size": 8}},
}


@register_method("pgn", trainable=True, profiles=PROFILES)
class PGN(BackboneMethod):
    """PGN (Zhang et al., ICCV 2019): pyramid graph attention between support pixels and query regions."""

    def __init__(self, width: int = 256, grids: Sequence[float] = (1.0, 0.5, 0.25), global_branch: bool = False,
                 aspp_rates: Sequence[int] = (6, 12, 18), dropout: float = 0.5, init_std: float | None = 0.01,
                 **backbone):
        super().__init__(**backbone)
        if not grids or any(not 0 < g <= 1 for g in grids):
            raise ValueError(f"grids must be fractions in (0, 1], got {grids}")
        self.grids, self.global_branch = [float(g) for g in grids], global_branch
        self.encoder = Encoder(self.feature_channels, width, dropout)
        self.g = nn.Sequential(nn.Conv2d(width, width, 1), nn.ReLU(inplace=True))
        self.gaus = nn.ModuleList(GraphAttentionUnit(width) for _ in range(len(self.grids) + int(global_branch)))
        self.residuals = nn.Sequential(_Residual(width), _Residual(width), _Residual(width))
        self.decoder = ASPP(width, aspp_rates, dropout)
        if init_std is not None:
            init_head(self, init_std)
        self._options.update(width=width, grids=self.grids, global_branch=global_branch, aspp_rates=list(aspp_rates),
                             dropout=dropout, init_std=init_std)

    def query_code(self, query_feats):
        return (self.encoder(query_feats),)

    def support_code(self, support_feats, support_masks):
        """Support nodes: encoder features x resized mask (+ a small constant), [N, W, h, w]."""
        feats = self.encoder(support_feats)
        mask = resize_mask_to(foreground(support_masks), feats.shape[-2:])[:, None]
        return (feats * mask + NODE_EPS,)

    def reason(self, query: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        """Pyramid graph reasoning: [B, W, h, w] query, [B, K, W, h, w] support nodes -> [B, W, h, w]."""
        batch, shots = support.shape[:2]
        size = query.shape[-2:]
        values = self.g(support.flatten(0, 1)).unflatten(0, (batch, shots)).permute(0, 2, 1, 3, 4).flatten(2)
        query_values = self.g(query)
        out = 0
        for grid, gau in zip(self.grids, self.gaus):
            cells = (max(1, int(size[0] * grid)), max(1, int(size[1] * grid)))
            nodes = F.adaptive_avg_pool2d(query, cells)
            level = gau(nodes, F.adaptive_avg_pool2d(query_values, cells), support, values)
            out = out + (level if cells == tuple(size) else
                         F.interpolate(level, size=size, mode="bilinear", align_corners=False))
        if self.global_branch:
            out = out + self.gaus[-1](query, query_values, support, values, uniform=True)
        return out

    def decode(self, query_code, support_code):
        (query,), (support,) = query_code, support_code
        return self.decoder(self.residuals(self.reason(query, support)))
