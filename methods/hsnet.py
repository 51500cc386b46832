"""HSNet (Min, Kang, Cho: "Hypercorrelation Squeeze for Few-Shot Segmentation", ICCV 2021,
arXiv:2104.01538), written from the paper and the spec notes; facts checked against the released code
(juhongm999/hsnet). Layers in `methods/hsnet_layers.py`.

* features: the output of every bottleneck of layer2..layer4 before its final ReLU (ResNet-50: 4/6/3,
  ResNet-101: 4/23/3; VGG16: conv4_1..3, conv5_1..3 before ReLU and pool5, groups 3/3/1), of torchvision's
  standard (undilated) networks, frozen, BN in eval mode; support features multiplied by the support mask
  (bilinear, align_corners); `synthnet`: the harness's small frozen backbone, its residual blocks' outputs
  before their ReLU, grouped by `groups` (shallow to deep);
* hypercorrelation: ReLU(cosine) of all query x support position pairs, stacked per layer group;
* learner: center-pivot 4D convs + GroupNorm(4) + ReLU, squeeze blocks 16/64/128 with kernels (3,3,3) /
  (5,3,3) / (5,5,3) and support strides (2,2,2) / (4,2,2) / (4,4,2) (deepest group first), two mixing
  blocks, mean over the support dims, decoder with a x2 upsampling, logits bilinear to the input size;
* k-shot (their `predict_mask_nshot`): the per-shot argmax masks are summed, divided by max(vote, 1)
  (the largest vote in the image, at least 1) and thresholded at 0.5. The harness wants scores: for K > 1
  `decode` returns channel 0 = 0 and channel 1 = 2 * vote - max(vote, 1) + 0.5, whose argmax at the input
  resolution is exactly the voted mask (an integer 2v - m >= 0 iff v / m >= 0.5). 1-shot logits are the
  network's own;
* loss: cross-entropy of the 2-class logits against the query mask, void counted as background (their
  `extract_ignore_idx` zeroes it); 1-shot training;
* `input_size` (their 400): a native-resolution method that resizes query and supports itself (bilinear,
  antialiased, as PIL's resize; masks nearest) and returns logits at that size for the evaluator to resize;
* their test loader as data (`AUTHORS_PIPELINE`, followed under `bench run --pipeline authors`): each image
  resized from its own size by PIL, masks by F.interpolate 'nearest', the k-shot vote taken at the scoring
  size (their `predict_mask_nshot` with `use_original_imgsize` votes at the original size).

Deviations: the decoder's x2 upsampling uses (2h, 2w) where theirs uses (2w, 2w) (equal on their square
inputs); on `synthnet` the groups, support strides and widths are options (its maps are at stride 4 and 8,
not 8/16/32); `decoder_scale` / `resize_to_input` let the `tiny` profile keep logits at stride 8.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from methods.backbones import FrozenBackbone, build_backbone, load_state_file, torchvision_weights
from methods.base import FewShotSegmenter, TestPipeline
from methods.common import BackboneMethod
from methods.hsnet_layers import PAPER_CHANNELS, PAPER_KERNELS, PAPER_STRIDES, HypercorrelationLearner, l2_normalise
from methods.hsnet_layers import hypercorrelation
from methods.registry import MethodError, register_method
from methods.weights import KeyMap, PublishedWeights, register_weights

RESNET_BLOCKS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}
VGG_FEATURE_IDS = (17, 19, 21, 24, 26, 28, 30)  # indices in torchvision's vgg16().features
VGG_GROUPS = (3, 3, 1)
SYNTHNET_BLOCKS = ("layer1", "layer2.0", "layer2.1", "layer3.0", "layer3.1")


class TorchvisionFeatures(FrozenBackbone):
    """torchvision ResNet-50/101 (without fc) or VGG16 `features`, standard strides, module names as
    torchvision's (so the authors' `backbone.*` keys fit); returns HSNet's list of intermediate maps
    (`with_layer1`: a ResNet's layer1 bottlenecks first, as DCAMA taps them)."""

    def __init__(self, name: str, weights: Optional[str] = None, weights_path: Optional[str] = None,
                 with_layer1: bool = False):
        super().__init__()
        from torchvision import models

        self.name = name
        self.with_layer1 = with_layer1 and name != "vgg16"
        net = getattr(models, name)(weights=None)
        if name == "vgg16":
            self.features = net.features
            self.group_sizes = VGG_GROUPS
        else:
            for part in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
                setattr(self, part, getattr(net, part))
            self.group_sizes = RESNET_BLOCKS[name][0 if self.with_layer1 else 1:]
        self._load(net, weights, weights_path)
        self.freeze()

    def _load(self, net: nn.Module, weights: Optional[str], weights_path: Optional[str]) -> None:
        if weights_path:
            state, path = load_state_file(Path(weights_path)), Path(weights_path)
            self.identity = {"weights": "local", "source": "file", "file": str(path)}
        elif weights:
            from torchvision import models

            enum = models.get_model_weights(self.name)
            if weights not in enum.__members__:
                raise MethodError(f"unknown {self.name} weights '{weights}'; known: {', '.join(enum.__members__)}")
            state, path = torchvision_weights(enum[weights])
            self.identity = {"weights": f"{enum.__name__}.{weights}", "source": "torchvision", "file": str(path)}
        else:
            self.identity = {"weights": "random-init", "source": "none"}
            return
        own = {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier."))}
        missing, unexpected = self.load_state_dict(own, strict=False)
        if missing or unexpected:
            raise MethodError(f"backbone weights do not fit {self.name} (missing {missing[:3]}, unexpected {unexpected[:3]})")

    def forward(self, images: torch.Tensor) -> List[torch.Tensor]:
        if self.name == "vgg16":
            feats, x = [], images
            for index, module in enumerate(self.features):
                x = module(x)
                if index in VGG_FEATURE_IDS:
                    feats.append(x.clone())  # the next ReLU works in place
            return feats
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        if not self.with_layer1:
            x = self.layer1(x)
        feats = []
        for layer in ((self.layer1,) if self.with_layer1 else ()) + (self.layer2, self.layer3, self.layer4):
            for bottleneck in layer:
                out = bottleneck.bn1(bottleneck.conv1(x)).relu()
                out = bottleneck.bn2(bottleneck.conv2(out)).relu()
                out = bottleneck.bn3(bottleneck.conv3(out))
                out = out + (x if bottleneck.downsample is None else bottleneck.downsample(x))
                feats.append(out)
                x = out.relu()
        return feats


def synthnet_blocks(backbone: nn.Module, images: torch.Tensor, names: Sequence[str]) -> List[torch.Tensor]:
    """Pre-ReLU outputs of the named residual blocks of a synthnet backbone, in network order."""
    wanted = set(names)
    last = max(SYNTHNET_BLOCKS.index(n) for n in names)
    x, feats = backbone.stem(images), []
    for name in SYNTHNET_BLOCKS[:last + 1]:
        layer, _, index = name.partition(".")
        unit = getattr(backbone, layer)[int(index)] if index else getattr(backbone, layer)
        out = unit.conv2(unit.conv1(x)) + unit.skip(x)
        if name in wanted:
            feats.append(out)
        x = F.relu(out)
    return feats


def hsnet_keymap() -> KeyMap:
    """The released checkpoints' names (`backbone.*`, `hpn_learner.*`) to ours (`backbone.*`, `learner.*`)."""
    rules: List[Tuple[str, str]] = []
    blocks = [("encoder_layer4", "squeeze.0"), ("encoder_layer3", "squeeze.1"), ("encoder_layer2", "squeeze.2"),
              ("encoder_layer4to3", "mix.0"), ("encoder_layer3to2", "mix.1")]
    for theirs, ours in blocks:
        for index in (0, 3, 6):
            for conv, name in (("conv1", "query_conv"), ("conv2", "support_conv")):
                rules.append((f"hpn_learner.{theirs}.{index}.{conv}.", f"learner.{ours}.{index}.{name}."))
        rules.append((f"hpn_learner.{theirs}.", f"learner.{ours}."))
    rules += [("hpn_learner.decoder1.", "learner.decoder1."), ("hpn_learner.decoder2.", "learner.decoder2.")]
    return KeyMap(rules=tuple(rules), ignore_authors=(r"backbone\.fc\..*", r"backbone\.classifier\..*"))


class HSNet(BackboneMethod):
    """HSNet (Min et al., ICCV 2021): hypercorrelation of every bottleneck, center-pivot 4D conv squeeze."""

    logits_align_corners = True  # theirs upsample the logits to the original size so (use_original_imgsize)

    def __init__(self, backbone: str = "resnet50", backbone_weights: Optional[str] = None,
                 backbone_enum: Optional[str] = "IMAGENET1K_V1", input_size: Optional[int] = None,
                 groups: Optional[Sequence[Sequence[str]]] = None, channels: Sequence[int] = PAPER_CHANNELS,
                 kernels: Sequence[Sequence[int]] = PAPER_KERNELS, strides: Sequence[Sequence[int]] = PAPER_STRIDES,
                 decoder_scale: int = 2, resize_to_input: bool = True, mask_support: bool = True):
        FewShotSegmenter.__init__(self)
        if backbone == "synthnet":
            groups = [list(g) for g in (groups or (["layer2.0"], ["layer2.1"], ["layer3.0", "layer3.1"]))]
            names = [n for g in groups for n in g]
            if len(groups) != 3 or any(n not in SYNTHNET_BLOCKS for n in names) or len(set(names)) != len(names):
                raise MethodError(f"HSNet's synthnet groups are three lists of distinct blocks among {', '.join(SYNTHNET_BLOCKS)}")
            self.backbone = build_backbone("synthnet", weights_path=backbone_weights,
                                           layers=("layer1", "layer2", "layer3"))
            self.block_names = sorted(names, key=SYNTHNET_BLOCKS.index)
            if names != self.block_names:
                raise MethodError("HSNet's synthnet groups must list the blocks in network order, shallow to deep")
            self.group_sizes = tuple(len(g) for g in groups)
        elif backbone in ("resnet50", "resnet101", "vgg16"):
            if groups:
                raise MethodError(f"HSNet's layer groups are fixed on {backbone} (as the paper's); `groups` is for synthnet")
            self.backbone = TorchvisionFeatures(backbone, weights=None if backbone_weights else backbone_enum,
                                                weights_path=backbone_weights)
            self.group_sizes = self.backbone.group_sizes
        else:
            raise MethodError(f"unknown HSNet backbone '{backbone}'; known: resnet50, resnet101, vgg16, synthnet")
        self.backbone_name = backbone
        self.input_size = input_size
        self.native_resolution = input_size is not None
        self.resize_to_input = resize_to_input
        self.mask_support = mask_support
        self.learner = HypercorrelationLearner(list(self.group_sizes)[::-1], channels, kernels, strides, decoder_scale)
        self._layouts: Dict[int, Tuple] = {}
        self._options = {"backbone": backbone, "input_size": input_size, "groups": groups, "channels": list(channels),
                         "kernels": [list(k) for k in kernels], "strides": [list(s) for s in strides],
                         "decoder_scale": decoder_scale, "resize_to_input": resize_to_input,
                         "mask_support": mask_support}

    def features(self, images: torch.Tensor) -> List[torch.Tensor]:
        """HSNet's intermediate maps of [N, 3, H, W] images, shallow to deep."""
        if self.backbone_name == "synthnet":
            return synthnet_blocks(self.backbone, images, self.block_names)
        return self.backbone(images)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """All maps of each image flattened into one row [N, D] (one tensor, as the code cache indexes it);
        the layout is remembered per row length and read back by `query_code` / `support_code`."""
        feats = self.features(images)
        flat = torch.cat([f.flatten(1) for f in feats], dim=1)
        self._layouts[flat.shape[1]] = (tuple(images.shape[-2:]), [tuple(f.shape[1:]) for f in feats])
        return flat

    def _unflatten(self, flat: torch.Tensor):
        if flat.shape[-1] not in self._layouts:
            raise MethodError(f"{type(self).__name__} codes need features from this model's `encode`")
        size, shapes = self._layouts[flat.shape[-1]]
        parts = torch.split(flat, [c * h * w for c, h, w in shapes], dim=1)
        return size, [p.view(-1, *shape) for p, shape in zip(parts, shapes)]

    def query_code(self, query_feats):
        """(an empty [N, 0, H, W] tensor carrying the input size, then each normalised map)."""
        size, feats = self._unflatten(query_feats)
        return (query_feats.new_zeros(query_feats.shape[0], 0, *size), *[l2_normalise(f) for f in feats])

    def support_code(self, support_feats, support_masks):
        """Each map multiplied by the foreground mask (bilinear; not with `mask_support=False`, their Table 1
        variant), then normalised."""
        _, feats = self._unflatten(support_feats)
        if not self.mask_support:
            return tuple(l2_normalise(f) for f in feats)
        mask = (support_masks == 1).float()[:, None]
        return tuple(l2_normalise(f * F.interpolate(mask, size=f.shape[-2:], mode="bilinear", align_corners=True))
                     for f in feats)

    def one_shot(self, query: Sequence[torch.Tensor], support: Sequence[torch.Tensor], size) -> torch.Tensor:
        """Logits of one shot, resized to `size` (bilinear, align_corners) unless it is None."""
        logits = self.learner(hypercorrelation(query, support, self.group_sizes))
        if size is not None:
            logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=True)
        return logits

    def decode(self, query_code, support_code, resize: Optional[bool] = None):
        """`resize`: logits resized to the input size (default: the `resize_to_input` option)."""
        size_token, *query = query_code
        size = size_token.shape[-2:] if (self.resize_to_input if resize is None else resize) else None
        shots = support_code[0].shape[1]
        logits = [self.one_shot(query, [s[:, k] for s in support_code], size) for k in range(shots)]
        return logits[0] if shots == 1 else vote_scores(logits)

    def forward(self, query, supports, support_masks):
        if self.input_size is not None:
            query, supports, support_masks = resize_episode(query, supports, support_masks, self.input_size)
        return BackboneMethod.forward(self, query, supports, support_masks)  # explicit: DCAMA borrows this forward

    def network(self, query, supports, support_masks):
        """Their network's forward as their test calls it: logits at the learner's resolution, for the pipeline
        to resize (bilinear, align_corners) straight to the scoring size, as `use_original_imgsize` does (and
        as their forward does to the input size otherwise)."""
        return self.forward_features(*self.encode_episode(query, supports), support_masks, resize=False)

    def authors_pipeline(self) -> TestPipeline:
        """Their test loader at this model's `input_size` (their 400; None: the run's input size)."""
        return replace(AUTHORS_PIPELINE, size=self.input_size)

    def training_loss(self, query_feats, support_feats, support_masks, query_mask, context=None):
        logits = self.forward_features(query_feats, support_feats, support_masks)
        if logits.shape[-2:] != query_mask.shape[-2:]:
            logits = F.interpolate(logits, size=query_mask.shape[-2:], mode="bilinear", align_corners=True)
        return F.cross_entropy(logits, (query_mask == 1).long())  # void as background, as theirs


def vote_scores(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Two-channel scores whose argmax is HSNet's voted k-shot mask (see the module docstring)."""
    votes = torch.stack([l.argmax(dim=1) for l in logits]).sum(dim=0)
    top = votes.flatten(1).max(dim=1).values.clamp(min=1).view(-1, 1, 1)
    foreground = (2 * votes - top).float() + 0.5
    return torch.stack([torch.zeros_like(foreground), foreground], dim=1)


def resize_episode(query, supports, support_masks, size: int):
    """An episode resized to size x size: images bilinear (antialiased), masks nearest."""
    def images(x):
        if tuple(x.shape[-2:]) == (size, size):
            return x
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

    batch, shots = supports.shape[:2]
    masks = support_masks
    if tuple(masks.shape[-2:]) != (size, size):
        masks = F.interpolate(masks.flatten(0, 1)[:, None].float(), size=(size, size), mode="nearest")[:, 0]
        masks = masks.round().long().unflatten(0, (batch, shots))
    return images(query), images(supports.flatten(0, 1)).unflatten(0, (batch, shots)), masks


#: their test loader (juhongm999/hsnet): data/dataset.py `FSSDataset.initialize` (torchvision Resize of each PIL
#: image to 400 x 400, ToTensor, Normalize), data/pascal.py `DatasetPASCAL.__getitem__` (masks resized with
#: F.interpolate 'nearest', `extract_ignore_idx`: void is background in a support and ignored in the query),
#: model/hsnet.py `predict_mask_nshot` (per-shot argmax, at the original size with use_original_imgsize, and
#: the vote), common/evaluation.py `Evaluator.classify_prediction` (void ignored)
AUTHORS_PIPELINE = TestPipeline(resize="square", size=400, resample="pil", support_void="background",
                                shots="vote", source="juhongm999/hsnet: data/dataset.py FSSDataset.initialize, "
                                "data/pascal.py DatasetPASCAL.__getitem__, model/hsnet.py predict_mask_nshot, "
                                "common/evaluation.py Evaluator.classify_prediction")

PROFILES = {
    # Adam 1e-3 as theirs (no weight decay), the harness's synthetic recipe otherwise (112 x 112 input).
    # synthnet has two strides only (its layer2 and layer3 blocks are all at 14 x 14): groups layer2.0 /
    # layer2.1 / layer3.*, support strides (4, 2, 2) so that every group meets at 1 x 1 support positions,
    # widths 16/32/64 (the paper's 16/64/128 halved at the top) to train a split in minutes on 2 CPU cores.
    "synthetic": {"recipe": {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "epochs": 8},
                  "options": {"groups": [["layer2.0"], ["layer2.1"], ["layer3.0", "layer3.1"]],
                              "channels": [16, 32, 64], "strides": [[4, 2, 2], [4, 2, 2], [4, 2, 2]]}},
    # seconds, for tests: every map at stride 8, logits kept at stride 8 (the loss and evaluator resize them)
    "tiny": {"recipe": {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0},
             "options": {"groups": [["layer2.0"], ["layer2.1"], ["layer3.0", "layer3.1"]], "channels": [4, 8, 8],
                         "strides": [[2, 2, 2], [2, 2, 2], [2, 2, 2]], "decoder_scale": 1, "resize_to_input": False}},
    # The released recipe: Adam 1e-3, batch 20, 400 x 400, no augmentation beyond the harness's flips, up to
    # 2000 epochs (their --niter; they pick the checkpoint where validation mIoU saturates).
    "paper-pascal": {"recipe": {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "batch_size": 20,
                                "epochs": 2000, "input_size": 400},
                     "options": {"input_size": 400}},
}


# --- the authors' released checkpoints (README of juhongm999/hsnet: one Google Drive folder per benchmark) ---
DRIVE = {"pascal5i": "https://drive.google.com/drive/folders/1z4KgjgOu--k6YuIj3qWrGg264GRcMis2",
         "pascal5i-nomask": "https://drive.google.com/drive/folders/18YWMCePIrza194pZvVMqQBuYqhwBmJwd",
         "coco20i": "https://drive.google.com/drive/folders/1WpwmCQzxTWhJD5aLQhsgJASaoxxqmFUk",
         "fss1000": "https://drive.google.com/drive/folders/1JOaaJknGwsrSEPoLF3x6_lDiy4XfAe99"}
SHORT = {"resnet50": "res50", "resnet101": "res101", "vgg16": "vgg16", "pascal5i": "pas", "coco20i": "coco",
         "fss1000": "fss"}
#: the paper's mIoU per fold, {dataset: {backbone: {shots: (fold0, fold1, fold2, fold3)}}} (Tables 1 and 2;
#: FSS-1000 has one split). FB-IoU is reported only as the mean over folds (PAPER_FBIOU), so the per-fold
#: entries leave it None.
PAPER_MIOU = {
    "pascal5i": {"vgg16": {1: (59.6, 65.7, 59.6, 54.0), 5: (64.9, 69.0, 64.1, 58.6)},
                 "resnet50": {1: (64.3, 70.7, 60.3, 60.5), 5: (70.3, 73.2, 67.4, 67.1)},
                 "resnet101": {1: (67.3, 72.3, 62.0, 63.1), 5: (71.8, 74.4, 67.0, 68.3)}},
    "coco20i": {"resnet50": {1: (36.3, 43.1, 38.7, 38.7), 5: (43.3, 51.3, 48.2, 45.0)},
                "resnet101": {1: (37.2, 44.1, 42.4, 41.3), 5: (45.9, 53.0, 51.8, 47.1)}},
    "fss1000": {"vgg16": {1: (82.3,), 5: (85.8,)}, "resnet50": {1: (85.5,), 5: (87.8,)},
                "resnet101": {1: (86.5,), 5: (88.5,)}},
}
#: mean FB-IoU over folds, {dataset: {backbone: {shots: value}}} (FSS-1000: not reported)
PAPER_FBIOU = {"pascal5i": {"vgg16": {1: 73.4, 5: 76.6}, "resnet50": {1: 76.7, 5: 80.6}, "resnet101": {1: 77.6, 5: 80.6}},
               "coco20i": {"resnet50": {1: 68.2, 5: 70.7}, "resnet101": {1: 69.1, 5: 72.4}}}
KEYS = hsnet_keymap()


def _entry(dataset: str, backbone: str, fold: int, masked: bool = True) -> PublishedWeights:
    folder = f"{SHORT[backbone]}_{SHORT[dataset]}" + ("" if masked else "_nomask")
    file_name = f"{folder}/{folder}_fold{fold}/best_model.pt" if dataset != "fss1000" else f"{folder}/best_model.pt"
    reported = {shots: {"miou": values[fold], "fbiou": None} for shots, values in PAPER_MIOU[dataset][backbone].items()}
    options = {"backbone": backbone, "input_size": 400, **({} if masked else {"mask_support": False})}
    return PublishedWeights(
        method="hsnet", tag=f"{dataset}-fold{fold}-{backbone}" + ("" if masked else "-nomask"), file_name=file_name,
        url=f"{DRIVE[dataset if masked else dataset + '-nomask']} (Google Drive folder of the HSNet README; best_model.pt per experiment)",
        dataset=dataset, fold=fold, options=options, keys=KEYS, input_size=400,
        reported=reported if masked else {}, source="Min et al., ICCV 2021, Table 1 (PASCAL-5i) / Table 2 (COCO-20i, FSS-1000); typed in without the paper at hand (its tables were not readable offline): check them before trusting bench verify",
        state_key="")


register_weights(*[_entry(dataset, backbone, fold) for dataset, backbones in PAPER_MIOU.items()
                   for backbone in backbones for fold in range(len(next(iter(backbones[backbone].values()))))])
# README section 4: ResNet-101 on PASCAL-5i without support feature masking (the paper's HSNet-dagger rows;
# their per-fold numbers are not recorded here)
register_weights(*[_entry("pascal5i", "resnet101", fold, masked=False) for fold in range(4)])


register_method("hsnet", trainable=True, profiles=PROFILES, citation="Min, Kang, Cho, ICCV 2021")(HSNet)
