"""The training options and the published-weights options of a run or of `bench train`: one source of truth for
their flags (light: no torch, so `--help` answers at once)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import List, Optional

from bench.core.environment import home_path
from bench.core.options import MAX_SEED, option
from methods.catalog import backbone_names

SELECT_ON = ("held-out", "test")


@dataclass(frozen=True)
class TrainingOptions:
    """How learned methods get their checkpoints (`bench run` trains missing ones, `bench train` trains)."""

    profile: Optional[str] = option(None, "training profile (see `bench list`; default: the dataset's)")
    epochs: Optional[int] = option(None, "override the profile's number of epochs", minimum=1, maximum=10_000)
    train_seed: int = option(0, "seed of training episodes and initialisation", minimum=0, maximum=MAX_SEED)
    train_seeds: Optional[List[int]] = option(None, "train one checkpoint per seed and evaluate each (replaces "
                                              "--train-seed; cells gain a train_seed coordinate when more than one "
                                              "is given)", metavar="S", minimum=0, maximum=MAX_SEED)
    select_on: str = option("held-out", "checkpoint selection: held-out images of the training classes, or the "
                            "split's test classes (the paper's practice, recorded in the run)", choices=SELECT_ON)
    backbone: Optional[str] = option(None, "override the profile's frozen backbone (vgg16: the original of PANet, "
                                     "SG-One, AMP, OSLSM, co-FCN)", choices=backbone_names())
    train_dataset: Optional[str] = option(None, "dataset learned methods train on (default: the evaluated one; a "
                                          "test-only cross-domain benchmark: pascal-all, PASCAL with all 20 "
                                          "classes)", metavar="NAME")
    train_data_root: Optional[str] = option(None, "folder of --train-dataset (cross-domain: the PASCAL VOC root)",
                                            identity=False, metavar="DIR", path="folder")
    train_lists: Optional[str] = option(None, "split lists of --train-dataset (default: its shipped ones)",
                                        identity=False, metavar="DIR", path="folder")
    checkpoints: Optional[str] = option(None, "checkpoint root folder (default: $FSS_BENCH_HOME/checkpoints when "
                                        "FSS_BENCH_HOME is set, else ./checkpoints)", identity=False, metavar="DIR",
                                        path="folder")
    no_train: bool = option(False, "fail instead of training a missing checkpoint", identity=False)
    backbone_weights: Optional[str] = option(None, "local backbone weights file (default: torchvision's "
                                             "IMAGENET1K_V1 from the torch hub cache)", identity=False,
                                             metavar="PATH", path="file")

    def seeds(self) -> List[int]:
        """The training seeds: --train-seeds, else --train-seed."""
        return list(dict.fromkeys(self.train_seeds)) if self.train_seeds else [self.train_seed]

    def normalized(self) -> "TrainingOptions":
        """One seed as `train_seed` (the single-seed layout, as before --train-seeds), several as `train_seeds`."""
        seeds = self.seeds()
        return replace(self, train_seed=seeds[0], train_seeds=seeds if len(seeds) > 1 else None)

    def with_seed(self, seed: int) -> "TrainingOptions":
        """The options of one training seed's checkpoints."""
        return replace(self, train_seed=seed, train_seeds=None)

    def checkpoint_root(self) -> Path:
        """--checkpoints, else $FSS_BENCH_HOME/checkpoints, else ./checkpoints."""
        return Path(self.checkpoints) if self.checkpoints else home_path("checkpoints")


@dataclass(frozen=True)
class PublishedOptions:
    """Which published checkpoints a run evaluates (the chosen entries are in the run's identity)."""

    weights: Optional[List[str]] = option(
        None, "published checkpoints (see `bench weights`): a folder holding the authors' files under their own "
        "names, and/or TAG=FILE with TAG an entry's name; cells of those methods load them (no training)",
        identity=False, metavar="DIR|TAG=FILE")
    weights_variant: Optional[List[str]] = option(
        None, "where several published checkpoints fit a method's split (e.g. ResNet-50 and -101), keep those "
        "whose name matches one of these patterns (fnmatch, e.g. 'hsnet.*-resnet101'; a pattern naming no entry "
        "of a method leaves that method alone)", identity=False,
        metavar="PATTERN")

    @property
    def used(self) -> bool:
        return bool(self.weights)
