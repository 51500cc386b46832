"""Test-only published weights: entries for PANet on the small synthnet backbone (and a native-resolution
variant of it), and checkpoints written laid out like an authors' file (their key names, DataParallel's
`module.` prefix, under "state_dict"). Tests patch them into the registries (no global state leaks).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from bench.training.published import build_options
from methods import METHODS, build_method
from methods.panet import PANet
from methods.registry import MethodCard
from methods.weights import WEIGHTS, KeyMap, PublishedWeights
from tests.golden.authors import seeded_state

OPTIONS = {"backbone": "synthnet", "width": 8}
KEYS = KeyMap(rules=(("encoder.", "backbone."), ("proj.", "projection.")), ignore_authors=(r"aux\..*",))
URL = "https://example.org/panet-weights"
SIZE = 32


class NativePANet(PANet):
    """PANet that resizes its input itself (as the authors' architectures): fed at each query's size."""

    native_resolution = True

    def __init__(self, input_size: int = 40, **options):
        super().__init__(**options)
        self.input_size = input_size

    def forward(self, query, supports, support_masks):
        size = (self.input_size, self.input_size)
        batch, shots = supports.shape[:2]
        query = F.interpolate(query, size=size, mode="bilinear", align_corners=True)
        supports = F.interpolate(supports.flatten(0, 1), size=size, mode="bilinear",
                                 align_corners=True).unflatten(0, (batch, shots))
        masks = F.interpolate(support_masks.float().flatten(0, 1)[:, None], size=size,
                              mode="nearest")[:, 0].unflatten(0, (batch, shots)).long()
        return super().forward(query, supports, masks)


def entry(tag: str, fold: int, method: str = "panet", **changes) -> PublishedWeights:
    values = dict(method=method, tag=tag, file_name=f"sub/{tag}.pth", url=URL, dataset="pascal5i", fold=fold,
                  options=OPTIONS, keys=KEYS, input_size=SIZE, reported={1: {"miou": 50.0, "fbiou": None}},
                  source="test")
    values.update(changes)
    return PublishedWeights(**values)


ENTRIES = [entry(f"fold{f}", f) for f in range(4)]


def register(monkeypatch, *entries: PublishedWeights) -> None:
    monkeypatch.setattr(WEIGHTS, "_entries", {**WEIGHTS._entries, **{e.name: e for e in entries}})


def seeded_model(published: PublishedWeights, seed: int):
    """The entry's architecture from a fixed seed, BN statistics perturbed (built as the loader builds it)."""
    torch.manual_seed(seed)
    model = build_method(published.method, **build_options(published))
    seeded_state(model, seed)
    return model.eval()


def write_authors_file(path: Path, published: PublishedWeights, seed: int, edit=None,
                       ignored: Optional[str] = "aux.weight") -> Path:
    """The harness model of `seed` saved as the authors would: their names, DataParallel's `module.`, under
    the entry's `state_key` (beside an epoch, as PFENet's files) or at the top level (as HSNet's);
    `ignored`: a key the harness has no module for (the test entries drop it)."""
    state = published.keys.to_authors(seeded_model(published, seed).state_dict())
    if ignored:
        state[ignored] = torch.ones(2)
    if edit is not None:
        edit(state)
    state = {f"module.{k}": v for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 7, published.state_key: state} if published.state_key else state, path)
    return path


def weights_dir(root: Path, entries=ENTRIES, seed: int = 3) -> Path:
    for i, e in enumerate(entries):
        write_authors_file(root / e.file_name, e, seed + i)
    return root


def use_entries(monkeypatch, *extra: PublishedWeights) -> None:
    """Register ENTRIES (and `extra`) and the native test method `panet-native`, undone with `monkeypatch`."""
    monkeypatch.setattr(WEIGHTS, "_entries", {e.name: e for e in (*ENTRIES, *extra)})
    monkeypatch.setitem(METHODS._entries, "panet-native",
                        MethodCard("panet-native", NativePANet, "PANet resizing its input itself", trainable=True))
