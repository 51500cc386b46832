"""Shared plumbing of the analysis commands: arguments, dataset and models, outputs, errors."""
from __future__ import annotations

import argparse
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import pandas as pd
import torch

from bench.cli.arguments import add_options, build, field_type, number
from bench.cli.guard import exit_status
from bench.core.environment import resolve_device
from bench.core.errors import BenchError
from bench.core.outputs import write_output
from bench.core.log import log_session
from bench.data.catalog import FSSDataset, open_dataset
from bench.data.episodes import images_by_class
from bench.runs.config import RunConfig, RuntimeOptions
from bench.runs.run import check_methods
from bench.training.models import ModelProvider
from bench.training.options import TrainingOptions
from methods.backbones import FrozenBackbone, build_backbone
from methods.common import masked_average_pool
from methods.plugins import load_plugins
from methods.registry import MethodError

#: the options of `bench run` the analyses share (the same flags, defaults and help)
SHARED_OPTIONS = ("plugin", "dataset", "data_root", "lists", "profile", "backbone", "backbone_weights", "checkpoints", "no_train",
                  "device", "quiet", "log_file")


#: the analyses' own numeric options, bounded as `bench run`'s (the same fields) or as their cost allows
EPISODES, SHOTS, SEED = (field_type(RunConfig, name) for name in ("episodes", "shots", "seeds"))
PAIRS = number(int, 1, 100_000)  # image pairs (or images) encoded by the backbone: 100,000 is hours


def add_arguments(parser: argparse.ArgumentParser, *, methods: str = "none", splits: str = "one") -> None:
    """Dataset, split(s), method(s), checkpoint and output options shared by the analyses.

    methods: "none", "one" (--method) or "many" (--methods); splits: "one" (--split) or "many" (--splits).
    """
    add_options(parser, RunConfig, names=SHARED_OPTIONS)
    if splits == "one":
        parser.add_argument("--split", type=number(int), default=1, help="split 1..4 (paper numbering)")
    else:
        parser.add_argument("--splits", nargs="+", type=number(int), default=[1, 2, 3, 4], metavar="K",
                            help="splits 1..4 (paper numbering)")
    if methods == "one":
        parser.add_argument("--method", required=True, help="registered method (see `python -m bench list`)")
    elif methods == "many":
        parser.add_argument("--methods", nargs="+", required=True, metavar="M",
                            help="registered methods (see `python -m bench list`)")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of the analysis' sampling")
    parser.add_argument("--out", help="output folder (default: <run>/analyses/<name> with --run, else runs/analyses/...)")
    parser.add_argument("--run", help="a run directory to write the outputs into (under analyses/)")


def run_config(args: argparse.Namespace, out: Path, **grid) -> RunConfig:
    """The `bench run` config of an analysis' own run: its shared options, the grid given, output `out`."""
    return build(RunConfig, args, methods=list(args.methods), **grid,
                 runtime=build(RuntimeOptions, args, out=str(out)))


@dataclass
class Analysis:
    """What an analysis command works with."""

    name: str
    args: argparse.Namespace
    dataset: FSSDataset
    models: ModelProvider
    out: Path
    device: str

    def backbone(self) -> FrozenBackbone:
        """The dataset profile's frozen backbone (its weights resolved as for training)."""
        options = self.models.backbone_options()
        name = options["backbone"]
        kwargs = {"weights_path": options.get("backbone_weights")}
        if name != "synthnet":
            kwargs["weights"] = "IMAGENET1K_V1"
        return build_backbone(name, **kwargs).to(self.device)

    @property
    def input_size(self) -> int:
        return self.models.profile.input_size

    def save_table(self, frame: pd.DataFrame, name: str) -> Path:
        data = frame.to_csv(index=False, lineterminator="\n", float_format="%.6g").encode()
        return write_output(self.out, f"{name}.csv", data)

    def save_figure(self, figure, name: str) -> List[Path]:
        """PNG and SVG of a matplotlib figure."""
        import matplotlib.pyplot as plt

        paths = []
        for ext in ("png", "svg"):
            buffer = io.BytesIO()
            figure.savefig(buffer, format=ext, dpi=150, bbox_inches="tight")
            paths.append(write_output(self.out, f"{name}.{ext}", buffer.getvalue()))
        plt.close(figure)
        return paths


def checked_methods(args: argparse.Namespace) -> List[str]:
    """The method names given (--method or --methods), checked after loading the plugins (--plugin, installed)."""
    names = [args.method] if getattr(args, "method", None) else list(getattr(args, "methods", []) or [])
    load_plugins(args.plugin)
    if names:
        names = check_methods(names)  # names, patterns and `all` -> registered names
    return names


def open_analysis(args: argparse.Namespace, name: str, suffix: str = "") -> Analysis:
    """Validate the common arguments, open the dataset and the model provider, create the output folder."""
    checked_methods(args)
    device = resolve_device(args.device)
    dataset = open_dataset(args.dataset, args.data_root, args.lists, progress=not args.quiet)
    for split in [args.split] if hasattr(args, "split") else args.splits:
        dataset.check_split(split)
        dataset.check_files(split, "test")
    models = ModelProvider(dataset, build(TrainingOptions, args), device=device, quiet=args.quiet)
    if args.out:
        out = Path(args.out)
    elif args.run:
        out = Path(args.run) / "analyses" / f"{name}{suffix}"  # one folder per split / method: no overwrites
    else:
        out = Path("runs") / "analyses" / f"{name}-{dataset.name}{suffix}"
    out.mkdir(parents=True, exist_ok=True)
    return Analysis(name, args, dataset, models, out, device)


def cli(build_parser: Callable[[], argparse.ArgumentParser], body: Callable[[argparse.Namespace], None],
        argv: Optional[List[str]] = None) -> int:
    """Run an analysis command: BenchError or MethodError -> one `error:` line and exit status 2. Its log
    lines (generating, pretraining, training, evaluating) go to stderr in a batch job and to --log-file."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error: its one `error:` line is printed; --help exits
        if exc.code == 0:
            raise
        return 2

    def logged():
        with log_session(args.log_file, args.quiet, parser.prog, (BenchError, MethodError)):
            return body(args)

    return exit_status(logged, interrupted="interrupted")


@torch.no_grad()
def class_vectors(backbone: FrozenBackbone, images: torch.Tensor, masks: torch.Tensor) -> tuple:
    """FG and BG masked-average-pooled layer2 ++ layer3 vectors: images [N,3,H,W] (normalised),
    masks [N,H,W] (1 class, 0 background, 255 void, excluded from both)."""
    feats = backbone.mid_level(images)
    return masked_average_pool(feats, (masks == 1).float()), masked_average_pool(feats, (masks == 0).float())


def same_class_pairs(dataset: FSSDataset, split: int, n: int, seed: int) -> pd.DataFrame:
    """N (class, image A, image B) pairs of distinct test-list images of one class; classes in
    proportion to their pairs in the list (as the episodes), seeded."""
    pairs = dataset.pairs(split, "test")
    by_class = {c: ids for c, ids in images_by_class(pairs).items() if len(ids) >= 2}
    if not by_class:
        raise BenchError(f"split {split} has no class with two images")
    usable = [p for p in pairs if p[1] in by_class]
    rng = np.random.default_rng([seed, split, 99])
    rows = []
    for k in rng.integers(len(usable), size=n):
        image_a, class_id = usable[k]
        others = [i for i in by_class[class_id] if i != image_a]
        rows.append((class_id, image_a, others[rng.integers(len(others))]))
    return pd.DataFrame(rows, columns=["class_id", "image_a", "image_b"])
