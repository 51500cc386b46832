"""Matcher (Liu, Zhu, Liu, Zhang, Xu, Wang, Shen: "Matcher: Segment Anything with One Shot Using All-Purpose
Feature Matching", ICLR 2024), training-free: DINOv2 patch matching and SAM mask proposals; written from the
paper, facts checked against the released code (aim-uofa/Matcher @d59b6c76: matcher/Matcher.py, main_oss.py,
scripts/*.sh, their amended segment_anything/automatic_mask_generator.py).

* features: DINOv2's patch tokens before the final norm of the `input_size` image (518: 37 x 37 tokens),
  L2-normalised per token; S = cosine of every support token (all shots) with every query token;
* bidirectional matching: a Hungarian assignment (maximal similarity) of the supports' foreground tokens (a token
  is foreground where any of its pixels is) to query tokens, then of those query tokens back to all support
  tokens; a pair is kept if its reverse match lands in a foreground (all, if none does); of more than 40 pairs the
  most similar half; the distinct query tokens' centres (pixels) are the matched points;
* prompts: the points themselves (`use_points`) or `num_centers` k-means++ centres of them; for each size in
  `sample_range`, `max_sample_iterations` random subsets of the points (more than 8) or every combination;
* proposals: SAM on a `points_per_side`^2 grid of single points (`dense`, single mask) and on every prompt set
  (three masks with `multimask`), each filtered by predicted IoU and stability score, then box NMS;
* instance-level matching: per mask, emd = 1 - earth mover's distance ((1 - S) / 2, uniform weights) between the
  supports' foreground tokens and the mask's tokens, purity = matched points inside / mask tokens, coverage =
  matched points inside / all; masks under min(threshold, best) of a metric are dropped; score = alpha * emd +
  beta * purity * coverage^exp;
* merging: with `score_filter`, masks by descending score within `deep_score_filter` of 1 (the best always) and
  `deep_score_norm_filter` of the best after normalising, the first `num_merging_mask`; else the top
  `num_merging_mask` whose score over the best exceeds `topk_scores_threshold`; the prediction is their union.

Deviations: the random subsets and k-means++ draw from generators seeded per episode by `seed` (theirs: one
stream over the whole evaluation); the earth mover's distance is scipy's linear program (theirs: POT's network
simplex, the same optimum); their unused box prompt and dense multi-mask outputs are left out.
"""
from __future__ import annotations

import itertools
import random
from typing import Dict, List, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F
from scipy import sparse
from scipy.optimize import linear_sum_assignment, linprog

from methods.foundation import (DinoFeatures, OneEpisodeAtATime, SamPrompter, build_sam, foundation_entries,
                                foundation_files)
from methods.registry import register_method
from methods.weights import register_weights

EMPTY_SUPPORT_HALF = 7  # their 14 x 14 square in an all-empty support
MAX_KMEANS_TRIES = 100  # theirs retries k-means++ until no cluster is empty, without a limit

#: their scripts (aim-uofa/Matcher @d59b6c76 scripts/{coco,lvis,fss}{,_5shot}.sh over main_oss.py's defaults);
#: `num_merging_mask` per shot count (1, 5)
CONFIGS = {
    "coco20i": {"dense": True, "multimask": True, "use_points": True, "sample_range": (1, 6),
                "max_sample_iterations": 64, "box_nms_thresh": 0.65, "sel_pred_iou_thresh": 0.85,
                "sel_stability_score_thresh": 0.90, "purity_filter": 0.02, "score_filter": True,
                "topk_scores_threshold": 0.0, "alpha": 1.0, "beta": 0.0, "exp": 0.0, "num_merging_mask": (9, 5)},
    "fss1000": {"dense": False, "multimask": False, "use_points": False, "sample_range": (4, 6),
                "max_sample_iterations": 30, "alpha": 0.8, "beta": 0.2, "exp": 1.0, "num_merging_mask": (10, 5)},
}
CONFIGS["lvis92i"] = dict(CONFIGS["coco20i"])
#: main_oss.py's defaults
DEFAULTS = {"points_per_side": 64, "points_per_batch": 64, "pred_iou_thresh": 0.88, "stability_score_thresh": 0.95,
            "dense": False, "multimask": False, "sel_pred_iou_thresh": 0.0, "sel_stability_score_thresh": 0.0,
            "box_nms_thresh": 1.0, "use_points": False, "num_centers": 8, "sample_range": (4, 6),
            "max_sample_iterations": 30, "alpha": 1.0, "beta": 0.0, "exp": 0.0, "emd_filter": 0.0,
            "purity_filter": 0.0, "coverage_filter": 0.0, "score_filter": False, "deep_score_filter": 0.33,
            "deep_score_norm_filter": 0.1, "topk_scores_threshold": 0.7, "num_merging_mask": (10, 10)}


def earth_movers(cost: np.ndarray) -> float:
    """Exact EMD between uniform distributions on the rows and the columns of `cost` [n, m]."""
    n, m = cost.shape
    if n == m:  # a permutation is optimal
        rows, cols = linear_sum_assignment(cost)
        return float(cost[rows, cols].sum() / n)
    equalities = sparse.vstack([sparse.kron(sparse.eye(n), np.ones((1, m))),
                                sparse.kron(np.ones((1, n)), sparse.eye(m))]).tocsr()
    marginals = np.concatenate([np.full(n, 1.0 / n), np.full(m, 1.0 / m)])
    result = linprog(cost.ravel(), A_eq=equalities, b_eq=marginals, bounds=(0, None), method="highs")
    return float(result.fun)


def kmeans_pp(points: torch.Tensor, k: int, generator: torch.Generator, iterations: int = 100):
    """k-means++ seeding (squared distance + 1e-6), then Lloyd's iterations until the centres stop moving;
    an empty cluster keeps its centre. Returns (centres [k, 2], assignment [N])."""
    centres = points[torch.randint(len(points), (1,), generator=generator)]
    for _ in range(k - 1):
        d = torch.cdist(points, centres).min(dim=1).values + 1e-6
        pick = torch.multinomial(d ** 2 / (d ** 2).sum(), 1, generator=generator)
        centres = torch.cat([centres, points[pick]])
    for _ in range(iterations):
        assignment = torch.cdist(points, centres).argmin(dim=1)
        moved = torch.stack([points[assignment == c].mean(0) if (assignment == c).any() else centres[c]
                             for c in range(k)])
        if torch.equal(moved, centres):
            break
        centres = moved
    return centres, assignment


class Matcher(OneEpisodeAtATime):
    """Matcher (Liu et al., ICLR 2024): DINOv2 bidirectional matching -> SAM proposals -> metric filter -> merge."""

    def __init__(self, dino: str = "vit_large", sam: str = "vit_h", input_size: int = 518, config: str = "coco20i",
                 seed: int = 0, dino_overrides: Optional[Mapping] = None, sam_reduced: Optional[Mapping] = None,
                 **overrides):
        super().__init__()
        if config not in CONFIGS:
            raise ValueError(f"unknown Matcher config '{config}'; known: {', '.join(CONFIGS)}")
        unknown = set(overrides) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown Matcher options: {', '.join(sorted(unknown))}")
        self.cfg = {**DEFAULTS, **CONFIGS[config], **overrides}
        self.cfg["sample_range"] = tuple(self.cfg["sample_range"])
        merging = self.cfg["num_merging_mask"]
        self.cfg["num_merging_mask"] = (merging, merging) if isinstance(merging, int) else tuple(merging)
        self.encoder = DinoFeatures(dino, input_size, method="matcher", overrides=dino_overrides)
        self.sam = build_sam(sam, method="matcher", reduced=sam_reduced)
        self.prompter = SamPrompter(self.sam)
        self.input_size = input_size
        self.seed = seed
        self._options = {"dino": dino, "sam": sam, "input_size": input_size, "config": config, "seed": seed,
                         "dino_overrides": dict(dino_overrides or {}), "sam_reduced": dict(sam_reduced or {}),
                         **overrides}

    @torch.no_grad()
    def predict(self, query: torch.Tensor, supports: torch.Tensor, masks: torch.Tensor, details: bool = False):
        """One episode at the input size: query [3, S, S], supports [K, 3, S, S] in [0, 1], foreground masks
        [K, S, S] -> binary mask [S, S] (`details`: and a dict of the intermediate results)."""
        cfg = self.cfg
        similarity, ref_fg = self.similarity(query, supports, masks)
        points = self.match(similarity, ref_fg)
        prompts = points
        if not cfg["use_points"]:
            prompts = self.centres(points, torch.Generator().manual_seed(self.seed))
        samples = self.sample(prompts, random.Random(self.seed))
        self.prompter.set_image(query)
        proposals = self.proposals(samples)
        out = {"points": points, "prompts": prompts, "samples": samples, "proposals": proposals}
        empty = query.new_zeros(query.shape[-2:])
        if len(proposals) == 0:
            return (empty, out) if details else empty
        metrics = self.metrics(proposals, points, (1 - similarity) / 2, ref_fg)
        out["metrics"] = metrics
        shots = 0 if len(supports) == 1 else 1
        pred = self.merge(proposals, metrics, cfg["num_merging_mask"][shots])
        pred = empty if pred is None else pred.float()
        return (pred, out) if details else pred

    def similarity(self, query: torch.Tensor, supports: torch.Tensor, masks: torch.Tensor):
        """(cosine [K * N, N] of the supports' and the query's tokens, the supports' foreground tokens [K * N])."""
        if masks.sum() == 0:
            masks = masks.clone()
            h, w = masks.shape[-2:]
            r = EMPTY_SUPPORT_HALF
            masks[:, h // 2 - r:h // 2 + r, w // 2 - r:w // 2 + r] = 1
        ref_fg = (F.avg_pool2d(masks[:, None].float(), self.encoder.patch_size) > 0).flatten()
        ref = F.normalize(self.encoder(supports).flatten(0, 1), dim=1, p=2)
        tar = F.normalize(self.encoder(query[None])[0], dim=1, p=2)
        return ref @ tar.T, ref_fg

    def match(self, similarity: torch.Tensor, ref_fg: torch.Tensor) -> np.ndarray:
        """Bidirectionally matched query tokens' centres [P, 2] (x, y pixels, int64)."""
        fg_index = ref_fg.nonzero()[:, 0]
        forward = similarity[ref_fg]
        rows, cols = linear_sum_assignment(forward.numpy(), maximize=True)
        rows, cols = torch.as_tensor(rows), torch.as_tensor(cols)
        scores = forward[rows, cols]
        _, back = linear_sum_assignment(similarity.T[cols].numpy(), maximize=True)
        keep = torch.isin(torch.as_tensor(back), fg_index)
        if keep.any():
            cols, scores = cols[keep], scores[keep]
        count = len(scores) // 2 if len(scores) > 40 else len(scores)
        best = cols[torch.sort(scores, descending=True)[1][:count]]
        tokens = torch.tensor(list(set(best.tolist())), dtype=torch.long)  # their order: a Python set's
        grid, patch = self.encoder.grid, self.encoder.patch_size
        xy = torch.stack((tokens % grid, tokens // grid), dim=1) * patch + patch // 2
        return xy[(xy < self.input_size).all(1)].numpy()

    def centres(self, points: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """`num_centers` k-means++ centres of the points (truncated to int), redrawn while a cluster is empty."""
        k = min(self.cfg["num_centers"], len(points))
        xy = torch.from_numpy(points).float()
        for _ in range(MAX_KMEANS_TRIES):
            centres, assignment = kmeans_pp(xy, k, generator)
            if len(torch.unique(assignment)) == k:
                break
        return centres.numpy().astype(np.int64)

    def sample(self, points: np.ndarray, rng: random.Random) -> List[np.ndarray]:
        """Prompt sets per subset size i: [n_i, i, 2] (random subsets of more than 8 points, else every
        combination, ordered by the last index, then the one before)."""
        low, high = self.cfg["sample_range"]
        n = len(points)
        sets = []
        for i in range(min(low, n), min(high, n) + 1):
            if n > 8:
                index = [rng.sample(range(n), i) for _ in range(self.cfg["max_sample_iterations"])]
            else:
                index = sorted(itertools.combinations(range(n), i), key=lambda c: c[::-1])
            sets.append(np.take(points, np.asarray(index, dtype=np.int64).reshape(len(index), i), axis=0))
        return sets

    def proposals(self, samples: List[np.ndarray]) -> torch.Tensor:
        """SAM's masks [M, S, S] (bool) on the grid of single points and on the prompt sets, after box NMS."""
        from segment_anything.utils.amg import batch_iterator, batched_mask_to_box, build_all_layer_point_grids
        from torchvision.ops import batched_nms
        cfg, predictor = self.cfg, self.prompter.predictor
        size = predictor.original_size
        masks, ious = [], []

        def run(coords, labels, multimask, iou_thresh, stability_thresh):
            m, iou, _ = predictor.predict_torch(coords, labels, multimask_output=multimask, return_logits=True)
            m, iou = m.flatten(0, 1), iou.flatten(0, 1)
            keep = iou > iou_thresh if iou_thresh > 0 else torch.ones_like(iou, dtype=torch.bool)
            m, iou = m[keep], iou[keep]
            if stability_thresh > 0:
                keep = stability(m, predictor.model.mask_threshold) >= stability_thresh
                m, iou = m[keep], iou[keep]
            masks.append(m > predictor.model.mask_threshold)
            ious.append(iou)

        if cfg["dense"]:
            grid = build_all_layer_point_grids(cfg["points_per_side"], 0, 1)[0] * np.array(size)[None, ::-1]
            for (chunk,) in batch_iterator(cfg["points_per_batch"], grid):
                coords = torch.as_tensor(predictor.transform.apply_coords(chunk, size))  # float64, as theirs
                run(coords[:, None], torch.ones(len(coords), 1, dtype=torch.int), False,
                    cfg["pred_iou_thresh"], cfg["stability_score_thresh"])
        for prompt_set in samples:
            for (chunk,) in batch_iterator(cfg["points_per_batch"], prompt_set):
                coords = torch.as_tensor(predictor.transform.apply_coords(chunk, size), dtype=torch.float)
                run(coords, torch.ones(coords.shape[:2], dtype=torch.int), cfg["multimask"],
                    cfg["sel_pred_iou_thresh"], cfg["sel_stability_score_thresh"])
        if not masks:
            return torch.zeros(0, *size, dtype=torch.bool)
        masks, ious = torch.cat(masks), torch.cat(ious)
        boxes = batched_mask_to_box(masks)
        keep = batched_nms(boxes.float(), ious, torch.zeros(len(boxes)), iou_threshold=cfg["box_nms_thresh"])
        return masks[keep]

    def metrics(self, proposals: torch.Tensor, points: np.ndarray, cost: torch.Tensor,
                ref_fg: torch.Tensor) -> Dict[str, torch.Tensor]:
        """emd, purity and coverage [M] (float32) of each proposal."""
        grid = self.encoder.grid
        small = F.adaptive_avg_pool2d(proposals[:, None].float(), grid)[:, 0].flatten(1)  # cv2's INTER_AREA
        reference = cost[ref_fg].double().numpy()
        h, w = proposals.shape[-2:]
        ys = np.clip(points[:, 1], 0, h - 1)
        xs = np.clip(points[:, 0], 0, w - 1)
        emd, purity, coverage = (torch.zeros(len(proposals)) for _ in range(3))
        distances = {}  # proposals often share their tokens
        for i, (mask, tokens) in enumerate(zip(proposals, small)):
            inside = tokens > 0 if tokens.max() > 0 else torch.ones_like(tokens, dtype=torch.bool)
            key = inside.numpy().tobytes()
            if key not in distances:
                distances[key] = earth_movers(reference[:, inside.numpy()])
            emd[i] = 1 - distances[key]
            hits = int(mask[ys, xs].sum())
            purity[i] = torch.tensor([hits / max(float(inside.sum()), 1.0)]) + 1e-6
            coverage[i] = torch.tensor([hits / len(points)]) + 1e-6
        return {"emd": emd, "purity": purity, "coverage": coverage}

    def merge(self, proposals: torch.Tensor, metrics: Mapping[str, torch.Tensor], merging: int):
        """The union of the selected proposals (None if none is selected)."""
        cfg = self.cfg
        scores = cfg["alpha"] * metrics["emd"] + cfg["beta"] * metrics["purity"] * metrics["coverage"] ** cfg["exp"]
        metrics = dict(metrics)
        for name in ("coverage", "emd", "purity"):
            if cfg[f"{name}_filter"] > 0:
                keep = torch.where(metrics[name] >= min(cfg[f"{name}_filter"], metrics[name].max()))[0]
                scores, proposals = scores[keep], proposals[keep]
                metrics = {key: value[keep] for key, value in metrics.items()}
        if cfg["score_filter"]:
            distances, rank = torch.sort(1 - scores)
            normalised = (distances - distances.min()) / (distances.max() + 1e-6)
            chosen = distances < cfg["deep_score_filter"]
            chosen[0] = True
            chosen &= normalised < cfg["deep_score_norm_filter"]
            selected = proposals[rank[chosen][:merging]]
        else:
            top = scores.topk(min(merging, len(scores)))
            values = top.values / top.values.max() if cfg["topk_scores_threshold"] > 0 else top.values
            selected = proposals[top.indices[values > cfg["topk_scores_threshold"]]]
        return selected.any(0) if len(selected) else None


def stability(logits: torch.Tensor, threshold: float, offset: float = 1.0) -> torch.Tensor:
    """SAM's stability score: IoU of the masks thresholded at threshold + offset and threshold - offset."""
    from segment_anything.utils.amg import calculate_stability_score
    return calculate_stability_score(logits, threshold, offset)


#: their logs (aim-uofa/Matcher @d59b6c76 output/coco/{0..3}/log.txt, output/coco_5shot/fold{0..3}/log.txt,
#: output/fss/0/log.txt, output/fss_5shot/fold0/log.txt, output/lvis{,_5shot}/fold{0..9}/log.txt, last line
#: "Fold N mIoU: .. FB-IoU: .."): {dataset: {shots: [(miou, fbiou) per fold]}}
REPORTED = {
    "coco20i": {1: [(52.66, 72.02), (53.52, 74.49), (52.58, 75.54), (52.13, 72.20)],
                5: [(60.09, 74.85), (62.69, 78.49), (60.90, 78.63), (59.20, 76.17)]},
    "fss1000": {1: [(87.12, 91.64)], 5: [(89.61, 93.33)]},
    "lvis92i": {1: [(31.38, 65.38), (30.86, 63.98), (33.66, 69.10), (38.09, 68.91), (30.46, 65.90),
                    (32.47, 65.80), (35.89, 66.50), (34.22, 68.49), (33.02, 66.34), (29.65, 62.04)],
                5: [(37.00, 70.02), (36.58, 70.47), (47.27, 75.56), (39.13, 70.83), (37.05, 69.19),
                    (41.78, 69.66), (42.68, 69.69), (37.70, 69.11), (37.88, 69.49), (43.29, 72.37)]},
}
#: the files main_oss.py loads by default (--dinov2-weights / --sam-weights), sha256 not published:
#: {part: (file name, download address)}
WEIGHT_FILES = {f.part: (f.file_name, f.url) for f in foundation_files("vit_large", "vit_h")}
#: the released architecture and input (main_oss.py: DINOv2 ViT-L/14 at 518, SAM ViT-H)
PAPER_OPTIONS = {"dino": "vit_large", "sam": "vit_h", "input_size": 518}
REPORTED_SOURCE = ("their logs, aim-uofa/Matcher @d59b6c761f427d52b1ba00132a6b3488f169d039 output/{coco,coco_5shot,fss,"
                   "fss_5shot,lvis,lvis_5shot}/<fold>/log.txt, last line 'Fold N mIoU: .. FB-IoU: ..'")

SMALL = {"dino": "vit_small", "input_size": 112, "dino_overrides": {"depth": 4},
         "sam_reduced": {"img_size": 128, "embed_dim": 96, "depth": 2, "heads": 2, "window": 4, "prompt_dim": 64,
                         "decoder_mlp": 128, "decoder_heads": 2},
         "points_per_side": 4, "max_sample_iterations": 4, "sample_range": (1, 3), "pred_iou_thresh": 0.0,
         "stability_score_thresh": 0.0, "sel_pred_iou_thresh": 0.0, "sel_stability_score_thresh": 0.0}
PROFILES = {
    # runs on 2 CPU cores: DINOv2 ViT-S/14 at 112 (8 x 8 tokens), a small SAM at 128, a 4 x 4 grid and 4 random
    # prompt sets per size, COCO's configuration without SAM's quality filters (random weights pass none); the
    # real models take minutes an episode on a CPU
    "synthetic": {"options": SMALL},
    "ci": {"options": SMALL},
    "tiny": {"options": SMALL},
}

register_method("matcher", trainable=False, profiles=PROFILES, citation="Liu et al., ICLR 2024")(Matcher)
# the released DINOv2 ViT-L/14 and SAM ViT-H files, the same for every fold; each dataset with its script's config
for _dataset in REPORTED:
    register_weights(*foundation_entries("matcher", {_dataset: REPORTED[_dataset]}, {**PAPER_OPTIONS, "config": _dataset},
                                         518, REPORTED_SOURCE))
