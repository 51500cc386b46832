"""DCAMA (Shi, Wei, Zhang, Lu, Ning, Chen, Ma, Zheng: "Dense Cross-Query-and-Support Attention Weighted Mask
Aggregation for Few-Shot Segmentation", ECCV 2022, arXiv:2207.08549), written from the paper; facts checked
against the released code (pawn-sxy/DCAMA @37fa0539: model/DCAMA.py, model/base/transformer.py, test.py,
train.py, data/dataset.py). HSNet's feature taps and test protocol (`methods/hsnet.py`).

* features: the output of every bottleneck of layer1..layer4 before its final ReLU (ResNet-50: 3/4/6/3,
  ResNet-101: 3/4/23/3) of torchvision's standard network, frozen, BN in eval mode; layer1 (stride 4) only
  feeds the skip connection, each bottleneck of layer2..4 gets its own attention; support features are not
  masked; Swin-B (`swin-b`, their `swin`: their best backbone, at 384 x 384, window 12, embed 128, heads
  4/8/16/32): the output of every block of its four stages (2/2/18/2 blocks, widths 128..1024, strides 4..32),
  before the patch merging and without norm (methods/swin.py, on timm's `SwinTransformer`), stage 1 the skip
  group as layer1; `synthnet`: four `groups` of its residual blocks' pre-ReLU outputs (the first: the skip group);
* attention (one block per layer group, shared by the group's layers): query pixels are the tokens Q, the
  support pixels K, the support's foreground mask (bilinear, align_corners, to the map's size) the values V:
  a sinusoidal 1-D positional encoding over the flattened map (row-major) added to query and support
  features, a linear projection each for Q and K (none for V), 8 heads, softmax(Q K^T / sqrt(d / 8)) V,
  the heads averaged: one coarse mask per layer;
* decoder: the coarse masks of a group stacked as channels, three conv blocks (conv + GroupNorm(4) + ReLU;
  kernels as HSNet's squeeze: (3,3,3) for layer4, (5,3,3) layer3, (5,5,3) layer2; widths 16/64/128),
  deepest upsampled (bilinear, align_corners) and added to the next, each sum through a 3 x 3 block; then
  concatenated with the query's and the support's last layer2 map, upsampled x2, concatenated with their
  last layer1 map, and three mixers (two 3 x 3 convs each with ReLUs, x2 upsampling between them): logits
  at 4x the layer1 resolution (the input size);
* dropout 0.5 on the encoded features (after the positional encoding) and on the attention weights, in
  training only;
* k-shot (their `predict_mask_nshot` with nshot > 1): the 1-shot model in one pass, each attention's keys
  and values are the K supports' pixels together (the positional encoding restarts in each shot), and the
  skip connection takes the element-wise max of the K supports' maps; no vote;
* loss: cross-entropy of the 2-class logits against the query mask, void counted as background (their
  `extract_ignore_idx`); 1-shot training;
* `input_size` (their 384): a native-resolution method that resizes query and supports itself (bilinear,
  antialiased, as PIL's resize; masks nearest) and returns logits at that size; `AUTHORS_PIPELINE` is
  their test loader (HSNet's, at 384).

Deviations: the positional encoding is computed for the length needed (theirs is a 10000-row buffer, so
maps of more than 10000 pixels fail there) and is not a state-dict entry; the x2 upsamplings use (2h, 2w)
(theirs (2w, 2w): equal on square inputs) and the layer2-to-layer1 upsampling goes to the layer1 map's size
(equal where theirs runs); with a batch of several k-shot episodes theirs pairs support features and masks
of different episodes (features are stacked shot-major, masks episode-major): here each episode's keys are
its own shots (equal to theirs at batch 1, their test's); their ResNet weights are timm's `resnet50_a1h` /
`resnet101_a1h` (README), the harness's default backbone is torchvision's `IMAGENET1K_V1` (a published
checkpoint carries its own backbone); their SGD is Nesterov, the harness's SGD is not. Swin-B is timm's
implementation, not their copy of Microsoft's (the same tensors: tests/test_golden_dcama.py on a reduced Swin);
it has no default ImageNet weights here (random init, or `backbone_weights` = the README's
swin_base_patch4_window12_384_22kto1k.pth, Microsoft's names mapped), its stochastic depth is 0 (theirs 0.1,
inactive: the frozen backbone stays in eval mode), and it takes only square `input_size` images (theirs asserts
384 x 384); `swin` (timm arguments over Swin-B's) is for a reduced Swin in tests. On `synthnet` the groups,
widths and dropout are options (its maps are at stride 4 and 8); `output_stride` (theirs 1) drops the x2
upsamplings of the mixers (2, 4) and the layer1 skip (8), and `resize_to_input` the final resize, for the
`tiny` profile's logits at stride 8.
"""
from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from methods.backbones import build_backbone
from methods.base import FewShotSegmenter, TestPipeline
from methods.common import BackboneMethod
from methods.hsnet import SYNTHNET_BLOCKS, HSNet, TorchvisionFeatures, synthnet_blocks
from methods.hsnet_layers import PAPER_CHANNELS, PAPER_KERNELS
from methods.registry import MethodError, register_method
from methods.swin import SWIN_B, SwinFeatures
from methods.weights import KeyMap, PublishedWeights, register_weights

HEADS = 8
SWIN = "swin-b"  # their `--backbone swin`
OUTPUT_STRIDES = (1, 2, 4, 8)  # of the logits relative to the input: theirs 1 (4x the layer1 maps)
DROPOUT = 0.5
PE_BASE = 10000.0


@lru_cache(maxsize=32)
def _sinusoid(length: int, channels: int) -> torch.Tensor:
    """[length, channels] float32: sin at even channels, cos at odd ones, wavelengths a geometric series
    from 2 pi to PE_BASE * 2 pi (computed in float32 as theirs, then cast by the caller)."""
    table = torch.zeros(length, channels)
    position = torch.arange(0, length).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, channels, 2) * -(math.log(PE_BASE) / channels))
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


def positional_encoding(tokens: torch.Tensor) -> torch.Tensor:
    """The encoding of [..., N, C] tokens (position = index along N), same dtype and device."""
    return _sinusoid(tokens.shape[-2], tokens.shape[-1]).to(tokens.device, tokens.dtype)


class MaskAttention(nn.Module):
    """DCAMA's attention of one layer group: query tokens attend to all support tokens of all shots; the
    values are the support mask, so each head returns an attention-weighted foreground fraction."""

    def __init__(self, channels: int, heads: int = HEADS, dropout: float = DROPOUT):
        super().__init__()
        if channels % heads:
            raise MethodError(f"DCAMA's attention needs channels divisible by {heads} heads, not {channels}")
        self.heads = heads
        self.query = nn.Linear(channels, channels)
        self.key = nn.Linear(channels, channels)
        self.feature_dropout = nn.Dropout(dropout)
        self.attention_dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, support: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """query [B, Nq, C], support [B, K, Ns, C], mask [B, K, Ns] -> coarse mask [B, Nq]."""
        batch, queries, channels = query.shape
        width = channels // self.heads
        query = self.feature_dropout(query + positional_encoding(query))
        support = self.feature_dropout(support + positional_encoding(support))
        q = self.query(query).view(batch, queries, self.heads, width).transpose(1, 2)
        k = self.key(support).reshape(batch, -1, self.heads, width).transpose(1, 2)  # shots side by side
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(width), dim=-1)
        values = mask.reshape(batch, 1, -1, 1).expand(-1, self.heads, -1, -1)
        return (self.attention_dropout(weights) @ values).mean(dim=1)[..., 0]


def conv_block(in_channels: int, widths: Sequence[int], kernels: Sequence[int], groups: int = 4) -> nn.Sequential:
    """(conv k x k, padding k // 2 -> GroupNorm -> ReLU) per width."""
    layers: List[nn.Module] = []
    for width, kernel in zip(widths, kernels):
        layers += [nn.Conv2d(in_channels, width, kernel, padding=kernel // 2), nn.GroupNorm(groups, width),
                   nn.ReLU(inplace=True)]
        in_channels = width
    return nn.Sequential(*layers)


def mixer(in_channels: int, middle: int, out: int, last_relu: bool = True) -> nn.Sequential:
    """Two 3 x 3 convs with a ReLU after each (not after the last one of the final mixer)."""
    layers: List[nn.Module] = [nn.Conv2d(in_channels, middle, 3, padding=1), nn.ReLU(),
                               nn.Conv2d(middle, out, 3, padding=1)]
    return nn.Sequential(*layers, *([nn.ReLU()] if last_relu else []))


def dcama_keymap() -> KeyMap:
    """Their model's state-dict names (`feature_extractor.*`, `model.*`; DataParallel's `module.` stripped) to
    ours; their positional-encoding buffers, their backbone's unused fc (ResNet) or final norm and head and
    recomputed attention buffers (Swin) are dropped."""
    # Swin-B: Microsoft's patch merging at the end of stage i is timm's at the start of stage i + 1 (methods/swin.py)
    rules: List[Tuple[str, str]] = [(f"feature_extractor.layers.{i}.downsample.", f"backbone.layers.{i + 1}.downsample.")
                                    for i in range(3)]
    rules += [("feature_extractor.", "backbone.")]
    for index in range(3):
        rules += [(f"model.DCAMA_blocks.{index}.linears.0.", f"attention.{index}.query."),
                  (f"model.DCAMA_blocks.{index}.linears.1.", f"attention.{index}.key.")]
    rules += [("model.conv1.", "squeeze.0."), ("model.conv2.", "squeeze.1."), ("model.conv3.", "squeeze.2."),
              ("model.conv4.", "mix.0."), ("model.conv5.", "mix.1."),
              ("model.mixer1.", "decoder.0."), ("model.mixer2.", "decoder.1."), ("model.mixer3.", "decoder.2.")]
    unused = (r"model\.pe\.\d+\.pe", r"feature_extractor\.(fc|norm|head)\..*",
              r"feature_extractor\.layers\.\d+\.blocks\.\d+\.(attn_mask|attn\.relative_position_index)")
    return KeyMap(rules=tuple(rules), ignore_authors=unused)


class DCAMA(BackboneMethod):
    """DCAMA (Shi et al., ECCV 2022): query x support pixel attention over the support mask, per layer, one pass for k shots."""

    logits_align_corners = True  # their predict_mask_nshot resizes the logits so

    # HSNet's flattened feature code: every map of an image in one row, the layout remembered per row length
    encode = HSNet.encode
    _unflatten = HSNet._unflatten
    # and its test path: the episode resized to `input_size`, their network's logits at its own resolution (4x
    # layer1 here), the loss on logits resized to the mask (void as background, as theirs)
    forward = HSNet.forward
    network = HSNet.network
    training_loss = HSNet.training_loss

    def __init__(self, backbone: str = "resnet50", backbone_weights: Optional[str] = None,
                 backbone_enum: Optional[str] = "IMAGENET1K_V1", input_size: Optional[int] = None,
                 groups: Optional[Sequence[Sequence[str]]] = None, channels: Sequence[int] = PAPER_CHANNELS,
                 kernels: Sequence[Sequence[int]] = PAPER_KERNELS, dropout: float = DROPOUT,
                 output_stride: int = 1, resize_to_input: bool = True, swin: Optional[Mapping] = None):
        FewShotSegmenter.__init__(self)
        if backbone == "synthnet":
            groups = [list(g) for g in (groups or (["layer1"], ["layer2.0"], ["layer2.1"], ["layer3.0", "layer3.1"]))]
            names = [n for g in groups for n in g]
            if len(groups) != 4 or any(n not in SYNTHNET_BLOCKS for n in names) or len(set(names)) != len(names):
                raise MethodError(f"DCAMA's synthnet groups are four lists of distinct blocks among {', '.join(SYNTHNET_BLOCKS)}")
            self.block_names = sorted(names, key=SYNTHNET_BLOCKS.index)
            if names != self.block_names:
                raise MethodError("DCAMA's synthnet groups must list the blocks in network order, shallow to deep")
            self.backbone = build_backbone("synthnet", weights_path=backbone_weights,
                                           layers=("layer1", "layer2", "layer3"))
            widths = [[self.backbone.channels[n.partition(".")[0]] for n in g] for g in groups]
            self.group_sizes = tuple(len(g) for g in groups)
        elif backbone in ("resnet50", "resnet101"):
            if groups:
                raise MethodError(f"DCAMA's layer groups are fixed on {backbone} (as the paper's); `groups` is for synthnet")
            self.backbone = TorchvisionFeatures(backbone, weights=None if backbone_weights else backbone_enum,
                                                weights_path=backbone_weights, with_layer1=True)
            self.group_sizes = tuple(self.backbone.group_sizes)
            widths = [[256 * 2 ** i] * n for i, n in enumerate(self.group_sizes)]
        elif backbone == SWIN:
            if groups:
                raise MethodError(f"DCAMA's layer groups are fixed on {backbone} (its four stages); "
                                  "`groups` is for synthnet")
            self.backbone = SwinFeatures({"img_size": input_size or SWIN_B["img_size"], **dict(swin or {})},
                                         weights_path=backbone_weights)
            self.group_sizes = self.backbone.group_sizes
            widths = [[w] * n for w, n in zip(self.backbone.widths, self.group_sizes)]
        else:
            raise MethodError(f"unknown DCAMA backbone '{backbone}'; known: resnet50, resnet101, {SWIN}, synthnet")
        if any(len(set(w)) != 1 for w in widths):
            raise MethodError("DCAMA's layers of one group must have the same channels (one attention per group)")
        if output_stride not in OUTPUT_STRIDES:
            raise MethodError(f"DCAMA's `output_stride` is one of {', '.join(map(str, OUTPUT_STRIDES))}, not {output_stride}")
        if len(channels) != 3 or any(c % 4 for c in channels):
            raise MethodError("DCAMA's `channels` are three widths divisible by 4 (GroupNorm(4))")
        group_channels = [w[0] for w in widths]
        self.backbone_name = backbone
        self.input_size = input_size
        self.native_resolution = input_size is not None
        self.resize_to_input = resize_to_input
        self.output_stride = output_stride
        small, middle, large = channels
        self.attention = nn.ModuleList([MaskAttention(c, dropout=dropout) for c in group_channels[1:]])
        # deepest group first, as theirs (conv1: layer4, conv2: layer3, conv3: layer2)
        self.squeeze = nn.ModuleList([conv_block(n, channels, k) for n, k in zip(self.group_sizes[:0:-1], kernels)])
        self.mix = nn.ModuleList([conv_block(large, [large] * 3, [3] * 3) for _ in range(2)])
        skips = large + 2 * group_channels[1] + (2 * group_channels[0] if output_stride <= 4 else 0)
        self.decoder = nn.ModuleList([mixer(skips, large, middle), mixer(middle, middle, small),
                                      mixer(small, small, 2, last_relu=False)])
        self._layouts: Dict[int, Tuple] = {}
        self._options = {"backbone": backbone, "input_size": input_size, "groups": groups, "channels": list(channels),
                         "kernels": [list(k) for k in kernels], "dropout": dropout, "output_stride": output_stride,
                         "resize_to_input": resize_to_input, **({"swin": dict(swin)} if swin else {})}

    def features(self, images: torch.Tensor) -> List[torch.Tensor]:
        """DCAMA's intermediate maps of [N, 3, H, W] images, shallow to deep (the skip group first)."""
        if self.backbone_name == "synthnet":
            return synthnet_blocks(self.backbone, images, self.block_names)
        return self.backbone(images)

    def query_code(self, query_feats):
        """(an empty [N, 0, H, W] tensor carrying the input size, then each map)."""
        size, feats = self._unflatten(query_feats)
        return (query_feats.new_zeros(query_feats.shape[0], 0, *size), *feats)

    def support_code(self, support_feats, support_masks):
        """(each map, then the foreground mask [N, H, W] at the input size: void is background)."""
        _, feats = self._unflatten(support_feats)
        return (*feats, (support_masks == 1).to(feats[0].dtype))

    def coarse_masks(self, query: Sequence[torch.Tensor], support: Sequence[torch.Tensor],
                     masks: torch.Tensor) -> List[torch.Tensor]:
        """Per attention group (shallow to deep), its layers' coarse masks stacked [B, n, h, w]."""
        batch, shots = masks.shape[:2]
        out, start = [], self.group_sizes[0]
        for attention, size in zip(self.attention, self.group_sizes[1:]):
            group = []
            for index in range(start, start + size):
                h, w = query[index].shape[-2:]
                tokens = query[index].flatten(2).transpose(1, 2)
                keys = support[index].flatten(3).transpose(2, 3)  # [B, K, hw, C]
                values = F.interpolate(masks.flatten(0, 1)[:, None], size=(h, w), mode="bilinear", align_corners=True)
                group.append(attention(tokens, keys, values.view(batch, shots, h * w)).view(batch, h, w))
            out.append(torch.stack(group, dim=1))
            start += size
        return out

    def decode(self, query_code, support_code, resize: Optional[bool] = None):
        """Logits [B, 2, H, W] (`resize`: to the input size where they differ; default `resize_to_input`)."""
        size_token, *query = query_code
        *support, masks = support_code
        groups = self.coarse_masks(query, support, masks)
        squeezed = [block(g) for block, g in zip(self.squeeze, groups[::-1])]  # deepest first
        mix = squeezed[0]
        for block, finer in zip(self.mix, squeezed[1:]):
            mix = block(F.interpolate(mix, size=finer.shape[-2:], mode="bilinear", align_corners=True) + finer)
        skips = (sum(self.group_sizes[:2]) - 1, self.group_sizes[0] - 1)  # last layer2 map, last layer1 map
        for index in skips[:1 if self.output_stride == 8 else 2]:
            if mix.shape[-2:] != query[index].shape[-2:]:
                mix = F.interpolate(mix, size=query[index].shape[-2:], mode="bilinear", align_corners=True)
            mix = torch.cat((mix, query[index], support[index].max(dim=1).values), dim=1)
        out = self.decoder[0](mix)
        for step, block in enumerate(self.decoder[1:]):  # x2 before each (theirs); fewer for a coarser output_stride
            if self.output_stride <= 2 >> step:
                out = F.interpolate(out, size=(2 * out.shape[-2], 2 * out.shape[-1]), mode="bilinear", align_corners=True)
            out = block(out)
        size = size_token.shape[-2:]
        if (self.resize_to_input if resize is None else resize) and out.shape[-2:] != size:
            out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=True)
        return out

    def authors_pipeline(self) -> TestPipeline:
        """Their test loader at this model's `input_size` (their 384; None: the run's input size)."""
        return replace(AUTHORS_PIPELINE, size=self.input_size)


#: their test loader (pawn-sxy/DCAMA, HSNet's): test.py `FSSDataset.initialize(img_size=384)`, data/dataset.py
#: (torchvision Resize of each PIL image to 384 x 384, ToTensor, Normalize), data/pascal.py (masks resized with
#: F.interpolate 'nearest', `extract_ignore_idx`: void is background in a support and ignored in the query),
#: model/DCAMA.py `predict_mask_nshot` (the K shots in one forward; logits resized with align_corners)
AUTHORS_PIPELINE = TestPipeline(resize="square", size=384, resample="pil", support_void="background",
                                shots="network", source="pawn-sxy/DCAMA: test.py, data/dataset.py FSSDataset.initialize, "
                                "data/pascal.py DatasetPASCAL.__getitem__, model/DCAMA.py predict_mask_nshot, "
                                "common/evaluation.py Evaluator.classify_prediction")

SYNTHNET_GROUPS = [["layer1"], ["layer2.0"], ["layer2.1"], ["layer3.0", "layer3.1"]]
PROFILES = {
    # Adam 1e-3 (HSNet's synthetic recipe; their SGD at 1e-3 barely moves in a few epochs), 112 x 112 input:
    # synthnet's layer1 (stride 4) as the skip group, its stride-8 blocks as the three attention groups,
    # widths 16/32/64 (the paper's 16/64/128 halved at the top, as HSNet's synthetic profile).
    "synthetic": {"recipe": {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "epochs": 8},
                  "options": {"groups": SYNTHNET_GROUPS, "channels": [16, 32, 64]}},
    # seconds, for tests
    # logits kept at stride 8 (no layer1 skip, no upsampling: the loss and evaluator resize them)
    "tiny": {"recipe": {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0},
             "options": {"groups": SYNTHNET_GROUPS, "channels": [4, 8, 8], "output_stride": 8,
                         "resize_to_input": False}},
    # The released recipe (train.py, scripts/train.sh): SGD lr 1e-3, momentum 0.9, weight decay lr / 10
    # (Nesterov in theirs), batch 12 on each of 4 GPUs, 384 x 384, up to 500 epochs (the checkpoint where
    # validation mIoU saturates).
    "paper-pascal": {"recipe": {"optimizer": "sgd", "lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-4,
                                "batch_size": 48, "epochs": 500, "input_size": 384},
                     "options": {"input_size": 384}},
}


# --- the authors' released checkpoints (README of pawn-sxy/DCAMA: one Google Drive folder) ---
DRIVE = "https://drive.google.com/drive/folders/1vEw35yKoWkuDgkrclJPNSXeDtsTOVy_c"
KEYS = dcama_keymap()


def _entry(dataset: str, backbone: str, fold: int) -> PublishedWeights:
    folder = f"{dataset}-{backbone}-fold{fold}"
    return PublishedWeights(
        method="dcama", tag=folder, file_name=f"{folder}/best_model.pt",
        url=f"{DRIVE} (Google Drive folder of the DCAMA README; its layout was not checked, nor which datasets and "
            "backbones it holds: the authors answered in pawn-sxy/DCAMA issue #4 (2022-09-20) that the weights then "
            "offered were COCO's, in issues #5 and #9 (2023-03-01) that PASCAL's were released; put the experiment's "
            "best_model.pt, the whole model's state dict their training saves, backbone included, at this name; "
            "their test.py renames a file's keys by position onto the model's, here they are matched by name)",
        dataset=dataset, fold=fold, options={"backbone": backbone, "input_size": 384}, keys=KEYS, input_size=384,
        reported={}, source="Shi et al., ECCV 2022, Table 1 (PASCAL-5i) / Table 2 (COCO-20i): the per-fold numbers "
        "could not be read offline (no copy of the paper's tables was found), so none are recorded here; a later "
        "paper's table (Zhu et al., NeurIPS 2024, arXiv:2410.02369, Table 2) lists one DCAMA row per COCO-20i fold "
        "without naming its backbone, so it is not attributed to an entry",
        state_key="")


register_weights(*[_entry(dataset, backbone, fold) for dataset in ("pascal5i", "coco20i")
                   for backbone in ("resnet50", "resnet101", SWIN) for fold in range(4)])


register_method("dcama", trainable=True, profiles=PROFILES, citation="Shi et al., ECCV 2022")(DCAMA)
