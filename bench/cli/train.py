"""`bench train`: train the checkpoints that `bench run` would use, and print where they are.

The command's configuration is a `RunConfig` built from its flags (`bench run`'s, the training options
among them: `TRAIN_FIELDS`). Pairs (method x split) run one after another here, as Ray tasks with
`--executor ray`, as Slurm jobs with `--executor slurm`, and one pair runs on N processes under
`torchrun --nproc_per_node N -m bench train ...`.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

from bench.cli.guard import USER_ERRORS
from bench.core.environment import available_cores, resolve_device, torch_threads
from bench.core.errors import BenchError
from bench.core.log import log, log_session
from bench.runs.config import RunConfig
from bench.runs.executors.base import TaskHook
from bench.runs.run import check_executor, check_methods, check_training, checkpoints_line
from bench.runs.session import Session, open_session
from bench.training import distributed
from bench.training.checkpoints import read_record
from bench.training.models import ModelProvider, is_trainable
from methods.plugins import load_plugins


def train_command(config: RunConfig, hook: Optional[TaskHook] = None) -> None:
    """Log lines go to stderr when it is not a terminal (unless --quiet) and to --log-file, from rank 0."""
    main = distributed.from_env().is_main
    runtime = config.runtime
    with log_session(runtime.log_file if main else None, runtime.quiet or not main, "bench train", USER_ERRORS), \
            torch_threads(runtime.threads) as threads:
        _train(config, hook, threads)


def _train(config: RunConfig, hook: Optional[TaskHook], threads: int) -> None:
    load_plugins(config.plugin)
    # a pattern or `all` selects the trainable methods it matches; a training-free method named is an error
    methods = [m for m in check_methods(config.methods) if is_trainable(m) or m in config.methods]
    for name in methods:
        if not is_trainable(name):
            raise BenchError(f"{name} has no parameters to train")
    config = replace(config, methods=methods, training=config.training.normalized())
    check_training(config.training, config.dataset)
    seeds = config.training.seeds()
    if config.runtime.cpus_per_task < 1:
        raise BenchError(f"--cpus-per-task must be >= 1, got {config.runtime.cpus_per_task}")
    executor = check_executor(config.runtime)
    if not executor.in_process:
        if distributed.from_env().enabled:
            raise BenchError(f"torchrun runs one training on several processes; run `--executor {executor.name}` "
                             "without torchrun")
        executor.check(len(seeds), "train")
    # after the checks: an error in the arguments stays one line on stderr
    log(f"bench train: {', '.join(methods)} on {config.dataset}, splits {' '.join(map(str, config.splits))}, "
        f"training seeds {' '.join(map(str, seeds))}")
    pairs = [(name, split) for name in methods for split in config.splits]
    if not executor.in_process:  # a task runs with --cpus-per-task threads, on the device of its machine
        session = open_training(config, "cpu", quiet=config.runtime.quiet)
        print(checkpoints_line(session.models))
        executor.train_grid(session, pairs, hook)
        report_all(session.models, [None], pairs)
        return
    log(f"training uses {threads} threads (--threads; {available_cores()} cores available)")
    with distributed.session(resolve_device(config.runtime.device)) as (info, device):
        with distributed.main_first(info):  # rank 0 generates the dataset and pretrains a backbone if needed
            session = open_training(config, device, quiet=config.runtime.quiet or not info.is_main)
        if info.is_main:
            print(checkpoints_line(session.models))
        executor.train_grid(session, pairs, hook)
        if info.is_main:
            report_all(session.models, seeds, pairs)


def open_training(config: RunConfig, device: str, quiet: bool) -> Session:
    """The session of `bench train`: its splits checked, the backbone's weights resolved."""
    session = open_session(config, device, quiet=quiet)
    for split in config.splits:
        session.dataset.check_split(split)
    session.models.backbone_options()
    return session


def report_all(models: ModelProvider, seeds, pairs) -> None:
    for seed in seeds:
        for name, split in pairs:
            report(models.for_seed(seed), name, split)


def report(models: ModelProvider, name: str, split: int) -> None:
    best = models.best_path(name, split)
    meta = read_record(best)["meta"]
    print(f"{name} split {split}: {best} (epoch {meta['best_epoch']}, "
          f"{meta['select_on']} validation mIoU {100 * meta['val_miou']:.2f}, {meta['train_seconds']} s)")

