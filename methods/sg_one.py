"""SG-One (Zhang, Wei, Yang, Huang: "SG-One: Similarity Guidance Network for One-Shot Semantic
Segmentation", IEEE Transactions on Cybernetics 2020, arXiv:1810.09091), written from the paper and
the spec notes.

* one trunk for support and query (here: the frozen backbone, layer2 and layer3 at stride 8);
* similarity guidance branch: a 3x3 conv (no ReLU) on the trunk features gives the guidance
  features; the support's guidance vector is their masked average pooling (MAP) over the support
  foreground; the query's guidance map is the per-pixel cosine similarity between its guidance
  features and that vector;
* segmentation branch: side convs on the trunk levels, ReLU(conv3x3(layer2)) -> conv3x3(it ++ layer3)
  (no ReLU on the last side conv, as the original);
* fusion: the segmentation features are multiplied by the guidance map, then 3x3 conv + ReLU and a
  1x1 conv to 2 channels; cross-entropy on the query;
* k-shot (`kshot`): "average" (default) averages the guidance vectors of the shots; "or" runs the
  1-shot model per shot and takes the pixel-wise OR of the predicted masks (as logits: the largest
  foreground margin over the shots). The authors' code has both (`forward_5shot_avg`,
  `forward_5shot_max`); the paper's reported 5-shot number is taken to be the averaged one (the paper
  text was not retrieved to confirm which rule it used; see the report).

Deviations from the original, on purpose:
* frozen backbone of the profile instead of a fine-tuned VGG16 (VGG16 is `--backbone vgg16`);
* the original segmentation branch has three side convs on pool3, pool4 and pool5; the shared
  backbone exposes two stride-8 levels (layer2, layer3), so the branch has two side convs;
* the guidance conv takes layer2 ++ layer3 (the original: pool5 only);
* MAP is the shared `masked_average_pool` at feature resolution (bilinear mask, eps 5e-4) instead of
  upsampling the guidance features to the mask size; the original's 1x1 exit conv with padding 1 (it
  grows the map by a pixel on each side) is a plain 1x1 conv here;
* recipe (authors' `train_frame.py`, `my_optim.py`): SGD, momentum 0.99, weight decay 5e-4, lr 1e-5,
  batch 1, 100k steps, constant; `paper-pascal` keeps these. The original's parameter groups (biases
  at 2x, the guidance conv at 10x / 20x) are not reproduced: the harness has one lr for all. Inputs are
  the profile's square size (321 on PASCAL) instead of native image sizes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.base import foreground
from methods.common import BackboneMethod, masked_average_pool, tile
from methods.registry import register_method

KSHOT_RULES = ("average", "or")


# synthetic: widths scaled down as SimPropNet's synthetic entry (128-wide branch); not tuned.
PROFILES = {
    "synthetic": {"options": {"guidance_width": 256, "width": 128}},
    "tiny": {"options": {"guidance_width": 16, "width": 8}},
    "paper-pascal": {
        "recipe": {"optimizer": "sgd", "lr": 1e-5, "momentum": 0.99, "weight_decay": 5e-4, "schedule": "constant",
                   "batch_size": 1, "episodes_per_epoch": 2000, "epochs": 50},
        "options": {"guidance_width": 512, "width": 128},
    },
}


@register_method("sg-one", trainable=True, profiles=PROFILES)
class SGOne(BackboneMethod):
    """SG-One (Zhang et al., TCYB 2020): MAP guidance vector, cosine similarity map x segmentation features."""

    def __init__(self, guidance_width: int = 512, width: int = 128, kshot: str = "average", **backbone):
        super().__init__(**backbone)
        if kshot not in KSHOT_RULES:
            raise ValueError(f"kshot must be one of {KSHOT_RULES}, got {kshot!r}")
        self.kshot = kshot
        self.low_channels = self.backbone.channels["layer2"]
        high_channels = self.feature_channels - self.low_channels
        self.guidance = nn.Conv2d(self.feature_channels, guidance_width, 3, padding=1)
        self.side_low = nn.Sequential(nn.Conv2d(self.low_channels, width, 3, padding=1), nn.ReLU())
        self.side_high = nn.Conv2d(width + high_channels, width, 3, padding=1)
        self.head = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 2, 1))
        self._options.update(guidance_width=guidance_width, width=width, kshot=kshot)

    def query_code(self, query_feats):
        """Guidance features and segmentation-branch features of the query."""
        low, high = query_feats[:, :self.low_channels], query_feats[:, self.low_channels:]
        segmentation = self.side_high(torch.cat([self.side_low(low), high], dim=1))
        return self.guidance(query_feats), segmentation

    def support_code(self, support_feats, support_masks):
        """The guidance vector: MAP of the guidance features over the support foreground."""
        return (masked_average_pool(self.guidance(support_feats), foreground(support_masks)),)

    def segment(self, guidance, segmentation, vector):
        """1-shot prediction [B, 2, h, w] from query codes and one guidance vector [B, C]."""
        similarity = F.cosine_similarity(guidance, tile(vector, guidance), dim=1)
        return self.head(segmentation * similarity[:, None])

    def decode(self, query_code, support_code):
        (guidance, segmentation), (vectors,) = query_code, support_code
        if self.kshot == "average" or vectors.shape[1] == 1:
            return self.segment(guidance, segmentation, vectors.mean(dim=1))
        logits = torch.stack([self.segment(guidance, segmentation, vectors[:, k]) for k in range(vectors.shape[1])], dim=1)
        margin = (logits[:, :, 1] - logits[:, :, 0]).amax(dim=1)  # OR of the shots' argmax masks
        return torch.stack([torch.zeros_like(margin), margin], dim=1)
