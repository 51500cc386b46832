"""The foundation models of the training-free methods (GF-SAM, Matcher): DINOv2 (Oquab et al., 2023) through
timm's `vit_*_patch14_dinov2` and SAM (Kirillov et al., ICCV 2023) through the `segment-anything` package.

Both packages are optional (`pip install 'fss-bench[foundation]'`): importing this module needs neither;
building a model without them raises one line naming the package.
"""
from __future__ import annotations

import importlib
from typing import Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from methods.registry import MethodError

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
