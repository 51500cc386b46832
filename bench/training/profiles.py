"""Training profiles: named, flat recipes (optimiser, schedule, sizes), refined per method.

A method declares its own entry per profile in its card (`@register_method(name, profiles={"synthetic":
{"recipe": {...}, "options": {...}}})`): recipe fields override the profile's (lr, optimizer,
schedule, epochs...), options are passed to the method. Adding a method touches only its file.

* `paper-pascal`: the SimPropNet paper's recipe on PASCAL-5i (Section 3.6): SGD, lr 2.5e-3,
  momentum 0.9, weight decay 5e-4 (CANet's values, the paper gives none), batch 8, 180 epochs of one
  pass over the split's training pairs, 321 x 321 inputs, ResNet-50 backbone, 256-wide head.
* `paper-coco`: the same recipe on COCO-20i with PFENet's COCO schedule length (50 epochs of one pass
  over the fold's training pairs); the paper has no COCO experiment. The tiny COCO fixture of the
  tests uses `tiny`.
* `synthetic`: the synthetic benchmark on a 2-core CPU in minutes per split: the pretrained synthnet
  backbone, 112 x 112 inputs (14 x 14 features), a 128-wide head with ASPP rates 2/4/6 (the paper's
  6/12/18 on 41 x 41 features, scaled to the smaller map), fewer and shorter epochs, a higher lr.
* `synthetic-quick`: the synthetic benchmark's default (the README's main job in 10 minutes): `synthetic` with
  5 epochs of batch 4 (the same 1024 episodes per epoch: half its episodes in as many updates), the best on
  held-out images of split 1's training classes among the shorter recipes that fit (`python -m
  bench.benchmarks.recipe`, docs/development.md); methods use their `synthetic` entries. The committed
  synthetic reproductions keep `synthetic` (their cards' `profiles`).
* `tiny`: a seconds-long configuration for tests.
* `ci`: the CI regression check on `synthetic-tiny` (64 x 64 inputs, a smaller pretrained synthnet):
  small enough for minutes, long enough that every learned method beats `all-foreground` so that a
  regression shows (methods use their `synthetic` options). 16 epochs because CANet's held-out
  validation was still 0 after 8.

Nothing in a profile was tuned on test classes: choices were made on held-out episodes of the
training classes only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Dict, Optional

from bench.core.errors import BenchError
from bench.data.catalog import card_of
from methods import METHODS
from methods.registry import RegistryError


@dataclass(frozen=True)
class TrainProfile:
    name: str
    epochs: int
    episodes_per_epoch: Optional[int]  # None: one pass over the split's training pairs
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    input_size: int
    backbone: str  # "resnet50", "vgg16" or "synthnet"
    pretrain: Optional[str]  # synthnet pretraining spec: "default" or "tiny"
    val_episodes: int
    optimizer: str = "sgd"  # sgd | adam | rmsprop
    schedule: str = "constant"  # constant | poly (lr * (1 - step / steps) ** 0.9)
    #: a method with no entry for this profile uses its entry for this one (e.g. "ci" -> "tiny")
    fallback: Optional[str] = None
    #: set by `for_method`: the options the method is built with under this profile
    method_options: Dict = field(default_factory=dict)

    def for_method(self, method: str) -> "TrainProfile":
        """This profile as `method` trains with it, the method's own entry for it applied."""
        entries = METHODS.card(method).profiles
        entry = entries.get(self.name, entries.get(self.fallback, {}) if self.fallback else {})
        return replace(self, **entry.get("recipe", {}), method_options=dict(entry.get("options", {})))

    def options_for(self, method: str) -> Dict:
        return dict(self.for_method(method).method_options)

    def to_dict(self) -> Dict:
        return asdict(self)


_SYNTHETIC = TrainProfile("synthetic", epochs=10, episodes_per_epoch=1024, batch_size=8, lr=1e-2, momentum=0.9,
                          weight_decay=5e-4, input_size=112, backbone="synthnet", pretrain="default", val_episodes=300)

PROFILES: Dict[str, TrainProfile] = {
    p.name: p
    for p in (
        TrainProfile("paper-pascal", epochs=180, episodes_per_epoch=None, batch_size=8, lr=2.5e-3, momentum=0.9,
                     weight_decay=5e-4, input_size=321, backbone="resnet50", pretrain=None, val_episodes=1000),
        TrainProfile("paper-coco", epochs=50, episodes_per_epoch=None, batch_size=8, lr=2.5e-3, momentum=0.9,
                     weight_decay=5e-4, input_size=321, backbone="resnet50", pretrain=None, val_episodes=1000),
        _SYNTHETIC,
        replace(_SYNTHETIC, name="synthetic-quick", epochs=5, batch_size=4, fallback="synthetic"),
        TrainProfile("tiny", epochs=2, episodes_per_epoch=16, batch_size=4, lr=1e-2, momentum=0.9,
                     weight_decay=5e-4, input_size=48, backbone="synthnet", pretrain="tiny", val_episodes=12),
        TrainProfile("ci", epochs=16, episodes_per_epoch=256, batch_size=8, lr=1e-2, momentum=0.9,
                     weight_decay=5e-4, input_size=64, backbone="synthnet", pretrain="ci", val_episodes=40,
                     fallback="synthetic"),
    )
}

def default_profile(dataset: str) -> str:
    """The profile the dataset's card declares (`DatasetCard.profile`); a dataset that declares none (a
    plugin's) is refused, naming --profile, rather than given another dataset's recipe."""
    try:
        card = card_of(dataset)
    except RegistryError as exc:  # an unknown dataset: the registry's message, as `open_dataset` gives it
        raise BenchError(str(exc)) from None
    if not card.profile:
        raise BenchError(f"dataset {dataset} declares no default training profile (its card's `profile`); choose "
                         f"one with --profile: {', '.join(sorted(PROFILES))}")
    return card.profile


def get_profile(name: Optional[str], dataset: str) -> TrainProfile:
    """The named profile, or the dataset's default one (`default_profile`)."""
    name = name or default_profile(dataset)
    if name not in PROFILES:
        raise BenchError(f"unknown training profile '{name}'; known profiles: {', '.join(sorted(PROFILES))}")
    return PROFILES[name]
