"""Pretraining of `synthnet`, the synthetic benchmark's stand-in for an ImageNet backbone.

SimPropNet and CANet use a ResNet-50 pretrained on ImageNet and frozen. For the synthetic benchmark
the harness pretrains a small backbone itself, on images of 40 pretraining classes that the
benchmark never uses (`bench.data.synthetic.classes.PRETRAIN_CLASSES`: no pretraining class has the
texture + palette of any benchmark class; shapes, textures and palettes are shared primitives, as
ImageNet shares edges and textures with PASCAL). The task is dense classification of those 40
classes plus background. The result is deterministic for a given spec on a given machine, cached
under `$FSS_BENCH_CACHE/backbones/`, and then frozen exactly like ResNet-50 in the paper. The default
spec's weights ship with the package (`bench/training/shipped/`): a fresh installation copies them
into the cache instead of pretraining (3 minutes on 2 cores), and every machine starts from the
backbone the committed results were trained on; FSS_BENCH_PRETRAIN=here pretrains on this machine.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_bytes, atomic_write_json, sha256_file
from bench.core.log import format_seconds, log
from bench.core.progress import progress_bar
from bench.data.base import IGNORE
from bench.data.images import normalize
from bench.data.synthetic.classes import PRETRAIN_CLASSES
from bench.data.synthetic.generate import GENERATOR_VERSION, default_cache_dir
from bench.data.synthetic.render import render_image
from bench.training.checkpoints import save_tensors
from methods.backbones import SynthNetBackbone

PRETRAIN_VERSION = 1
PRETRAIN_POOL = 7  # pool id of pretraining images, distinct from the benchmark's train (0) and val (1)


@dataclass(frozen=True)
class PretrainSpec:
    images: int = 2400
    held_out: int = 200
    size: int = 112
    epochs: int = 6
    batch_size: int = 32
    lr: float = 0.05
    seed: int = 0

    def key(self) -> str:
        blob = json.dumps({**asdict(self), "generator": GENERATOR_VERSION, "version": PRETRAIN_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


TINY_PRETRAIN = PretrainSpec(images=96, held_out=32, size=64, epochs=1, batch_size=16)
CI_PRETRAIN = PretrainSpec(images=1600, held_out=100, size=64, epochs=6, batch_size=32)
PRETRAIN_SPECS = {"default": PretrainSpec(), "tiny": TINY_PRETRAIN, "ci": CI_PRETRAIN}


def _render(task) -> Tuple[np.ndarray, np.ndarray]:
    seed, index, size = task
    anchor = 1 + index % len(PRETRAIN_CLASSES)
    rgb, label, _ = render_image(seed, PRETRAIN_POOL, index, anchor, size, size, table=PRETRAIN_CLASSES)
    return rgb, label


def pretraining_images(spec: PretrainSpec) -> Tuple[torch.Tensor, torch.Tensor]:
    """uint8 images [N, 3, S, S] and long labels [N, S, S] of the pretraining classes."""
    tasks = [(spec.seed, i, spec.size) for i in range(spec.images)]
    if spec.images >= 200:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            rendered = pool.map(_render, tasks, chunksize=50)
    else:
        rendered = [_render(t) for t in tasks]
    images = torch.from_numpy(np.stack([r[0] for r in rendered])).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(np.stack([r[1] for r in rendered]).astype(np.int64))
    return images, labels


class _PretrainNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = SynthNetBackbone(frozen=False)
        channels = self.backbone.channels["layer2"] + self.backbone.channels["layer3"]
        self.classifier = nn.Conv2d(channels, len(PRETRAIN_CLASSES) + 1, 1)

    def forward(self, images):
        feats = self.backbone(images)
        logits = self.classifier(torch.cat([feats["layer2"], feats["layer3"]], 1))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


def _pixel_miou(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    classes = len(PRETRAIN_CLASSES) + 1
    inter, union = torch.zeros(classes), torch.zeros(classes)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(images), 64):
            pred = model(normalize(images[start:start + 64])).argmax(1)
            gt = labels[start:start + 64]
            valid = gt != IGNORE
            for c in range(classes):
                p, g = (pred == c) & valid, (gt == c) & valid
                inter[c] += (p & g).sum()
                union[c] += (p | g).sum()
    present = union > 0
    return float((inter[present] / union[present]).mean())


@torch.enable_grad()
def pretrain(spec: PretrainSpec, quiet: bool = False) -> Tuple[dict, dict]:
    """Train synthnet on the pretraining classes; return (backbone state dict, report)."""
    start = time.perf_counter()
    log(f"pretraining the synthnet backbone (once, cached): rendering {spec.images} images of "
        f"{len(PRETRAIN_CLASSES)} pretraining classes")
    torch.manual_seed(spec.seed)
    images, labels = pretraining_images(spec)
    train_x, train_y = images[spec.held_out:], labels[spec.held_out:]
    model = _PretrainNet()
    steps_per_epoch = max(1, len(train_x) // spec.batch_size)
    total = steps_per_epoch * spec.epochs
    optimizer = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=0.9, weight_decay=1e-4, nesterov=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (1 - step / total) ** 0.9)
    generator = torch.Generator().manual_seed(spec.seed)
    desc = "pretraining synthnet backbone"
    log(f"{desc}: {spec.epochs} epochs of {steps_per_epoch} steps (batch {spec.batch_size})")
    bar = progress_bar(total=total, desc=desc, quiet=quiet, unit="step")
    train_start = time.perf_counter()
    for epoch in range(spec.epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        for step in range(steps_per_epoch):
            index = order[step * spec.batch_size:(step + 1) * spec.batch_size]
            x, y = train_x[index], train_y[index]
            flip = torch.rand(len(index), generator=generator) < 0.5
            x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
            loss = F.cross_entropy(model(normalize(x)), y, ignore_index=IGNORE)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        elapsed = time.perf_counter() - train_start
        log(f"{desc}: epoch {epoch + 1}/{spec.epochs}, loss {loss.item():.4f}, {format_seconds(elapsed)} elapsed, "
            f"ETA {format_seconds(elapsed / (epoch + 1) * (spec.epochs - epoch - 1))}")
    bar.close()
    report = {"spec": asdict(spec), "key": spec.key(), "final_loss": float(loss.item()),
              "held_out_pixel_miou": _pixel_miou(model, images[:spec.held_out], labels[:spec.held_out]),
              "seconds": round(time.perf_counter() - start, 1), "classes": [c.name for c in PRETRAIN_CLASSES]}
    log(f"{desc}: done in {format_seconds(report['seconds'])}, held-out pixel mIoU "
        f"{100 * report['held_out_pixel_miou']:.2f}")
    return model.backbone.state_dict(), report


#: copies of pretrained synthnet weights shipped with the package (`synthnet-<spec key>.pt` and its stamp), so a
#: fresh installation skips the 3 minutes of pretraining and every machine starts from the same backbone
SHIPPED_DIR = Path(__file__).with_name("shipped")
#: set to "here" to pretrain on this machine instead of copying the shipped weights
PRETRAIN_VARIABLE = "FSS_BENCH_PRETRAIN"


def shipped_synthnet(spec: PretrainSpec) -> Optional[Tuple[Path, dict]]:
    """The shipped weights of `spec` and their stamp, None when none are shipped for it; a BenchError when the
    file does not match its recorded sha256 (a damaged installation)."""
    weights = SHIPPED_DIR / f"synthnet-{spec.key()}.pt"
    stamp = weights.with_suffix(".json")
    if not (weights.is_file() and stamp.is_file()):
        return None
    report = json.loads(stamp.read_text())
    if report.get("sha256") != sha256_file(weights):
        raise BenchError(f"the shipped pretrained backbone {weights} does not match its recorded sha256: reinstall "
                         f"fss-bench, or set {PRETRAIN_VARIABLE}=here to pretrain it on this machine")
    return weights, report


def _pretrain_here() -> bool:
    value = os.environ.get(PRETRAIN_VARIABLE, "")
    if value not in ("", "here", "shipped"):
        raise BenchError(f"{PRETRAIN_VARIABLE} must be 'here' (pretrain on this machine) or 'shipped' (the default), "
                         f"got '{value}'")
    return value == "here"


def ensure_synthnet(spec: PretrainSpec = PretrainSpec(), cache_dir: Path | None = None, quiet: bool = False) -> Path:
    """Path of the pretrained synthnet weights in the cache: the cached file if intact, else the shipped copy for
    `spec` (unless FSS_BENCH_PRETRAIN=here), else pretrained here once."""
    folder = Path(cache_dir or default_cache_dir()) / "backbones"
    weights = folder / f"synthnet-{spec.key()}.pt"
    stamp = weights.with_suffix(".json")
    if weights.is_file() and stamp.is_file():
        try:
            recorded = json.loads(stamp.read_text()).get("sha256")
        except (ValueError, AttributeError):  # a damaged stamp: pretrain again
            recorded = None
        if recorded == sha256_file(weights):
            return weights
    shipped = None if _pretrain_here() else shipped_synthnet(spec)
    if shipped is not None:
        source, report = shipped
        atomic_write_bytes(weights, source.read_bytes())
        atomic_write_json(stamp, {**report, "source": "shipped"})
        log(f"pretrained synthnet {spec.key()}: the copy shipped with fss-bench (sha256 {report['sha256'][:12]}, "
            f"{report['pretrained_at']['date']}); {PRETRAIN_VARIABLE}=here pretrains it on this machine instead")
        return weights
    state, report = pretrain(spec, quiet=quiet)
    atomic_write_json(stamp, {**report, "sha256": save_tensors(weights, state)})
    if not weights.is_file():
        raise BenchError(f"could not write pretrained backbone to {weights}")
    return weights
