"""The executors of a grid: where the training pairs and the evaluation cells of `bench run` / `bench train` run.

`EXECUTORS` maps each name (`--executor NAME`) to its class, or to the module that defines it as `EXECUTOR`
(imported when the executor is used: naming the executors is light, so `--help` imports no torch, Ray or
submitit). Adding an executor is one module here with an `Executor` subclass (`base.py`) and one line below;
a test or a plugin may also register a class directly: `EXECUTORS.register("mine")(MyExecutor)`.
"""
from __future__ import annotations

import importlib

from methods.registry import Registry

EXECUTORS = Registry("executor")
for _name in ("local", "ray", "slurm"):
    EXECUTORS.register(_name)(f"bench.runs.executors.{_name}")


def executor_class(name: str):
    """The Executor subclass registered as `name` (its module imported on first use)."""
    entry = EXECUTORS.get(name)
    return importlib.import_module(entry).EXECUTOR if isinstance(entry, str) else entry
