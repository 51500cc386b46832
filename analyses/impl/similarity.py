"""What `python -m analyses.similarity` runs (its options and documentation: analyses/similarity.py)."""
from __future__ import annotations

import argparse
from typing import Dict, Tuple

import pandas as pd
import torch
import torch.nn.functional as F

from analyses.common import Analysis, class_vectors, open_analysis, same_class_pairs
from bench.core.progress import progress_bar
from bench.data.images import ImageStore, normalize


def vectors_for(analysis: Analysis, keys, batch_size: int = 32) -> Dict[Tuple[str, int], Tuple[torch.Tensor, torch.Tensor]]:
    """FG and BG MAP vectors per (image, class), each image encoded once."""
    backbone = analysis.backbone()
    store = ImageStore(analysis.dataset, analysis.input_size)
    keys = sorted(set(keys))
    out = {}
    bar = progress_bar(total=len(keys), desc="MAP vectors", quiet=analysis.args.quiet, unit="img")
    for start in range(0, len(keys), batch_size):
        chunk = keys[start:start + batch_size]
        images = normalize(torch.stack([store.image(i) for i, _ in chunk])).to(analysis.device)
        masks = torch.stack([store.input_mask(i, c) for i, c in chunk]).long().to(analysis.device)
        fg, bg = class_vectors(backbone, images, masks)
        for k, key in enumerate(chunk):
            out[key] = (fg[k].cpu(), bg[k].cpu())
        bar.update(len(chunk))
    bar.close()
    return out


def pair_similarities(pairs: pd.DataFrame, vectors) -> pd.DataFrame:
    """Cosine similarity of FG vectors and of BG vectors for each pair."""
    fg_a = torch.stack([vectors[(a, c)][0] for a, c in zip(pairs.image_a, pairs.class_id)])
    fg_b = torch.stack([vectors[(b, c)][0] for b, c in zip(pairs.image_b, pairs.class_id)])
    bg_a = torch.stack([vectors[(a, c)][1] for a, c in zip(pairs.image_a, pairs.class_id)])
    bg_b = torch.stack([vectors[(b, c)][1] for b, c in zip(pairs.image_b, pairs.class_id)])
    result = pairs.copy()
    result["fg_cosine"] = F.cosine_similarity(fg_a, fg_b, dim=1).numpy()
    result["bg_cosine"] = F.cosine_similarity(bg_a, bg_b, dim=1).numpy()
    return result


def per_class(similarities: pd.DataFrame, names: Dict[int, str]) -> pd.DataFrame:
    rows = []
    for class_id, group in list(similarities.groupby("class_id")) + [("all", similarities)]:
        rows.append({"class_id": class_id, "class_name": names.get(class_id, "all"), "pairs": len(group),
                     "fg_mean": group.fg_cosine.mean(), "fg_std": group.fg_cosine.std(),
                     "bg_mean": group.bg_cosine.mean(), "bg_std": group.bg_cosine.std(),
                     "bg_minus_fg": (group.bg_cosine - group.fg_cosine).mean()})
    return pd.DataFrame(rows)


def plot(similarities: pd.DataFrame, names: Dict[int, str], title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = sorted(similarities.class_id.unique())
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(classes)), 4))
    data, positions, colours = [], [], []
    for k, class_id in enumerate(classes):
        group = similarities[similarities.class_id == class_id]
        data += [group.fg_cosine, group.bg_cosine]
        positions += [3 * k, 3 * k + 1]
        colours += ["tab:orange", "tab:blue"]
    boxes = ax.boxplot(data, positions=positions, widths=0.8, patch_artist=True, showfliers=False)
    for patch, colour in zip(boxes["boxes"], colours):
        patch.set_facecolor(colour)
        patch.set_alpha(0.7)
    ax.set_xticks([3 * k + 0.5 for k in range(len(classes))])
    ax.set_xticklabels([names.get(c, str(c)) for c in classes], rotation=30, ha="right")
    ax.set_ylabel("cosine similarity of MAP vectors")
    ax.legend([boxes["boxes"][0], boxes["boxes"][1]], ["foreground", "background"], loc="lower right")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return fig


def run(args: argparse.Namespace) -> pd.DataFrame:
    analysis = open_analysis(args, "similarity", f"-split{args.split}")
    pairs = same_class_pairs(analysis.dataset, args.split, args.pairs, args.seed)
    keys = list(zip(pairs.image_a, pairs.class_id)) + list(zip(pairs.image_b, pairs.class_id))
    similarities = pair_similarities(pairs, vectors_for(analysis, keys))
    names = analysis.dataset.class_names()
    summary = per_class(similarities, names)
    analysis.save_table(similarities, "pairs")
    analysis.save_table(summary, "per_class")
    backbone = analysis.models.backbone_options()["backbone"]
    analysis.save_figure(plot(similarities, names, f"{analysis.dataset.name} split {args.split}: FG vs BG MAP "
                                                   f"similarity ({len(pairs)} pairs, {backbone} layer2+layer3)"),
                         "similarity")
    overall = summary.iloc[-1]
    print(f"{len(pairs)} same-class pairs, split {args.split}: mean FG cosine {overall.fg_mean:.3f}, "
          f"mean BG cosine {overall.bg_mean:.3f} ({(summary.iloc[:-1].bg_mean > summary.iloc[:-1].fg_mean).sum()} of "
          f"{len(summary) - 1} classes have BG > FG); outputs in {analysis.out}")
    return summary
