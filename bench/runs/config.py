"""Flat, serialisable run configuration."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

#: fields that do not change results: left out of the identity that a resumed run must match
RUNTIME_FIELDS = ("out", "device", "batch_size", "quiet", "overwrite", "data_root", "lists", "episodes_from",
                  "checkpoints", "no_train", "backbone_weights", "no_feature_cache", "executor", "address",
                  "cpus_per_task", "wait")
EXECUTORS = ("local", "ray")


@dataclass
class RunConfig:
    """Everything `bench run` needs; `identity()` is what makes two runs the same run."""

    methods: List[str]
    dataset: str = "synthetic"
    splits: List[int] = field(default_factory=lambda: [1, 2, 3, 4])
    shots: List[int] = field(default_factory=lambda: [1, 5])
    seeds: List[int] = field(default_factory=lambda: [0, 1, 2])
    episodes: int = 1000
    class_sampling: str = "list"
    min_object_pixels: int = 0
    identical_input: bool = False
    input_size: Optional[int] = None  # None: the training profile's input size
    eval_size: Optional[int] = None  # None: each query label's original size
    void_as_background: bool = False  # score 255 pixels as background (OSLSM) instead of ignoring them
    data_root: Optional[str] = None
    lists: Optional[str] = None
    episodes_from: Optional[List[str]] = None
    profile: Optional[str] = None  # None: the dataset's default training profile
    epochs: Optional[int] = None  # overrides the profile's epochs
    train_seed: int = 0
    select_on: str = "held-out"
    checkpoints: str = "checkpoints"
    no_train: bool = False
    backbone: Optional[str] = None  # None: the profile's backbone
    backbone_weights: Optional[str] = None
    no_feature_cache: bool = False
    out: Optional[str] = None
    device: str = "auto"
    batch_size: int = 16
    quiet: bool = False
    overwrite: bool = False
    executor: str = "local"  # "ray": every cell is a Ray task (bench/ray_executor.py)
    address: Optional[str] = None  # Ray cluster to join; None starts a local one
    cpus_per_task: int = 1  # CPUs (and torch threads) each Ray task asks for
    wait: bool = False  # wait for another `bench run` on the same --out instead of refusing

    def __post_init__(self) -> None:
        # a repeated name or number would repeat cells (and every row of episodes.csv): keep the first
        for name in ("methods", "splits", "shots", "seeds"):
            setattr(self, name, list(dict.fromkeys(getattr(self, name))))

    def to_dict(self) -> Dict:
        return asdict(self)

    def identity(self) -> Dict:
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}
