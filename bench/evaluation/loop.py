"""Evaluation of one method on one manifest: batches of episodes in, per-episode pixel counts out."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from analyses.metrics import COUNT_COLUMNS, episode_counts
from bench.data.base import IGNORE, FSSDataset
from bench.core.progress import progress_bar
from methods.base import EpisodeBatch, FewShotSegmenter

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
RESULT_COLUMNS = ["episode", "class_id", "query", *COUNT_COLUMNS]


def resize_image(image: np.ndarray, size: int) -> torch.Tensor:
    """uint8 [H, W, 3] -> uint8 [3, size, size], bilinear (antialiased when shrinking)."""
    tensor = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
    if tensor.shape[-2:] == (size, size):
        return tensor.contiguous()
    resized = F.interpolate(tensor[None].float(), size=(size, size), mode="bilinear", align_corners=False,
                            antialias=True)[0]
    return resized.round_().clamp_(0, 255).to(torch.uint8)


def resize_mask(mask: np.ndarray | torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Integer mask or label map -> [h, w] of the same dtype by nearest-exact resampling (values kept)."""
    tensor = torch.as_tensor(np.asarray(mask))
    if tuple(tensor.shape) == tuple(size):
        return tensor
    return F.interpolate(tensor[None, None].float(), size=size, mode="nearest-exact")[0, 0].to(tensor.dtype)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 RGB [..., 3, H, W] -> float, ImageNet mean/std normalised."""
    return (images.float() / 255.0 - IMAGENET_MEAN) / IMAGENET_STD


class ImageStore:
    """Decodes each unique image once per run and keeps what evaluation needs of it."""

    def __init__(self, dataset: FSSDataset, input_size: int):
        self.dataset = dataset
        self.input_size = input_size
        self._images: Dict[str, torch.Tensor] = {}
        self._labels: Dict[str, np.ndarray] = {}
        self._originals: Dict[str, np.ndarray] = {}
        self.keep_originals = False

    def _load(self, image_id: str) -> None:
        image, label = self.dataset.read_sample(image_id)
        self._images[image_id] = resize_image(image, self.input_size)
        if self.keep_originals:
            self._originals[image_id] = image
        self._labels[image_id] = label.astype(np.uint8) if label.max(initial=0) < 256 else label

    def image(self, image_id: str) -> torch.Tensor:
        if image_id not in self._images:
            self._load(image_id)
        return self._images[image_id]

    def original(self, image_id: str) -> np.ndarray:
        """The decoded image at its original size (kept only for native-resolution methods)."""
        if image_id not in self._originals:
            self._originals[image_id] = self.dataset.read_image(image_id)
        return self._originals[image_id]

    def label(self, image_id: str) -> np.ndarray:
        """The class-index label map at the image's original size."""
        if image_id not in self._labels:
            self._load(image_id)
        return self._labels[image_id]

    def mask(self, image_id: str, class_id: int) -> np.ndarray:
        """Binary 0/1/255 mask of a class at the image's original size."""
        if image_id not in self._labels:
            self._load(image_id)
        return self.dataset.binary_mask(self._labels[image_id], class_id)

    def input_mask(self, image_id: str, class_id: int) -> torch.Tensor:
        return resize_mask(self.mask(image_id, class_id), (self.input_size, self.input_size))


def build_batch(store: ImageStore, rows: pd.DataFrame) -> EpisodeBatch:
    """Stack the episodes of `rows` (manifest rows) into one EpisodeBatch."""
    queries, supports, masks, sizes = [], [], [], []
    for row in rows.itertuples(index=False):
        support_ids = row.supports.split(" ")
        queries.append(store.image(row.query))
        supports.append(torch.stack([store.image(i) for i in support_ids]))
        masks.append(torch.stack([store.input_mask(i, row.class_id) for i in support_ids]))
        sizes.append(store.mask(row.query, row.class_id).shape)
    return EpisodeBatch(
        query=normalize(torch.stack(queries)),
        supports=normalize(torch.stack(supports)),
        support_masks=torch.stack(masks).long(),
        class_ids=torch.tensor(rows["class_id"].tolist(), dtype=torch.long),
        query_sizes=[tuple(s) for s in sizes],
    )


def build_native_batch(store: ImageStore, row) -> EpisodeBatch:
    """One episode at the query's original size: supports resized onto the query frame."""
    target = store.mask(row.query, row.class_id)
    size = tuple(target.shape)
    support_ids = row.supports.split(" ")

    def image_at(image_id):
        image = torch.from_numpy(np.array(store.original(image_id), dtype=np.uint8)).permute(2, 0, 1)
        if tuple(image.shape[-2:]) != size:
            image = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False,
                                  antialias=True)[0].round().clamp(0, 255).to(torch.uint8)
        return image

    return EpisodeBatch(
        query=normalize(image_at(row.query)[None]),
        supports=normalize(torch.stack([image_at(i) for i in support_ids])[None]),
        support_masks=torch.stack([resize_mask(store.mask(i, row.class_id), size) for i in support_ids])[None].long(),
        class_ids=torch.tensor([row.class_id], dtype=torch.long),
        query_sizes=[size],
    )


def score_logits(logits: torch.Tensor, target: np.ndarray, eval_size: Optional[int],
                 void_as_background: bool = False) -> torch.Tensor:
    """Counts of one episode: logits [2, h, w] vs its 0/1/255 target at original size or eval_size.

    `void_as_background` scores 255 pixels as background (OSLSM's practice) instead of ignoring them.
    """
    target_t = torch.as_tensor(target)
    if void_as_background:
        target_t = torch.where(target_t == IGNORE, torch.zeros_like(target_t), target_t)
    if eval_size:
        target_t = resize_mask(target_t, (eval_size, eval_size))
    size = tuple(target_t.shape)
    logits = logits.float()[None]
    if tuple(logits.shape[-2:]) != size:
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    pred_fg = logits[0, 1] > logits[0, 0]
    return episode_counts(pred_fg.cpu(), target_t.long(), IGNORE)


def _forward(method, store, rows, device, features, native):
    """Logits of one batch: from cached backbone features when a cache is given, else end to end."""
    if native:
        batch = build_native_batch(store, next(rows.itertuples(index=False))).to(device)
        return method(batch.query, batch.supports, batch.support_masks)
    if features is None:
        batch = build_batch(store, rows).to(device)
        return method(batch.query, batch.supports, batch.support_masks)
    support_ids = [r.split(" ") for r in rows["supports"]]
    return method.decode(features.query_codes(rows["query"]), features.support_codes(support_ids, rows["class_id"]))


@torch.no_grad()
def evaluate_manifest(
    method: FewShotSegmenter,
    store: ImageStore,
    manifest: pd.DataFrame,
    batch_size: int = 16,
    device: str = "cpu",
    eval_size: Optional[int] = None,
    desc: str = "episodes",
    quiet: bool = False,
    features=None,
    void_as_background: bool = False,
) -> pd.DataFrame:
    """Per-episode rows (RESULT_COLUMNS) of `method` on every episode of `manifest`.

    `features`: a CodeCache; methods with a frozen backbone then encode each unique image once.
    """
    method.eval().to(device)
    native = getattr(method, "native_resolution", False)
    store.keep_originals = store.keep_originals or native
    if features is not None and not hasattr(method, "decode"):
        features = None
    if features is not None:
        features.prepare(method, manifest, quiet=quiet)
    step = 1 if native else batch_size
    counts = []
    bar = progress_bar(total=len(manifest), desc=desc, quiet=quiet, unit="ep")
    for start in range(0, len(manifest), step):
        rows = manifest.iloc[start : start + step]
        logits = _forward(method, store, rows, device, features, native)
        for i, row in enumerate(rows.itertuples(index=False)):
            counts.append(score_logits(logits[i], store.mask(row.query, row.class_id), eval_size, void_as_background))
        bar.update(len(rows))
    bar.close()
    result = manifest[["episode", "class_id", "query"]].reset_index(drop=True).copy()
    result[list(COUNT_COLUMNS)] = torch.stack(counts).numpy()
    return result[RESULT_COLUMNS]
