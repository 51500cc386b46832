"""The scoring protocol: how one episode's logits are turned into pixel counts.

Peer codebases differ here (see the README's Protocol section): OSLSM scores void (255) pixels as
background, HSNet resizes the label to 400 x 400, most score at each label's original size and ignore
void. A `ScoringProtocol` names those choices; the run records it in its config.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from bench.core.options import option
from bench.data.base import IGNORE

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass(frozen=True)
class ScoringProtocol:
    """`eval_size`: score at this square size instead of each label's original size (HSNet: 400);
    `void_as_background`: score void pixels as background (OSLSM) instead of ignoring them; `pipeline`: the
    shared preparation and scoring, or each method's authors' (`bench.evaluation.authors`)."""

    eval_size: Optional[int] = option(None, "score at this square size instead of each label's original size "
                                      "(HSNet: 400)", minimum=1, maximum=4096)
    void_as_background: bool = option(False, "score void (255) pixels as background, as OSLSM, instead of "
                                      "ignoring them")
    pipeline: str = option("shared", "how episodes become network input and are scored: shared (one preparation "
                           "for every method: the fair comparison) or authors (each method's own authors' test "
                           "loader and scoring, where it declares one: hsnet, pfenet with published weights; "
                           "what their test.py prints)", choices=("shared", "authors"), omit_default=True)
    ignore_label: int = option(IGNORE, "the void label of the dataset's masks", cli=False)

    def score(self, logits: torch.Tensor, target: np.ndarray, align_corners: bool = False) -> torch.Tensor:
        """Counts of one episode: logits [2, h, w] (resized bilinearly with `align_corners`, the method's
        `logits_align_corners`) against its 0/1/void target."""
        import torch  # here: the dataclass is an option group, read by --help without torch
        import torch.nn.functional as F

        from analyses.metrics import episode_counts
        from bench.data.images import resize_mask

        target_t = torch.as_tensor(target)
        if self.void_as_background:
            target_t = torch.where(target_t == self.ignore_label, torch.zeros_like(target_t), target_t)
        if self.eval_size:
            target_t = resize_mask(target_t, (self.eval_size, self.eval_size))
        size = tuple(target_t.shape)
        logits = logits.float()[None]
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=align_corners)
        pred_fg = logits[0, 1] > logits[0, 0]
        return episode_counts(pred_fg.cpu(), target_t.long(), self.ignore_label)
