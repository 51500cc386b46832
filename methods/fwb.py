"""FWB (Nguyen & Todorovic: "Feature Weighting and Boosting for Few-Shot Segmentation", ICCV 2019),
written from the paper and the spec notes (the author's later repository,
ducminhkhoi/Feature-Weighting-and-Boosting, was read for details the paper leaves open).

* embedding: a trainable 1x1 conv (`embed_width`, linear, like the original's pre-ReLU conv5_3) on the
  frozen layer2 ++ layer3; low-level features: frozen layer2;
* feature weighting: foreground and background masked-average vectors f and b of the support
  embedding; relevance r = L2-normalise(f - b) (the closed-form solution of the paper's objective);
  similarity s = ReLU(cos(F_q * r, f * r)), divided by its maximum over the image;
* head: (low-level features x s) -> 3x3 conv (`head_width`, 128) + ReLU -> 1x1 -> 2 logits; cross-entropy;
* test-time boosting: the weighted prototype f * r is a free variable; for `boost_steps` (10) steps
  the support is segmented with the current prototype and the prototype takes a gradient step on the
  support cross-entropy (Adam, lr 1e-2, as the author's code; `boost_optimizer="sgd"` is the paper's
  plain step with rate `boost_lr`); each of the steps + 1 prototypes is an expert, and the query
  prediction is the experts' foreground probabilities averaged with weights = their IoU on the support;
* logits are upsampled to the support / query masks bilinearly with align_corners=True (boosting and
  training), as every resize of the author's `few_shot_model.py`;
* k-shot: f and b are summed over the shots; the boosting loss is summed over the shots and an
  expert's weight is its IoU averaged over the shots (author's code).

Deviations from the original, on purpose:
* frozen shared backbone (the original fine-tunes VGG16-BN / ResNet-101) with the trainable 1x1
  embedding added so the similarity can be learned; `embed_width=None` uses frozen layer3 as is;
* the low-level features are layer2 at stride 8 (the original uses pool2 / layer1 at stride 4), so
  logits stay at stride 8;
* experts are weighted by their support IoU as in the paper; the author's evaluation script instead
  thresholds an ensemble weighted by the IoU on the *query* ground truth (label leakage), not used;
* the ensemble averages soft foreground probabilities (normalised weights; uniform if every IoU is 0)
  and returns log-probabilities as logits; the author's code sums hard masks;
* during training, gradients also flow through the support branch (the author's code computes the
  support vectors under no_grad; the paper does not say); no boosting during training;
* expert IoU ignores void (255) support pixels.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from methods.base import IGNORE_INDEX
from methods.common import BackboneMethod, segmentation_loss, support_vectors, tile
from methods.registry import register_method

PROB_EPS = 1e-6


def relevance(f_fg: torch.Tensor, f_bg: torch.Tensor) -> torch.Tensor:
    """Feature relevance r = normalise(f_fg - f_bg), [N, C] -> [N, C] (unit L2 norm)."""
    return F.normalize(f_fg - f_bg, dim=1)


def weighted_similarity(features: torch.Tensor, r: torch.Tensor, prototype: torch.Tensor) -> torch.Tensor:
    """s = ReLU(cos(F * r, prototype)) / max over the image: [N, C, h, w], [N, C], [N, C] -> [N, 1, h, w].

    `prototype` is already weighted (f * r).
    """
    s = F.relu(F.cosine_similarity(features * tile(r, features), tile(prototype, features), dim=1))[:, None]
    return s / (s.amax(dim=(2, 3), keepdim=True) + 1e-16)


def support_iou(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Foreground IoU of 2-channel logits [N, 2, H, W] against {0, 1, 255} masks [N, H, W], void ignored."""
    pred = logits[:, 1] > logits[:, 0]  # argmax over the two channels (ties: background)
    target = masks == 1
    valid = masks != IGNORE_INDEX
    inter = (pred & target).sum(dim=(1, 2)).float()
    union = ((pred | target) & valid).sum(dim=(1, 2)).float()
    return inter / union.clamp(min=1)


PROFILES = {
    "synthetic": {"options": {"embed_width": 128, "head_width": 128}},
    "tiny": {"options": {"embed_width": 16, "head_width": 16, "boost_steps": 2}},
    # The author's script: SGD, momentum 0.9, wd 1e-4, poly(0.9), lr 7e-3, batch 8.
    "paper-pascal": {"recipe": {"optimizer": "sgd", "lr": 7e-3, "momentum": 0.9, "weight_decay": 1e-4,
                                "schedule": "poly", "batch_size": 8}},
}


@register_method("fwb", trainable=True, profiles=PROFILES)
class FWB(BackboneMethod):
    """FWB (Nguyen & Todorovic, ICCV 2019): feature weighting + test-time boosting of the prototype."""

    logits_align_corners = True  # trained and boosted so (their code); evaluated the same way

    def __init__(self, embed_width: Optional[int] = 256, head_width: int = 128, boost_steps: int = 10,
                 boost_lr: float = 1e-2, boost_optimizer: str = "adam", **backbone):
        super().__init__(**backbone)
        if boost_optimizer not in ("adam", "sgd"):
            raise ValueError(f"boost_optimizer must be 'adam' or 'sgd', got {boost_optimizer!r}")
        if boost_steps < 0:
            raise ValueError("boost_steps must be >= 0")
        self.boost_steps, self.boost_lr, self.boost_optimizer = boost_steps, boost_lr, boost_optimizer
        self.low_channels = self.backbone.channels["layer2"]
        self.embed = nn.Conv2d(self.feature_channels, embed_width, 1) if embed_width else None
        self.head = nn.Sequential(nn.Conv2d(self.low_channels, head_width, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(head_width, 2, 1))
        self._options.update(embed_width=embed_width, head_width=head_width, boost_steps=boost_steps,
                             boost_lr=boost_lr, boost_optimizer=boost_optimizer)

    def _features(self, feats: torch.Tensor):
        low = feats[:, :self.low_channels]
        return (self.embed(feats) if self.embed is not None else feats[:, self.low_channels:]), low

    def query_code(self, query_feats):
        return self._features(query_feats)

    def support_code(self, support_feats, support_masks):
        """Per support: f, b [N, C], embedding [N, C, h, w], low-level [N, C', h, w], mask [N, H, W]."""
        embedding, low = self._features(support_feats)
        f_fg, f_bg = support_vectors(embedding[:, None], support_masks[:, None])
        return f_fg[:, 0], f_bg[:, 0], embedding, low, support_masks

    def segment(self, embedding, low, r, prototype) -> torch.Tensor:
        """Head logits [N, 2, h, w] for features weighted by r and compared with `prototype` (= f * r)."""
        return self.head(low * weighted_similarity(embedding, r, prototype))

    def boost(self, prototype, r, embedding, low, masks):
        """Test-time boosting. prototype, r: [B, C]; support embedding/low [B, K, ...]; masks [B, K, H, W].

        Returns the experts [B, T, C] (T = boost_steps + 1, the initial prototype first) and their
        support IoUs [B, T] (mean over shots). Episodes are independent: the loss is a sum of
        per-episode losses and the optimiser is element-wise.
        """
        batch, shots = embedding.shape[:2]
        flat_e, flat_low, flat_masks = embedding.flatten(0, 1), low.flatten(0, 1), masks.flatten(0, 1).long()
        flat_r = r.repeat_interleave(shots, dim=0)
        experts, ious = [], []
        f = prototype.detach().clone()
        m, v = torch.zeros_like(f), torch.zeros_like(f)
        with torch.enable_grad():
            for step in range(self.boost_steps + 1):
                f.requires_grad_(True)
                logits = self.segment(flat_e, flat_low, flat_r, f.repeat_interleave(shots, dim=0))
                logits = F.interpolate(logits, size=flat_masks.shape[-2:], mode="bilinear", align_corners=True)
                experts.append(f.detach())
                ious.append(support_iou(logits.detach(), flat_masks).view(batch, shots).mean(dim=1))
                if step == self.boost_steps:
                    break
                pixel = F.cross_entropy(logits, flat_masks, ignore_index=IGNORE_INDEX, reduction="none")
                valid = (flat_masks != IGNORE_INDEX).sum(dim=(1, 2)).clamp(min=1)
                loss = (pixel.sum(dim=(1, 2)) / valid).sum()  # per-image mean, summed over shots and episodes
                (grad,) = torch.autograd.grad(loss, f)
                f = f.detach()
                if self.boost_optimizer == "sgd":
                    f = f - self.boost_lr * grad
                else:  # Adam (betas 0.9, 0.999, eps 1e-8), as torch.optim.Adam in the author's code
                    m = 0.9 * m + 0.1 * grad
                    v = 0.999 * v + 0.001 * grad * grad
                    m_hat, v_hat = m / (1 - 0.9 ** (step + 1)), v / (1 - 0.999 ** (step + 1))
                    f = f - self.boost_lr * m_hat / (v_hat.sqrt() + 1e-8)
        return torch.stack(experts, dim=1), torch.stack(ious, dim=1)

    def _plain(self, query_code, support_code):
        query, query_low = query_code
        f_fg, f_bg = support_code[0].sum(dim=1), support_code[1].sum(dim=1)  # k-shot: sums over shots
        r = relevance(f_fg, f_bg)
        return query, query_low, r, f_fg * r

    def decode(self, query_code, support_code):
        query, query_low, r, prototype = self._plain(query_code, support_code)
        if self.boost_steps == 0:
            return self.segment(query, query_low, r, prototype)
        experts, ious = self.boost(prototype, r, *support_code[2:])
        steps = experts.shape[1]
        logits = self.segment(query.repeat_interleave(steps, dim=0), query_low.repeat_interleave(steps, dim=0),
                              r.repeat_interleave(steps, dim=0), experts.flatten(0, 1))
        probs = torch.softmax(logits, dim=1)[:, 1].unflatten(0, (-1, steps))
        weights = torch.where(ious.sum(dim=1, keepdim=True) > 0, ious, torch.ones_like(ious))
        weights = weights / weights.sum(dim=1, keepdim=True)
        p = (weights[:, :, None, None] * probs).sum(dim=1).clamp(PROB_EPS, 1 - PROB_EPS)
        return torch.stack([torch.log1p(-p), torch.log(p)], dim=1)

    def training_loss(self, query_feats, support_feats, support_masks, query_mask, context=None):
        """Cross-entropy of the query prediction with the support prototype (no boosting in training)."""
        batch, shots = support_feats.shape[:2]
        code = self.support_code(support_feats.flatten(0, 1), support_masks.flatten(0, 1))
        code = tuple(v.unflatten(0, (batch, shots)) for v in code)
        logits = self.segment(*self._plain(self.query_code(query_feats), code))
        return segmentation_loss(logits, query_mask, align_corners=True)
