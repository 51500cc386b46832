"""Few-shot segmentation metrics: per-episode pixel counts, mIoU and FB-IoU.

Definitions follow the standard PASCAL-5i protocol (OSLSM, CANet, PANet, PFENet, HSNet):

* per episode, foreground intersection (TP) and union (TP+FP+FN) and background intersection
  (TN) and union (TN+FP+FN), ignore (255) pixels excluded;
* class IoU = sum of intersections / sum of unions over that class's episodes;
  mIoU = mean of class IoU over the split's classes;
* FB-IoU = mean of foreground IoU and background IoU, each pooled over all episodes of the split.

Edge cases (never NaN, never a made-up score): a class whose summed union is 0 (no foreground in
its ground truth or its predictions: IoU undefined) and, when the split's classes are given, a class
with no episode, are excluded from the mean and listed in `excluded_classes` ("zero union" / "no
episode"). HSNet's logger instead divides by max(union, 1), so both count as IoU 0 there, which
scores an untested class 0. A pooled FB side with union 0 is left out of the FB-IoU mean the same way;
if no class can be scored the evaluation is refused (ValueError), as with no episode at all.

Evaluators accumulate counts and divide once at the end (reset / process / evaluate), so a
metric never depends on batch composition or order.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, Iterable, Mapping, Optional

import numpy as np
import torch

COUNT_COLUMNS = ("fg_inter", "fg_union", "bg_inter", "bg_union")


def episode_counts(pred_fg: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Pixel counts of one or more episodes.

    Args:
        pred_fg: bool [..., H, W], predicted foreground.
        target: integer [..., H, W], 1 = foreground, 0 = background, `ignore_index` = ignored.
    Returns:
        int64 [..., 4]: fg_inter, fg_union, bg_inter, bg_union.
    """
    valid = target != ignore_index
    gt_fg = (target == 1) & valid
    pred_fg = pred_fg.bool() & valid
    pred_bg = ~pred_fg & valid
    gt_bg = ~gt_fg & valid
    dims = (-2, -1)
    counts = [
        (pred_fg & gt_fg).sum(dims),
        (pred_fg | gt_fg).sum(dims),
        (pred_bg & gt_bg).sum(dims),
        (pred_bg | gt_bg).sum(dims),
    ]
    return torch.stack(counts, dim=-1).to(torch.int64)


def _ratio(inter: float, union: float) -> Optional[float]:
    """inter / union, None where the union is 0 (undefined)."""
    return float(inter) / float(union) if union > 0 else None


class FSSEvaluator:
    """Accumulates per-class foreground counts and pooled FG/BG counts of one split.

    `classes`: the split's class ids (optional); those without an episode are reported as excluded.
    """

    def __init__(self, classes: Optional[Iterable[int]] = None) -> None:
        self.classes = None if classes is None else sorted(int(c) for c in classes)
        self.reset()

    def reset(self) -> None:
        self._class_inter: Dict[int, int] = defaultdict(int)
        self._class_union: Dict[int, int] = defaultdict(int)
        self._pooled = np.zeros(4, dtype=np.int64)
        self.episodes = 0

    def process(self, class_ids: Iterable[int], counts) -> None:
        """Add episodes: `class_ids` [N] and `counts` [N, 4] in COUNT_COLUMNS order."""
        counts = np.asarray(counts, dtype=np.int64).reshape(-1, 4)
        class_ids = np.asarray(list(class_ids), dtype=np.int64).reshape(-1)
        if len(class_ids) != len(counts):
            raise ValueError(f"{len(class_ids)} class ids for {len(counts)} count rows")
        for cid, row in zip(class_ids.tolist(), counts):
            self._class_inter[cid] += int(row[0])
            self._class_union[cid] += int(row[1])
        self._pooled += counts.sum(axis=0)
        self.episodes += len(counts)

    def evaluate(self) -> Dict[str, object]:
        """mIoU and FB-IoU as fractions in [0, 1], per-class IoU of the scored classes, and the excluded
        classes with the reason ("no episode" or "zero union")."""
        if self.episodes == 0:
            raise ValueError("no episodes were processed")
        excluded: Dict[int, str] = {}
        class_iou: Dict[int, float] = {}
        for cid in sorted(set(self._class_inter) | set(self.classes or ())):
            if cid not in self._class_inter:
                excluded[cid] = "no episode"
                continue
            iou = _ratio(self._class_inter[cid], self._class_union[cid])
            if iou is None:
                excluded[cid] = "zero union"
            else:
                class_iou[cid] = iou
        if not class_iou:
            raise ValueError(f"no class can be scored: every class has a zero union or no episode ({excluded})")
        fg_iou = _ratio(self._pooled[0], self._pooled[1])
        bg_iou = _ratio(self._pooled[2], self._pooled[3])
        sides = [v for v in (fg_iou, bg_iou) if v is not None]
        return {
            "miou": float(np.mean(list(class_iou.values()))),
            "fbiou": float(np.mean(sides)),
            "fg_iou": fg_iou,
            "bg_iou": bg_iou,
            "class_iou": class_iou,
            "excluded_classes": excluded,
            "episodes": self.episodes,
        }


def evaluate_rows(rows, classes: Optional[Iterable[int]] = None) -> Dict[str, object]:
    """Metrics of one split from per-episode rows (a DataFrame with class_id + COUNT_COLUMNS); `classes`:
    the split's class ids, if known (see FSSEvaluator)."""
    evaluator = FSSEvaluator(classes)
    evaluator.process(rows["class_id"].to_numpy(), rows[list(COUNT_COLUMNS)].to_numpy())
    return evaluator.evaluate()


def mean_std(values: Mapping[object, float] | Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; NaN for a single value)."""
    arr = np.asarray(list(values.values()) if isinstance(values, Mapping) else list(values), dtype=float)
    std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
    return float(arr.mean()), std
