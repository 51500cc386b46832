"""AMP (Siam, Oreshkin & Jagersand: "AMP: Adaptive Masked Proxies for Few-Shot Segmentation",
ICCV 2019, arXiv:1902.11123), written from the paper and the spec notes (the official code,
MSiam/AdaptiveMaskedProxies, `ptsemseg/models/fcn.py`, `cosine_sim.py` and `utils.py`, was read for the
details; its normalised-training configs `redfcn8s_pascal_norm_imprinted*.yml` are the ones followed).

* base training: ordinary segmentation over the split's n training classes + background (n + 1
  outputs), cross-entropy on the query's label map (`TrainingContext.query_labels`) as the original's
  loader makes it: pixels of the other (novel) classes are ignored (its label 250), void is
  background (its `lbl[lbl == 255] = 0`), and an image with no training-class pixel is ignored whole;
* classifier: cosine-normalised (`CosineSimLayer`), multi-resolution as FCN-8s: a trainable 1x1 embedding
  (`embed_width`, the reduced FCN's `fconv`) read as the original's classifier reads it, ReLU, then dropout,
  then L2 normalisation; as the skip levels, the frozen layer3 and layer2 (post-ReLU, as conv4 / conv3),
  normalised; at each level the normalised features meet normalised class rows (no bias), times that
  level's own learnable scale (init 20, one per level as each `CosineSimLayer` has its own), and the
  levels' scores are summed;
* imprinting (test time, no backprop): at each level the masked proxies are pooled from the RAW maps,
  as `extract` / `masked_embeddings` do (the embedding before its ReLU, the skip levels as they are;
  features nearest-upsampled to the mask's size, then the exact mean over the mask's pixels); the novel
  row is the normalised foreground proxy, the background row becomes
  normalise((1 - alpha) w_bg + alpha * background proxy) with the normalised trained w_bg, alpha = 0.25821;
* prediction: foreground = the novel row wins the argmax over all rows (background, the n base
  classes, novel), so channel 1 = novel score, channel 0 = max over the other rows;
* k-shot: the raw proxies are averaged over the shots before normalising (`compute_weight`).

Since evaluation caches codes per image, the imprinting happens in `decode` from the support codes
(the proxies), with the trained rows left untouched between episodes (the original reverses its
imprinting after each episode).

Deviations from the original, on purpose:
* frozen shared backbone (the original fine-tunes a dilated VGG16 FCN-8s with its fc layers reduced to
  a 1x1 512->256 `fconv`); the embedding here reads layer2 ++ layer3, and the skip levels are the frozen
  layer3/layer2 at stride 8 (in the dilated reduced net the fconv, conv4 and pooled conv3 scores it sums are
  all at stride 8 too);
* the number of classifier rows is fixed at construction (`num_base_classes`, 15 for PASCAL-5i and
  the synthetic benchmark) so that checkpoints have a fixed shape;
* only the background row is adapted: the support masks are binary, so base classes present in the
  support (which the original also adapts) are unknown;
* the optional query re-imprinting with pseudo-labels (the iterative variant) is not implemented;
* mean cross-entropy over the non-ignored pixels (the original sums them; RMSprop is insensitive to the scale);
* without a `TrainingContext` (unit tests) the loss falls back to an episodic one: imprint from the
  support and take the query cross-entropy of the binary output.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from methods.base import IGNORE_INDEX
from methods.common import OTHER_CLASS, BackboneMethod
from methods.registry import register_method

LEVELS = ("embedding", "layer3", "layer2")


def imprint(rows: torch.Tensor, fg_proxy: torch.Tensor, bg_proxy: torch.Tensor, alpha: float) -> torch.Tensor:
    """Classifier rows of an episode: [R, C] trained rows (row 0 = background), [B, C] averaged raw proxies ->
    [B, R + 1, C]: background adapted with `alpha`, base rows kept, the novel row (normalised proxy) last."""
    batch = fg_proxy.shape[0]
    rows = F.normalize(rows, dim=1)
    background = F.normalize((1 - alpha) * rows[0] + alpha * bg_proxy, dim=1)
    novel = F.normalize(fg_proxy, dim=1)
    return torch.cat([background[:, None], rows[1:].expand(batch, -1, -1), novel[:, None]], dim=1)


def nearest_masked_mean(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """`masked_embeddings` of the original: [N, C, h, w] features nearest-upsampled to the masks' size
    [N, H, W] (0/1), then averaged over the mask's pixels -> [N, C] (zeros for an empty mask).

    Computed without the upsampled map: each feature cell weighs the number of mask pixels it covers."""
    n, c, h, w = features.shape
    cells = torch.arange(h * w, dtype=torch.float64, device=features.device).view(1, 1, h, w)
    index = F.interpolate(cells, size=masks.shape[-2:], mode="nearest").long().flatten()
    counts = torch.zeros(n, h * w, dtype=features.dtype, device=features.device)
    counts.index_add_(1, index, masks.flatten(1).to(features.dtype))
    total = torch.einsum("ncs,ns->nc", features.flatten(2), counts)
    return total / counts.sum(dim=1, keepdim=True).clamp_min(1)


def base_training_labels(labels: torch.Tensor, num_rows: int) -> torch.Tensor:
    """The original loader's base-training target: other (novel) classes ignored, void background, and an
    image with no training-class pixel ignored whole."""
    out = labels.clone()
    out[labels == IGNORE_INDEX] = 0
    out[labels == OTHER_CLASS] = IGNORE_INDEX
    has_base = ((out >= 1) & (out < num_rows)).flatten(1).any(dim=1)
    out[~has_base] = IGNORE_INDEX
    return out


PROFILES = {
    "synthetic": {"options": {"embed_width": 128}},
    "tiny": {"options": {"embed_width": 16}},
    # The official config: RMSprop, lr 1e-6 (no momentum), wd 5e-4, constant, batch 1 (summed loss;
    # RMSprop makes the step size insensitive to that scale).
    "paper-pascal": {"recipe": {"optimizer": "rmsprop", "lr": 1e-6, "momentum": 0.0, "weight_decay": 5e-4,
                                "schedule": "constant", "batch_size": 1}},
}


@register_method("amp", trainable=True, profiles=PROFILES)
class AMP(BackboneMethod):
    """AMP (Siam et al., ICCV 2019): base-class training, masked proxies imprinted into the classifier."""

    def __init__(self, embed_width: int = 256, num_base_classes: int = 15, levels: Sequence[str] = LEVELS,
                 alpha: float = 0.25821, scale: float = 20.0, dropout: float = 0.5, base_rows_compete: bool = True,
                 **backbone):
        super().__init__(**backbone)
        if not levels or any(level not in LEVELS for level in levels):
            raise ValueError(f"levels must be a non-empty subset of {LEVELS}, got {levels}")
        self.levels, self.alpha, self.num_base_classes = tuple(levels), alpha, num_base_classes
        self.base_rows_compete = base_rows_compete
        self.embed = nn.Conv2d(self.feature_channels, embed_width, 1)
        self.dropout = nn.Dropout2d(dropout)
        channels = {"embedding": embed_width, **self.backbone.channels}
        self.rows = nn.ParameterList(nn.Parameter(torch.randn(num_base_classes + 1, channels[level]) * 0.01)
                                     for level in self.levels)
        self.scales = nn.Parameter(torch.full((len(self.levels),), float(scale)))  # one per level
        self._options.update(embed_width=embed_width, num_base_classes=num_base_classes, levels=list(self.levels),
                             alpha=alpha, scale=scale, dropout=dropout, base_rows_compete=base_rows_compete)

    def _raw_maps(self, feats: torch.Tensor):
        """Each level's map before the classifier: the embedding before its ReLU, the frozen layers as they are."""
        c2 = self.backbone.channels["layer2"]
        maps = {"embedding": lambda: self.embed(feats), "layer2": lambda: feats[:, :c2],
                "layer3": lambda: feats[:, c2:self.feature_channels]}
        return [maps[level]() for level in self.levels]

    def _classifier_inputs(self, feats: torch.Tensor, drop: bool = False):
        """What each level's cosine classifier compares, L2-normalised [N, C_level, h, w] (the original's
        classifier on fconv: ReLU, dropout, then the normalisation inside `CosineSimLayer`)."""
        out = []
        for level, x in zip(self.levels, self._raw_maps(feats)):
            if level == "embedding":
                x = F.relu(x)
                x = self.dropout(x) if drop else x
            out.append(F.normalize(x, dim=1))
        return out

    def query_code(self, query_feats):
        return tuple(self._classifier_inputs(query_feats))

    def support_code(self, support_feats, support_masks):
        """Per level: the foreground and background proxies (means of the raw maps), [N, C_level] each."""
        fg_mask, bg_mask = (support_masks == 1).float(), (support_masks == 0).float()
        code = []
        for x in self._raw_maps(support_feats):
            code += [nearest_masked_mean(x, fg_mask), nearest_masked_mean(x, bg_mask)]
        return tuple(code)

    def decode(self, query_code, support_code):
        scores = 0
        for index, feats in enumerate(query_code):
            fg, bg = support_code[2 * index].mean(dim=1), support_code[2 * index + 1].mean(dim=1)  # k-shot: mean
            rows = imprint(self.rows[index], fg, bg, self.alpha)
            scores = scores + self.scales[index] * torch.einsum("bchw,brc->brhw", feats, rows)
        others = scores[:, :-1].amax(dim=1) if self.base_rows_compete else scores[:, 0]
        return torch.stack([others, scores[:, -1]], dim=1)

    def base_logits(self, query_feats: torch.Tensor) -> torch.Tensor:
        """Scores over background + the base classes, [B, n + 1, h, w] (base training)."""
        scores = 0
        for index, feats in enumerate(self._classifier_inputs(query_feats, drop=self.training)):
            rows = F.normalize(self.rows[index], dim=1)
            scores = scores + self.scales[index] * torch.einsum("bchw,rc->brhw", feats, rows)
        return scores

    def training_loss(self, query_feats, support_feats, support_masks, query_mask, context=None):
        if context is None:
            return super().training_loss(query_feats, support_feats, support_masks, query_mask)
        if len(context.base_classes) > self.num_base_classes:
            raise ValueError(f"AMP was built with {self.num_base_classes} base classes but the split trains "
                             f"{len(context.base_classes)}: set num_base_classes")
        labels = base_training_labels(context.query_labels.long(), self.num_base_classes + 1)
        logits = F.interpolate(self.base_logits(query_feats), size=labels.shape[-2:], mode="bilinear",
                               align_corners=False)
        if not (labels != IGNORE_INDEX).any():
            return logits.sum() * 0.0  # nothing to learn from this batch (F.cross_entropy would give NaN)
        return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
