"""Predictions of a few episodes per class, saved with the run so reports can show them (Figures 4, 5).

For a cell, per class: the best and the worst episode (by foreground IoU) and one chosen at random
(seeded). Their predicted masks, at each query label's original size, are stored bit-packed in
`qualitative/<method>__<cell>.npz`; the report draws them over the dataset's images without running
any model.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Dict

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_bytes, sha256_bytes
from bench.data.images import ImageStore
from bench.evaluation.loop import authors_predictions, forward_episodes
from bench.evaluation.protocol import ScoringProtocol

#: the episodes saved per class, in this order
KINDS = ("best", "worst", "random")


def pick_episodes(rows: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Best, worst and one random episode per class (by foreground IoU), labelled by `kind`."""
    iou = rows.fg_inter / rows.fg_union.clip(lower=1)
    picks = []
    rng = np.random.default_rng(seed)
    for class_id, group in rows.assign(iou=iou).groupby("class_id", sort=True):
        picks.append(group.loc[[group.iou.idxmax()]].assign(kind=KINDS[0]))
        picks.append(group.loc[[group.iou.idxmin()]].assign(kind=KINDS[1]))
        picks.append(group.iloc[[int(rng.integers(len(group)))]].assign(kind=KINDS[2]))
    return pd.concat(picks, ignore_index=True)


@torch.no_grad()
def save_qualitative(method, store: ImageStore, manifest: pd.DataFrame, rows: pd.DataFrame, path: Path,
                     device: str = "cpu", features=None, protocol: ScoringProtocol = ScoringProtocol()) -> str:
    """Save the picked episodes' predictions (under the protocol's pipeline, at each label's original size);
    return the sha256 of the file (recorded in the cell)."""
    picked = pick_episodes(rows)
    chosen = manifest.set_index("episode").loc[picked.episode].reset_index()
    arrays: Dict[str, np.ndarray] = {}
    for k in range(len(chosen)):
        row = chosen.iloc[k:k + 1]
        desc = path.stem.replace("__", " ")
        if protocol.pipeline == "authors":
            pred = authors_predictions(method, store, row, device, desc)[0][0].numpy()
        else:
            logits = forward_episodes(method, store, row, device, features, desc)[0:1].float()
            target = store.mask(row["query"].iloc[0], int(row["class_id"].iloc[0]))
            logits = F.interpolate(logits, size=target.shape, mode="bilinear",
                                   align_corners=method.logits_align_corners)[0]
            pred = (logits[1] > logits[0]).cpu().numpy()
        arrays[f"pred_{k}"] = np.packbits(pred)
        arrays[f"shape_{k}"] = np.array(pred.shape)
    table = picked[["episode", "class_id", "query", "kind", "iou"]].assign(supports=list(chosen["supports"]))
    arrays["table"] = np.frombuffer(table.to_csv(index=False).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
    return sha256_bytes(buffer.getvalue())


TABLE_COLUMNS = ["episode", "class_id", "query", "kind", "iou", "supports"]


def load_qualitative(path: Path) -> tuple:
    """(table of picked episodes, list of boolean prediction masks) of a saved cell.

    Read without unpickling; a damaged file is one BenchError naming it.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            table = pd.read_csv(io.BytesIO(data["table"].tobytes()), dtype={"query": str, "supports": str})
            if list(table.columns) != TABLE_COLUMNS:
                raise ValueError(f"unexpected table columns {list(table.columns)}")
            masks = []
            for k in range(len(table)):
                shape = tuple(int(v) for v in data[f"shape_{k}"])
                bits = np.unpackbits(data[f"pred_{k}"])
                if len(shape) != 2 or bits.size < shape[0] * shape[1]:
                    raise ValueError(f"prediction {k} does not have its recorded shape {shape}")
                masks.append(bits[: shape[0] * shape[1]].reshape(shape).astype(bool))
    except BenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged zip, a missing array, a bad table: one line each
        raise BenchError(f"saved predictions {path} are damaged ({type(exc).__name__}: {str(exc)[:120]}); re-run "
                         "`bench run` on the run directory to redo them") from None
    return table, masks
