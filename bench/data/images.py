"""Images and labels as methods see them: decoded once, resized, normalised, stacked into episodes.

The store is bounded by a memory budget with least-recently-used eviction (issue 15): an evicted
image is decoded again when asked for, which gives the same bytes, so results do not depend on it.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable, List, Optional, Tuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from bench.core.memory import release_free_heap
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


# about 1 MB per COCO image for the resized image and its label: ~1500 images; see bench.benchmarks.memory_scale
DEFAULT_STORE_BUDGET = 3 * 1024 ** 3 // 2
#: evicted bytes between two trims of the heap (bench.core.memory.release_free_heap)
TRIM_EVERY_BYTES = 256 * 1024 ** 2


def nbytes(value) -> int:
    """Bytes held by a tensor, an array or a tuple of them."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, tuple):
        return sum(nbytes(v) for v in value)
    raise TypeError(f"cannot size {type(value).__name__}")


class LRUCache:
    """A dict bounded by the bytes of its values; the least recently used entries are evicted first.

    A value larger than the whole budget is not kept (the caller uses it once). `on_evict(key, value)`
    is called for each evicted entry. `budget_bytes=None` means unbounded.
    """

    def __init__(self, budget_bytes: Optional[int], on_evict: Optional[Callable] = None):
        if budget_bytes is not None and budget_bytes < 0:
            raise ValueError(f"budget_bytes must be >= 0 or None, got {budget_bytes}")
        self.budget = budget_bytes
        self.on_evict = on_evict
        self._data: "OrderedDict[Hashable, object]" = OrderedDict()
        self._sizes = {}
        self.bytes = 0
        self.peak_bytes = 0
        self.evictions = 0
        self._freed_since_trim = 0

    def __contains__(self, key) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def keys(self):
        return list(self._data)

    def get(self, key, default=None):
        if key not in self._data:
            return default
        self._data.move_to_end(key)
        return self._data[key]

    def fits(self, size: int) -> bool:
        """Whether `size` more bytes fit without evicting anything."""
        return self.budget is None or self.bytes + size <= self.budget

    def put(self, key, value) -> None:
        size = nbytes(value)
        self.pop(key)
        if self.budget is not None and size > self.budget:
            return
        self._data[key] = value
        self._sizes[key] = size
        self.bytes += size
        while self.budget is not None and self.bytes > self.budget:
            old, old_value = self._data.popitem(last=False)
            freed = self._sizes.pop(old)
            self.bytes -= freed
            self._freed_since_trim += freed
            self.evictions += 1
            if self.on_evict is not None:
                self.on_evict(old, old_value)
            del old_value  # the trim below must not find the last evicted value still referenced
        if self._freed_since_trim >= TRIM_EVERY_BYTES:
            release_free_heap()  # evicted blocks freed in the middle of the heap would stay resident
            self._freed_since_trim = 0
        self.peak_bytes = max(self.peak_bytes, self.bytes)

    def pop(self, key):
        if key not in self._data:
            return None
        self.bytes -= self._sizes.pop(key)
        return self._data.pop(key)

    def clear(self) -> None:
        self._data.clear()
        self._sizes.clear()
        self.bytes = 0


class ImageStore:
    """Decodes the images of a run and keeps what evaluation needs of them, within `budget_bytes`
    (None: unbounded); the least recently used are decoded again when needed."""

    def __init__(self, dataset: FSSDataset, input_size: int, budget_bytes: Optional[int] = DEFAULT_STORE_BUDGET):
        self.dataset = dataset
        self.input_size = input_size
        self.budget_bytes = budget_bytes
        # one budget for all three: (kind, id) keys
        self._cache = LRUCache(budget_bytes)
        self.decoded = 0  # read_sample calls (for benchmarks)

    def _load(self, image_id: str) -> Tuple[torch.Tensor, np.ndarray]:
        cached = self._cache.get(("sample", image_id))
        if cached is not None:
            return cached
        image, label = self.dataset.read_sample(image_id)
        self.decoded += 1
        sample = (resize_image(image, self.input_size), label.astype(np.uint8) if label.max(initial=0) < 256 else label)
        self._cache.put(("sample", image_id), sample)
        return sample

    def image(self, image_id: str) -> torch.Tensor:
        return self._load(image_id)[0]

    def original(self, image_id: str) -> np.ndarray:
        """The decoded image at its original size (decoded again and kept once asked for: only
        native-resolution methods ask)."""
        cached = self._cache.get(("original", image_id))
        if cached is None:
            cached = self.dataset.read_image(image_id)
            self._cache.put(("original", image_id), cached)
        return cached

    def label(self, image_id: str) -> np.ndarray:
        """The class-index label map at the image's original size."""
        return self._load(image_id)[1]

    def mask(self, image_id: str, class_id: int) -> np.ndarray:
        """Binary 0/1/255 mask of a class at the image's original size."""
        return self.dataset.binary_mask(self.label(image_id), class_id)

    def input_mask(self, image_id: str, class_id: int) -> torch.Tensor:
        return resize_mask(self.mask(image_id, class_id), (self.input_size, self.input_size))

    @property
    def cached_bytes(self) -> int:
        return self._cache.bytes

    @property
    def evictions(self) -> int:
        return self._cache.evictions


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
