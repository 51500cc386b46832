"""OSLSM (Shaban, Bansal, Liu, Essa, Boots: "One-Shot Learning for Semantic Segmentation", BMVC 2017),
written from the paper and the spec notes.

* segmentation branch: the query's features -> a trainable FCN head standing in for fc6/fc7
  (3x3 conv + ReLU + Dropout, 1x1 conv + ReLU + Dropout) -> F_q [B, width, h, w];
* conditioning branch: the support image masked by its annotation -> a trainable conv + ReLU ->
  pooled over the masked area -> an MLP (the "weight hashing") that outputs the parameters (w, b)
  of a 1x1 classifier, w in R^width, b in R;
* the support-conditioned classifier is applied to every query position: s = w^T F_q + b, one
  foreground logit per pixel; the 2-channel output is (0, s), so softmax(0, s)[1] = sigmoid(s);
* k-shot: logical OR of the shots, i.e. the max over the shots of the per-shot logits s_k (the
  5-shot output is exactly the OR of the five 1-shot outputs).

Loss: the original uses a sigmoid cross-entropy on s. The cross-entropy of the (0, s) logits is the
same function (CE((0, s), y) = BCE(sigmoid(s), y)), computed by the shared `segmentation_loss`,
which ignores void (255) pixels; it is averaged over pixels (the original's Caffe loss is summed).

Deviations from the original, on purpose:
* the original's two VGG16s (conditioning branch on the masked 224 x 224 support through fc8,
  FCN-32s segmentation branch) are replaced by the profile's frozen backbone and small trainable
  heads; VGG16 is `--backbone vgg16`. The support is masked at the feature level (backbone features
  are cached per image, so the image cannot be masked before the backbone): features outside the
  resized foreground mask are zeroed before the conditioning conv, and the conditioning output is
  masked-average-pooled over the foreground;
* the original maps fc8 (1000-d) to (w, b) with a fixed random "weight hashing" (lr 0); here the map
  is a learned MLP (Linear + ReLU + Linear);
* prediction at stride 8 (resized bilinearly by the evaluator) instead of the fixed x32 deconvolution;
* recipe: the original's solver runs on a summed loss with base lr 1e-10, momentum 0.99, iter_size 10
  (gradients of 10 episodes averaged), weight decay 5e-4; over a ~500 x 500 query, a summed-loss lr
  of 1e-10 is a mean-loss lr of about 2.5e-5, which `paper-pascal` uses with batch 10 (its 1M
  iteration solver budget is cut to 100k episodes, as SG-One and co-FCN). Support and query share the
  profile's input size (321 on PASCAL) instead of 224 (support) and 500 (query at test).
"""
from __future__ import annotations

import torch
from torch import nn

from methods.base import foreground
from methods.common import BackboneMethod, masked_average_pool, resize_mask_to
from methods.registry import register_method

# synthetic: a 128-wide query head and a 256-wide conditioning branch (scaled down as SimPropNet's
# synthetic entry); not tuned. paper-pascal: see above.
PROFILES = {
    "synthetic": {"options": {"width": 128, "hidden": 256}},
    "tiny": {"options": {"width": 16, "hidden": 16}},
    "paper-pascal": {
        "recipe": {"optimizer": "sgd", "lr": 2.5e-5, "momentum": 0.99, "weight_decay": 5e-4, "schedule": "constant",
                   "batch_size": 10, "episodes_per_epoch": 2000, "epochs": 50},
        "options": {"width": 1024, "hidden": 1024},
    },
}


@register_method("oslsm", trainable=True, profiles=PROFILES)
class OSLSM(BackboneMethod):
    """OSLSM (Shaban et al., BMVC 2017): support-conditioned 1x1 classifier, OR over shots."""

    def __init__(self, width: int = 1024, hidden: int = 1024, dropout: float = 0.5, **backbone):
        super().__init__(**backbone)
        self.segmentation = nn.Sequential(
            nn.Conv2d(self.feature_channels, width, 3, padding=1), nn.ReLU(), nn.Dropout2d(dropout),
            nn.Conv2d(width, width, 1), nn.ReLU(), nn.Dropout2d(dropout))
        self.conditioning = nn.Sequential(nn.Conv2d(self.feature_channels, hidden, 3, padding=1), nn.ReLU())
        self.hashing = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, width + 1))
        self._options.update(width=width, hidden=hidden, dropout=dropout)

    def query_code(self, query_feats):
        return (self.segmentation(query_feats),)

    def support_code(self, support_feats, support_masks):
        """The classifier parameters (w [N, width], b [N, 1]) conditioned on the masked support."""
        fg = foreground(support_masks)
        masked = support_feats * resize_mask_to(fg, support_feats.shape[-2:])[:, None]
        params = self.hashing(masked_average_pool(self.conditioning(masked), fg))
        return params[:, :-1], params[:, -1:]

    @staticmethod
    def classify(query: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """One foreground logit per pixel [B, h, w]: w^T F_q + b for query [B, C, h, w], w [B, C], b [B, 1]."""
        return torch.einsum("bchw,bc->bhw", query, weight) + bias[:, :, None]

    def decode(self, query_code, support_code):
        (query,), (weight, bias) = query_code, support_code
        logit = torch.stack([self.classify(query, weight[:, k], bias[:, k]) for k in range(weight.shape[1])]).amax(dim=0)
        return torch.stack([torch.zeros_like(logit), logit], dim=1)  # k-shot: OR = max over shots
