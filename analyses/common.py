"""Shared plumbing of the analyses' implementations: dataset and models, outputs (their command-line options and
`cli`: `analyses.cli`, re-exported here)."""
from __future__ import annotations

import argparse
import io
from dataclasses import dataclass
from pathlib import Path
from typing import List

import numpy as np
import pandas as pd
import torch

from analyses.cli import EPISODES, PAIRS, SEED, SHARED_OPTIONS, SHOTS, add_arguments, cli  # noqa: F401
from bench.cli.arguments import build
from bench.core.environment import home_path
from bench.core.errors import BenchError
from bench.core.outputs import write_output
from bench.data.catalog import FSSDataset
from bench.data.episodes import images_by_class
from bench.runs.config import RunConfig, RuntimeOptions
from bench.runs.run import check_methods
from bench.runs.session import open_session
from bench.training.models import ModelProvider
from methods.backbones import FrozenBackbone, build_backbone
from methods.common import masked_average_pool
from methods.plugins import load_plugins

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
    """Validate the common arguments, open the session (dataset, device, model provider) as `bench run` does,
    create the output folder (default under $FSS_BENCH_HOME's runs/ when it is set)."""
    methods = checked_methods(args)
    splits = [args.split] if hasattr(args, "split") else list(args.splits)
    session = open_session(build(RunConfig, args, methods=methods, splits=splits))
    dataset = session.dataset
    for split in splits:
        dataset.check_split(split)
        dataset.check_files(split, "test")
    if args.out:
        out = Path(args.out)
    elif args.run:
        out = Path(args.run) / "analyses" / f"{name}{suffix}"  # one folder per split / method: no overwrites
    else:
        out = home_path("runs") / "analyses" / f"{name}-{dataset.name}{suffix}"
    out.mkdir(parents=True, exist_ok=True)
    return Analysis(name, args, dataset, session.models, out, session.device)


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
