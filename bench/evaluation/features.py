"""Evaluation cache for methods on a frozen backbone: each unique image is encoded once per run.

Evaluation reuses the same few hundred images across 3 seeds x 1000 episodes x (1 + k) images. With
the backbone frozen and the method in eval mode, what an image contributes as a query (its code) and
as a support of a class (its code for that class) does not depend on the rest of the episode, so
both are computed once per (model, image) and (model, image, class); each episode then only runs the
method's `decode` (fusion and decoder).
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Tuple

import pandas as pd
import torch

from bench.core.progress import progress_bar
from bench.data.episodes import support_ids
from bench.data.images import ImageStore, normalize
from methods.common import BackboneMethod

Code = Tuple[torch.Tensor, ...]


class CodeCache:
    """Query codes by image id and support codes by (image id, class id), for one model."""

    def __init__(self, store: ImageStore, device: str = "cpu", batch_size: int = 32):
        self.store = store
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._queries: Dict[str, Code] = {}
        self._supports: Dict[Tuple[str, int], Code] = {}
        self.encoded = 0  # images passed through the backbone (for benchmarks)

    @staticmethod
    def supports(method) -> bool:
        """Whether a method splits into a cacheable encoder and a `decode` (methods on a frozen backbone)."""
        return hasattr(method, "decode")

    def _bind(self, method: BackboneMethod) -> None:
        if self._model is not method:  # a new model: codes of the old one are meaningless
            self._model = method
            self._queries.clear()
            self._supports.clear()

    @torch.no_grad()
    def prepare(self, method: BackboneMethod, manifest: pd.DataFrame, quiet: bool = True) -> None:
        """Encode the images of `manifest` that have no code yet (backbone once per image)."""
        self._bind(method)
        method.eval()
        queries = {q for q in manifest["query"] if q not in self._queries}
        supports = {(i, int(c)) for s, c in zip(manifest["supports"], manifest["class_id"]) for i in support_ids(s)}
        supports = {p for p in supports if p not in self._supports}
        images = sorted(queries | {i for i, _ in supports})
        bar = progress_bar(total=len(images), desc="encoding images", quiet=quiet, unit="img")
        for start in range(0, len(images), self.batch_size):
            ids = images[start:start + self.batch_size]
            feats = method.encode(normalize(torch.stack([self.store.image(i) for i in ids])).to(self.device))
            row = {image_id: k for k, image_id in enumerate(ids)}
            as_query = [i for i in ids if i in queries]
            if as_query:
                self._store(self._queries, as_query, method.query_code(feats[[row[i] for i in as_query]]))
            pairs = sorted(p for p in supports if p[0] in row)
            if pairs:
                masks = torch.stack([self.store.input_mask(i, c) for i, c in pairs]).long().to(self.device)
                self._store(self._supports, pairs, method.support_code(feats[[row[i] for i, _ in pairs]], masks))
            self.encoded += len(ids)
            bar.update(len(ids))
        bar.close()

    @staticmethod
    def _store(table: Dict, keys: List, code: Code) -> None:
        for k, key in enumerate(keys):
            table[key] = tuple(t[k] for t in code)

    def query_codes(self, image_ids: Iterable[str]) -> Code:
        codes = [self._queries[i] for i in image_ids]
        return tuple(torch.stack(parts) for parts in zip(*codes))

    def support_codes(self, support_ids: List[List[str]], class_ids: Iterable[int]) -> Code:
        """Codes [B, K, ...] of the episodes' supports."""
        episodes = [[self._supports[(i, int(c))] for i in ids] for ids, c in zip(support_ids, class_ids)]
        parts = len(episodes[0][0])
        return tuple(torch.stack([torch.stack([shot[p] for shot in shots]) for shots in episodes]) for p in range(parts))
