"""Frozen-backbone feature cache: each unique image's features are computed once per run.

Evaluation reuses the same few hundred images across 3 seeds x 1000 episodes x (1 + k) images, so
encoding per episode repeats the backbone's work ~10-40 times. Features depend only on the
backbone's weights and the input size, so methods sharing a backbone share the cache.
"""
from __future__ import annotations

import json
from typing import Dict, Iterable, List

import torch

from bench.evaluate import ImageStore, normalize
from bench.progress import progress_bar
from methods.common import BackboneMethod


def backbone_key(method: BackboneMethod, input_size: int) -> str:
    return json.dumps({"backbone": method.backbone_name, "identity": method.backbone.identity, "size": input_size},
                      sort_keys=True, default=str)


class FeatureCache:
    """Backbone features by image id, for one backbone and input size (kept on `device`)."""

    def __init__(self, store: ImageStore, device: str = "cpu", batch_size: int = 32):
        self.store = store
        self.device = device
        self.batch_size = batch_size
        self._features: Dict[str, Dict[str, torch.Tensor]] = {}
        self.encoded = 0  # images passed through the backbone (for benchmarks)

    def _table(self, method: BackboneMethod) -> Dict[str, torch.Tensor]:
        return self._features.setdefault(backbone_key(method, self.store.input_size), {})

    @torch.no_grad()
    def ensure(self, method: BackboneMethod, image_ids: Iterable[str], quiet: bool = True) -> None:
        """Encode every id not cached yet, in batches."""
        table = self._table(method)
        todo: List[str] = sorted({i for i in image_ids if i not in table})
        if not todo:
            return
        method.eval()
        bar = progress_bar(total=len(todo), desc="backbone features", quiet=quiet, unit="img")
        for start in range(0, len(todo), self.batch_size):
            ids = todo[start:start + self.batch_size]
            images = normalize(torch.stack([self.store.image(i) for i in ids])).to(self.device)
            for image_id, feats in zip(ids, method.encode(images)):
                table[image_id] = feats
            self.encoded += len(ids)
            bar.update(len(ids))
        bar.close()

    def get(self, method: BackboneMethod, image_ids: List[str]) -> torch.Tensor:
        table = self._table(method)
        return torch.stack([table[i] for i in image_ids])
