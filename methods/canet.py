"""CANet (Zhang, Lin, Liu, Yao, Shen: "CANet: Class-Agnostic Segmentation Networks with Iterative
Refinement and Attentive Few-Shot Learning", CVPR 2019), written from the paper and the spec notes.

* encoder: frozen backbone layer2 ++ layer3 (stride 8) -> 3x3 conv, dilation 2, 256 + ReLU + Dropout2d;
* dense comparison module (DCM): the support's masked-average-pooled vector is tiled, concatenated with
  the query features and fused by a 3x3 conv (dilation 2) + ReLU + Dropout2d;
* iterative optimisation module (IOM): x + F([x; y_prev]) with y_prev the previous 2-channel softmax,
  two more residual blocks, ASPP (every branch with ReLU + Dropout2d, as `layer6_*`) and a 1x1 classifier;
* training loss: cross-entropy of the logits upsampled bilinearly with align_corners=True, as their
  `train.py`; support masks are resized to the features the same way (`resize_mask_to`);
* k-shot: an attention branch per shot (conv + ReLU + max-pool + conv + global average pool -> a
  scalar), softmax over shots, weighted sum of the shots' DCM outputs before the IOM.

Deviations from the original, on purpose:
* test time runs a fixed number of refinement steps (`refine_steps`, default 4, the paper's typical
  count); the released code stops when the mIoU computed with the ground truth stops improving,
  which leaks labels;
* training: the original feeds, as history mask, the prediction of the same sample from the previous
  epoch (reset to zeros with probability 0.7). Here the history is, with probability 0.3, the detached
  prediction of a first pass on the same episode, otherwise zeros (no per-sample cache);
* batch norm of the frozen backbone stays in eval mode (the code lets its statistics drift);
* the k-shot attention branch is trained on `kshot_train_shots`-shot episodes every
  `kshot_train_every`-th step (the released code is 1-shot only);
* single-scale evaluation (the paper reports multi-scale testing).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from methods.common import ASPP, BackboneMethod, Encoder, init_head, segmentation_loss, support_vectors, tile
from methods.registry import register_method
from methods.weights import KeyMap

# The head of the authors' `one_shot_network.ResNet` (icoz69/CaNet) in our names (no released weights:
# used by the golden test, tests/golden/make_canet.py). Their backbone (conv1 .. layer3) is our frozen
# backbone; our k-shot attention branch has no counterpart in their 1-shot code.
AUTHORS_OPTIONS = {"width": 256, "aspp_rates": [6, 12, 18], "dropout": 0.5}
AUTHORS_KEYS = KeyMap(
    rules=[("layer5.0.", "encoder.conv."), ("layer55.0.", "dcm.0."), ("residule1.", "res1.body."),
           ("residule2.", "res2.body."), ("residule3.", "res3.body."), ("layer6_0.0.", "decoder.pool_branch.0."),
           ("layer6_1.0.", "decoder.branches.0.0."), ("layer6_2.0.", "decoder.branches.1.0."),
           ("layer6_3.0.", "decoder.branches.2.0."), ("layer6_4.0.", "decoder.branches.3.0."),
           ("layer7.0.", "decoder.project.0."), ("layer9.", "decoder.classifier.")],
    ignore_authors=(r"(conv1|bn1|layer[1-4])\..*",),
    ignore_harness=(r"backbone\..*", r"attention\..*"),
)


class _Residual(nn.Module):
    """x + [ReLU, conv3x3, ReLU, conv3x3](input), CANet's IOM residual block."""

    def __init__(self, cin: int, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(cin, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, padding=1))

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        return x + self.body(x if extra is None else torch.cat([x, extra], dim=1))


# Per-profile entries (bench/profiles.py); the same head scaling and initialisation as SimPropNet.
PROFILES = {
    "synthetic": {"options": {"width": 128, "aspp_rates": [2, 4, 6], "init_std": None}},
    "tiny": {"options": {"width": 16, "aspp_rates": [1, 2, 3], "refine_steps": 2, "init_std": None}},
}


@register_method("canet", trainable=True, profiles=PROFILES)
class CANet(BackboneMethod):
    """CANet (Zhang et al., CVPR 2019): dense comparison + iterative optimisation, attentive k-shot."""

    logits_align_corners = True  # trained so (their loss); evaluated the same way

    def __init__(self, width: int = 256, aspp_rates: Sequence[int] = (6, 12, 18), dropout: float = 0.5,
                 refine_steps: int = 4, history_probability: float = 0.3, kshot_train_every: int = 4,
                 kshot_train_shots: int = 5, init_std: float | None = 0.01, **backbone):
        super().__init__(**backbone)
        if refine_steps < 1:
            raise ValueError("refine_steps must be >= 1")
        self.refine_steps, self.history_probability = refine_steps, history_probability
        self.kshot_train_every, self.kshot_train_shots = kshot_train_every, kshot_train_shots
        self.encoder = Encoder(self.feature_channels, width, dropout)
        self.dcm = nn.Sequential(nn.Conv2d(2 * width, width, 3, padding=2, dilation=2), nn.ReLU(),
                                 nn.Dropout2d(dropout))
        self.attention = nn.Sequential(nn.Conv2d(width, width // 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
                                       nn.Conv2d(width // 2, 1, 3, padding=1), nn.AdaptiveAvgPool2d(1))
        self.res1 = _Residual(width + 2, width)
        self.res2 = _Residual(width, width)
        self.res3 = _Residual(width, width)
        self.decoder = ASPP(width, aspp_rates, dropout)
        if init_std is not None:
            init_head(self, init_std)
        self._options.update(init_std=init_std, width=width, aspp_rates=list(aspp_rates), dropout=dropout, refine_steps=refine_steps,
                             history_probability=history_probability, kshot_train_every=kshot_train_every,
                             kshot_train_shots=kshot_train_shots)

    def query_code(self, query_feats):
        return (self.encoder(query_feats),)

    def support_code(self, support_feats, support_masks):
        z_fg, _ = support_vectors(self.encoder(support_feats)[:, None], support_masks[:, None])
        return (z_fg[:, 0],)

    def compare(self, query_feats, support_feats, support_masks) -> torch.Tensor:
        """DCM output [B, W, h, w], attention-weighted over shots when K > 1."""
        batch, shots = support_feats.shape[:2]
        code = self.support_code(support_feats.flatten(0, 1), support_masks.flatten(0, 1))
        return self._compare(self.query_code(query_feats), tuple(v.unflatten(0, (batch, shots)) for v in code))

    def _compare(self, query_code, support_code) -> torch.Tensor:
        (q,), (z_fg,) = query_code, support_code
        batch, shots = z_fg.shape[:2]
        dense = torch.stack([self.dcm(torch.cat([q, tile(z_fg[:, k], q)], dim=1)) for k in range(shots)], dim=1)
        if shots == 1:
            return dense[:, 0]
        scores = self.attention(dense.flatten(0, 1)).view(batch, shots)
        weights = torch.softmax(scores, dim=1)
        return (weights[:, :, None, None, None] * dense).sum(dim=1)

    def refine(self, compared: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """One IOM pass: logits [B, 2, h, w] from the DCM output and the previous softmax."""
        x = self.res1(compared, history)
        x = self.res3(self.res2(x))
        return self.decoder(x)

    def decode(self, query_code, support_code):
        compared = self._compare(query_code, support_code)
        history = compared.new_zeros(compared.shape[0], 2, *compared.shape[-2:])
        for _ in range(self.refine_steps):
            logits = self.refine(compared, history)
            history = torch.softmax(logits, dim=1)
        return logits

    def training_loss(self, query_feats, support_feats, support_masks, query_mask, context=None):
        compared = self.compare(query_feats, support_feats, support_masks)
        history = compared.new_zeros(compared.shape[0], 2, *compared.shape[-2:])
        use_history = torch.rand(compared.shape[0], device=compared.device) < self.history_probability
        if use_history.any():
            with torch.no_grad():
                first = torch.softmax(self.refine(compared, history), dim=1)
            history = torch.where(use_history[:, None, None, None], first, history)
        return segmentation_loss(self.refine(compared, history), query_mask, align_corners=True)

    def training_shots(self, step: int) -> int:
        """Shots of the training episodes at `step`: k-shot every `kshot_train_every` steps."""
        if self.kshot_train_every and step % self.kshot_train_every == self.kshot_train_every - 1:
            return self.kshot_train_shots
        return 1
