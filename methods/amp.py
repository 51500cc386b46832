"""AMP (Siam, Oreshkin & Jagersand: "AMP: Adaptive Masked Proxies for Few-Shot Segmentation",
ICCV 2019, arXiv:1902.11123), written from the paper and the spec notes (the official code,
MSiam/AdaptiveMaskedProxies, `ptsemseg/models/fcn.py` and `utils.py`, was read for the details).

* base training: ordinary segmentation over the split's n training classes + background (n + 1
  outputs) with the query's full label map (`TrainingContext.query_labels`), cross-entropy;
* classifier: cosine-normalised, multi-resolution as FCN-8s: a trainable 1x1 embedding (`embed_width`,
  the reduced FCN's `fconv`, read through a ReLU as the original classifier does) and, as the skip
  levels, the frozen layer3 and layer2 (post-ReLU too); at each level the L2-normalised features meet
  L2-normalised class rows (no bias), scaled by a learnable scale (init 10, `use_scale`), and the
  levels' scores are summed;
* imprinting (test time, no backprop): at each level the masked proxy (masked average of the
  normalised support features over the foreground) is normalised and appended as the novel class row;
  the background row becomes normalise((1 - alpha) w_bg + alpha * background proxy), alpha = 0.25821;
* prediction: foreground = the novel row wins the argmax over all rows (background, the n base
  classes, novel), so channel 1 = novel score, channel 0 = max over the other rows;
* k-shot: the proxies are averaged over the shots before normalising (`compute_weight`).

Since evaluation caches codes per image, the imprinting happens in `decode` from the support codes
(the proxies), with the trained rows left untouched between episodes (the original reverses its
imprinting after each episode).

Deviations from the original, on purpose:
* frozen shared backbone (the original fine-tunes a dilated VGG16 FCN-8s with its fc layers reduced to
  a 1x1 512->256 `fconv`); the embedding here reads layer2 ++ layer3, and the skip levels are the frozen
  layer3/layer2 at stride 8 (FCN-8s sums conv5/conv4/conv3 scores at strides 8/8/4 in the reduced net);
* the classifier rows are normalised during training too (the normalised-training variant), and the
  ReLU comes before the normalisation (the original normalises, then applies the classifier's ReLU);
  dropout (`dropout`) on the embedding during base training only. Without the ReLU the trained
  background row ended up anti-aligned with the background embeddings while every masked proxy kept
  their common component, so the imprinted novel row won everywhere (held-out validation 0.13, at the
  all-foreground level);
* the number of classifier rows is fixed at construction (`num_base_classes`, 15 for PASCAL-5i and
  the synthetic benchmark) so that checkpoints have a fixed shape;
* only the background row is adapted: the support masks are binary, so base classes present in the
  support (which the original also adapts) are unknown;
* the optional query re-imprinting with pseudo-labels (the iterative variant) is not implemented;
* without a `TrainingContext` (unit tests) the loss falls back to an episodic one: imprint from the
  support and take the query cross-entropy of the binary output.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from methods.base import IGNORE_INDEX
from methods.common import BackboneMethod, support_vectors
from methods.registry import register_method

LEVELS = ("embedding", "layer3", "layer2")


def imprint(rows: torch.Tensor, fg_proxy: torch.Tensor, bg_proxy: torch.Tensor, alpha: float) -> torch.Tensor:
    """Classifier rows of an episode: [R, C] trained rows (row 0 = background), [B, C] averaged proxies ->
    [B, R + 1, C]: background adapted with `alpha`, base rows kept, the novel row (normalised proxy) last."""
    batch = fg_proxy.shape[0]
    rows = F.normalize(rows, dim=1)
    background = F.normalize((1 - alpha) * rows[0] + alpha * bg_proxy, dim=1)
    novel = F.normalize(fg_proxy, dim=1)
    return torch.cat([background[:, None], rows[1:].expand(batch, -1, -1), novel[:, None]], dim=1)


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
                 alpha: float = 0.25821, scale: float = 10.0, dropout: float = 0.5, base_rows_compete: bool = True,
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
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        self._options.update(embed_width=embed_width, num_base_classes=num_base_classes, levels=list(self.levels),
                             alpha=alpha, scale=scale, dropout=dropout, base_rows_compete=base_rows_compete)

    def _level_features(self, feats: torch.Tensor, drop: bool = False):
        """L2-normalised features of each level, [N, C_level, h, w]."""
        c2 = self.backbone.channels["layer2"]
        out = []
        for level in self.levels:
            if level == "embedding":  # the original classifier reads ReLU(fconv) (then dropout)
                x = F.relu(self.embed(feats))
                x = self.dropout(x) if drop else x
            else:
                x = feats[:, :c2] if level == "layer2" else feats[:, c2:self.feature_channels]
            out.append(F.normalize(x, dim=1))
        return out

    def query_code(self, query_feats):
        return tuple(self._level_features(query_feats))

    def support_code(self, support_feats, support_masks):
        """Per level: the foreground and background proxies (masked averages), [N, C_level] each."""
        code = []
        for x in self._level_features(support_feats):
            fg, bg = support_vectors(x[:, None], support_masks[:, None])
            code += [fg[:, 0], bg[:, 0]]
        return tuple(code)

    def decode(self, query_code, support_code):
        scores = 0
        for index, feats in enumerate(query_code):
            fg, bg = support_code[2 * index].mean(dim=1), support_code[2 * index + 1].mean(dim=1)  # k-shot: mean
            rows = imprint(self.rows[index], fg, bg, self.alpha)
            scores = scores + torch.einsum("bchw,brc->brhw", feats, rows)
        scores = self.scale * scores
        others = scores[:, :-1].amax(dim=1) if self.base_rows_compete else scores[:, 0]
        return torch.stack([others, scores[:, -1]], dim=1)

    def base_logits(self, query_feats: torch.Tensor) -> torch.Tensor:
        """Scores over background + the base classes, [B, n + 1, h, w] (base training)."""
        scores = 0
        for rows, feats in zip(self.rows, self._level_features(query_feats, drop=self.training)):
            scores = scores + torch.einsum("bchw,rc->brhw", feats, F.normalize(rows, dim=1))
        return self.scale * scores

    def training_loss(self, query_feats, support_feats, support_masks, query_mask, context=None):
        if context is None:
            return super().training_loss(query_feats, support_feats, support_masks, query_mask)
        labels = context.query_labels.long()
        if len(context.base_classes) > self.num_base_classes:
            raise ValueError(f"AMP was built with {self.num_base_classes} base classes but the split trains "
                             f"{len(context.base_classes)}: set num_base_classes")
        logits = F.interpolate(self.base_logits(query_feats), size=labels.shape[-2:], mode="bilinear",
                               align_corners=False)
        return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
