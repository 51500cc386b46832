"""Evaluation cache for methods on a frozen backbone: each unique image is encoded once per run.

Evaluation reuses the same few hundred images across 3 seeds x 1000 episodes x (1 + k) images. With
the backbone frozen and the method in eval mode, what an image contributes as a query (its code) and
as a support of a class (its code for that class) does not depend on the rest of the episode, so
both are computed once per (model, image) and (model, image, class); each episode then only runs the
method's `decode` (fusion and decoder).

The cache is bounded by a memory budget (issue 15) with least-recently-used eviction. `prepare` encodes
the manifest's images in order of first use until the budget is full; a code not in memory is read
back from the spill folder when one is given (the codes' own dtype, bit-exact), else recomputed from
the same image: the codes are the same either way, so results do not depend on the budget.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Tuple

import numpy as np
import pandas as pd
import torch

from bench.core.progress import progress_bar
from bench.data.episodes import support_ids
from bench.data.images import ImageStore, LRUCache, nbytes, normalize
from methods.common import BackboneMethod

Code = Tuple[torch.Tensor, ...]
Key = Tuple  # ("q", image id) or ("s", image id, class id)

# several MB per image for ResNet-50 codes at 473 px: ~1000 images' codes; see bench.benchmarks.memory_scale
DEFAULT_CODE_BUDGET = 3 * 1024 ** 3


class CodeCache:
    """Query codes by image id and support codes by (image id, class id), for one model, within
    `budget_bytes` (None: unbounded). Evicted codes go to `spill_dir` (a private folder made inside
    it, removed by `close`) when given, else are recomputed when next needed."""

    def __init__(self, store: ImageStore, device: str = "cpu", batch_size: int = 32,
                 budget_bytes: Optional[int] = DEFAULT_CODE_BUDGET, spill_dir: Optional[str] = None):
        self.store = store
        self.device = device
        self.batch_size = batch_size
        self.budget_bytes = budget_bytes
        self._model = None
        self._codes = LRUCache(budget_bytes, on_evict=self._spill if spill_dir is not None else None)
        self._spill_root = spill_dir
        self._wanted: Dict[str, Set[Key]] = {}  # image id -> every code of it the prepared manifest uses
        self._spill_dir: Optional[Path] = None
        self._spilled: Dict[Key, Path] = {}
        self.encoded = 0  # images passed through the backbone (for benchmarks)
        self.recomputed = 0  # of which on demand (beyond what prepare kept, or evicted): extra backbone passes
        self.spill_reads = 0

    @staticmethod
    def supports(method) -> bool:
        """Whether a method splits into a cacheable encoder and a `decode` (methods on a frozen backbone)."""
        return hasattr(method, "decode")

    def _bind(self, method: BackboneMethod) -> None:
        if self._model is not method:  # a new model: codes of the old one are meaningless
            self._model = method
            self._codes.clear()
            self._clear_spill()

    @torch.no_grad()
    def prepare(self, method: BackboneMethod, manifest: pd.DataFrame, quiet: bool = True) -> None:
        """Encode the images of `manifest` that have no code yet (backbone once per image), in order of
        first use, as many as the budget holds; the others are encoded when first asked for."""
        self._bind(method)
        method.eval()
        self._wanted = {}
        queries, supports, order = set(), set(), {}
        for q, s, c in zip(manifest["query"], manifest["supports"], manifest["class_id"]):
            for i in [*support_ids(s), q]:
                order.setdefault(i, len(order))
            if ("q", q) not in self._codes and ("q", q) not in self._spilled:
                queries.add(q)
            supports.update(p for p in ((i, int(c)) for i in support_ids(s))
                            if ("s", *p) not in self._codes and ("s", *p) not in self._spilled)
            self._wanted.setdefault(q, set()).add(("q", q))
            for i in support_ids(s):
                self._wanted.setdefault(i, set()).add(("s", i, int(c)))
        images = {*queries, *(i for i, _ in supports)}
        # unbounded: sorted ids, as before the budget existed; bounded: the first used first
        images = sorted(images) if self.budget_bytes is None else sorted(images, key=order.__getitem__)
        bar = progress_bar(total=len(images), desc="encoding images", quiet=quiet, unit="img")
        per_image = 0
        for start in range(0, len(images), self.batch_size):
            ids = images[start:start + self.batch_size]
            chunk = set(ids)
            if per_image and not self._codes.fits(per_image * len(ids)):
                break  # the rest would evict codes encoded just now
            before = self._codes.bytes
            codes = self._encode(method, [i for i in ids if i in queries], sorted(p for p in supports if p[0] in chunk))
            per_image = max(per_image, max(nbytes(c) for c in codes.values()) if codes else 0,
                            (self._codes.bytes - before) // max(len(ids), 1))
            bar.update(len(ids))
        bar.close()

    def _encode(self, method: BackboneMethod, queries: List[str], pairs: List[Tuple[str, int]]) -> Dict[Key, Code]:
        """Codes of `queries` and `pairs` (backbone once per image), kept within the budget and returned."""
        ids = sorted({*queries, *(i for i, _ in pairs)})
        out: Dict[Key, Code] = {}
        for start in range(0, len(ids), self.batch_size):
            chunk = ids[start:start + self.batch_size]
            row = {image_id: k for k, image_id in enumerate(chunk)}
            feats = method.encode(normalize(torch.stack([self.store.image(i) for i in chunk])).to(self.device))
            as_query = [i for i in queries if i in row]
            if as_query:
                self._keep(out, [("q", i) for i in as_query], method.query_code(feats[[row[i] for i in as_query]]))
            some = [p for p in pairs if p[0] in row]
            if some:
                masks = torch.stack([self.store.input_mask(i, c) for i, c in some]).long().to(self.device)
                self._keep(out, [("s", *p) for p in some], method.support_code(feats[[row[i] for i, _ in some]], masks))
            self.encoded += len(chunk)
        return out

    def _keep(self, out: Dict, keys: List[Key], code: Code) -> None:
        for k, key in enumerate(keys):
            # a copy, not a view: an evicted code must free its memory, not keep its batch alive
            value = tuple(t[k].clone() for t in code) if self.budget_bytes is not None else tuple(t[k] for t in code)
            out[key] = value
            self._codes.put(key, value)

    def _lookup(self, keys: List[Key]) -> Dict[Key, Code]:
        found: Dict[Key, Code] = {}
        for key in keys:
            if key in found:
                continue
            value = self._codes.get(key)
            if value is None and key in self._spilled:
                value = self._unspill(key)
            if value is not None:
                found[key] = value
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        if missing:
            # an image passes the backbone once for all its codes the manifest uses, not once per role
            images = {k[1] for k in missing}
            missing += sorted((k for i in images for k in self._wanted.get(i, ())
                               if k not in found and k not in missing and k not in self._codes
                               and k not in self._spilled), key=repr)
            if self._model is None:
                raise KeyError(f"no code for {missing[0]}: call prepare first")
            with torch.no_grad():
                before = self.encoded
                found.update(self._encode(self._model, [k[1] for k in missing if k[0] == "q"],
                                          [(k[1], k[2]) for k in missing if k[0] == "s"]))
                self.recomputed += self.encoded - before
        return found

    def query_codes(self, image_ids: Iterable[str]) -> Code:
        keys = [("q", i) for i in image_ids]
        found = self._lookup(keys)
        return tuple(torch.stack(parts) for parts in zip(*(found[k] for k in keys)))

    def support_codes(self, support_ids: List[List[str]], class_ids: Iterable[int]) -> Code:
        """Codes [B, K, ...] of the episodes' supports."""
        keys = [[("s", i, int(c)) for i in ids] for ids, c in zip(support_ids, class_ids)]
        found = self._lookup([k for shots in keys for k in shots])
        episodes = [[found[k] for k in shots] for shots in keys]
        parts = len(episodes[0][0])
        return tuple(torch.stack([torch.stack([shot[p] for shot in shots]) for shots in episodes]) for p in range(parts))

    # --- spill folder: one .npy per code part, in the code's own dtype (bit-exact) ---
    def _spill(self, key: Key, code: Code) -> None:
        if key in self._spilled:
            return
        if any(t.dtype not in _NUMPY_DTYPES for t in code):
            return  # no exact numpy dtype (bfloat16): recomputed instead
        if self._spill_dir is None:
            root = Path(self._spill_root)
            root.mkdir(parents=True, exist_ok=True)
            self._spill_dir = Path(tempfile.mkdtemp(prefix="codes-", dir=root))
        stem = self._spill_dir / hashlib.sha1(repr(key).encode()).hexdigest()
        tmp = stem.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as f:
                np.savez(f, *[t.detach().cpu().numpy() for t in code])
            os.replace(tmp, stem.with_suffix(".npz"))
        finally:
            tmp.unlink(missing_ok=True)
        self._spilled[key] = stem.with_suffix(".npz")

    def _unspill(self, key: Key) -> Code:
        with np.load(self._spilled[key], allow_pickle=False) as parts:
            code = tuple(torch.from_numpy(parts[f"arr_{p}"]).to(self.device) for p in range(len(parts.files)))
        self.spill_reads += 1
        self._codes.put(key, code)
        return code

    def _clear_spill(self) -> None:
        if self._spill_dir is not None:
            shutil.rmtree(self._spill_dir, ignore_errors=True)
        self._spill_dir = None
        self._spilled.clear()

    def close(self) -> None:
        """Drop the codes and remove the spill folder."""
        self._codes.clear()
        self._clear_spill()
        self._model = None

    def __del__(self):
        try:
            self._clear_spill()
        except Exception:
            pass

    @property
    def cached_bytes(self) -> int:
        return self._codes.bytes

    @property
    def evictions(self) -> int:
        return self._codes.evictions


_NUMPY_DTYPES = {torch.float16, torch.float32, torch.float64, torch.int64, torch.int32, torch.int16, torch.int8,
                 torch.uint8, torch.bool}
