"""Methods ready for evaluation: reference methods built directly, learned ones from checkpoints.

A learned method needs one checkpoint per split. `bench run` looks it up under the checkpoint root
by the identity of its training request (method, options, profile, dataset, backbone, seed, selection
policy) and trains it when it is missing, unless told not to. A (method, split) given published
weights (`PublishedModels`, `bench run --weights`) loads the authors' checkpoint instead and never trains.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Dict, Optional, Tuple

from bench.core.errors import BenchError
from bench.data.catalog import FSSDataset, card_of, open_dataset
from bench.training.checkpoints import read_checkpoint, read_record, verified_sha256
from bench.training.options import TrainingOptions
from bench.training.published import PublishedModels
from bench.training.pretrain import PRETRAIN_SPECS, ensure_synthnet
from bench.training.profiles import get_profile
from bench.training.train import TrainRequest, load_trained, train
from methods import METHODS, FewShotSegmenter, build_method


def is_trainable(name: str) -> bool:
    return METHODS.card(name).trainable


def training_dataset(options: TrainingOptions, dataset: FSSDataset, methods, progress: bool = False) -> FSSDataset:
    """The dataset learned methods train on: --train-dataset, else a test-only benchmark's own (its card's
    `train_dataset`), else the evaluated one. Opened only when a learned method needs it."""
    name = options.train_dataset or card_of(dataset.name).train_dataset or None
    if name is None or name == dataset.name or not any(is_trainable(m) for m in methods):
        return dataset
    if options.train_data_root is None:
        raise BenchError(f"{dataset.name} is evaluated with models trained on {name}: give its folder with "
                         f"--train-data-root (or published weights with --weights)")
    train_set = open_dataset(name, options.train_data_root, options.train_lists, progress=progress)
    if train_set.num_splits != dataset.num_splits:
        raise BenchError(f"--train-dataset {name} has {train_set.num_splits} splits and {dataset.name} "
                         f"{dataset.num_splits}: split k of one must be split k of the other")
    return train_set


class ModelProvider:
    """Builds reference methods and loads (or trains) learned methods per split."""

    def __init__(self, dataset: FSSDataset, options: TrainingOptions, *, device: str = "cpu", quiet: bool = False,
                 published: Optional[PublishedModels] = None):
        self.dataset, self.options, self.root = dataset, options, options.checkpoint_root()
        self.published = published
        profile = get_profile(options.profile, dataset.name)
        self.profile = replace(profile, backbone=options.backbone) if options.backbone else profile
        self.user_weights, self.seed, self.select_on, self.epochs = (options.backbone_weights, options.train_seed,
                                                                     options.select_on, options.epochs)
        self.no_train, self.device, self.quiet = options.no_train, device, quiet
        self._backbone: Optional[Dict] = None
        self._train_hashes: Dict[int, str] = {}
        self._seeds: Dict[int, "ModelProvider"] = {}

    def for_seed(self, seed: Optional[int]) -> "ModelProvider":
        """The provider of one training seed's checkpoints (`--train-seeds`); None: this one."""
        if seed is None or seed == self.seed:
            return self
        if seed not in self._seeds:
            sibling = ModelProvider(self.dataset, self.options.with_seed(seed), device=self.device, quiet=self.quiet,
                                    published=self.published)
            sibling._backbone, sibling._train_hashes = self.backbone_options(), self._train_hashes  # seed-independent
            self._seeds[seed] = sibling
        return self._seeds[seed]

    def backbone_options(self) -> Dict:
        """Backbone of the profile with its weights resolved (pretraining synthnet once if needed)."""
        if self._backbone is None:
            if self.profile.backbone == "synthnet":
                weights = self.user_weights or str(ensure_synthnet(PRETRAIN_SPECS[self.profile.pretrain],
                                                                   quiet=self.quiet))
                self._backbone = {"backbone": "synthnet", "backbone_weights": weights}
            else:
                self._backbone = {"backbone": self.profile.backbone, "backbone_weights": self.user_weights}
        return self._backbone

    def untrained_options(self, name: str) -> Dict:
        """A training-free method's options: its entry for the profile and, if it takes one, the profile's
        frozen backbone (as a learned method gets it: never a backbone of the method's own choosing)."""
        options = self.profile.options_for(name)
        return {**options, **self.backbone_options()} if METHODS.card(name).takes_backbone else options

    def request(self, name: str, split: int) -> TrainRequest:
        if split not in self._train_hashes:
            self._train_hashes[split] = self.dataset.fingerprint([split], parts=("train", "test"))
        profile = self.profile.for_method(name)
        options = {**profile.options_for(name), **self.backbone_options()}
        return TrainRequest(name, split, profile, options, self._train_hashes[split], self.seed,
                            self.select_on, self.epochs)

    def checkpoint_id(self, name: str, split: int) -> Optional[str]:
        """The checkpoint folder a learned method uses for a split (None for reference methods), or
        `published/<entry name>` for published weights."""
        if self._published(name, split):
            return self.published.get(name, split).checkpoint_id
        if not is_trainable(name):
            return None
        return str(self.request(name, split).folder(self.root, self.dataset.name).relative_to(self.root))

    def get(self, name: str, split: int) -> Tuple[FewShotSegmenter, Dict]:
        """The method for a split and what identifies it (checkpoint meta for learned methods; for published
        weights their sha256, entry name and path)."""
        if self._published(name, split):
            return self.published.load(name, split, self.device)
        if not is_trainable(name):
            return build_method(name, **self.untrained_options(name)), {}
        request = self.request(name, split)
        best = request.folder(self.root, self.dataset.name) / "best.pt"
        if read_record(best) is None:  # not finished; load_trained verifies the file's hash
            if self.no_train:
                raise BenchError(f"no trained checkpoint for {name} split {split} at {best.parent} "
                                 "(run without --no-train to train it, or point --checkpoints at a folder holding it)")
            best = train(self.dataset, request, self.root, self.device, self.quiet)
        method, meta = load_trained(best, self.backbone_options(), self.device)
        return method, meta

    def _published(self, name: str, split: int) -> bool:
        return self.published is not None and self.published.get(name, split) is not None

    def best_path(self, name: str, split: int) -> Optional[Path]:
        """Where a learned method's checkpoint for a split is (None for reference methods)."""
        if self._published(name, split):
            return self.published.get(name, split).path
        folder = self.checkpoint_id(name, split)
        return None if folder is None else self.root / folder / "best.pt"

    def verify_checkpoint(self, name: str, split: int) -> Optional[str]:
        """`checkpoint_sha256`, after also reading the checkpoint (weights only) and checking its metadata,
        so that a bad file is refused before a run writes anything (published weights: loaded into their
        architecture, strictly)."""
        if self._published(name, split):
            self.published.load(name, split)
            return self.published.sha256(name, split)
        sha256 = self.checkpoint_sha256(name, split)
        if sha256 is not None:
            read_checkpoint(self.best_path(name, split))
        return sha256

    def checkpoint_sha256(self, name: str, split: int) -> Optional[str]:
        """The content hash of the finished checkpoint a cell would use now, checked against its record
        (a changed file is a BenchError); None for reference methods and checkpoints not trained yet."""
        if self._published(name, split):
            return self.published.sha256(name, split)
        best = self.best_path(name, split)
        return None if best is None else verified_sha256(best)
