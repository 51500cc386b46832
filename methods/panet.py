"""PANet (Wang, Liew, Zou, Zhou, Feng: "PANet: Few-Shot Image Semantic Segmentation with Prototype
Alignment", ICCV 2019), written from the paper and the spec notes.

* embedding: the backbone features (layer2 ++ layer3, stride 8) -> a trainable projection (conv,
  no ReLU, like PANet's conv5 without its final ReLU);
* prototypes: masked average pooling (MAP) of the support embedding over the foreground and over
  the background (everything that is not the class, void included, as PANet's background mask);
* non-parametric segmentation: logits = 20 * cos(query embedding, prototype) for the background
  and the foreground prototype; no decoder;
* prototype alignment regularisation (PAR, training only): the argmax of the query prediction gives
  query foreground/background masks, their MAP prototypes segment each support image (20 * cos), and
  the cross-entropy against the support mask is added with weight 1. Episodes whose query prediction
  has no foreground are skipped. The argmax is not differentiable; the gradient of PAR reaches the
  projection through the query and the support embeddings;
* k-shot: the foreground and the background prototypes are each averaged over the shots (PANet).

Deviations from the original, on purpose:
* the original trains its whole VGG16 encoder; here the backbone is the profile's frozen one and a
  trainable projection (`kernel` x `kernel` conv to `width` channels) is what learns, otherwise the
  method would have nothing to train (VGG16 is available with `--backbone vgg16`);
* prototypes are pooled at feature resolution with the mask bilinearly resized to the features
  (the shared `masked_average_pool`, eps 5e-4) instead of upsampling the features to the mask;
  PAR's query prototypes use the feature-resolution prediction, as the original;
* recipe: the original decays the lr x0.1 at 10k and 20k of 30k iterations; the harness has no step
  schedule, so `paper-pascal` uses its poly schedule over the same 30k episodes (batch 1, SGD
  lr 1e-3, momentum 0.9, weight decay 5e-4); inputs are the profile's size (321 on PASCAL), not 417,
  and the harness's random horizontal flips apply as in the original.

The authors' model (kaixin96/PANet `models/fewshot.py`, `models/vgg.py`) is `AUTHORS_OPTIONS`, proven
equal to their forward and alignment loss by `tests/test_golden_panet.py`:
* `encoder="authors"` (on `backbone="vgg16"`): their VGG16 encoder: pool1-3 3x3 stride 2 padding 1
  (torchvision's are 2x2), pool4 3x3 stride 1, conv5 dilated 2, no ReLU after conv5_3; the embedding
  is conv5_3 alone (512, stride 8). It stays frozen here (they fine-tune it);
* `kernel=0`: no projection (the embedding is the encoder's output, `width` unused); with the frozen
  encoder nothing is then trainable: the set is for the proof, `kernel=1` adds a trainable projection;
* `pooling="upsample-features"`: MAP of the features bilinearly upsampled (align_corners=False) to the
  mask size, eps 1e-5, computed exactly without materialising the upsampled features (the adjoint of
  the separable upsampling applied to the mask); background = every pixel not of the class (void
  included), as their `bg_mask` of a 1-way episode. Their output is the logits upsampled to the image
  (bilinear, align_corners=False), which is what the harness's evaluator does with ours.
The authors released no trained checkpoints (their README links only torchvision's ImageNet VGG16, which
`--backbone vgg16` loads by the same names), so no `PublishedWeights` entry is declared;
`AUTHORS_KEYS` maps their state-dict names onto ours.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.backbones import VGG16Backbone
from methods.base import foreground
from methods.common import BackboneMethod, masked_average_pool, segmentation_loss, tile, upsampled_average_pool
from methods.registry import MethodError, register_method
from methods.weights import KeyMap

PROTOTYPE_EPS = 1e-5  # PANet's epsilon in its masked average pooling and the query prototypes of PAR
ENCODERS = ("harness", "authors")
POOLINGS = ("resize-mask", "upsample-features")
AUTHORS_OPTIONS = {"backbone": "vgg16", "encoder": "authors", "kernel": 0, "pooling": "upsample-features"}

# their FewShotSeg `encoder.backbone.features.<block>.<conv>` -> our VGG16Backbone `block3/4/5.<index>`
_VGG_CONVS = {"0.0": "block3.0", "0.2": "block3.2", "2.0": "block3.5", "2.2": "block3.7", "4.0": "block3.10",
              "4.2": "block3.12", "4.4": "block3.14", "6.0": "block4.1", "6.2": "block4.3", "6.4": "block4.5",
              "8.0": "block5.1", "8.2": "block5.3", "8.4": "block5.5"}
AUTHORS_KEYS = KeyMap(rules=tuple((f"encoder.backbone.features.{theirs}.", f"backbone.{ours}.")
                                  for theirs, ours in _VGG_CONVS.items()))


def authors_vgg16(backbone: VGG16Backbone) -> VGG16Backbone:
    """Turn the harness's VGG16 (stride 8, conv5 dilated) into PANet's encoder, in place (same weights)."""
    pools = [(backbone.block3, 4), (backbone.block3, 9), (backbone.block4, 0)]
    if not all(isinstance(block[i], nn.MaxPool2d) for block, i in pools) or not isinstance(backbone.block5[6], nn.ReLU):
        raise MethodError("PANet's authors encoder: the vgg16 backbone's layout is not the expected one")
    for block, index in pools:
        block[index] = nn.MaxPool2d(3, stride=2, padding=1)
    backbone.block5[6] = nn.Identity()  # no ReLU after conv5_3
    backbone.identity = {**backbone.identity, "variant": "panet-authors-encoder"}
    return backbone


def cosine_logits(features: torch.Tensor, bg: torch.Tensor, fg: torch.Tensor, scale: float) -> torch.Tensor:
    """[N, C, h, w] features, [N, C] prototypes -> [N, 2, h, w] = scale * (cos to bg, cos to fg)."""
    return scale * torch.stack([F.cosine_similarity(features, tile(p, features), dim=1) for p in (bg, fg)], dim=1)


def prototypes(features: torch.Tensor, masks: torch.Tensor, pooling: str = "resize-mask"):
    """Foreground and background MAP prototypes of [N, C, h, w] features with {0, 1, 255} masks [N, H, W].

    Background is every pixel that is not the class (void included), as PANet's background mask.
    """
    fg = foreground(masks)
    pool = masked_average_pool if pooling == "resize-mask" else upsampled_average_pool
    return pool(features, fg), pool(features, 1.0 - fg)


def alignment_loss(query: torch.Tensor, query_logits: torch.Tensor, supports: torch.Tensor,
                   support_masks: torch.Tensor, scale: float) -> torch.Tensor:
    """PAR: query prototypes from the query prediction segment the supports.

    query [B, C, h, w] and supports [B, K, C, h, w] embeddings, query_logits [B, 2, h, w] (same size as
    the embedding), support_masks [B, K, H, W]. Returns the support cross-entropy averaged over shots
    and episodes; an episode whose prediction has no foreground contributes 0 (PANet skips it).
    """
    batch, shots = supports.shape[:2]
    predicted = query_logits.argmax(dim=1)  # no gradient through the prediction itself
    weights = torch.stack([(predicted == 0), (predicted == 1)], dim=1).float()  # [B, 2, h, w]
    protos = (query[:, None] * weights[:, :, None]).sum(dim=(3, 4)) / (weights.sum(dim=(2, 3))[..., None] + PROTOTYPE_EPS)
    flat = supports.flatten(0, 1)
    logits = cosine_logits(flat, protos[:, 0].repeat_interleave(shots, 0), protos[:, 1].repeat_interleave(shots, 0), scale)
    masks = support_masks.flatten(0, 1)
    logits = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
    per_pixel = F.cross_entropy(logits, (masks == 1).long(), reduction="none")  # void counts as background
    per_episode = per_pixel.mean(dim=(1, 2)).view(batch, shots).mean(dim=1)
    keep = (predicted == 1).flatten(1).any(dim=1).float()
    return (per_episode * keep).mean()


# synthetic: a 256-wide 1x1 projection; a 3x3 projection reached the same held-out validation mIoU
# (64.3 vs 64.3, split 1), so the minimal one is kept. paper-pascal: the original recipe (see above).
PROFILES = {
    "synthetic": {"options": {"width": 256, "kernel": 1}},
    "tiny": {"options": {"width": 16, "kernel": 1}},
    "paper-pascal": {
        "recipe": {"optimizer": "sgd", "lr": 1e-3, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "poly",
                   "batch_size": 1, "episodes_per_epoch": 1000, "epochs": 30},
        "options": {"width": 512, "kernel": 1},
    },
}


@register_method("panet", trainable=True, profiles=PROFILES)
class PANet(BackboneMethod):
    """PANet (Wang et al., ICCV 2019): MAP prototypes, 20 x cosine logits, prototype alignment loss."""

    def __init__(self, width: int = 512, kernel: int = 1, scale: float = 20.0, par_weight: float = 1.0,
                 encoder: str = "harness", pooling: str = "resize-mask", **backbone):
        super().__init__(**backbone)
        if kernel and kernel % 2 != 1:
            raise ValueError("kernel must be odd (or 0: no projection)")
        if encoder not in ENCODERS or pooling not in POOLINGS:
            raise MethodError(f"PANet: encoder must be one of {ENCODERS} and pooling one of {POOLINGS}, "
                              f"got {encoder!r}, {pooling!r}")
        if encoder == "authors":
            if not isinstance(self.backbone, VGG16Backbone):
                raise MethodError(f"PANet's authors encoder needs --backbone vgg16, not {self.backbone_name}")
            authors_vgg16(self.backbone)
            self.feature_channels = self.backbone.channels["layer3"]
        self.encoder, self.pooling = encoder, pooling
        self.scale, self.par_weight = scale, par_weight
        self.projection = (nn.Conv2d(self.feature_channels, width, kernel, padding=kernel // 2) if kernel
                           else nn.Identity())
        self._options.update(width=width, kernel=kernel, scale=scale, par_weight=par_weight, encoder=encoder,
                             pooling=pooling)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The frozen features: layer2 ++ layer3, or conv5_3 (no ReLU) alone with the authors' encoder."""
        if self.encoder == "authors":
            return self.backbone(images)["layer3"]
        return super().encode(images)

    def query_code(self, query_feats):
        return (self.projection(query_feats),)

    def support_code(self, support_feats, support_masks):
        fg, bg = prototypes(self.projection(support_feats), support_masks, self.pooling)
        return fg, bg

    def decode(self, query_code, support_code):
        (query,), (fg, bg) = query_code, support_code
        return cosine_logits(query, bg.mean(dim=1), fg.mean(dim=1), self.scale)  # k-shot: mean prototypes

    def training_loss(self, query_feats, support_feats, support_masks, query_mask, context=None):
        batch, shots = support_feats.shape[:2]
        query = self.projection(query_feats)
        supports = self.projection(support_feats.flatten(0, 1))
        fg, bg = prototypes(supports, support_masks.flatten(0, 1), self.pooling)
        logits = self.decode((query,), (fg.unflatten(0, (batch, shots)), bg.unflatten(0, (batch, shots))))
        loss = segmentation_loss(logits, query_mask)
        if self.par_weight:
            par = alignment_loss(query, logits, supports.unflatten(0, (batch, shots)), support_masks, self.scale)
            loss = loss + self.par_weight * par
        return loss
