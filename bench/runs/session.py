"""One session setup: what `bench run`, `bench train`, the executors' workers and the analyses open alike.

`open_session(config)` opens the dataset, picks the device, resolves the published weights, and names the
method identities; the training dataset and the model provider, and the image store, are opened on first
use (`bench run` decodes and checks every image first). A caller that has already opened the dataset or
the published weights (`bench run` needs them to resolve its grid) passes them in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Dict, Optional

from bench.core.environment import resolve_device
from bench.data.catalog import FSSDataset, open_dataset
from bench.data.images import ImageStore
from bench.runs.cells import Cell
from bench.runs.config import RunConfig, cache_budgets, method_identities
from bench.training.models import ModelProvider, training_dataset
from bench.training.published import PublishedModels


@dataclass
class Session:
    """A configuration with its dataset, device, published weights, method identities and models."""

    config: RunConfig
    dataset: FSSDataset
    device: str
    published: Optional[PublishedModels]
    identities: Dict[str, Dict]
    quiet: bool = False
    _checkpoint_ids: Dict[str, Optional[str]] = field(default_factory=dict, repr=False)

    @property
    def weights(self) -> Dict[str, str]:
        """The published entries the run uses ({"<method>/split<k>": entry}), {} without published weights."""
        return self.published.identity() if self.published is not None else {}

    @cached_property
    def models(self) -> ModelProvider:
        """The model provider, on the training dataset (--train-dataset, a test-only benchmark's own)."""
        config = self.config
        train_set = training_dataset(config.training, self.dataset, config.methods, progress=not self.quiet)
        return ModelProvider(train_set, config.training, device=self.device, quiet=self.quiet,
                             published=self.published)

    @cached_property
    def store(self) -> ImageStore:
        """Decoded images at the input size, within the run's memory budget."""
        return ImageStore(self.dataset, self.config.input_size, budget_bytes=cache_budgets(self.config.runtime)["store"])

    def checkpoint_id(self, cell: Cell) -> Optional[str]:
        """The checkpoint a cell uses (`ModelProvider.checkpoint_id`), computed once per checkpoint."""
        if cell.checkpoint_key not in self._checkpoint_ids:
            models = self.models.for_seed(cell.train_seed)
            self._checkpoint_ids[cell.checkpoint_key] = models.checkpoint_id(cell.method, cell.split)
        return self._checkpoint_ids[cell.checkpoint_key]


def open_session(config: RunConfig, device: Optional[str] = None, *, dataset: Optional[FSSDataset] = None,
                 published: Optional[PublishedModels] = None, quiet: Optional[bool] = None) -> Session:
    """The session of `config`: `device` (default: --device resolved on this machine), `dataset` and
    `published` when the caller opened them already, `quiet` (default --quiet) for progress and training."""
    quiet = config.runtime.quiet if quiet is None else quiet
    if dataset is None:
        dataset = open_dataset(config.dataset, config.data_root, config.lists, progress=not quiet,
                               fold_convention=config.fold_convention)
    device = resolve_device(config.runtime.device) if device is None else device
    if published is None and config.published.used:  # e.g. a worker: the driver's choices, by absolute paths
        published = PublishedModels(config.published, config.dataset)
        published.resolve(config.methods, config.splits, config.input_size)
    identities = method_identities(config, published.identity() if published is not None else {})
    return Session(config, dataset, device, published, identities, quiet)
