"""`bench train`: train the checkpoints that `bench run` would use, and print where they are.

Cells (method x split) run one after another here, as Ray tasks with `--executor ray`, and one cell
runs on N processes under `torchrun --nproc_per_node N -m bench train ...`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.training import distributed
from bench.training.checkpoints import read_record
from bench.data.catalog import open_dataset
from bench.core.environment import resolve_device
from bench.core.errors import BenchError
from bench.training.models import ModelProvider, is_trainable
from bench.training.profiles import get_profile
from methods import METHODS, RegistryError


def train_command(args: argparse.Namespace) -> None:
    args.methods = list(dict.fromkeys(args.methods))
    args.splits = list(dict.fromkeys(args.splits))
    for name in args.methods:
        try:
            METHODS.get(name)
        except RegistryError as exc:
            raise BenchError(str(exc)) from None
        if not is_trainable(name):
            raise BenchError(f"{name} has no parameters to train")
    if args.train_seed < 0:
        raise BenchError(f"--train-seed must be >= 0, got {args.train_seed}")
    if args.epochs is not None and args.epochs < 1:
        raise BenchError(f"--epochs must be >= 1, got {args.epochs}")
    if args.cpus_per_task < 1:
        raise BenchError(f"--cpus-per-task must be >= 1, got {args.cpus_per_task}")
    profile = get_profile(args.profile, args.dataset)
    if args.executor == "ray":
        train_with_ray(args, profile)
        return
    with distributed.session(resolve_device(args.device)) as (info, device):
        with distributed.main_first(info):  # rank 0 generates the dataset and pretrains a backbone if needed
            models = open_models(args, profile, device, quiet=args.quiet or not info.is_main)
        for name in args.methods:
            for split in args.splits:
                models.get(name, split)
                if info.is_main:
                    report(args.checkpoints, models, name, split)


def train_with_ray(args: argparse.Namespace, profile) -> None:
    """Every missing checkpoint is a Ray task; finished ones are kept."""
    if distributed.from_env().enabled:
        raise BenchError("torchrun runs one training on several processes; run `--executor ray` without torchrun")
    from bench.runs.ray_executor import require_ray, train_grid

    require_ray()
    models = open_models(args, profile, "cpu", quiet=args.quiet)  # the tasks pick their own device
    train_grid(models, [(name, split) for name in args.methods for split in args.splits], args)
    for name in args.methods:
        for split in args.splits:
            report(args.checkpoints, models, name, split)


def open_models(args: argparse.Namespace, profile, device: str, quiet: bool) -> ModelProvider:
    dataset = open_dataset(args.dataset, args.data_root, args.lists, progress=not quiet)
    for split in args.splits:
        dataset.check_split(split)
    models = ModelProvider(dataset, profile, Path(args.checkpoints), backbone_weights=args.backbone_weights,
                           backbone=args.backbone, seed=args.train_seed, select_on=args.select_on,
                           epochs=args.epochs, device=device, quiet=quiet)
    models.backbone_options()
    return models


def report(checkpoints: str, models: ModelProvider, name: str, split: int) -> None:
    folder = Path(checkpoints) / models.checkpoint_id(name, split)
    meta = read_record(folder / "best.pt")["meta"]
    print(f"{name} split {split}: {folder / 'best.pt'} (epoch {meta['best_epoch']}, "
          f"{meta['select_on']} validation mIoU {100 * meta['val_miou']:.2f}, {meta['train_seconds']} s)")
