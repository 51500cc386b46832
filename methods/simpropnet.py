"""SimPropNet (Gairola, Hemani, Chopra, Krishnamurthy: "SimPropNet: Improved Similarity Propagation
for Few-shot Image Segmentation", IJCAI 2020, arXiv:2004.15014), written from the paper.

Registered variants (paper Table 5): `simpropnet-dpr`, `simpropnet-fbaf`, `simpropnet-dpr-fbaf`
(both, no ICA) and `simpropnet` (DPr + FBAF + ICA).

Architecture (Sections 3.2-3.5):
* shared encoder: frozen backbone layer2 ++ layer3 (stride 8) -> 3x3 conv, dilation 2, `width` filters
  (256 in the paper) + ReLU + Dropout2d, as CANet's encoder;
* eq. 1: foreground and background masked average pooling of the support features, Z^f and Z^b;
* eq. 2: C(F, Z) = (1 + cos(F, Z)) / 2 per pixel, A^f = C_f / (C_f + C_b), A^b = C_b / (C_f + C_b),
  for the query and (for DPr) the support;
* eq. 3: G0 = F ++ tile(Z^f); G1 = IN(conv(G0) + G0); G2 = IN(conv(G1 ++ A^f ++ A^b) + G1);
  G = IN(conv(G2) + G2);
* decoder: ASPP + two 1x1 convs -> 2 channels at 1/8 size, resized bilinearly by the evaluator;
* DPr: cross-entropy on the query prediction plus on the support prediction (shared decoder);
* ICA: during training the query becomes grayscale (mean of the normalised channels, replicated)
  with probability p0 * exp(-t / tau), t = fraction of training done;
* k-shot (eq. 4): Z^f and Z^b are averaged over the shots.

No official code exists (see notes); where the paper is silent, each choice is an option recorded
in the run config, with these defaults:
* `g1_residual="feature"`: G0 has 2W channels but conv(G0) has W, so eq. 3's residual cannot be
  taken literally. We add the feature half F (the residual keeps the query/support features, the
  conv sees Z^f). Alternatives: "project" (1x1 conv of G0), "none" (CANet's DCM has no residual).
* `cosine_on="relu"`: the attention uses the encoder output after ReLU, as CANet's encoder feeds
  everything after ReLU; cos is then in [0, 1] and A^f in [1/3, 2/3]. "linear" uses the pre-ReLU
  output, which gives the maps their full range.
* `fusion_relu=True`: each fusion conv is followed by ReLU inside its residual branch, as in CANet's
  residual blocks; without it the fusion would be linear up to instance norm.
* `instance_norm_affine=False`: PyTorch's default; the paper does not say.
* `dpr_weight=1.0`: support and query losses weigh the same (not stated).
* `ica_p0=0.25` (paper), `ica_tau=0.2`: the decay constant is not stated; 0.2 of training is
  36 of the paper's 180 epochs.
* MAP is normalised by the mask area (SG-One's definition, which the paper cites, and CANet's code),
  and the background mask excludes void (255) pixels.
* Without FBAF (`fbaf=False`) there is no background vector and no attention map: G2 = IN(conv(G1) + G1).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from methods.common import ASPP, BackboneMethod, Encoder, init_head, segmentation_loss, support_vectors, tile
from methods.registry import register_method

ATTENTION_EPS = 1e-6
G1_RESIDUALS = ("feature", "project", "none")


def attention_maps(features: torch.Tensor, z_fg: torch.Tensor, z_bg: torch.Tensor) -> torch.Tensor:
    """Eq. 2: [N, C, h, w] features, [N, C] vectors -> [N, 2, h, w] (A^f, A^b), summing to 1."""
    c_fg = (1 + F.cosine_similarity(features, tile(z_fg, features), dim=1)) / 2
    c_bg = (1 + F.cosine_similarity(features, tile(z_bg, features), dim=1)) / 2
    total = c_fg + c_bg + ATTENTION_EPS
    return torch.stack([c_fg / total, c_bg / total], dim=1)


class _ResidualStep(nn.Module):
    """x_out = IN(branch(x_in) + residual), branch = conv3x3 (+ ReLU)."""

    def __init__(self, cin: int, width: int, relu: bool, affine: bool):
        super().__init__()
        self.conv = nn.Conv2d(cin, width, 3, padding=1)
        self.relu = relu
        self.norm = nn.InstanceNorm2d(width, affine=affine)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        branch = self.conv(x)
        if self.relu:
            branch = F.relu(branch)
        return self.norm(branch + residual)


class SimPropNet(BackboneMethod):
    def __init__(self, dpr: bool = True, fbaf: bool = True, ica: bool = True, width: int = 256,
                 aspp_rates: Sequence[int] = (6, 12, 18), dropout: float = 0.5, g1_residual: str = "feature",
                 cosine_on: str = "relu", fusion_relu: bool = True, instance_norm_affine: bool = False,
                 dpr_weight: float = 1.0, ica_p0: float = 0.25, ica_tau: float = 0.2,
                 init_std: float | None = 0.01, **backbone):
        super().__init__(**backbone)
        if g1_residual not in G1_RESIDUALS:
            raise ValueError(f"g1_residual must be one of {G1_RESIDUALS}, got {g1_residual!r}")
        if cosine_on not in ("relu", "linear"):
            raise ValueError(f"cosine_on must be 'relu' or 'linear', got {cosine_on!r}")
        self.dpr, self.fbaf, self.ica = dpr, fbaf, ica
        self.g1_residual, self.cosine_on = g1_residual, cosine_on
        self.dpr_weight, self.ica_p0, self.ica_tau = dpr_weight, ica_p0, ica_tau
        self.encoder = Encoder(self.feature_channels, width, dropout)
        self.g1 = _ResidualStep(2 * width, width, fusion_relu, instance_norm_affine)
        self.g1_project = nn.Conv2d(2 * width, width, 1) if g1_residual == "project" else None
        self.g2 = _ResidualStep(width + (2 if fbaf else 0), width, fusion_relu, instance_norm_affine)
        self.g3 = _ResidualStep(width, width, fusion_relu, instance_norm_affine)
        self.decoder = ASPP(width, aspp_rates, dropout)
        if init_std is not None:  # CANet's N(0, 0.01); None keeps PyTorch's default initialisation
            init_head(self, init_std)
        self._options.update(init_std=init_std, dpr=dpr, fbaf=fbaf, ica=ica, width=width, aspp_rates=list(aspp_rates),
                             dropout=dropout, g1_residual=g1_residual, cosine_on=cosine_on,
                             fusion_relu=fusion_relu, instance_norm_affine=instance_norm_affine,
                             dpr_weight=dpr_weight, ica_p0=ica_p0, ica_tau=ica_tau)

    def _encode(self, feats: torch.Tensor):
        out, linear = self.encoder(feats, with_linear=True)
        return out, (linear if self.cosine_on == "linear" else out)

    def _fuse(self, feats, cos_feats, cos_fg, cos_bg, z_fg) -> torch.Tensor:
        """Eq. 3 (with the attention maps of eq. 2 when FBAF is on)."""
        g0 = torch.cat([feats, tile(z_fg, feats)], dim=1)
        if self.g1_residual == "feature":
            residual = feats
        elif self.g1_residual == "project":
            residual = self.g1_project(g0)
        else:
            residual = torch.zeros_like(feats)
        g1 = self.g1(g0, residual)
        if self.fbaf:
            g2 = self.g2(torch.cat([g1, attention_maps(cos_feats, cos_fg, cos_bg)], dim=1), g1)
        else:
            g2 = self.g2(g1, g1)
        return self.g3(g2, g2)

    def query_code(self, query_feats):
        """Encoder output of the query and the features its attention uses."""
        return self._encode(query_feats)

    def support_code(self, support_feats, support_masks):
        """Per support image: Z^f, and the FG/BG vectors of the attention features (eq. 1)."""
        feats, cos_feats = self._encode(support_feats)
        return self._vectors(feats, cos_feats, support_masks)

    @staticmethod
    def _vectors(feats, cos_feats, masks):
        z_fg, _ = support_vectors(feats[:, None], masks[:, None])
        c_fg, c_bg = support_vectors(cos_feats[:, None], masks[:, None])
        return z_fg[:, 0], c_fg[:, 0], c_bg[:, 0]

    def decode(self, query_code, support_code):
        query, query_cos = query_code
        z_fg, c_fg, c_bg = (v.mean(dim=1) for v in support_code)  # eq. 4: average over shots
        return self.decoder(self._fuse(query, query_cos, c_fg, c_bg, z_fg))

    def _predict(self, query_feats, support_feats, support_masks, with_support: bool):
        batch, shots = support_feats.shape[:2]
        s, s_cos = self._encode(support_feats.flatten(0, 1))
        code = tuple(v.unflatten(0, (batch, shots)) for v in self._vectors(s, s_cos, support_masks.flatten(0, 1)))
        query_logits = self.decode(self.query_code(query_feats), code)
        if not with_support:
            return query_logits, None
        z_fg, c_fg, c_bg = (v.mean(dim=1).repeat_interleave(shots, dim=0) for v in code)
        return query_logits, self.decoder(self._fuse(s, s_cos, c_fg, c_bg, z_fg))

    def training_loss(self, query_feats, support_feats, support_masks, query_mask, context=None):
        query_logits, support_logits = self._predict(query_feats, support_feats, support_masks, self.dpr)
        loss = segmentation_loss(query_logits, query_mask)
        if self.dpr:
            loss = loss + self.dpr_weight * segmentation_loss(support_logits, support_masks.flatten(0, 1))
        return loss

    def query_grayscale_probability(self, progress: float) -> float:
        return self.ica_p0 * math.exp(-progress / self.ica_tau) if self.ica else 0.0


# Per-profile entries (see bench/profiles.py). Synthetic: a 128-wide head, ASPP rates scaled to the
# 14 x 14 map, PyTorch's default initialisation (CANet's N(0, 0.01) left CANet at all-background for
# 10 epochs on held-out validation; both methods use the same rule).
PROFILES = {
    "synthetic": {"options": {"width": 128, "aspp_rates": [2, 4, 6], "init_std": None}},
    "tiny": {"options": {"width": 16, "aspp_rates": [1, 2, 3], "init_std": None}},
}


def _variant(name: str, summary: str, **switches):
    @register_method(name, trainable=True, profiles=PROFILES, summary=summary,
                     citation="Gairola, Hemani, Chopra, Krishnamurthy: SimPropNet, IJCAI 2020")
    def build(**options) -> SimPropNet:
        return SimPropNet(**{**switches, **options})

    return build


_variant("simpropnet", "SimPropNet (Gairola et al., IJCAI 2020): DPr + FBAF + ICA", dpr=True, fbaf=True, ica=True)
_variant("simpropnet-dpr", "SimPropNet ablation (Table 5): dual prediction only", dpr=True, fbaf=False, ica=False)
_variant("simpropnet-fbaf", "SimPropNet ablation (Table 5): FG/BG attentive fusion only", dpr=False, fbaf=True, ica=False)
_variant("simpropnet-dpr-fbaf", "SimPropNet ablation (Table 5): DPr + FBAF, no ICA", dpr=True, fbaf=True, ica=False)
