"""GF-SAM (Zhang, Gao, Jiao, Li, Zhao, Wei: "Bridge the Points: Graph-based Few-shot Segment Anything
Semantically", NeurIPS 2024), training-free: DINOv2 patch features and SAM point prompts; written from the
paper, facts checked against the released code (ANDYZAQ/GF-SAM @f227d1d8: matcher/GFSAM.py, main_eval.py).

* features: DINOv2's patch tokens before the final norm at 518 x 518 (ViT-L/14: 37 x 37), each channel
  L2-normalised over the tokens of its image (theirs: `F.normalize(..., dim=1)`), compared by cosine;
* priors per shot, averaged over the shots: for the support's foreground mask m (bilinear, align_corners, to the
  token grid) the max over support tokens of cos * m (`sim`) and the mean of cos * m divided by the mask's
  share of the grid (`mean`); the same with 1 - m gives the negative mean prior; an all-empty support gets a
  14 x 14 foreground square at its centre;
* points: min-max normalised mean * sim, zeroed where the normalised negative prior exceeds it; its top
  min(int(sum), `max_points`) tokens (at least 1 if the sum is positive) are positive point prompts, one SAM
  mask each (single-mask output) in SAM's input frame (token coordinates scaled, truncated to integers);
* graph: an edge from mask i to point j where mask i (nearest, on the grid) covers point j; masks are clustered by
  the graph's weakly connected components;
* positive-negative alignment: per cluster, its masks by descending mean of (mean^2 - neg * mid) where mid is
  halfway between mean's min and max; a mask (less the area already taken) is kept while its area with
  mean^2 > neg * mid exceeds the rest; the cluster's score is the last mask's difference;
* post-gating: each point's similarity to each cluster (mean prior of the query against the cluster's union),
  divided by its distance to the cluster's nearest point (0 counts as 1); a point agrees if its best cluster is
  its own, a cluster whose points mostly disagree is dropped; the prediction is the union of kept masks of
  agreeing points, or, where empty, the best-scoring mask among points that agree or were kept;
* `input_size` (their 1024 = SAM's input): a native-resolution method; query and supports are resized (bilinear
  for images, nearest for masks) to it, the prediction is a binary mask at that size.

There are no learned parameters besides the two foundation models; the golden test runs a reduced
configuration (small ViTs, a smaller DINOv2 input) through theirs and ours.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse import csgraph

from methods.foundation import (DinoFeatures, OneEpisodeAtATime, SamPrompter, build_sam, foundation_entries,
                                foundation_files)
from methods.registry import register_method
from methods.weights import register_weights

EPS = 1e-7
MAX_POINTS = 128  # theirs: "set maximum to 128 for efficiency"
EMPTY_SUPPORT_HALF = 7  # their 14 x 14 square in an all-empty support


def cosine(support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """[Ns, C], [Nq, C] -> cos [Ns, Nq] (their eps 1e-7 on the norms' product)."""
    norms = support.norm(dim=1, keepdim=True) * query.norm(dim=1, keepdim=True).T
    return support @ query.T / (norms + EPS)


def priors(query: torch.Tensor, supports: torch.Tensor, masks: torch.Tensor):
    """query [N, C], supports [K, N, C], masks [K, h, w] -> (max prior, mean prior), each [g, g], shot-averaged."""
    grid = int(math.sqrt(query.shape[0]))
    maxes, means = [], []
    for feats, mask in zip(supports, masks):
        m = F.interpolate(mask[None, None].float(), size=(grid, grid), mode="bilinear", align_corners=True).flatten()
        weighted = cosine(feats, query) * m[:, None]
        means.append(weighted.mean(0) / (m.sum() / grid ** 2 + EPS))
        maxes.append(weighted.max(0).values)
    return torch.stack(maxes).mean(0).view(grid, grid), torch.stack(means).mean(0).view(grid, grid)


def normalise01(x: torch.Tensor) -> torch.Tensor:
    return (x - x.min()) / (x.max() - x.min() + 1e-6)


class GFSAM(OneEpisodeAtATime):
    """GF-SAM (Zhang et al., NeurIPS 2024): DINOv2 priors -> SAM point prompts -> point-mask graph -> merged mask."""

    def __init__(self, dino: str = "vit_large", dino_size: int = 518, sam: str = "vit_h",
                 input_size: Optional[int] = None, max_points: int = MAX_POINTS, prompt_batch: int = 64,
                 dino_overrides: Optional[Mapping] = None, sam_reduced: Optional[Mapping] = None):
        super().__init__()
        self.encoder = DinoFeatures(dino, dino_size, method="gf-sam", overrides=dino_overrides)
        self.sam = build_sam(sam, method="gf-sam", reduced=sam_reduced)
        self.prompter = SamPrompter(self.sam)
        self.input_size = input_size or self.prompter.img_size
        self.max_points = max_points
        self.prompt_batch = prompt_batch
        self._options = {"dino": dino, "dino_size": dino_size, "sam": sam, "input_size": self.input_size,
                         "max_points": max_points, "prompt_batch": prompt_batch,
                         "dino_overrides": dict(dino_overrides or {}), "sam_reduced": dict(sam_reduced or {})}

    @torch.no_grad()
    def predict(self, query: torch.Tensor, supports: torch.Tensor, masks: torch.Tensor, details: bool = False):
        """One episode at the input size: query [3, S, S] and supports [K, 3, S, S] in [0, 1], foreground masks
        [K, S, S] -> binary mask [S, S] (`details`: and the points [M, 2] and their post-gating states [M])."""
        if masks.sum() == 0:
            masks = masks.clone()
            h, w = masks.shape[-2:]
            r = EMPTY_SUPPORT_HALF
            masks[:, h // 2 - r:h // 2 + r, w // 2 - r:w // 2 + r] = 1
        self.prompter.set_image(query)
        prompt_map, mean, neg_mean, tar = self.priors(query, supports, masks)
        mid = (mean.max() + mean.min()) / 2
        points = self.find_points(prompt_map)
        empty = query.new_zeros(query.shape[-2:])
        if len(points) == 0:
            return (empty, points, torch.zeros(0, dtype=torch.long)) if details else empty
        scale = self.prompter.img_size / prompt_map.shape[-1]
        masks_out, _ = self.prompter.point_masks(points.astype(np.float64) * scale, batch=self.prompt_batch)
        masks_out = masks_out[:, 0].float()  # [M, S, S]
        labels, n = self.clusters(masks_out, points, prompt_map.shape[-1])
        keep, scores = self.align(masks_out, labels, n, mean * mean, neg_mean * mid)
        state = self.gate(tar, masks_out, labels, n, keep, points)
        pred = (masks_out[state == 1].sum(0) > 0).float() if (state == 1).any() else empty
        if pred.sum() == 0:
            scores = scores.clone()
            scores[state != 2] = 0
            pred = masks_out[scores.max(dim=0)[1]]
        return (pred, points, state) if details else pred

    def priors(self, query: torch.Tensor, supports: torch.Tensor, masks: torch.Tensor):
        """(prompt map, mean prior, negative mean prior) [g, g] and the query's tokens [g * g, C]."""
        feats = F.normalize(self.encoder(torch.cat((supports, query[None]))), dim=1, p=2)
        ref, tar = feats[:-1], feats[-1]
        _, neg_mean = priors(tar, ref, 1 - masks)
        sim, mean = priors(tar, ref, masks)
        cross = normalise01(mean * sim)
        return cross * ~(normalise01(neg_mean) > cross), mean, neg_mean, tar

    def find_points(self, prompt_map: torch.Tensor) -> np.ndarray:
        """Top tokens as (x, y) token coordinates, ordered by x then y (theirs: argwhere of the transposed map)."""
        total = prompt_map.sum()
        top = min(int(total), self.max_points)
        if top == 0 and total > 0:
            top = 1
        hot = torch.zeros_like(prompt_map.flatten())
        hot[prompt_map.flatten().topk(top)[1]] = 1
        return np.argwhere(hot.view(prompt_map.shape).numpy().T > 0)

    @staticmethod
    def clusters(masks: torch.Tensor, points: np.ndarray, grid: int):
        """Weakly connected components of the graph mask i -> point j (mask i covers point j on the grid)."""
        small = F.interpolate(masks[:, None], size=(grid, grid), mode="nearest")[:, 0]
        covered = small[:, points[:, 1], points[:, 0]]
        return csgraph.connected_components(covered.numpy(), directed=True, connection="weak", return_labels=True)[::-1]

    @staticmethod
    def align(masks: torch.Tensor, labels: np.ndarray, n: int, positive: torch.Tensor, negative: torch.Tensor):
        """Positive-negative alignment: (kept [M] long, cluster score per mask [M])."""
        grid = positive.shape[-1]
        labels = torch.as_tensor(labels, dtype=torch.long)
        keep = torch.zeros_like(labels)
        scores = torch.zeros(len(labels))
        region = (positive > negative).float()
        small = F.interpolate(masks[:, None], size=(grid, grid), mode="bilinear", align_corners=False)[:, 0]
        for c in range(n):
            members = torch.where(labels == c)[0]
            area = small[members]
            order = ((area * (positive - negative)).sum((-1, -2)) / (area.sum((-1, -2)) + 1e-6)).argsort(descending=True)
            taken = torch.zeros_like(positive)
            for i in order:
                rest = area[i] * (1 - taken)
                pos, neg = (region * rest).sum(), ((1 - region) * rest).sum()
                if pos > neg:
                    taken += rest
                    keep[members[i]] = 1
            scores[members] = pos - neg
        return keep, scores

    @staticmethod
    def gate(tar: torch.Tensor, masks: torch.Tensor, labels: np.ndarray, n: int, keep: torch.Tensor,
             points: np.ndarray) -> torch.Tensor:
        """Post-gating: per point 1 (agrees and kept), 2 (agrees or kept), 0 (neither)."""
        grid = int(math.sqrt(tar.shape[0]))
        labels = torch.as_tensor(labels, dtype=torch.long)
        unions = [(masks[labels == c].sum(0) > 0).float() for c in range(n)]
        unions = F.interpolate(torch.stack(unions)[:, None], size=(grid, grid), mode="bilinear", align_corners=False)
        sims = torch.stack([priors(tar, tar[None], u[None])[1] for u in unions[:, 0]])
        xy = torch.as_tensor(points, dtype=torch.long)
        sims = sims[:, xy[:, 1], xy[:, 0]]  # [n, M]
        distance = torch.cdist(xy.float(), xy.float())
        nearest = torch.stack([distance[:, labels == c].min(1).values for c in range(n)])
        nearest[nearest == 0] = 1
        agree = torch.where((sims / nearest).max(dim=0)[1] == labels, 1, 0)
        for c in range(n):
            members = torch.where(labels == c)[0]
            if agree[members].sum() < len(members) - agree[members].sum():
                agree[members] = 0
        state = ((agree + keep) > 0).long() * 2
        state[(agree * keep) > 0] = 1
        return state


#: their logs (ANDYZAQ/GF-SAM @f227d1d8 outputs/{pascal,pascal_5shot,coco,coco_5shot}/fold{0..3}.txt, last line
#: "Fold N mIoU: .. FB-IoU: .."): {dataset: {shots: [(miou, fbiou) per fold]}}; means 72.3 / 82.6 and 58.7 / 66.8
#: as the README; the published-weights entries below read them
REPORTED = {"pascal5i": {1: [(71.12, 83.93), (75.70, 84.73), (69.17, 72.81), (73.25, 83.93)],
                         5: [(81.49, 90.42), (86.32, 92.09), (79.69, 84.31), (82.90, 89.75)]},
            "coco20i": {1: [(56.62, 74.34), (61.44, 78.28), (59.63, 79.09), (57.12, 75.68)],
                        5: [(67.09, 79.34), (69.41, 83.16), (65.97, 83.02), (64.83, 80.69)]}}
REPORTED_SOURCE = ("Zhang et al., NeurIPS 2024: the per-fold logs of ANDYZAQ/GF-SAM @f227d1d8 (outputs/<benchmark>"
                   "[_5shot]/fold<k>.txt, last line), whose means are their README's")
#: the architecture of the released files (main_eval.py's defaults: --dinov2-size vit_large, --sam-size vit_h,
#: --img-size 1024)
PAPER_OPTIONS = {"dino": "vit_large", "dino_size": 518, "sam": "vit_h", "input_size": 1024}
#: the files their README names (main_eval.py --dinov2-weights / --sam-weights), sha256 not published:
#: {part: (file name, download address)}
WEIGHT_FILES = {f.part: (f.file_name, f.url) for f in foundation_files("vit_large", "vit_h")}

SMALL = {"dino": "vit_small", "dino_size": 224, "max_points": 16, "dino_overrides": {"depth": 4},
         "sam_reduced": {"img_size": 256, "embed_dim": 96, "depth": 2, "heads": 2, "window": 4, "prompt_dim": 64,
                         "decoder_mlp": 128, "decoder_heads": 2}}
PROFILES = {
    # runs on 2 CPU cores: DINOv2 ViT-S/14 at 224 (16 x 16 tokens), a small SAM at 256, at most 16 points; the
    # same on the CI's and the tests' profiles (the real models take minutes an episode on a CPU)
    "synthetic": {"options": SMALL},
    "ci": {"options": SMALL},
    "tiny": {"options": SMALL},
}

register_method("gf-sam", trainable=False, profiles=PROFILES, citation="Zhang et al., NeurIPS 2024")(GFSAM)
# the released DINOv2 ViT-L/14 and SAM ViT-H files, the same for every dataset and fold (training-free)
register_weights(*foundation_entries("gf-sam", REPORTED, PAPER_OPTIONS, 1024, REPORTED_SOURCE))
