"""Test-only published weights: entries for PANet on the small synthnet backbone (and a native-resolution
variant of it), and checkpoints written laid out like an authors' file (their key names, DataParallel's
`module.` prefix, under "state_dict"). Tests patch them into the registries (no global state leaks).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

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
    torch.manual_seed(seed)
    model = build_method(published.method, **published.options)
    seeded_state(model, seed)
    return model.eval()


def write_authors_file(path: Path, published: PublishedWeights, seed: int, edit=None) -> Path:
    """The harness model of `seed` saved as the authors would: their names, `module.`, under state_dict."""
    state = published.keys.to_authors(seeded_model(published, seed).state_dict())
    state["aux.weight"] = torch.ones(2)  # a key the harness has no module for (the entry ignores it)
    if edit is not None:
        edit(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 7, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
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
