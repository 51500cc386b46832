"""The one interface every few-shot segmentation method implements."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
from torch import nn

IGNORE_INDEX = 255

RESIZES = ("square", "longer-side")
RESAMPLES = ("pil", "cv2")
SUPPORT_VOIDS = ("background", "void")
SHOT_RULES = ("network", "vote")


@dataclass(frozen=True)
class TestPipeline:
    """How a method's authors' own test loader turns an episode into network input and scores it: data the
    harness interprets (`bench.evaluation.authors`) under `--pipeline authors`.

    `size`: the network's input side (None: the run's `--input-size`);
    `resize`: "square" (each image from its own size to size x size) or "longer-side" (longer side to `size`,
    both sides floored to a multiple of 8, padded bottom/right to size x size: black image, void mask);
    `resample`: "pil" (images by PIL's antialiased bilinear, as torchvision's Resize on a PIL image, then
    ToTensor and Normalize; masks by F.interpolate 'nearest') or "cv2" (float pixels by cv2's INTER_LINEAR:
    bilinear without antialiasing, normalised with mean and std times 255; masks by cv2's INTER_NEAREST);
    `support_void`: a support mask's void pixels become "background" or stay "void";
    `shots`: "network" (the K shots go to the network together) or "vote" (one network call per shot, each
    argmax taken at the scoring size, foreground where the votes reach half the largest vote, at least 1);
    `source`: the files and functions of the authors' code that it follows.
    """

    __test__ = False  # not a pytest test class, whatever its name

    resize: str
    size: Optional[int]
    resample: str
    support_void: str
    shots: str
    source: str
    #: the bilinear resize of logits to the scoring size (theirs: align_corners=True)
    align_corners: bool = True

    def __post_init__(self) -> None:
        for name, allowed in (("resize", RESIZES), ("resample", RESAMPLES),
                              ("support_void", SUPPORT_VOIDS), ("shots", SHOT_RULES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"TestPipeline.{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        if self.size is not None and not 8 <= self.size <= 4096:
            raise ValueError(f"TestPipeline.size must be in 8..4096, not {self.size}")


def foreground(masks: torch.Tensor) -> torch.Tensor:
    """Float foreground indicator of a {0, 1, 255} mask (ignore counts as not-foreground)."""
    return (masks == 1).float()


def longer_side_shape(height: int, width: int, size: int) -> Tuple[int, int]:
    """PFENet's `Resize` shape: the longer side to `size`, the other scaled alike (truncated), both floored to
    a multiple of 8 (so 473 -> 472); at least 8 (theirs would fail on a side that floors to 0)."""
    if height >= width:
        new_h, new_w = size, int(width * (size * 1.0 / height))
    else:
        new_h, new_w = int(height * (size * 1.0 / width)), size
    return max(8, new_h // 8 * 8), max(8, new_w // 8 * 8)


def cv2_nearest_index(source: int, target: int, device=None) -> torch.Tensor:
    """Source indices of cv2's INTER_NEAREST from `source` to `target` pixels: floor(i * (1 / (target /
    source))) in double precision, clamped to the last pixel."""
    index = torch.floor(torch.arange(target, dtype=torch.float64) * (1.0 / (target / source))).long()
    return index.clamp_(max=source - 1).to(device)


class FewShotSegmenter(nn.Module):
    """Base class: `forward(query, supports, support_masks) -> logits [B, 2, h, w]`.

    Channel 1 is the target class, channel 0 background; h, w may be any size (the evaluator
    resizes logits bilinearly to each query label). Combining the K shots is the method's own
    business. Methods with a frozen backbone will expose it as `backbone` so that evaluation can
    compute each unique image's features once (feature caching).
    """

    #: True: evaluation feeds each episode at the query's original size (supports resized onto
    #: the query frame, batch of one) instead of the square input size. For reference methods.
    native_resolution: bool = False

    #: True: built with the harness's backbone options (`backbone`, `backbone_weights`: the training profile's
    #: frozen backbone), trained or not (`BackboneMethod` sets it; a factory may carry it as an attribute)
    takes_backbone: bool = False

    #: how the evaluator resizes this method's logits to each label: bilinear with align_corners as
    #: the method was trained (True for methods whose authors' losses upsample with align_corners=True)
    logits_align_corners: bool = False

    def forward(
        self, query: torch.Tensor, supports: torch.Tensor, support_masks: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError

    def options(self) -> Dict:
        """The method's resolved options, recorded in the run config."""
        return {}

    def authors_pipeline(self) -> Optional[TestPipeline]:
        """The authors' own test-time pipeline for this configuration (None: they publish none it follows)."""
        return None

    def network(self, query: torch.Tensor, supports: torch.Tensor, support_masks: torch.Tensor) -> torch.Tensor:
        """The forward on inputs already at the network's size (no test-time resizing of the method's own):
        what `authors_pipeline` feeds. Logits [B, 2, h, w] at the input's size or below."""
        return self.forward(query, supports, support_masks)
