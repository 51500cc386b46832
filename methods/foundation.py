"""The foundation models of the training-free methods (GF-SAM, Matcher): DINOv2 (Oquab et al., 2023) through
timm's `vit_*_patch14_dinov2` and SAM (Kirillov et al., ICCV 2023) through the `segment-anything` package.

Both packages are optional (`pip install 'fss-bench[foundation]'`): importing this module needs neither;
building a model without them raises one line naming the package.

The released weights of both are declared here once (`foundation_files`, `foundation_entries`), for every
training-free method that uses them: DINOv2's `dinov2_vitl14_pretrain.pth` and SAM's `sam_vit_h_4b8939.pth`
(dl.fbaipublicfiles.com, as the GF-SAM and Matcher READMEs name them under `models/`), one published-weights
entry per dataset and fold pointing at the same two files. DINOv2's file holds the names of its own
`vit_large(block_chunks=0)`, which are timm's but for `mask_token` (timm's `checkpoint_filter_fn` ->
`_convert_dinov2` drops it and renames nothing else for a ViT without registers or SwiGLU); SAM's file is
`Sam`'s state dict (segment-anything's `build_sam` loads it as is). No sha256 of either is published by the
methods' authors, and none was found in a stored source: the entries leave it None.
"""
from __future__ import annotations

import importlib
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from methods.base import FewShotSegmenter
from methods.registry import MethodError
from methods.weights import KeyMap, PublishedWeights, WeightFile

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: the published ViTs: timm's architecture names, and SAM's registry names
DINO_ARCHS = {"vit_small": "vit_small_patch14_dinov2", "vit_base": "vit_base_patch14_dinov2",
              "vit_large": "vit_large_patch14_dinov2", "vit_giant": "vit_giant_patch14_dinov2"}
SAM_ARCHS = ("vit_h", "vit_l", "vit_b")


def require(package: str, module: str, method: str):
    """`module` imported, or a one-line MethodError naming the pip package."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MethodError(f"{method} needs the package '{package}' (pip install {package}, "
                          "or pip install 'fss-bench[foundation]')") from None


def unnormalise(images: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised RGB (the harness's input) -> [0, 1] RGB."""
    mean = images.new_tensor(IMAGENET_MEAN).view(-1, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(-1, 1, 1)
    return images * std + mean


#: the released files: {part: {architecture: (file name, download address)}} (Meta's READMEs; no sha256 recorded)
RELEASED = {
    "dinov2": {"vit_small": ("dinov2_vits14_pretrain.pth",
                             "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth"),
               "vit_base": ("dinov2_vitb14_pretrain.pth",
                            "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth"),
               "vit_large": ("dinov2_vitl14_pretrain.pth",
                             "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth")},
    "sam": {"vit_h": ("sam_vit_h_4b8939.pth", "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth"),
            "vit_l": ("sam_vit_l_0b3195.pth", "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth"),
            "vit_b": ("sam_vit_b_01ec64.pth", "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth")}}
#: DINOv2's released names -> timm's (`_convert_dinov2`: `mask_token` dropped, the rest as is)
DINOV2_IGNORED = (r"mask_token",)


def foundation_files(dino: str = "vit_large", sam: str = "vit_h", dino_prefix: str = "encoder.vit.",
                     sam_prefix: str = "sam.", folder: str = "models") -> Tuple[WeightFile, WeightFile]:
    """The two released files of a DINOv2 + SAM method, under `folder` as the authors lay them out, their keys
    put under the method's module prefixes (`dino_prefix`: the timm ViT, `sam_prefix`: the `Sam`)."""
    (dino_name, dino_url), (sam_name, sam_url) = RELEASED["dinov2"][dino], RELEASED["sam"][sam]
    return (WeightFile("dinov2", f"{folder}/{dino_name}", dino_url,
                       keys=KeyMap(rules=(("", dino_prefix),), ignore_authors=DINOV2_IGNORED)),
            WeightFile("sam", f"{folder}/{sam_name}", sam_url, keys=KeyMap(rules=(("", sam_prefix),))))


def foundation_entries(method: str, reported: Mapping[str, Mapping[int, Sequence]], options: Mapping, input_size: int,
                       source: str, files: Optional[Sequence[WeightFile]] = None) -> List[PublishedWeights]:
    """One entry per dataset and fold of `reported` ({dataset: {shots: [(miou, fbiou) per fold]}}, a number may be
    None), all pointing at the same `files` (default `foundation_files()`); e.g. for Matcher:
    `register_weights(*foundation_entries("matcher", REPORTED, OPTIONS, 1024, SOURCE, foundation_files(...)))`."""
    files = tuple(files or foundation_files(options.get("dino", "vit_large"), options.get("sam", "vit_h")))
    entries = []
    for dataset, shots in reported.items():
        folds = max(len(values) for values in shots.values())
        for fold in range(folds):
            numbers: Dict[int, Dict] = {k: {"miou": values[fold][0], "fbiou": values[fold][1]}
                                        for k, values in sorted(shots.items())}
            entries.append(PublishedWeights(method=method, tag=f"{dataset}-fold{fold}", file_name="", url="",
                                            dataset=dataset, fold=fold, options=dict(options), input_size=input_size,
                                            reported=numbers, source=source, files=files, fold_free=True))
    return entries


class DinoFeatures(nn.Module):
    """DINOv2 patch tokens before the final norm (their `x_prenorm[:, 1:]`) of [0, 1] images resized to
    `img_size` (torchvision's antialiased bilinear, as their `transforms.Resize` on a tensor) and normalised."""

    def __init__(self, arch: str = "vit_large", img_size: int = 518, method: str = "a foundation method",
                 overrides: Optional[Mapping] = None):
        super().__init__()
        timm = require("timm", "timm", method)
        if arch not in DINO_ARCHS:
            raise MethodError(f"unknown DINOv2 architecture '{arch}'; known: {', '.join(DINO_ARCHS)}")
        self.vit = timm.create_model(DINO_ARCHS[arch], pretrained=False, img_size=img_size, **dict(overrides or {}))
        self.img_size = img_size
        self.patch_size = self.vit.patch_embed.patch_size[0]
        self.grid = img_size // self.patch_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] in [0, 1] -> [N, grid * grid, C]."""
        h, w = images.shape[-2:]
        short = min(h, w)  # Resize(int): the shorter side to img_size
        size = (self.img_size, self.img_size) if h == w else (int(self.img_size * h / short), int(self.img_size * w / short))
        x = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = (x - self.mean) / self.std
        vit = self.vit
        x = vit.norm_pre(vit._pos_embed(vit.patch_embed(x)))
        x = vit.blocks(x)
        return x[:, vit.num_prefix_tokens:]


def build_sam(arch: str = "vit_h", method: str = "a foundation method", reduced: Optional[Mapping] = None):
    """SAM from `segment_anything` (no weights): the registry's `arch`, or with `reduced` a small SAM of the same
    design ({img_size, embed_dim, depth, heads, window, prompt_dim, decoder_mlp, decoder_heads})."""
    sam_pkg = require("segment-anything", "segment_anything", method)
    if not reduced:
        if arch not in SAM_ARCHS:
            raise MethodError(f"unknown SAM architecture '{arch}'; known: {', '.join(SAM_ARCHS)}")
        return sam_pkg.sam_model_registry[arch](checkpoint=None).eval()
    from functools import partial

    from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,
                                           TwoWayTransformer)
    r = dict(reduced)
    size, prompt_dim = r["img_size"], r["prompt_dim"]
    encoder = ImageEncoderViT(depth=r["depth"], embed_dim=r["embed_dim"], img_size=size, mlp_ratio=4,
                              norm_layer=partial(nn.LayerNorm, eps=1e-6), num_heads=r["heads"], patch_size=16,
                              qkv_bias=True, use_rel_pos=True, global_attn_indexes=(r["depth"] - 1,),
                              window_size=r["window"], out_chans=prompt_dim)
    grid = size // 16
    prompt = PromptEncoder(embed_dim=prompt_dim, image_embedding_size=(grid, grid), input_image_size=(size, size),
                           mask_in_chans=16)
    decoder = MaskDecoder(num_multimask_outputs=3, transformer_dim=prompt_dim, iou_head_depth=3,
                          iou_head_hidden_dim=r["decoder_mlp"],
                          transformer=TwoWayTransformer(depth=2, embedding_dim=prompt_dim, mlp_dim=r["decoder_mlp"],
                                                        num_heads=r["decoder_heads"]))
    return Sam(image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder,
               pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375]).eval()


class SamPrompter:
    """SAM's image embedding of one [3, S, S] image in [0, 1] (as their `img.mul(255).byte()`, then
    `SamPredictor.set_image`) and single-point prompts on it (`SamPredictor.predict_torch`)."""

    def __init__(self, sam: nn.Module):
        from segment_anything import SamPredictor
        self.predictor = SamPredictor(sam)

    @property
    def img_size(self) -> int:
        return self.predictor.model.image_encoder.img_size

    def set_image(self, image: torch.Tensor) -> None:
        array = image.mul(255).byte().permute(1, 2, 0).cpu().numpy()
        self.predictor.set_image(np.ascontiguousarray(array))

    def point_masks(self, points: np.ndarray, batch: int = 64, multimask: bool = False):
        """Masks [N, C, S, S] (bool), IoU scores [N, C] of single positive points [N, 2] (x, y in SAM's frame,
        truncated to int as theirs)."""
        device = self.predictor.device
        masks, scores = [], []
        for start in range(0, len(points), batch):
            chunk = torch.as_tensor(points[start:start + batch], device=device, dtype=torch.int)
            labels = torch.ones(len(chunk), 1, device=device, dtype=torch.int)
            m, s, _ = self.predictor.predict_torch(point_coords=chunk[:, None, :], point_labels=labels,
                                                   multimask_output=multimask)
            masks.append(m)
            scores.append(s)
        return torch.cat(masks), torch.cat(scores)


class OneEpisodeAtATime(FewShotSegmenter):
    """A training-free method that segments each episode on its own at `input_size` (a native-resolution method:
    it resizes the shared pipeline's images itself), on [0, 1] images; subclasses set `input_size` and `_options`
    and implement `predict(query [3, S, S], supports [K, 3, S, S], foreground masks [K, S, S]) -> mask [S, S]`."""

    native_resolution = True
    input_size: int
    _options: Dict

    def options(self) -> Dict:
        return dict(self._options)

    def predict(self, query: torch.Tensor, supports: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, query, supports, support_masks):
        size = (self.input_size, self.input_size)
        query = unnormalise(F.interpolate(query, size=size, mode="bilinear", align_corners=False)).clamp(0, 1)
        b, k = supports.shape[:2]
        supports = F.interpolate(supports.flatten(0, 1), size=size, mode="bilinear", align_corners=False)
        supports = unnormalise(supports).clamp(0, 1).view(b, k, 3, *size)
        masks = F.interpolate(support_masks.float(), size=size, mode="nearest")
        preds = torch.stack([self.predict(q, s, (m == 1).float()) for q, s, m in zip(query, supports, masks)])
        return torch.stack((1 - preds, preds), dim=1)

