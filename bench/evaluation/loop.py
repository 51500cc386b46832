"""Evaluation of one method on one manifest: batches of episodes in, per-episode pixel counts out."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import pandas as pd
import torch

from analyses.metrics import COUNT_COLUMNS, episode_counts
from bench.core.errors import BenchError
from bench.core.progress import progress_bar
from bench.data.episodes import support_ids
from bench.data.images import ImageStore, build_batch, build_native_batch
from bench.evaluation import authors
from bench.evaluation.features import CodeCache
from bench.evaluation.protocol import ScoringProtocol
from methods.base import FewShotSegmenter

RESULT_COLUMNS = ["episode", "class_id", "query", *COUNT_COLUMNS]


def check_logits(logits: object, episodes: Sequence[int], desc: str) -> torch.Tensor:
    """`logits` if they are what scoring needs, finite floating-point [B, 2, h, w] for the B `episodes`; else a
    BenchError naming `desc` (the method and cell) and the episode."""
    def refuse(problem: str, where: Sequence[int] = episodes) -> BenchError:
        shown = f"episode {where[0]}" if len(where) == 1 else f"episodes {where[0]} to {where[-1]}"
        return BenchError(f"{desc}, {shown}: the method returned {problem}; expected finite floating-point logits "
                          f"[{len(episodes)}, 2, h, w] (background, foreground)")
    if not isinstance(logits, torch.Tensor):
        raise refuse(f"a {type(logits).__name__}, not a tensor")
    if logits.dim() != 4 or logits.shape[0] != len(episodes) or logits.shape[1] != 2 or min(logits.shape) < 1:
        raise refuse(f"logits of shape {list(logits.shape)}")
    if not logits.is_floating_point():
        raise refuse(f"{logits.dtype} logits")
    finite = torch.isfinite(logits).flatten(1).all(dim=1).cpu()
    if not bool(finite.all()):
        raise refuse("non-finite logits (NaN or inf)", [episodes[int((~finite).nonzero()[0])]])
    return logits


def forward_episodes(method: FewShotSegmenter, store: ImageStore, rows: pd.DataFrame, device: str,
                     features: Optional[CodeCache] = None, desc: str = "episodes") -> torch.Tensor:
    """Logits of the episodes `rows`, checked (`check_logits`): from cached backbone codes when a cache is
    given, else end to end (a native-resolution method takes one episode at a time, at its query's size)."""
    if method.native_resolution:
        rows = rows.iloc[:1]
        batch = build_native_batch(store, next(rows.itertuples(index=False))).to(device)
        logits = method(batch.query, batch.supports, batch.support_masks)
    elif features is None:
        batch = build_batch(store, rows).to(device)
        logits = method(batch.query, batch.supports, batch.support_masks)
    else:
        supports = [support_ids(field) for field in rows["supports"]]
        logits = method.decode(features.query_codes(rows["query"]), features.support_codes(supports, rows["class_id"]))
    return check_logits(logits, [int(e) for e in rows["episode"]], desc)


@torch.no_grad()
def evaluate_manifest(method: FewShotSegmenter, store: ImageStore, manifest: pd.DataFrame,
                      protocol: ScoringProtocol = ScoringProtocol(), *, batch_size: int = 16, device: str = "cpu",
                      features: Optional[CodeCache] = None, desc: str = "episodes",
                      quiet: bool = False) -> pd.DataFrame:
    """Per-episode rows (RESULT_COLUMNS) of `method` on every episode of `manifest`, scored by `protocol`.

    `features`: a CodeCache for a method that `CodeCache.supports`; each unique image is then encoded once.
    `desc` names the method and cell in progress and in the error of a malformed output.
    Results do not depend on `batch_size`, the cache or the device.
    """
    if features is not None and not CodeCache.supports(method):
        raise ValueError(f"{type(method).__name__} has no cacheable encoder: pass features=None")
    method.eval().to(device)
    if protocol.pipeline == "authors":
        return evaluate_authors(method, store, manifest, protocol, batch_size=batch_size, device=device, desc=desc,
                                quiet=quiet)
    if features is not None:
        features.prepare(method, manifest, quiet=quiet)
    step = 1 if method.native_resolution else batch_size
    counts = []
    bar = progress_bar(total=len(manifest), desc=desc, quiet=quiet, unit="ep")
    for start in range(0, len(manifest), step):
        rows = manifest.iloc[start : start + step]
        logits = forward_episodes(method, store, rows, device, features, desc)
        for i, row in enumerate(rows.itertuples(index=False)):
            counts.append(protocol.score(logits[i], store.mask(row.query, row.class_id), method.logits_align_corners))
        bar.update(len(rows))
    bar.close()
    return result_rows(manifest, counts)


def authors_predictions(method: FewShotSegmenter, store: ImageStore, rows: pd.DataFrame, device: str, desc: str,
                        eval_size: Optional[int] = None) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """(boolean prediction, 0/1/255 target) of each episode of `rows` under the method's authors' pipeline,
    in the scoring frame (`authors.scoring_size`)."""
    pipeline = authors.method_pipeline(method, desc)
    size = pipeline.size or store.input_size
    at_input = authors.scoring_size(pipeline, size, eval_size, desc)
    episodes = [int(e) for e in rows["episode"]]
    batch = authors.prepare_batch(pipeline, size, store, rows)
    moved = authors.Prepared(batch.query.to(device), batch.supports.to(device), batch.support_masks.to(device),
                             batch.targets)
    preds = list(authors.predictions(method, pipeline, size, moved, at_input,
                                     lambda logits: check_logits(logits, episodes, desc)))
    return list(zip(preds, authors.scoring_targets(pipeline, size, batch, at_input)))


def evaluate_authors(method: FewShotSegmenter, store: ImageStore, manifest: pd.DataFrame, protocol: ScoringProtocol,
                     *, batch_size: int, device: str, desc: str, quiet: bool) -> pd.DataFrame:
    """`evaluate_manifest` under `--pipeline authors` (see bench.evaluation.authors)."""
    authors.check_scoring(protocol)
    counts = []
    bar = progress_bar(total=len(manifest), desc=desc, quiet=quiet, unit="ep")
    for start in range(0, len(manifest), batch_size):
        rows = manifest.iloc[start : start + batch_size]
        for pred, target in authors_predictions(method, store, rows, device, desc, protocol.eval_size):
            counts.append(episode_counts(pred, target, protocol.ignore_label))
        bar.update(len(rows))
    bar.close()
    return result_rows(manifest, counts)


def result_rows(manifest: pd.DataFrame, counts: List[torch.Tensor]) -> pd.DataFrame:
    """Per-episode rows (RESULT_COLUMNS) of `manifest` with each episode's counts."""
    result = manifest[["episode", "class_id", "query"]].reset_index(drop=True).copy()
    result[list(COUNT_COLUMNS)] = torch.stack(counts).numpy()
    return result[RESULT_COLUMNS]
