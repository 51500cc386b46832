"""Checkpoint files: tensors read without unpickling code, and a JSON record that proves them unchanged.

A checkpoint folder holds `best.pt` and `last.pt` (`torch.save` of dicts of tensors and JSON-compatible
metadata, read back with `torch.load(weights_only=True)`, which refuses any other object: a crafted
file cannot run code) and, once training has finished, `best.json`: the sha256 of `best.pt` and its
metadata. A checkpoint is complete when its record exists; it is used only if `best.pt` still has the
recorded hash (a changed file is refused, naming it).
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Dict, Mapping, Optional

import torch

from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_bytes, atomic_write_json, read_json, sha256_bytes, sha256_file

RECORD_VERSION = 1
REQUIRED_META = {"method": str, "split": int, "method_options": dict}


def plain(obj):
    """The same data as JSON types only (tuples become lists, numpy scalars Python numbers)."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def save_tensors(path: Path, payload: Dict) -> str:
    """Write a dict of tensors and JSON-compatible values atomically; return the sha256 of the file."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    return sha256_bytes(data)


def load_tensors(path: Path) -> Dict:
    """Read a file written by `save_tensors` (or any weights-only file); nothing else is unpickled."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BenchError(f"checkpoint not found: {path}") from None
    except Exception as exc:  # noqa: BLE001 - an UnpicklingError, a damaged zip, ...: one line either way
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"cannot read checkpoint {path}: not a weights-only tensor file ({reason[:200]})") from None
    if not isinstance(payload, dict):
        raise BenchError(f"checkpoint {path} holds a {type(payload).__name__}, not a dict of tensors")
    return payload


def record_path(best: Path) -> Path:
    return Path(best).with_suffix(".json")


def write_record(best: Path, sha256: str, meta: Dict) -> None:
    """Mark `best` complete: its hash and metadata, written after the file itself."""
    atomic_write_json(record_path(best), {"version": RECORD_VERSION, "sha256": sha256, "meta": plain(meta)})


def read_record(best: Path) -> Optional[Dict]:
    """The record of a finished checkpoint, or None if training has not finished it."""
    path = record_path(best)
    if not path.is_file():
        return None
    record = read_json(path, "checkpoint record")
    if not (isinstance(record, dict) and isinstance(record.get("sha256"), str) and isinstance(record.get("meta"), dict)):
        raise BenchError(f"checkpoint record {path} is damaged (no sha256 / meta); delete {Path(best).parent} to retrain")
    return record


def verified_sha256(best: Path) -> Optional[str]:
    """sha256 of a finished checkpoint after checking it against its record; None if it is not finished."""
    record = read_record(best)
    if record is None:
        return None
    if not Path(best).is_file():
        raise BenchError(f"checkpoint {best} is missing beside its record {record_path(best).name}; "
                         f"delete {Path(best).parent} to retrain")
    actual = sha256_file(best)
    if actual != record["sha256"]:
        raise BenchError(f"checkpoint {best} was changed after training (sha256 {actual[:12]}, recorded "
                         f"{record['sha256'][:12]}): restore it, or delete {Path(best).parent} to retrain")
    return actual


def check_meta(meta: object, path: Path) -> Dict:
    """The metadata of a checkpoint, checked to hold what rebuilding its method needs."""
    if not isinstance(meta, dict):
        raise BenchError(f"checkpoint {path} has no metadata: not a checkpoint written by fss-bench")
    for key, kind in REQUIRED_META.items():
        if not isinstance(meta.get(key), kind):
            raise BenchError(f"checkpoint {path} lacks '{key}' in its metadata: not a checkpoint written by "
                             f"fss-bench, or damaged; delete {Path(path).parent} to retrain")
    return meta


def check_finite(tensors: Mapping, path: Path, advice: str) -> None:
    """Refuse weights holding NaN or inf (a diverged training, a damaged or hostile file): they would score
    as a model that predicts nothing instead of failing."""
    bad = sorted(k for k, v in tensors.items()
                 if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise BenchError(f"checkpoint {path} holds non-finite weights (NaN or inf) in {len(bad)} tensors ({shown}): "
                         f"{advice}")


def read_checkpoint(best: Path) -> Dict:
    """A finished checkpoint's payload, checked: the metadata that rebuilds its method, and finite weights."""
    payload = load_tensors(best)
    check_meta(payload.get("meta"), best)
    if not isinstance(payload.get("model"), dict):
        raise BenchError(f"checkpoint {best} holds no model weights")
    check_finite(payload["model"], best, f"delete {Path(best).parent} to retrain")
    return payload
