"""Test-only files of the training-free methods' published weights (GF-SAM's DINOv2 and SAM files), laid
out as the authors': `models/dinov2_vitl14_pretrain.pth` (DINOv2's own names, `mask_token` included) and
`models/sam_vit_h_4b8939.pth` (`Sam`'s state dict), written from a seeded harness model.

The real files are ViT-L/14 and ViT-H (GBs), so the tests use the registered entries with a reduced
architecture (`reduced`: the method's profiles' small DINOv2 and SAM): the same tags, file
names, key maps and reported numbers; only the builder options and input size differ.
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Dict

import torch

from bench.training.published import build_options
from methods import build_method
from methods.weights import WEIGHTS, PublishedWeights

REDUCED_SIZE = 256


def reduced(entry: PublishedWeights) -> PublishedWeights:
    """The entry with its method's small profile architecture (`SMALL` of its module; its files, keys and numbers
    unchanged): GF-SAM's with SAM's input at REDUCED_SIZE, Matcher's at its own input size."""
    small = importlib.import_module(f"methods.{entry.method.replace('-', '_')}").SMALL
    size = small.get("input_size", REDUCED_SIZE)
    return dataclasses.replace(entry, options={**entry.options, **small, "input_size": size}, input_size=size)


def use_reduced(monkeypatch, method: str = "gf-sam") -> None:
    """Every registered entry of `method` replaced by its reduced one, undone with `monkeypatch`."""
    monkeypatch.setattr(WEIGHTS, "_entries", {name: reduced(e) if e.method == method else e
                                              for name, e in WEIGHTS._entries.items()})


def seeded_foundation_model(entry: PublishedWeights, seed: int):
    """The entry's architecture, every float weight moved by a seeded 0.02 N(0, 1) (fresh LayerNorms are 1 / 0
    and would hide a mapping error)."""
    torch.manual_seed(seed)
    model = build_method(entry.method, **build_options(entry))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.02 * torch.randn(tensor.shape, generator=generator))
    return model.eval()


def authors_states(entry: PublishedWeights, model) -> Dict[str, Dict[str, torch.Tensor]]:
    """{part: the state dict of its released file}: the model's keys under the part's prefix, in the authors'
    names (DINOv2's file also holds its `mask_token`, which the harness drops)."""
    state = model.state_dict()
    files = {}
    for part in entry.parts:
        prefix = part.keys.rules[0][1]
        files[part.part] = {k[len(prefix):]: v.clone() for k, v in state.items() if k.startswith(prefix)}
    embed = files["dinov2"]["cls_token"]
    files["dinov2"]["mask_token"] = torch.zeros(embed.shape[-1])[None]
    return files


def write_foundation_files(folder: Path, entry: PublishedWeights, seed: int = 0, edit=None):
    """The seeded model's files under `folder` at the entry's file names; `edit(part, state)` changes one before
    saving. Returns the seeded model."""
    model = seeded_foundation_model(entry, seed)
    for part in entry.parts:
        state = authors_states(entry, model)[part.part]
        if edit is not None:
            edit(part.part, state)
        path = folder / part.file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
    return model
