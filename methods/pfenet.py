"""PFENet (Tian, Zhao, Shu, Yang, Li, Jia: "Prior Guided Feature Enrichment Network for Few-Shot
Segmentation", IEEE TPAMI 2020, arXiv:2008.01449), written from the paper and the spec notes.

* mid-level features: frozen layer2 ++ layer3 -> separate 1x1 convs (`width`, no bias) + ReLU +
  Dropout2d(0.5) for query and support; the support prototype is their masked average pool;
* training-free prior mask: the high-level support feature is the backbone's last layer applied to
  (its input x support mask), masked again; for every query high-level pixel, the cosine with every
  support pixel, max over the support, min-max normalised per image;
* feature enrichment module (FEM): for each bin the query is average-pooled to bin x bin, concatenated
  with the tiled prototype and the resized prior -> 1x1 conv; from the second bin on, the previous bin's
  output (resized) is merged in by a 1x1 conv (inter-scale interaction, added); two 3x3 convs as a
  residual; an auxiliary classifier per bin; all bins upsampled, concatenated -> 1x1 -> 3x3 residual
  pair -> classifier (3x3, ReLU, Dropout 0.1, 1x1);
* loss: main cross-entropy + `aux_weight` (1.0) x the mean of the per-bin auxiliary cross-entropies;
* k-shot (as the released code, model/PFENet.py): the prototypes are averaged over the shots, and the
  priors are computed per shot (each min-max normalised) and averaged.

Deviations of the default (`architecture="harness"`, the frozen-backbone variant), on purpose:
* backbone: the shared frozen torchvision ResNet-50 (layer3/4 dilated, output stride 8) with BN in
  eval mode, instead of PSPNet's deep-stem ResNet-50 whose BN statistics drift in `model.train()`;
  `encode` returns layer2 ++ layer3 ++ layer4. On the synthetic backbone (no layer4) the high-level
  feature is layer3, computed for the support from (layer2 x mask); on VGG16 it is conv5_3
  (`block5` applied to masked conv4_3), while the original VGG variant differs in its layer choice
  (theirs: `architecture="authors"`, below);
* bins: given in feature cells (> 1) or as fractions of the feature size (<= 1), as in the code. The
  default [60, 30, 15, 8] is for 473 x 473 inputs (60 x 60 features); the profile entries scale it to
  their feature size (41 x 41 at 321: [41, 21, 10, 5]; 14 x 14 synthetic: [14, 7, 4, 2]);
* logits stay at stride 8 (resized by the loss and the evaluator); no multi-scale or crop
  augmentation (the harness's flips only).

`architecture="authors"` is the released model itself (proven equal to it by tests/test_golden_pfenet.py):
* backbones of their code (`methods/pspnet_backbones.py`): deep-stem ResNet-50/101 (layer3/4 dilated 2/4
  in all blocks) or their VGG16-BN cut; weights from their checkpoint (`register_weights` below);
* mid-level = layer3 ++ layer2 in their channel order (VGG: layer2 resized to layer3's stride 16); the
  prior from layer4 on (layer3 x mask), all resizes bilinear with align_corners=True as theirs;
* their test-time resizing (test.py with `resized_val`, util/transform.py `Resize`), done inside
  `forward` (a `native_resolution` method: the evaluator feeds each episode at the query's size):
  longer side to `input_size` (473; 641 for their COCO models), both sides floored to a multiple of 8,
  image bilinear (as cv2 INTER_LINEAR), mask nearest (cv2's INTER_NEAREST indices), padded bottom/right to a square (image black,
  i.e. 0 before normalisation; mask 255); logits upsampled to the square (align_corners=True), then to
  max(H, W) squared and cropped to H x W (their `ori_resize`: the label padded with 255 to that square).
Remaining deviations of that option: under the shared pipeline the harness gives the supports already
resized onto the query frame (theirs resize each support from its own size: `--pipeline authors` does, see
`authors_pipeline`); a side that would floor to 0 is kept at 8 (theirs would fail); the frozen backbone keeps
BN in eval mode also in training (theirs: batch statistics).
"""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from methods.base import IGNORE_INDEX, TestPipeline, cv2_nearest_index, foreground
from methods.base import longer_side_shape as authors_resize_shape
from methods.common import BackboneMethod, masked_average_pool, resize_mask_to, segmentation_loss, tile
from methods.pspnet_backbones import PFENET_BACKBONES
from methods.registry import MethodError, register_method
from methods.weights import IMAGENET_NORMALISATION, KeyMap, PublishedWeights, register_weights

COSINE_EPS = 1e-7  # PFENet's epsilon in the prior's cosine and min-max normalisation


def prior_mask(query_high: torch.Tensor, support_high: torch.Tensor) -> torch.Tensor:
    """Training-free prior: [B, C, h, w] query, [B, C, h', w'] masked support -> [B, 1, h, w] in [0, 1].

    For each query pixel, the largest cosine similarity to any support pixel, then min-max
    normalised over the query image.
    """
    batch, _, height, width = query_high.shape
    q = query_high.flatten(2)
    s = support_high.flatten(2).transpose(1, 2)
    norms = s.norm(dim=2, keepdim=True) * q.norm(dim=1, keepdim=True)
    best = (torch.bmm(s, q) / (norms + COSINE_EPS)).max(dim=1).values
    low, high = best.min(dim=1, keepdim=True).values, best.max(dim=1, keepdim=True).values
    return ((best - low) / (high - low + COSINE_EPS)).view(batch, 1, height, width)


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)


def _classifier(width: int) -> nn.Sequential:
    return nn.Sequential(_conv(width, width, 3), nn.ReLU(inplace=True), nn.Dropout2d(0.1), nn.Conv2d(width, 2, 1))


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)



def letterbox(images: torch.Tensor, masks: torch.Tensor, size: int):
    """Normalised images [N, 3, H, W] and masks [N, H, W] -> [N, 3, size, size], [N, size, size] as their
    test transform: resized by `authors_resize_shape`, padded bottom/right (black image, mask 255)."""
    new_h, new_w = authors_resize_shape(images.shape[-2], images.shape[-1], size)
    if (new_h, new_w) != tuple(images.shape[-2:]):
        images = F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=False)
    if (new_h, new_w) != tuple(masks.shape[-2:]):
        rows, cols = (cv2_nearest_index(n, m, masks.device) for n, m in zip(masks.shape[-2:], (new_h, new_w)))
        masks = masks[:, rows][:, :, cols]
    mean = torch.tensor(IMAGENET_NORMALISATION["mean"], dtype=images.dtype, device=images.device)
    std = torch.tensor(IMAGENET_NORMALISATION["std"], dtype=images.dtype, device=images.device)
    canvas = (-mean / std).view(1, 3, 1, 1).repeat(images.shape[0], 1, size, size)
    canvas[:, :, :new_h, :new_w] = images
    mask_canvas = masks.new_full((masks.shape[0], size, size), IGNORE_INDEX)
    mask_canvas[:, :new_h, :new_w] = masks
    return canvas, mask_canvas


#: their test loader: util/dataset.py `SemData.__getitem__` (cv2 decoding, float pixels, void kept in the
#: support masks), util/transform.py `Resize` (`resized_val`: longer side to val_size, floored to a multiple of 8,
#: INTER_LINEAR / INTER_NEAREST, padded black / 255), test.py `validate` (`ori_resize`: logits to the label's
#: longer side squared, the label padded with 255)
AUTHORS_PIPELINE_SOURCE = ("dvlab-research/PFENet: util/dataset.py SemData.__getitem__, util/transform.py Resize, "
                           "test.py validate (resized_val, ori_resize)")

PROFILES = {
    # 14 x 14 features: bins scaled from [60, 30, 15, 8] on 60 x 60; the harness's recipe otherwise.
    "synthetic": {"options": {"width": 128, "bins": [14, 7, 4, 2]}},
    "tiny": {"options": {"width": 16, "bins": [1.0, 0.5, 0.25]}},
    # The released recipe: SGD, momentum 0.9, wd 1e-4, poly(0.9), batch 4, 200 epochs; base lr 2.5e-3
    # with every group at 10x in `poly_learning_rate`, i.e. 0.025 effective (see the notes).
    "paper-pascal": {"recipe": {"optimizer": "sgd", "lr": 0.025, "momentum": 0.9, "weight_decay": 1e-4,
                                "schedule": "poly", "batch_size": 4, "epochs": 200},
                     "options": {"width": 256, "bins": [41, 21, 10, 5]}},
}


@register_method("pfenet", trainable=True, profiles=PROFILES)
class PFENet(BackboneMethod):
    """PFENet (Tian et al., TPAMI 2020): prior mask + feature enrichment module."""

    def __init__(self, width: int = 256, bins: Sequence[float] = (60, 30, 15, 8), dropout: float = 0.5,
                 aux_weight: float = 1.0, architecture: str = "harness", input_size: int = 473, **backbone):
        if architecture not in ("harness", "authors"):
            raise MethodError(f"unknown PFENet architecture '{architecture}'; known: harness, authors")
        authors = architecture == "authors"
        if authors:
            backbone.setdefault("backbone", "resnet50-deepstem")
            if backbone["backbone"] not in PFENET_BACKBONES:
                raise MethodError("PFENet's authors architecture needs one of their backbones: "
                                  + ", ".join(PFENET_BACKBONES))
            if (input_size - 1) % 8:
                raise MethodError(f"PFENet's input size must be 8k + 1 (473, 641), not {input_size}")
        name = backbone.get("backbone", "resnet50")
        if "backbone_layers" not in backbone and (name == "resnet50" or authors):
            backbone["backbone_layers"] = ("layer2", "layer3", "layer4")
        super().__init__(**backbone)
        self.architecture, self.input_size = architecture, input_size
        #: the authors' architecture resizes each episode itself (their test-time resizing)
        self.native_resolution = authors
        if not bins:
            raise ValueError("PFENet needs at least one bin")
        self.bins = [float(b) if b <= 1 else int(b) for b in bins]
        self.aux_weight = aux_weight
        self.has_layer4 = "layer4" in self.backbone.layers
        self.high_channels = self.backbone.channels["layer4" if self.has_layer4 else "layer3"]
        self.down_query = nn.Sequential(_conv(self.feature_channels, width, 1), nn.ReLU(inplace=True), nn.Dropout2d(dropout))
        self.down_support = nn.Sequential(_conv(self.feature_channels, width, 1), nn.ReLU(inplace=True), nn.Dropout2d(dropout))
        self.init_merge = nn.ModuleList(nn.Sequential(_conv(2 * width + 1, width, 1), nn.ReLU(inplace=True)) for _ in self.bins)
        self.alpha_conv = nn.ModuleList(nn.Sequential(_conv(2 * width, width, 1), nn.ReLU()) for _ in self.bins[1:])
        self.beta_conv = nn.ModuleList(nn.Sequential(_conv(width, width, 3), nn.ReLU(inplace=True), _conv(width, width, 3),
                                                     nn.ReLU(inplace=True)) for _ in self.bins)
        self.inner_cls = nn.ModuleList(_classifier(width) for _ in self.bins)
        self.res1 = nn.Sequential(_conv(width * len(self.bins), width, 1), nn.ReLU(inplace=True))
        self.res2 = nn.Sequential(_conv(width, width, 3), nn.ReLU(inplace=True), _conv(width, width, 3), nn.ReLU(inplace=True))
        self.cls = _classifier(width)
        self._options.update(width=width, bins=list(self.bins), dropout=dropout, aux_weight=aux_weight,
                             high_level="layer4" if self.has_layer4 else "layer3")
        if authors:  # the default's recorded options stay as they were
            self._options.update(architecture=architecture, input_size=input_size)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """layer2 ++ layer3 (++ layer4 when the backbone has it), stride 8; the authors' architecture:
        layer3 ++ layer2 ++ layer4, layer2 resized to layer3's size (VGG) as theirs."""
        feats = self.backbone(images)
        if self.architecture == "authors":
            layer2 = feats["layer2"]
            if layer2.shape[-2:] != feats["layer3"].shape[-2:]:
                layer2 = _resize(layer2, feats["layer3"].shape[-2:])
            return torch.cat([feats["layer3"], layer2, feats["layer4"]], dim=1)
        parts = [feats["layer2"], feats["layer3"]] + ([feats["layer4"]] if self.has_layer4 else [])
        return torch.cat(parts, dim=1)

    def _split(self, feats: torch.Tensor):
        """(mid-level layer2 ++ layer3, the high-level layer's input, the high-level feature)."""
        c2 = self.backbone.channels["layer2"]
        mid = feats[:, :self.feature_channels]
        if self.architecture == "authors":
            return mid, feats[:, :self.backbone.channels["layer3"]], feats[:, self.feature_channels:]
        if self.has_layer4:
            return mid, feats[:, c2:self.feature_channels], feats[:, self.feature_channels:]
        return mid, feats[:, :c2], feats[:, c2:self.feature_channels]

    def _high_level(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's last layer (layer4, synthnet's layer3 or VGG's conv5 block) on its input `x`."""
        if self.has_layer4:
            return self.backbone.layer4(x)
        return (self.backbone.block5 if hasattr(self.backbone, "block5") else self.backbone.layer3)(x)

    def query_code(self, query_feats):
        mid, _, high = self._split(query_feats)
        return self.down_query(mid), high

    def support_code(self, support_feats, support_masks):
        """Per support: the prototype [N, W] and the masked high-level feature [N, C, h, w]."""
        mid, before_high, _ = self._split(support_feats)
        fg = foreground(support_masks)
        mask = resize_mask_to(fg, before_high.shape[-2:])[:, None]
        with torch.no_grad():
            high = self._high_level(before_high * mask)
            high = high * resize_mask_to(fg, high.shape[-2:])[:, None]
        return masked_average_pool(self.down_support(mid), fg), high

    def _bin_size(self, size: int, bin_: float) -> int:
        return max(1, int(size * bin_)) if isinstance(bin_, float) else bin_

    def enrich(self, query: torch.Tensor, prototype: torch.Tensor, prior: torch.Tensor):
        """Feature enrichment module: logits [B, 2, h, w] and the per-bin auxiliary logits."""
        size = query.shape[-2:]
        merged: List[torch.Tensor] = []
        aux: List[torch.Tensor] = []
        for index, bin_ in enumerate(self.bins):
            side = self._bin_size(size[0], bin_)
            pooled = F.adaptive_avg_pool2d(query, side)
            x = self.init_merge[index](torch.cat([pooled, tile(prototype, pooled), _resize(prior, (side, side))], dim=1))
            if index > 0:
                previous = _resize(merged[-1], (side, side))
                x = self.alpha_conv[index - 1](torch.cat([x, previous], dim=1)) + x
            x = self.beta_conv[index](x) + x
            aux.append(self.inner_cls[index](x))
            merged.append(_resize(x, size))
        x = self.res1(torch.cat(merged, dim=1))
        x = self.res2(x) + x
        return self.cls(x), aux

    def _enrich_codes(self, query_code, support_code):
        query, query_high = query_code
        prototypes, support_high = support_code
        priors = [prior_mask(query_high, support_high[:, k]) for k in range(support_high.shape[1])]
        prior = torch.stack(priors, dim=0).mean(dim=0)  # k-shot: mean of the per-shot priors
        if prior.shape[-2:] != query.shape[-2:]:
            prior = _resize(prior, query.shape[-2:])
        return self.enrich(query, prototypes.mean(dim=1), prior)  # k-shot: mean prototype

    def decode(self, query_code, support_code):
        return self._enrich_codes(query_code, support_code)[0]

    def forward(self, query, supports, support_masks):
        if self.architecture != "authors":
            return super().forward(query, supports, support_masks)
        return self.test_time(query, supports, support_masks)

    def authors_pipeline(self):
        """Their test loader (`resized_val`, `ori_resize`) at this model's input size; none for the harness's
        architecture."""
        return TestPipeline(resize="longer-side", size=self.input_size, resample="cv2", support_void="void",
                            shots="network", source=AUTHORS_PIPELINE_SOURCE) if self.architecture == "authors" else None

    def network(self, query, supports, support_masks):
        """Their network's forward (no test-time resizing): logits upsampled to the input size
        (their zoom factor 8 on 8k + 1 inputs, align_corners=True)."""
        return _resize(super().forward(query, supports, support_masks), query.shape[-2:])

    def test_time(self, query, supports, support_masks):
        """Their test-time resizing around `network`: logits [B, 2, H, W] at the query's size."""
        height, width = query.shape[-2:]
        batch, shots = supports.shape[:2]
        blank = torch.zeros_like(query[:, 0], dtype=torch.long)
        query, _ = letterbox(query, blank, self.input_size)
        supports, masks = letterbox(supports.flatten(0, 1), support_masks.flatten(0, 1), self.input_size)
        logits = self.network(query, supports.unflatten(0, (batch, shots)), masks.unflatten(0, (batch, shots)))
        side = max(height, width)
        return _resize(logits, (side, side))[..., :height, :width]

    def training_loss(self, query_feats, support_feats, support_masks, query_mask, context=None):
        batch, shots = support_feats.shape[:2]
        code = self.support_code(support_feats.flatten(0, 1), support_masks.flatten(0, 1))
        code = tuple(v.unflatten(0, (batch, shots)) for v in code)
        logits, aux = self._enrich_codes(self.query_code(query_feats), code)
        corners = self.architecture == "authors"  # theirs upsample the logits with align_corners=True
        aux_loss = torch.stack([segmentation_loss(a, query_mask, align_corners=corners) for a in aux]).mean()
        return segmentation_loss(logits, query_mask, align_corners=corners) + self.aux_weight * aux_loss


# The checkpoints the authors released (README, "Run Demo / Test with Pretrained Models"): 4 ResNet-50
# models for PASCAL-5i and 4 VGG-16 models for COCO-20i, one OneDrive archive. Their train.py saves
# {"epoch", "state_dict": DataParallel's state dict ("module." prefix), "optimizer"} as
# exp/<dataset>/split<k>_<backbone>/model/train_epoch_<epoch>_<mIoU>.pth (best) and final.pth (last); the
# archive's inner file names could not be checked here (its link is not reachable offline): final.pth,
# the one name train.py fixes, is assumed. Their state dict holds exactly the modules below (the PSPNet
# classifier and fc of the ImageNet backbone are never attached to PFENet): nothing to ignore.
# Their COCO folds are theirs (use_split_coco: fold k tests the 1-based classes k + 1, k + 5, ..., k + 77).
AUTHORS_KEYS = KeyMap(rules=tuple((f"layer{k}.", f"backbone.layer{k}.") for k in range(5))
                      + (("down_supp.", "down_support."),))
RELEASE_URL = "https://1drv.ms/u/c/af3d5d777523123a/EU_IQ0BZn0lErngawUbZ3UIBhYuJ1F8DJMoacP1zPJ-Hlg?e=mIKR0n"
REPORTED_SOURCE = ("PFENet, TPAMI 2020 (arXiv:2008.01449); the per-fold numbers of its tables were not found in the "
                   "stored sources, so none are recorded")
_RELEASES = (
    # dataset, their exp folder, input size (val_size of their config), options (their config's ppm_scales)
    ("pascal5i", "pascal", "resnet50", 473, {"backbone": "resnet50-deepstem", "bins": [60, 30, 15, 8]}),
    ("coco20i", "coco", "vgg", 641, {"backbone": "vgg16bn-pfenet", "bins": [1.0, 0.5, 0.25, 0.125]}),
)
register_weights(*(
    PublishedWeights(
        method="pfenet", tag=f"{dataset}-fold{fold}-{'vgg16bn' if tag == 'vgg' else tag}",
        file_name=f"exp/{folder}/split{fold}_{tag}/model/final.pth", url=RELEASE_URL, dataset=dataset, fold=fold,
        options={"architecture": "authors", "width": 256, "input_size": size, **options}, keys=AUTHORS_KEYS,
        input_size=size, source=REPORTED_SOURCE)
    for dataset, folder, tag, size, options in _RELEASES for fold in range(4)))
