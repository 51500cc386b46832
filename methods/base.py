"""The one interface every few-shot segmentation method implements."""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

IGNORE_INDEX = 255


def foreground(masks: torch.Tensor) -> torch.Tensor:
    """Float foreground indicator of a {0, 1, 255} mask (ignore counts as not-foreground)."""
    return (masks == 1).float()


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
