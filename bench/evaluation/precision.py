"""The evaluation's numeric precision (`bench run --precision`): full float32, or autocast to bfloat16/float16.

Reduced precision changes results (a few boundary pixels per episode), so it is a recorded choice, part of
the run's identity, never a silent runtime option. It applies to evaluation only (the backbone's encoding,
the cached codes and the decoders); training and its checkpoints stay float32. Scoring always reads the
logits as float32 (`ScoringProtocol.score`).
"""
from __future__ import annotations

import contextlib
from typing import ContextManager

from bench.core.errors import BenchError

#: the precisions and their torch dtype names; fp32 is the default and no autocast at all
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def device_type(device: str) -> str:
    """'cuda' of 'cuda:1', 'cpu' of 'cpu': what torch.autocast takes."""
    return device.split(":", 1)[0]


def autocast(device: str, precision: str) -> ContextManager:
    """A context in which the forward passes on `device` run at `precision`; a BenchError (one line) when the
    precision is unknown or this torch cannot autocast to it on that device."""
    import warnings

    import torch  # here: the option's choices are read by --help without torch

    if precision not in PRECISIONS:
        raise BenchError(f"unknown precision '{precision}'; use {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    kind, dtype = device_type(device), getattr(torch, PRECISIONS[precision])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unsupported dtype's warning: the BenchError below says it
            context = torch.autocast(kind, dtype=dtype)
    except RuntimeError as exc:
        raise BenchError(f"--precision {precision} is not supported on {device} by torch {torch.__version__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not getattr(context, "_enabled", True):  # torch warns and disables autocast for an unsupported dtype
        raise BenchError(f"--precision {precision} is not supported on {device} by torch {torch.__version__} "
                         f"(autocast disables itself); use fp32 or bf16")
    return context


def check_precision(device: str, precision: str) -> None:
    """Refuse, before anything is written, a precision this device cannot run."""
    autocast(device, precision)
