"""`bench train`: train the checkpoints that `bench run` would use, and print where they are."""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.datasets import open_dataset
from bench.environment import resolve_device
from bench.errors import BenchError
from bench.models import ModelProvider, is_trainable
from bench.profiles import get_profile
from bench.train import load_checkpoint
from methods import METHODS, RegistryError


def train_command(args: argparse.Namespace) -> None:
    for name in args.methods:
        try:
            METHODS.get(name)
        except RegistryError as exc:
            raise BenchError(str(exc)) from None
        if not is_trainable(name):
            raise BenchError(f"{name} has no parameters to train")
    if args.epochs is not None and args.epochs < 1:
        raise BenchError(f"--epochs must be >= 1, got {args.epochs}")
    profile = get_profile(args.profile, args.dataset)
    dataset = open_dataset(args.dataset, args.data_root, args.lists, progress=not args.quiet)
    for split in args.splits:
        dataset.check_split(split)
    models = ModelProvider(dataset, profile, Path(args.checkpoints), backbone_weights=args.backbone_weights,
                           backbone=args.backbone,
                           seed=args.train_seed, select_on=args.select_on, epochs=args.epochs,
                           device=resolve_device(args.device), quiet=args.quiet)
    for name in args.methods:
        for split in args.splits:
            models.get(name, split)
            folder = Path(args.checkpoints) / models.checkpoint_id(name, split)
            meta = load_checkpoint(folder / "best.pt")["meta"]
            print(f"{name} split {split}: {folder / 'best.pt'} (epoch {meta['best_epoch']}, "
                  f"{meta['select_on']} validation mIoU {100 * meta['val_miou']:.2f}, {meta['train_seconds']} s)")
