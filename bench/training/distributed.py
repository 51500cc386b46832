"""Multi-process training of one cell: `torchrun --nproc_per_node N -m bench train ...`.

torchrun starts N copies of the command with RANK, WORLD_SIZE and LOCAL_RANK set. Each joins the
process group (nccl on CUDA, gloo on CPU), takes its slice of every global batch (the profile's batch
size stays the global batch) and DistributedDataParallel averages the gradients, so the update is the
one-process update of the whole batch when the loss is a mean over equal-sized slices. Rank 0 alone
writes checkpoints, logs and output.
"""
from __future__ import annotations

import gc
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Tuple

import pandas as pd
import torch
import torch.distributed as dist

from bench.core.errors import BenchError


@dataclass(frozen=True)
class Dist:
    """This process's place in the process group (rank 0 of 1 outside torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist:
    """The process group torchrun describes in the environment (rank 0 of 1 without torchrun)."""
    return Dist(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))


def current() -> Dist:
    """The process group this process has joined, or rank 0 of 1."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return Dist()


@contextmanager
def session(device: str) -> Iterator[Tuple[Dist, str]]:
    """Join the torchrun process group while the block runs; yield it and this rank's device."""
    info = from_env()
    if not info.enabled:
        yield info, device
        return
    if device.startswith("cuda"):
        device = f"cuda:{info.local_rank}"
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    try:
        yield info, device
        # no rank tears the group down while a peer's collective is still in flight (gloo aborts then)
        gc.collect()
        dist.barrier()
    finally:
        dist.destroy_process_group()


@contextmanager
def main_first(info: Dist) -> Iterator[None]:
    """Rank 0 runs the block first (e.g. generating a dataset or pretraining a backbone), the others after it."""
    if info.enabled and not info.is_main:
        dist.barrier()
    yield
    if info.enabled and info.is_main:
        dist.barrier()


def barrier(info: Dist) -> None:
    if info.enabled:
        dist.barrier()


def check_batch(batch_size: int, info: Dist) -> None:
    """Equal slices are what makes the averaged gradient the gradient of the global batch."""
    if info.enabled and batch_size % info.world_size:
        raise BenchError(f"the global batch size {batch_size} is not a multiple of the {info.world_size} "
                         "processes; choose --nproc_per_node dividing it")


def shard(rows: pd.DataFrame, info: Dist) -> pd.DataFrame:
    """This rank's contiguous slice of a global batch's rows."""
    if not info.enabled:
        return rows
    size = len(rows) // info.world_size
    return rows.iloc[info.rank * size:(info.rank + 1) * size]


def mean_across(value: torch.Tensor, info: Dist) -> float:
    """The mean of a scalar over the ranks (the global batch's loss for per-rank mean losses)."""
    if not info.enabled:
        return value.item()
    total = value.detach().clone().reshape(1)
    dist.all_reduce(total)
    return total.item() / info.world_size


def wrap(module: torch.nn.Module, info: Dist, device: str) -> torch.nn.Module:
    """DistributedDataParallel around `module` under torchrun, else `module` itself."""
    if not info.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [torch.device(device).index] if device.startswith("cuda") else None
    # some parameters sit out some steps (e.g. CANet's k-shot attention at 1-shot steps)
    return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True)
