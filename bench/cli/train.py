"""`bench train`: train the checkpoints that `bench run` would use, and print where they are.

Cells (method x split) run one after another here, as Ray tasks with `--executor ray`, and one cell
runs on N processes under `torchrun --nproc_per_node N -m bench train ...`.
"""
from __future__ import annotations

import argparse
from typing import Optional

from bench.cli.arguments import build
from bench.cli.guard import USER_ERRORS
from bench.core.environment import available_cores, resolve_device, torch_threads
from bench.core.errors import BenchError
from bench.core.log import log, log_session
from bench.data.catalog import open_dataset
from bench.runs import ray_executor
from bench.runs.ray_executor import TaskHook
from bench.runs.run import check_methods, check_training, checkpoints_line
from bench.training import distributed
from bench.training.checkpoints import read_record
from bench.training.models import ModelProvider, is_trainable
from bench.training.options import TrainingOptions
from methods.plugins import load_plugins


def train_command(args: argparse.Namespace, hook: Optional[TaskHook] = None) -> None:
    """Log lines go to stderr when it is not a terminal (unless --quiet) and to --log-file, from rank 0."""
    main = distributed.from_env().is_main
    with log_session(args.log_file if main else None, args.quiet or not main, "bench train", USER_ERRORS), \
            torch_threads(getattr(args, "threads", None)) as threads:
        _train(args, hook, threads)


def _train(args: argparse.Namespace, hook: Optional[TaskHook], threads: int) -> None:
    methods, splits = list(dict.fromkeys(args.methods)), list(dict.fromkeys(args.splits))
    load_plugins(args.plugin)
    # a pattern or `all` selects the trainable methods it matches; a training-free method named is an error
    methods = [m for m in check_methods(methods) if is_trainable(m) or m in args.methods]
    for name in methods:
        if not is_trainable(name):
            raise BenchError(f"{name} has no parameters to train")
    training = build(TrainingOptions, args).normalized()
    check_training(training, args.dataset)
    seeds = training.seeds()
    if args.cpus_per_task < 1:
        raise BenchError(f"--cpus-per-task must be >= 1, got {args.cpus_per_task}")
    if args.executor == "ray":
        if distributed.from_env().enabled:
            raise BenchError("torchrun runs one training on several processes; run `--executor ray` without torchrun")
        if len(seeds) > 1:
            raise BenchError("--executor ray trains one training seed: give --train-seeds one seed at a time")
        ray_executor.require_ray(args.address, args.connect_timeout)
    # after the checks: an error in the arguments stays one line on stderr
    log(f"bench train: {', '.join(methods)} on {args.dataset}, splits {' '.join(map(str, splits))}, "
        f"training seeds {' '.join(map(str, seeds))}")
    if args.executor != "ray":  # a Ray task runs with --cpus-per-task threads
        log(f"training uses {threads} threads (--threads; {available_cores()} cores available)")
    if args.executor == "ray":
        models = open_models(args, training, "cpu", quiet=args.quiet)  # the tasks pick their own device
        print(checkpoints_line(models))
        ray_executor.train_grid(models, [(name, split) for name in methods for split in splits], args.data_root,
                                args.lists, args.device, args.address, args.cpus_per_task, args.quiet, hook,
                                args.plugin)
        for name in methods:
            for split in splits:
                report(models, name, split)
        return
    with distributed.session(resolve_device(args.device)) as (info, device):
        with distributed.main_first(info):  # rank 0 generates the dataset and pretrains a backbone if needed
            models = open_models(args, training, device, quiet=args.quiet or not info.is_main)
        if info.is_main:
            print(checkpoints_line(models))
        for seed in seeds:
            for name in methods:
                for split in splits:
                    models.for_seed(seed).get(name, split)
                    if info.is_main:
                        report(models.for_seed(seed), name, split)


def open_models(args: argparse.Namespace, training: TrainingOptions, device: str, quiet: bool) -> ModelProvider:
    dataset = open_dataset(args.dataset, args.data_root, args.lists, progress=not quiet,
                           fold_convention=args.fold_convention)
    for split in args.splits:
        dataset.check_split(split)
    models = ModelProvider(dataset, training, device=device, quiet=quiet)
    models.backbone_options()
    return models


def report(models: ModelProvider, name: str, split: int) -> None:
    best = models.best_path(name, split)
    meta = read_record(best)["meta"]
    print(f"{name} split {split}: {best} (epoch {meta['best_epoch']}, "
          f"{meta['select_on']} validation mIoU {100 * meta['val_miou']:.2f}, {meta['train_seconds']} s)")
