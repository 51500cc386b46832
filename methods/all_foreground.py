"""`all-foreground`: a parameter-free lower anchor that labels every query pixel as the class.

Its mIoU is the mean foreground fraction of the queries; a learned method must beat it.
"""
from __future__ import annotations

from methods.base import FewShotSegmenter
from methods.registry import register_method


@register_method("all-foreground")
class AllForeground(FewShotSegmenter):
    """Reference: every query pixel is foreground (the floor a learned method must beat)."""

    native_resolution = True  # no computation at all: skip the resize

    def forward(self, query, supports, support_masks):
        batch, _, height, width = query.shape
        logits = query.new_zeros(batch, 2, height, width)
        logits[:, 1] = 1.0
        return logits
