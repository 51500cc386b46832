"""The authors' own test-time pipelines (`--pipeline authors`, issue 30).

Under the shared pipeline every method sees an episode prepared the same way (the fair comparison). Under
the authors' pipeline each image and mask of an episode is prepared from its own size as the method's authors'
test loader prepares it, the network runs on that input, and the prediction is made and scored as their test
loop makes it: what their own `test.py` would print on the same episodes. The method declares its pipeline
as data (`methods.base.TestPipeline`, e.g. HSNet's `AUTHORS_PIPELINE`); this module interprets it.

Scoring: at each query label's original size (HSNet's `use_original_imgsize`, PFENet's `ori_resize`), or, with
`--eval-size` equal to the network's input size, against the label prepared as their loader prepares it
(HSNet's 400 x 400 scoring). Void pixels of the query label are ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from bench.core.errors import BenchError
from bench.data.base import IGNORE
from bench.data.episodes import support_ids
from bench.data.images import IMAGENET_MEAN, IMAGENET_STD, ImageStore, normalize
from methods.base import FewShotSegmenter, TestPipeline, cv2_nearest_index, longer_side_shape


def method_pipeline(method: FewShotSegmenter, desc: str) -> TestPipeline:
    """The method's declared authors' pipeline, or one BenchError saying there is none."""
    pipeline = method.authors_pipeline()
    if pipeline is None:
        raise BenchError(f"{desc}: --pipeline authors, but {type(method).__name__} in this configuration declares "
                         "no authors' test pipeline; use --pipeline shared")
    return pipeline


def check_scoring(scoring) -> None:
    """Under `--pipeline authors`, void is ignored as the authors' code does: `void_as_background` is refused."""
    if scoring.pipeline == "authors" and scoring.void_as_background:
        raise BenchError("--pipeline authors ignores void pixels as the authors' code does; --void-as-background "
                         "belongs to the shared pipeline")


def content_shape(pipeline: TestPipeline, size: int, height: int, width: int) -> Tuple[int, int]:
    """The (height, width) an image of this size takes inside the size x size network input."""
    return (size, size) if pipeline.resize == "square" else longer_side_shape(height, width, size)


def _cv2_normalise(pixels: torch.Tensor) -> torch.Tensor:
    """Float pixels 0..255 [3, h, w] normalised as PFENet's `Normalize`: (x - mean * 255) / (std * 255)."""
    for channel, (mean, std) in enumerate(zip(IMAGENET_MEAN.flatten().tolist(), IMAGENET_STD.flatten().tolist())):
        pixels[channel].sub_(mean * 255).div_(std * 255)
    return pixels


def prepare_image(pipeline: TestPipeline, size: int, image: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> normalised float [3, size, size] as their loader makes it (padded black)."""
    height, width = image.shape[:2]
    new = content_shape(pipeline, size, height, width)
    if pipeline.resample == "pil":  # torchvision's Resize of the PIL image, ToTensor, Normalize
        pixels = image if (height, width) == new else \
            np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(new[::-1], Image.BILINEAR))
        tensor = normalize(torch.from_numpy(np.array(pixels, dtype=np.uint8)).permute(2, 0, 1))
    else:  # cv2.resize of the float image, padded black, Normalize
        tensor = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)
        if (height, width) != new:
            tensor = F.interpolate(tensor[None], size=new, mode="bilinear", align_corners=False)[0]
        tensor = _cv2_normalise(tensor.contiguous())
    if new == (size, size):
        return tensor
    black = normalize(torch.zeros(3, size, size, dtype=torch.uint8)) if pipeline.resample == "pil" else \
        _cv2_normalise(torch.zeros(3, size, size))
    black[:, :new[0], :new[1]] = tensor
    return black


def prepare_mask(pipeline: TestPipeline, size: int, mask: np.ndarray) -> torch.Tensor:
    """A 0/1/255 mask [H, W] -> long [size, size] as their loader resizes it (padding void)."""
    tensor = torch.as_tensor(np.asarray(mask)).long()
    new = content_shape(pipeline, size, *tensor.shape)
    if tuple(tensor.shape) != new:
        if pipeline.resample == "pil":  # F.interpolate 'nearest' on the float label, as theirs
            tensor = F.interpolate(tensor[None, None].float(), size=new, mode="nearest")[0, 0].long()
        else:
            rows, cols = (cv2_nearest_index(n, m) for n, m in zip(tensor.shape, new))
            tensor = tensor[rows][:, cols]
    if new == (size, size):
        return tensor
    canvas = torch.full((size, size), IGNORE, dtype=torch.long)
    canvas[:new[0], :new[1]] = tensor
    return canvas


@dataclass
class Prepared:
    """A batch of episodes as the network sees them, and what scoring needs of each."""

    query: torch.Tensor           # [B, 3, S, S]
    supports: torch.Tensor        # [B, K, 3, S, S]
    support_masks: torch.Tensor   # [B, K, S, S]
    targets: List[np.ndarray]     # each query's 0/1/255 label at its original size


def prepare_batch(pipeline: TestPipeline, size: int, store: ImageStore, rows: pd.DataFrame) -> Prepared:
    queries, supports, masks, targets = [], [], [], []
    for row in rows.itertuples(index=False):
        shots = support_ids(row.supports)
        queries.append(prepare_image(pipeline, size, store.original(row.query)))
        supports.append(torch.stack([prepare_image(pipeline, size, store.original(i)) for i in shots]))
        shot_masks = torch.stack([prepare_mask(pipeline, size, store.mask(i, row.class_id)) for i in shots])
        if pipeline.support_void == "background":
            shot_masks = torch.where(shot_masks == IGNORE, torch.zeros_like(shot_masks), shot_masks)
        masks.append(shot_masks)
        targets.append(store.mask(row.query, row.class_id))
    return Prepared(torch.stack(queries), torch.stack(supports), torch.stack(masks), targets)


def scoring_size(pipeline: TestPipeline, size: int, eval_size: Optional[int], desc: str) -> bool:
    """Whether to score at the network's input (`--eval-size` = its size) rather than the original size."""
    if eval_size is None:
        return False
    if eval_size != size:
        raise BenchError(f"{desc}: --pipeline authors scores at each label's original size, or at the network's "
                         f"input ({size} x {size}) as the authors' loader prepares the label; --eval-size "
                         f"{eval_size} is neither")
    return True


def framed(pipeline: TestPipeline, size: int, logits: torch.Tensor, target_shape: Tuple[int, int],
           at_input: bool) -> torch.Tensor:
    """Logits [2, h, w] of one episode brought to the scoring frame: the input (size x size) or the original
    label's size (PFENet's `ori_resize`: to the longer side squared, then cropped to the label)."""
    logits = logits.float()[None]
    if tuple(logits.shape[-2:]) != (size, size) and (at_input or pipeline.resize == "longer-side"):
        logits = F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=pipeline.align_corners)
    if not at_input:
        height, width = target_shape
        side = (height, width) if pipeline.resize == "square" else (max(height, width),) * 2
        logits = F.interpolate(logits, size=side, mode="bilinear", align_corners=pipeline.align_corners)
        logits = logits[..., :height, :width]
    return logits[0]


def predictions(method: FewShotSegmenter, pipeline: TestPipeline, size: int, batch: Prepared, at_input: bool,
                check) -> Iterator[torch.Tensor]:
    """Boolean foreground predictions of the batch's episodes, in the scoring frame. `check(logits)` checks
    each network output (the evaluator's `check_logits`)."""
    shapes = [tuple(t.shape) for t in batch.targets]
    if pipeline.shots == "network":
        logits = check(method.network(batch.query, batch.supports, batch.support_masks))
        for i, shape in enumerate(shapes):
            scores = framed(pipeline, size, logits[i], shape, at_input)
            yield (scores[1] > scores[0]).cpu()
        return
    votes: List[Optional[torch.Tensor]] = [None] * len(shapes)
    for k in range(batch.supports.shape[1]):  # HSNet's predict_mask_nshot: one forward per shot
        logits = check(method.network(batch.query, batch.supports[:, k:k + 1], batch.support_masks[:, k:k + 1]))
        for i, shape in enumerate(shapes):
            scores = framed(pipeline, size, logits[i], shape, at_input)
            vote = (scores[1] > scores[0]).long().cpu()
            votes[i] = vote if votes[i] is None else votes[i] + vote
    for vote in votes:  # foreground where vote / max(largest vote, 1) >= 0.5
        yield 2 * vote >= vote.max().clamp(min=1)


def scoring_targets(pipeline: TestPipeline, size: int, batch: Prepared, at_input: bool) -> Sequence[torch.Tensor]:
    """Each query's label in the scoring frame (void 255)."""
    return [prepare_mask(pipeline, size, t) if at_input else torch.as_tensor(t).long() for t in batch.targets]
