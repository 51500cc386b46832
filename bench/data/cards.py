"""Dataset cards: what a user needs to know of a benchmark before running it, declared beside its loader.

A dataset module registers its builder with `@register_dataset(DatasetCard(...))`: citation, expected
layout, where each part comes from, licence, sizes, fold/class convention, episode count and evaluation
size, its default training profile and the preparation step that builds its root (`bench prepare`). `python -m bench datasets` lists the cards; a missing or incomplete data root is reported with
the layout and where to get each part (`DatasetCard.missing`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Tuple

from bench.core.errors import BenchError
from methods.registry import Registry

DATASETS = Registry("dataset")
CARDS: Dict[str, "DatasetCard"] = {}
#: resolvers of parametrised dataset names (`register_family`)
FAMILIES: List[Callable[[str], bool]] = []


@dataclass(frozen=True)
class DatasetCard:
    """The facts of one registered dataset (all text; nothing here is read from the data)."""

    name: str
    title: str
    citation: str
    classes: str  # e.g. "20 PASCAL VOC classes"
    folds: str  # the fold/class convention
    episodes: str  # default episodes per seed and how queries are drawn
    eval_size: str  # input and scoring resolution of its default protocol
    layout: Tuple[str, ...]  # the expected tree under --data-root, one line per entry
    downloads: Tuple[Tuple[str, str], ...]  # (part, where to get it)
    licence: str
    size: str
    #: the training profile (bench.training.profiles) its runs and trainings default to without --profile;
    #: empty: none declared, and a run that needs one asks for --profile
    profile: str = ""
    prepare: str = ""  # the command that builds the layout from the official archives
    #: the module whose `STEP` (bench.data.prepare.step.PrepareStep) is `bench prepare <name>`; empty: none
    prepare_step: str = ""
    #: test-only benchmarks (cross-domain): the model is trained on another dataset
    train_on: str = ""
    #: the registered dataset that `train_on` names (learned methods train on it)
    train_dataset: str = ""
    #: default class sampling of its protocol ("list" or "uniform")
    class_sampling: str = "list"
    #: fold conventions it understands (first = default); empty: it has one
    fold_conventions: Tuple[str, ...] = ()
    #: query protocols it understands (first = default): "sampled", "every-image"
    query_protocols: Tuple[str, ...] = ("sampled",)
    #: its protocol's defaults for run options the user leaves unset: `class_sampling`, `episodes`,
    #: `input_size`, `eval_size`, `queries` (e.g. {"input_size": 400, "eval_size": 400})
    defaults: Mapping[str, object] = field(default_factory=dict)
    notes: Tuple[str, ...] = field(default_factory=tuple)

    def summary_row(self) -> Tuple[str, ...]:
        return (self.name, self.classes, self.folds, self.episodes, self.eval_size, self.title)

    def describe(self) -> str:
        """The whole card, for `bench datasets NAME`."""
        lines = [f"{self.name}: {self.title}", f"  citation:   {self.citation}", f"  classes:    {self.classes}",
                 f"  folds:      {self.folds}", f"  episodes:   {self.episodes}", f"  evaluation: {self.eval_size}",
                 f"  size:       {self.size}", f"  licence:    {self.licence}"]
        if self.train_on:
            lines.append(f"  trained on: {self.train_on}")
        if self.fold_conventions:
            lines.append(f"  --fold-convention: {' | '.join(self.fold_conventions)} (default {self.fold_conventions[0]})")
        if len(self.query_protocols) > 1:
            lines.append(f"  --queries: {' | '.join(self.query_protocols)} (default {self.query_protocols[0]})")
        lines.append("  layout under --data-root:")
        lines += [f"    {entry}" for entry in self.layout]
        lines.append("  where to get it:")
        lines += [f"    {part}: {where}" for part, where in self.downloads]
        if self.prepare:
            lines.append(f"  build the layout: {self.prepare}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def check_fold_convention(self, value) -> None:
        """Refuse a fold convention this dataset does not have (None: its default)."""
        if value is None or value in self.fold_conventions:
            return
        if not self.fold_conventions:
            raise BenchError(f"--fold-convention applies to datasets with several fold conventions (coco20i), "
                             f"not to {self.name}")
        raise BenchError(f"--fold-convention {value} is not one of {self.name}'s: {', '.join(self.fold_conventions)}")

    def missing(self, problem: str) -> BenchError:
        """A BenchError for a missing or incomplete root: the problem, the layout, where to get each part."""
        lines = [problem, f"expected layout under --data-root ({self.name}):"]
        lines += [f"  {entry}" for entry in self.layout]
        lines += [f"get {part}: {where}" for part, where in self.downloads]
        if self.prepare:
            lines.append(f"build it: {self.prepare}")
        return BenchError("\n".join(lines))


def register_dataset(card: DatasetCard) -> Callable[[Callable], Callable]:
    """Decorator on a builder `(data_root=None, lists=None, progress=False, **options) -> FSSDataset`."""

    def decorate(builder: Callable) -> Callable:
        DATASETS.register(card.name)(builder)
        CARDS[card.name] = card
        return builder

    return decorate


def register_family(resolver: Callable[[str], bool]) -> Callable[[str], bool]:
    """Decorator on `resolver(name) -> bool` that registers a dataset of a parametrised family (such as
    `synthetic-context0.25`) when its name is first looked up, and returns False for other names."""
    FAMILIES.append(resolver)
    return resolver


def resolve(name: str):
    """The builder registered under `name`, registering a family's member first where one claims it."""
    if name not in CARDS:
        any(family(name) for family in FAMILIES)
    return DATASETS.get(name)  # an unknown name: the registry's error listing the known ones


def card_of(name: str) -> DatasetCard:
    resolve(name)
    return CARDS[name]
