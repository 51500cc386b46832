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

The authors' model (xiaomengyc/SG-One `oneshot/onemodel_sg-one.py` OneModel, `models/vgg/vgg_sg.py`) is
`AUTHORS_OPTIONS`, proven equal to their `forward`, `forward_5shot_avg` and the per-shot predictions of
`forward_5shot_max` by `tests/test_golden_sg_one.py`:
* `encoder="authors"` (on `backbone="vgg16"`): their DeepLab-style VGG16: pool1-3 3x3 stride 2
  padding 1, pool4 and pool5 3x3 stride 1 padding 1, conv5 NOT dilated; the trunk levels are pool3
  (256), pool4 (512) and pool5 (512), all at stride 8 (frozen here; they fine-tune it);
* the guidance conv takes pool5 alone; three side convs ReLU(conv(pool3)) -> ReLU(conv(it ++ pool4))
  -> conv(it ++ pool5); the exit 1x1 conv has their padding 1 (the logits are 2 pixels wider and taller
  than the features, the border being the bias; the evaluator's bilinear resize to the image is their
  `get_pred`);
* the guidance vector is the MAP of the guidance features bilinearly upsampled (align_corners=False)
  to the mask size (computed exactly without the upsampled features, `methods.common.upsampled_average_pool`);
  they divide by the mask sum alone, here eps 1e-5 is added (no effect on the cosine of one vector;
  relative 1e-5 / mask pixels on a 5-shot average).
Known difference: their 5-shot "max" ORs the per-shot argmax masks at image size, the "or" rule here
ORs them at feature size (the decode has no image size); the per-shot logits are equal. The authors
released no trained checkpoints (no links in their README), so no `PublishedWeights` entry is declared;
`AUTHORS_KEYS` maps their state-dict names onto ours.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.backbones import VGG16Backbone
from methods.base import foreground
from methods.common import BackboneMethod, masked_average_pool, tile, upsampled_average_pool
from methods.registry import MethodError, register_method
from methods.weights import KeyMap

KSHOT_RULES = ("average", "or")
ENCODERS = ("harness", "authors")
AUTHORS_OPTIONS = {"backbone": "vgg16", "encoder": "authors", "guidance_width": 512, "width": 128}

# their OneModel `netB.features_<block>.<conv>` -> our VGG16Backbone `block3/4/5.<index>`; then the heads
_VGG_CONVS = {"1.0": "block3.0", "1.2": "block3.2", "2.0": "block3.5", "2.2": "block3.7", "3.0": "block3.10",
              "3.2": "block3.12", "3.4": "block3.14", "4.0": "block4.1", "4.2": "block4.3", "4.4": "block4.5",
              "5.0": "block5.1", "5.2": "block5.3", "5.4": "block5.5"}
_HEADS = (("netB.cls.0.", "guidance."), ("netB.side3_1.0.", "side_low.0."), ("netB.side4_1.0.", "side_mid.0."),
          ("netB.side5_1.0.", "side_high."), ("classifier_6.0.", "head.0."), ("exit_layer.", "head.2."))
AUTHORS_KEYS = KeyMap(rules=tuple((f"netB.features_{theirs}.", f"backbone.{ours}.")
                                  for theirs, ours in _VGG_CONVS.items()) + _HEADS)


def authors_vgg16(backbone: VGG16Backbone) -> VGG16Backbone:
    """Turn the harness's VGG16 (stride 8, conv5 dilated) into SG-One's trunk, in place (same weights):
    pool1-3 3x3 stride 2 padding 1, conv5 undilated, layer1 (conv3_3) returned for the pool3 level."""
    pools = [(backbone.block3, 4), (backbone.block3, 9), (backbone.block4, 0)]
    pools_ok = all(isinstance(block[i], nn.MaxPool2d) for block, i in pools + [(backbone.block5, 0)])
    if not pools_ok or not all(isinstance(backbone.block5[i], nn.Conv2d) for i in (1, 3, 5)):
        raise MethodError("SG-One's authors encoder: the vgg16 backbone's layout is not the expected one")
    for block, index in pools:
        block[index] = nn.MaxPool2d(3, stride=2, padding=1)
    for index in (1, 3, 5):
        backbone.block5[index].dilation, backbone.block5[index].padding = (1, 1), (1, 1)
    backbone.layers = ("layer1", "layer2", "layer3")
    backbone.identity = {**backbone.identity, "variant": "sg-one-authors-encoder"}
    return backbone


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

    def __init__(self, guidance_width: int = 512, width: int = 128, kshot: str = "average", encoder: str = "harness",
                 **backbone):
        super().__init__(**backbone)
        if kshot not in KSHOT_RULES:
            raise ValueError(f"kshot must be one of {KSHOT_RULES}, got {kshot!r}")
        if encoder not in ENCODERS:
            raise MethodError(f"SG-One: encoder must be one of {ENCODERS}, got {encoder!r}")
        self.kshot, self.encoder = kshot, encoder
        if encoder == "authors":
            if not isinstance(self.backbone, VGG16Backbone):
                raise MethodError(f"SG-One's authors encoder needs --backbone vgg16, not {self.backbone_name}")
            authors_vgg16(self.backbone)
            self.pool5 = nn.MaxPool2d(3, stride=1, padding=1)
            channels = self.backbone.channels
            self.levels = (channels["layer1"], channels["layer2"], channels["layer3"])  # pool3, pool4, pool5
            self.feature_channels = sum(self.levels)
            self.guidance = nn.Conv2d(self.levels[2], guidance_width, 3, padding=1)
            self.side_low = nn.Sequential(nn.Conv2d(self.levels[0], width, 3, padding=1), nn.ReLU())
            self.side_mid = nn.Sequential(nn.Conv2d(width + self.levels[1], width, 3, padding=1), nn.ReLU())
            self.side_high = nn.Conv2d(width + self.levels[2], width, 3, padding=1)
            exit_padding = 1
        else:
            self.levels = (self.backbone.channels["layer2"], self.feature_channels - self.backbone.channels["layer2"])
            self.guidance = nn.Conv2d(self.feature_channels, guidance_width, 3, padding=1)
            self.side_low = nn.Sequential(nn.Conv2d(self.levels[0], width, 3, padding=1), nn.ReLU())
            self.side_high = nn.Conv2d(width + self.levels[1], width, 3, padding=1)
            exit_padding = 0
        self.head = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, 2, 1, padding=exit_padding))
        self._options.update(guidance_width=guidance_width, width=width, kshot=kshot, encoder=encoder)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The frozen features: layer2 ++ layer3, or with the authors' encoder pool3 ++ pool4 ++ pool5."""
        if self.encoder != "authors":
            return super().encode(images)
        feats = self.backbone(images)
        return torch.cat([self.backbone.block4[0](feats["layer1"]), self.backbone.block5[0](feats["layer2"]),
                          self.pool5(feats["layer3"])], dim=1)

    def query_code(self, query_feats):
        """Guidance features and segmentation-branch features of the query."""
        levels = torch.split(query_feats, self.levels, dim=1)
        if self.encoder == "authors":
            low, mid, high = levels
            low = self.side_mid(torch.cat([self.side_low(low), mid], dim=1))
            return self.guidance(high), self.side_high(torch.cat([low, high], dim=1))
        low, high = levels
        segmentation = self.side_high(torch.cat([self.side_low(low), high], dim=1))
        return self.guidance(query_feats), segmentation

    def support_code(self, support_feats, support_masks):
        """The guidance vector: MAP of the guidance features over the support foreground."""
        if self.encoder == "authors":
            guidance = self.guidance(support_feats[:, -self.levels[2]:])
            return (upsampled_average_pool(guidance, foreground(support_masks)),)
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
