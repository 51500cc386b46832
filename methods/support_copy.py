"""`support-copy`: a parameter-free sanity anchor.

The support mask is resized (nearest) onto the query frame and used as the prediction; with K
shots each pixel takes the strict majority vote of the K resized masks (ties go to background).
It runs at the query's original resolution, so it scores exactly 100 mIoU in the identical-input
test, and it measures how much of a benchmark is solved by spatial priors alone.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from methods.base import FewShotSegmenter, foreground
from methods.registry import register_method


@register_method("support-copy")
class SupportCopy(FewShotSegmenter):
    """Reference: the support mask resized onto the query (k-shot: pixel-wise majority vote)."""

    native_resolution = True

    def forward(self, query, supports, support_masks):
        height, width = query.shape[-2:]
        masks = foreground(support_masks)  # [B, K, h, w]
        if masks.shape[-2:] != (height, width):
            masks = F.interpolate(masks, size=(height, width), mode="nearest-exact")
        votes = masks.sum(dim=1)
        shots = masks.shape[1]
        fg = (2 * votes > shots).float()
        return torch.stack([1.0 - fg, fg], dim=1)
