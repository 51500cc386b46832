"""`bench train`: train a method on one split, select the checkpoint on validation episodes, resume.

Training episodes are data: for every epoch a list of (query, class, supports, flips, grayscale flag)
is drawn from (seed, split, epoch) alone, and the torch RNG (dropout) is reseeded per epoch, so a
restarted run continues exactly where it stopped. Checkpoint selection uses 1-shot episodes on
held-out images of the training classes by default (every 10th image by a hash of its id, never
trained on); `select_on="test"` validates on the split's test classes, the paper's practice, and is
recorded as such.

Under torchrun each process takes its slice of every global batch and DistributedDataParallel
averages the gradients (`bench/distributed.py`); rank 0 alone validates and writes files.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from analyses.metrics import evaluate_rows
from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_json, atomic_write_text, sha256_file
from bench.core.log import format_seconds, log
from bench.core.progress import progress_bar
from bench.data.base import IGNORE, Pair
from bench.data.catalog import FSSDataset
from bench.data.episodes import (
    EpisodeSpec,
    images_by_class,
    join_supports,
    sample_episodes,
    sample_from_pairs,
    support_ids,
)
from bench.data.images import ImageStore, normalize, resize_mask
from bench.evaluation.features import CodeCache
from bench.evaluation.loop import evaluate_manifest
from bench.training import distributed
from bench.training.checkpoints import (load_tensors, plain, read_checkpoint, save_tensors, verified_sha256,
                                        write_record)
from bench.training.options import SELECT_ON
from bench.training.profiles import TrainProfile
from methods import build_method
from methods.common import OTHER_CLASS, BackboneMethod, TrainingContext, input_channel_average

# 2: the fidelity fixes of issue 14 (ASPP dropout, align_corners in the losses, AMP's labels, the
# dilated first blocks of ResNet-50) change what training computes without changing option names
CHECKPOINT_VERSION = 2


def is_held_out(image_id: str) -> bool:
    """Every 10th training image (by a hash of its id) is kept for checkpoint selection."""
    return int(hashlib.sha1(image_id.encode()).hexdigest(), 16) % 10 == 0


def split_held_out(pairs: List[Pair]) -> Tuple[List[Pair], List[Pair]]:
    train = [p for p in pairs if not is_held_out(p[0])]
    held = [p for p in pairs if is_held_out(p[0])]
    return train, held


def training_episodes(pairs: List[Pair], seed: int, split: int, epoch: int, steps: int, batch_size: int,
                      method: BackboneMethod, first_step: int, total_steps: int) -> pd.DataFrame:
    """The episodes of one epoch, one row per episode, `step` grouping a batch."""
    rng = np.random.default_rng([seed, split, epoch, 17])
    by_class = images_by_class(pairs)
    queries: List[Pair] = []
    while len(queries) < steps * batch_size:
        queries.extend(pairs[i] for i in rng.permutation(len(pairs)))
    rows = []
    for step in range(steps):
        shots = method.training_shots(first_step + step)
        gray_p = method.query_grayscale_probability((first_step + step) / max(total_steps, 1))
        for query, class_id in queries[step * batch_size:(step + 1) * batch_size]:
            candidates = [i for i in by_class[class_id] if i != query]
            picks = rng.choice(len(candidates), size=shots, replace=len(candidates) < shots)
            rows.append((step, class_id, query, join_supports(candidates[i] for i in picks), bool(rng.random() < 0.5),
                         bool(rng.random() < 0.5), bool(rng.random() < gray_p)))
    return pd.DataFrame(rows, columns=["step", "class_id", "query", "supports", "flip_query", "flip_support", "gray"])


def make_optimizer(profile: TrainProfile, params) -> torch.optim.Optimizer:
    if profile.optimizer == "sgd":
        return torch.optim.SGD(params, lr=profile.lr, momentum=profile.momentum, weight_decay=profile.weight_decay)
    if profile.optimizer == "adam":
        return torch.optim.Adam(params, lr=profile.lr, weight_decay=profile.weight_decay)
    if profile.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=profile.lr, momentum=profile.momentum, weight_decay=profile.weight_decay)
    raise BenchError(f"unknown optimizer '{profile.optimizer}' in profile {profile.name}; use sgd, adam or rmsprop")


def set_lr(optimizer: torch.optim.Optimizer, profile: TrainProfile, step: int, total: int) -> None:
    """The profile's schedule as a function of the global step (so resuming needs no scheduler state)."""
    if profile.schedule == "constant":
        lr = profile.lr
    elif profile.schedule == "poly":
        lr = profile.lr * (1 - step / max(total, 1)) ** 0.9
    else:
        raise BenchError(f"unknown schedule '{profile.schedule}' in profile {profile.name}; use constant or poly")
    for group in optimizer.param_groups:
        group["lr"] = lr


def training_batch(store: ImageStore, rows: pd.DataFrame, base_classes: List[int]):
    """Tensors of one training step: query, supports, support masks, query mask (flips applied), and the
    query's label map over the split's training classes (1..n in `base_classes` order, background 0, other
    classes OTHER_CLASS, 255 kept)."""
    size = (store.input_size, store.input_size)
    ignore = store.dataset.ignore_label
    lookup = np.full(max([256, *base_classes]) + 1, OTHER_CLASS, dtype=np.int64)
    lookup[0] = 0
    for index, class_id in enumerate(base_classes, start=1):
        lookup[class_id] = index
    if ignore is not None:
        lookup[ignore] = IGNORE  # the label map keeps void as void

    def view(image_id, class_id, flip):
        image, mask = store.image(image_id), resize_mask(store.mask(image_id, class_id), size)
        return (image.flip(-1), mask.flip(-1)) if flip else (image, mask)

    queries, query_masks, supports, support_masks, labels = [], [], [], [], []
    for row in rows.itertuples(index=False):
        image, mask = view(row.query, row.class_id, row.flip_query)
        queries.append(image)
        query_masks.append(mask)
        label = resize_mask(lookup[store.label(row.query)], size)
        labels.append(label.flip(-1) if row.flip_query else label)
        shots = [view(i, row.class_id, row.flip_support) for i in support_ids(row.supports)]
        supports.append(torch.stack([s[0] for s in shots]))
        support_masks.append(torch.stack([s[1] for s in shots]))
    query = normalize(torch.stack(queries))
    gray = torch.tensor(rows["gray"].tolist())
    if gray.any():
        query[gray] = input_channel_average(query[gray])
    return (query, normalize(torch.stack(supports)), torch.stack(support_masks).long(), torch.stack(query_masks).long(),
            torch.stack(labels).long())


class TrainingStep(nn.Module):
    """A method's training loss as a module's forward, so that DistributedDataParallel syncs its gradients."""

    def __init__(self, method: BackboneMethod):
        super().__init__()
        self.method = method

    def forward(self, query, supports, support_masks, query_mask, context: TrainingContext) -> torch.Tensor:
        query_feats, support_feats = self.method.encode_episode(query, supports)
        return self.method.training_loss(query_feats, support_feats, support_masks, query_mask, context=context)


def optimization_step(step: nn.Module, optimizer: torch.optim.Optimizer, store: ImageStore, rows: pd.DataFrame,
                      train_classes: List[int], device: str, info: distributed.Dist) -> float:
    """One update on the global batch `rows` (this rank's slice of it under torchrun); its mean loss."""
    rows = distributed.shard(rows, info)
    query, supports, support_masks, query_mask, labels = (
        t.to(device) for t in training_batch(store, rows, train_classes))
    context = TrainingContext(class_ids=torch.tensor(rows["class_id"].tolist(), device=device),
                              query_labels=labels, base_classes=train_classes)
    loss = step(query, supports, support_masks, query_mask, context)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return distributed.mean_across(loss.detach(), info)


@dataclass
class TrainRequest:
    method: str
    split: int
    profile: TrainProfile
    method_options: Dict
    dataset_hash: str
    seed: int = 0
    select_on: str = "held-out"
    epochs: Optional[int] = None  # overrides the profile

    def identity(self) -> Dict:
        options = {k: v for k, v in self.method_options.items() if k != "backbone_weights"}
        weights = self.method_options.get("backbone_weights")
        options["backbone_weights_sha256"] = sha256_file(weights) if weights else None
        return {"version": CHECKPOINT_VERSION, "method": self.method, "split": self.split,
                "profile": self.profile.to_dict(), "method_options": options,
                "dataset_hash": self.dataset_hash, "seed": self.seed, "select_on": self.select_on,
                "epochs": self.epochs or self.profile.epochs}

    def folder(self, root: Path, dataset: str) -> Path:
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True, default=str).encode()).hexdigest()[:10]
        return Path(root) / dataset / self.method / f"split{self.split}-{digest}"


def validation_manifest(dataset: FSSDataset, request: TrainRequest, held: List[Pair]) -> pd.DataFrame:
    episodes = request.profile.val_episodes
    if request.select_on == "test":
        return sample_episodes(dataset, EpisodeSpec(request.split, 1, seed=10_000 + request.seed, episodes=episodes))
    spec = EpisodeSpec(request.split, 1, seed=20_000 + request.seed, episodes=episodes)
    by_class = images_by_class(held)
    usable = [p for p in held if len(by_class[p[1]]) >= 2]  # a class needs a query and a support
    return sample_from_pairs(usable, spec, dataset.class_names())


@torch.enable_grad()
def train(dataset: FSSDataset, request: TrainRequest, root: Path, device: str = "cpu", quiet: bool = False,
          after_epoch: Optional[Callable[[int], None]] = None) -> Path:
    """Train (or resume, or reuse) one checkpoint; return the path of its best.pt.

    `after_epoch(n)` is called once epoch n is saved (the Ray executor's fault tests kill a worker there).
    """
    if request.select_on not in SELECT_ON:
        raise BenchError(f"unknown checkpoint selection '{request.select_on}'; choose from {', '.join(SELECT_ON)}")
    info = distributed.current()
    folder = request.folder(root, dataset.name)
    best_path, last_path = folder / "best.pt", folder / "last.pt"
    if verified_sha256(best_path) is not None:  # finished (and unchanged since)
        return best_path
    profile = request.profile
    distributed.check_batch(profile.batch_size, info)
    epochs = request.epochs or profile.epochs
    dataset.check_files(request.split, "train")
    train_pairs, held = split_held_out(dataset.pairs(request.split, "train"))
    store = ImageStore(dataset, profile.input_size)
    val_manifest = validation_manifest(dataset, request, held)
    torch.manual_seed(request.seed)
    method = build_method(request.method, **request.method_options).to(device)
    params = [p for p in method.parameters() if p.requires_grad]
    optimizer = make_optimizer(profile, params)
    steps = (profile.episodes_per_epoch or len(train_pairs)) // profile.batch_size
    train_classes = sorted({c for _, c in train_pairs})
    state = {"epoch": 0, "best_miou": -1.0, "best_epoch": 0, "history": [], "seconds": 0.0, "step_losses": []}
    if last_path.is_file():
        last = load_tensors(last_path)
        if last.get("identity") == plain(request.identity()):
            method.load_state_dict(last["model"], strict=False)
            optimizer.load_state_dict(last["optimizer"])
            state = {"step_losses": [], **last["state"]}
    step_module = distributed.wrap(TrainingStep(method), info, device)
    if info.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "identity.json", request.identity())
    name = f"training {request.method} split {request.split}"
    if info.is_main:
        resumed = f", resuming after epoch {state['epoch']}" if state["epoch"] else ""
        log(f"{name}: {epochs} epochs of {steps} steps (batch {profile.batch_size}, profile {profile.name}), "
            f"checkpoints in {folder}{resumed}")
    bar = progress_bar(total=epochs * steps, initial=state["epoch"] * steps, quiet=quiet or not info.is_main,
                       unit="step", desc=name)
    session_seconds, first_epoch = 0.0, state["epoch"]
    for epoch in range(state["epoch"], epochs):
        start = time.perf_counter()
        # ranks draw different dropout masks for their slices (rank 0 draws the one-process ones)
        torch.manual_seed(request.seed * 1_000_003 + request.split * 1_009 + epoch + info.rank * 7_919)
        manifest = training_episodes(train_pairs, request.seed, request.split, epoch, steps, profile.batch_size,
                                     method, epoch * steps, epochs * steps)
        method.train()
        losses = []
        for step, rows in manifest.groupby("step", sort=True):
            set_lr(optimizer, profile, epoch * steps + step, epochs * steps)
            losses.append(optimization_step(step_module, optimizer, store, rows, train_classes, device, info))
            state["step_losses"].append(losses[-1])
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        state["epoch"] = epoch + 1
        if not info.is_main:  # the other ranks go on to the next epoch's first all-reduce
            continue
        val_rows = evaluate_manifest(method, store, val_manifest, batch_size=16, device=device, quiet=True,
                                     features=CodeCache(store, device), desc=f"{name}: validation")
        val = evaluate_rows(val_rows)["miou"]
        seconds = time.perf_counter() - start
        state["seconds"] += seconds
        state["history"].append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_miou": val})
        if val > state["best_miou"]:
            state["best_miou"], state["best_epoch"] = val, epoch + 1
            save_tensors(best_path, {"model": method.trainable_state(),
                                     "meta": _meta(request, method, state, complete=False)})
        save_tensors(last_path, {"model": method.trainable_state(), "optimizer": optimizer.state_dict(),
                                 "state": plain(state), "identity": plain(request.identity())})
        session_seconds += seconds
        eta = session_seconds / (epoch + 1 - first_epoch) * (epochs - epoch - 1)
        log(f"{name}: epoch {epoch + 1}/{epochs}, loss {np.mean(losses):.4f}, {request.select_on} validation mIoU "
            f"{100 * val:.2f} (best {100 * state['best_miou']:.2f} at epoch {state['best_epoch']}), "
            f"{format_seconds(seconds)}, ETA {format_seconds(eta)}")
        if after_epoch is not None:
            after_epoch(epoch + 1)
    bar.close()
    if info.is_main:
        best = load_tensors(best_path)
        best["meta"] = _meta(request, method, state, complete=True)
        atomic_write_text(folder / "train_log.csv", pd.DataFrame(state["history"]).to_csv(index=False))
        atomic_write_text(folder / "train_steps.csv", pd.DataFrame(
            {"step": range(len(state["step_losses"])), "loss": state["step_losses"]}).to_csv(index=False))
        write_record(best_path, save_tensors(best_path, best), best["meta"])  # the record last: now complete
        log(f"{name}: done in {format_seconds(state['seconds'])}, best epoch {state['best_epoch']} (validation mIoU "
            f"{100 * state['best_miou']:.2f}), {best_path}")
    distributed.barrier(info)
    return best_path


def _meta(request: TrainRequest, method: BackboneMethod, state: Dict, complete: bool) -> Dict:
    return plain({**request.identity(), "backbone": method.backbone.identity, "options": method.options(),
                  "best_epoch": state["best_epoch"], "val_miou": state["best_miou"], "history": state["history"],
                  "train_seconds": round(state["seconds"], 1), "complete": complete})


def _describe(identity: Dict) -> str:
    digest = identity.get("sha256")
    return f"{identity.get('weights', '?')}" + (f" (sha256 {digest[:12]})" if digest else "")


def load_trained(path: Path, backbone_options: Dict, device: str = "cpu") -> Tuple[BackboneMethod, Dict]:
    """Build the method a finished checkpoint records (on the given backbone) and load its weights.

    The file must have the sha256 recorded when training finished; it is read without unpickling code.
    """
    sha256 = verified_sha256(path)
    if sha256 is None:
        raise BenchError(f"checkpoint {path} is not a finished training (no {Path(path).with_suffix('.json').name} "
                         "beside it); run `bench train` to finish it")
    checkpoint = read_checkpoint(path)
    meta = checkpoint["meta"]
    options = {k: v for k, v in meta["method_options"].items() if k != "backbone_weights_sha256"}
    method = build_method(meta["method"], **{**options, **backbone_options})
    trained_on, given = meta.get("backbone") or {}, method.backbone.identity
    if (trained_on.get("weights"), trained_on.get("sha256")) != (given.get("weights"), given.get("sha256")):
        raise BenchError(f"checkpoint {path} was trained on the backbone weights {_describe(trained_on)} but was "
                         f"given {_describe(given)}: pass the same weights (--backbone / --backbone-weights)")
    missing, unexpected = method.load_state_dict(checkpoint["model"], strict=False)
    missing = [k for k in missing if not k.startswith("backbone.")]
    if missing or unexpected:
        raise BenchError(f"checkpoint {path} does not fit {meta['method']} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return method.to(device).eval(), {**meta, "sha256": sha256, "path": str(path)}
