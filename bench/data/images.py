"""Images and labels as methods see them: decoded once, resized, normalised, stacked into episodes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from bench.data.base import FSSDataset
from bench.data.episodes import support_ids

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


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


@dataclass
class EpisodeBatch:
    """A batch of B episodes with K shots, already resized to the method's input size.

    query:          [B, 3, H, W] float, normalised RGB
    supports:       [B, K, 3, H, W] float, normalised RGB
    support_masks:  [B, K, H, W] long: 1 = target class, 0 = background, 255 = ignore
    class_ids:      [B] long, 1-based dataset class ids (for bookkeeping only; methods must not use them)
    query_sizes:    original (height, width) of each query label, for evaluation
    """

    query: torch.Tensor
    supports: torch.Tensor
    support_masks: torch.Tensor
    class_ids: torch.Tensor
    query_sizes: List[Tuple[int, int]]

    @property
    def shots(self) -> int:
        return self.supports.shape[1]

    def to(self, device) -> "EpisodeBatch":
        return EpisodeBatch(
            self.query.to(device),
            self.supports.to(device),
            self.support_masks.to(device),
            self.class_ids.to(device),
            self.query_sizes,
        )


class ImageStore:
    """Decodes each unique image once per run and keeps what evaluation needs of it."""

    def __init__(self, dataset: FSSDataset, input_size: int):
        self.dataset = dataset
        self.input_size = input_size
        self._images: Dict[str, torch.Tensor] = {}
        self._labels: Dict[str, np.ndarray] = {}
        self._originals: Dict[str, np.ndarray] = {}

    def _load(self, image_id: str) -> None:
        image, label = self.dataset.read_sample(image_id)
        self._images[image_id] = resize_image(image, self.input_size)
        self._labels[image_id] = label.astype(np.uint8) if label.max(initial=0) < 256 else label

    def image(self, image_id: str) -> torch.Tensor:
        if image_id not in self._images:
            self._load(image_id)
        return self._images[image_id]

    def original(self, image_id: str) -> np.ndarray:
        """The decoded image at its original size (decoded again and kept once asked for: only
        native-resolution methods ask)."""
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
        supports_of = support_ids(row.supports)
        queries.append(store.image(row.query))
        supports.append(torch.stack([store.image(i) for i in supports_of]))
        masks.append(torch.stack([store.input_mask(i, row.class_id) for i in supports_of]))
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
    supports_of = support_ids(row.supports)

    def image_at(image_id):
        image = torch.from_numpy(np.array(store.original(image_id), dtype=np.uint8)).permute(2, 0, 1)
        if tuple(image.shape[-2:]) != size:
            image = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False,
                                  antialias=True)[0].round().clamp(0, 255).to(torch.uint8)
        return image

    return EpisodeBatch(
        query=normalize(image_at(row.query)[None]),
        supports=normalize(torch.stack([image_at(i) for i in supports_of])[None]),
        support_masks=torch.stack([resize_mask(store.mask(i, row.class_id), size) for i in supports_of])[None].long(),
        class_ids=torch.tensor([row.class_id], dtype=torch.long),
        query_sizes=[size],
    )
