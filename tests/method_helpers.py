"""Small builders shared by the per-method tests: a method with its `tiny` options, a random episode."""
from __future__ import annotations

import torch

from methods import build_method


def tiny_options(name: str) -> dict:
    """The method's own options for the `tiny` profile, on a random-init synthnet backbone."""
    from bench.training.profiles import PROFILES

    return {"backbone": "synthnet", **PROFILES["tiny"].options_for(name)}


def tiny_method(name: str, seed: int = 0, **options):
    """The method built with its tiny options (overridden by `options`), initialised from `seed`."""
    torch.manual_seed(seed)
    return build_method(name, **{**tiny_options(name), **options})


def square_episode(shots: int = 1, size: int = 48, ignore_top_row: bool = False):
    """Two random queries and their supports; every support mask is the square [8:32, 8:32]."""
    gen = torch.Generator().manual_seed(0)
    query = torch.randn(2, 3, size, size, generator=gen)
    supports = torch.randn(2, shots, 3, size, size, generator=gen)
    masks = torch.zeros(2, shots, size, size, dtype=torch.long)
    masks[..., 8:32, 8:32] = 1
    if ignore_top_row:
        masks[..., 0, :] = 255
    return query, supports, masks


def toy_training_losses(name: str, steps: int = 15):
    """The training losses of `name`'s tiny model over `steps` Adam steps on one toy 1-shot batch."""
    method = tiny_method(name).train()
    query, supports, masks = square_episode(size=48)
    query_mask = masks[:, 0].clone()
    optimizer = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=1e-3)
    feats = method.encode_episode(query, supports)
    losses = []
    for _ in range(steps):
        loss = method.training_loss(*feats, masks, query_mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
