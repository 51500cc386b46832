"""Swin Transformer features as DCAMA takes them (pawn-sxy/DCAMA, model/base/swin_transformer.py, Microsoft's
implementation: `BasicLayer.forward` keeps a copy of every block's output, `extract_feats` reshapes each to
[N, C, h, w]): the output of every block of every stage, before the patch merging that follows the stage and
without any norm (the final `norm` feeds only the classifier). Built on timm's `SwinTransformer` (an optional
package, imported when a model is built): timm puts the patch merging at the start of the next stage, so the
same tensors are the outputs of its stages' blocks, read here one block at a time (timm's maps are NHWC).

Microsoft's checkpoint names (`layers.{i}.downsample.*` at the end of stage i) become timm's
(`layers.{i + 1}.downsample.*`) by `microsoft_to_timm`; their `attn_mask` and `relative_position_index` buffers
(recomputed), `norm.*` and `head.*` (unused) are dropped.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import torch

from methods.backbones import FrozenBackbone, load_state_file
from methods.registry import MethodError

#: their Swin-B (model/DCAMA.py: `SwinTransformer(img_size=384, patch_size=4, window_size=12, embed_dim=128,
#: depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32])`, the README's swin_base_patch4_window12_384_22kto1k.pth)
SWIN_B = {"img_size": 384, "patch_size": 4, "embed_dim": 128, "depths": (2, 2, 18, 2), "num_heads": (4, 8, 16, 32),
          "window_size": 12}
UNUSED = re.compile(r"(.*\.attn_mask|.*\.relative_position_index|norm\..*|head\..*)")


def microsoft_to_timm(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Microsoft's Swin state dict (their `feature_extractor.*` without the prefix) in this module's names."""
    out = {}
    for key, value in state.items():
        if not UNUSED.fullmatch(key):
            out[re.sub(r"^layers\.(\d+)\.downsample\.", lambda m: f"layers.{int(m.group(1)) + 1}.downsample.", key)] = value
    return out


class SwinFeatures(FrozenBackbone):
    """Every block's output of every stage of a Swin Transformer, shallow to deep, [N, C, h, w] each.

    `config`: timm `SwinTransformer` arguments over `SWIN_B` (a reduced Swin for tests); `weights_path`: a
    Microsoft checkpoint ({'model': state dict}, as the DCAMA README's file) or a state dict in either naming.
    """

    stride = 4

    def __init__(self, config: Optional[Mapping] = None, weights_path: Optional[str] = None, method: str = "dcama"):
        super().__init__()
        try:
            timm_swin = importlib.import_module("timm.models.swin_transformer")
        except ImportError:
            raise MethodError(f"{method}'s Swin backbone needs the package 'timm' (pip install timm)") from None
        self.config = {**SWIN_B, **dict(config or {})}
        unknown = set(self.config) - set(SWIN_B)
        if unknown:
            raise MethodError(f"unknown Swin options {sorted(unknown)}; known: {', '.join(SWIN_B)}")
        cfg = self.config
        if len(cfg["depths"]) != 4 or len(cfg["num_heads"]) != 4:
            raise MethodError("the Swin backbone has four stages: four `depths` and four `num_heads`")
        swin = timm_swin.SwinTransformer(img_size=cfg["img_size"], patch_size=cfg["patch_size"], embed_dim=cfg["embed_dim"],
                                         depths=tuple(cfg["depths"]), num_heads=tuple(cfg["num_heads"]),
                                         window_size=cfg["window_size"], num_classes=0, drop_path_rate=0.0)
        self.patch_embed, self.layers = swin.patch_embed, swin.layers  # the final norm and head: unused
        self.img_size = int(cfg["img_size"])
        self.group_sizes = tuple(int(d) for d in cfg["depths"])
        self.widths = tuple(int(cfg["embed_dim"]) * 2 ** i for i in range(4))
        self.channels = {f"stage{i + 1}": w for i, w in enumerate(self.widths)}
        if weights_path:
            self._load(Path(weights_path))
            self.identity = {"weights": "local", "source": "file", "file": str(weights_path)}
        else:
            self.identity = {"weights": "random-init", "source": "none"}
        self.freeze()

    def _load(self, path: Path) -> None:
        state = load_state_file(path)
        state = state.get("model", state)
        if any(k.startswith("layers.0.downsample.") for k in state):  # Microsoft's naming
            state = microsoft_to_timm(state)
        state = {k: v for k, v in state.items() if not UNUSED.fullmatch(k)}
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise MethodError(f"Swin weights {path} do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})")

    def forward(self, images: torch.Tensor) -> List[torch.Tensor]:
        if tuple(images.shape[-2:]) != (self.img_size, self.img_size):
            raise MethodError(f"this Swin backbone takes {self.img_size} x {self.img_size} images (its windows and "
                              f"masks are fixed, as theirs), not {tuple(images.shape[-2:])}: set DCAMA's input_size")
        x = self.patch_embed(images)  # [N, h, w, C]
        feats = []
        for stage in self.layers:
            x = stage.downsample(x)  # timm: at the start of a stage (identity in the first)
            for block in stage.blocks:
                x = block(x)
                feats.append(x.permute(0, 3, 1, 2).contiguous())
        return feats
