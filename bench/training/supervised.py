"""A supervised segmentation reference for the error-overlap analysis (the paper's Table 1).

SimPropNet compares FSS errors with those of DeepLab v3+, a supervised model trained on all classes.
* PASCAL-5i: torchvision's DeepLabV3-ResNet50 with its VOC-label weights, named by enum
  (`DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1`), from the torch hub cache or a local file.
* synthetic benchmarks: the harness trains its own: the pretrained synthnet backbone, fine-tuned (as
  DeepLab fine-tunes its ImageNet backbone), with an ASPP head over background + all 20 classes, on
  every image of the train pool; cached under the checkpoint root.
Both are used for analysis only: a supervised model sees the test classes by design.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_json
from bench.core.progress import progress_bar
from bench.data.base import IGNORE
from bench.data.catalog import FSSDataset
from bench.data.images import ImageStore, normalize, resize_mask
from bench.training.checkpoints import load_tensors, save_tensors
from methods.backbones import SynthNetBackbone, load_state_file, torchvision_weights
from methods.common import ASPP

SUPERVISED_VERSION = 1


class SynthSupervised(nn.Module):
    """synthnet (trainable) + 3x3 conv + ASPP over `classes` outputs."""

    def __init__(self, classes: int, weights_path: str | None = None, width: int = 128):
        super().__init__()
        self.backbone = SynthNetBackbone(weights_path=weights_path, frozen=False)
        self.reduce = nn.Sequential(nn.Conv2d(192, width, 3, padding=2, dilation=2), nn.ReLU())
        self.head = ASPP(width, (2, 4, 6), dropout=0.1)
        self.head.classifier = nn.Conv2d(width, classes, 1)

    def forward(self, images):
        feats = self.backbone(images)
        return self.head(self.reduce(torch.cat([feats["layer2"], feats["layer3"]], 1)))


@torch.enable_grad()
def train_synthetic_supervised(dataset: FSSDataset, backbone_weights: str, root: Path, input_size: int,
                               epochs: int = 8, quiet: bool = False) -> nn.Module:
    """Train (or load the cached) supervised model on every train-pool image of a synthetic dataset."""
    ids = sorted({i for split in range(1, 5) for i, _ in dataset.pairs(split, "train")})
    classes = len(dataset.class_names()) + 1
    key = hashlib.sha256(json.dumps({"v": SUPERVISED_VERSION, "data": dataset.fingerprint([1], ("train",)),
                                     "backbone": backbone_weights and Path(backbone_weights).name,
                                     "size": input_size, "epochs": epochs}).encode()).hexdigest()[:10]
    path = Path(root) / dataset.name / "supervised" / f"synthnet-aspp-{key}.pt"
    model = SynthSupervised(classes, backbone_weights)
    if path.is_file():
        model.load_state_dict(load_tensors(path))
        return model.eval()
    torch.manual_seed(0)
    store = ImageStore(dataset, input_size)
    size = (input_size, input_size)
    images = torch.stack([store.image(i) for i in ids])
    labels = torch.stack([resize_mask(store.label(i).astype(np.int64), size) for i in ids])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)
    steps_per_epoch, batch = len(ids) // 16, 16
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    bar = progress_bar(total=epochs * steps_per_epoch, desc="training the supervised reference", quiet=quiet)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(ids), generator=generator)
        for step in range(steps_per_epoch):
            for group in optimizer.param_groups:
                group["lr"] = 0.02 * (1 - (epoch * steps_per_epoch + step) / (epochs * steps_per_epoch)) ** 0.9
            index = order[step * batch:(step + 1) * batch]
            logits = F.interpolate(model(normalize(images[index])), size=size, mode="bilinear", align_corners=False)
            loss = F.cross_entropy(logits, labels[index], ignore_index=IGNORE)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            bar.update(1)
    bar.close()
    save_tensors(path, model.state_dict())
    atomic_write_json(path.with_suffix(".json"), {"images": len(ids), "epochs": epochs, "final_loss": loss.item(),
                                                  "seconds": round(time.perf_counter() - start, 1)})
    return model.eval()


def deeplab_pascal(weights_path: str | None = None) -> nn.Module:
    """torchvision DeepLabV3-ResNet50 with VOC-label weights (enum or local file); returns logits over 21 classes."""
    from torchvision.models.segmentation import DeepLabV3_ResNet50_Weights, deeplabv3_resnet50

    model = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    if weights_path:
        state = load_state_file(Path(weights_path))
    else:
        state, _ = torchvision_weights(DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise BenchError(f"weights do not fit DeepLabV3-ResNet50 (missing {missing[:3]}, unexpected {unexpected[:3]})")

    class Wrapper(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, images):
            return self.net(images)["out"]

    return Wrapper(model).eval()
