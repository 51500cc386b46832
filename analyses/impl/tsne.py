"""What `python -m analyses.tsne` runs (its options and documentation: analyses/tsne.py)."""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from analyses.common import Analysis, open_analysis
from bench.core.errors import BenchError
from bench.core.progress import progress_bar
from bench.data.episodes import images_by_class
from bench.data.images import ImageStore, normalize
from methods.common import masked_average_pool


def embedding_fn(analysis: Analysis, method_name):
    """images -> feature maps: the frozen backbone, or a trained method's encoder on top of it."""
    if method_name is None:
        backbone = analysis.backbone()
        return backbone.mid_level
    method, _ = analysis.models.get(method_name, analysis.args.split)
    if not hasattr(method, "query_code"):
        raise BenchError(f"{method_name} has no learned encoder to embed with; omit --method for backbone features")
    method.eval()
    return lambda images: method.query_code(method.encode(images))[0]


@torch.no_grad()
def map_vectors(analysis: Analysis, method_name, per_class: int, seed: int) -> pd.DataFrame:
    """One FG and one BG vector per sampled (image, class) of the split's test list."""
    store = ImageStore(analysis.dataset, analysis.input_size)
    embed = embedding_fn(analysis, method_name)
    rng = np.random.default_rng([seed, analysis.args.split, 6])
    keys = []
    for class_id, ids in images_by_class(analysis.dataset.pairs(analysis.args.split, "test")).items():
        chosen = rng.choice(len(ids), size=min(per_class, len(ids)), replace=False)
        keys += [(ids[k], class_id) for k in sorted(chosen)]
    rows, vectors = [], []
    bar = progress_bar(total=len(keys), desc="MAP vectors", quiet=analysis.args.quiet, unit="img")
    for start in range(0, len(keys), 32):
        chunk = keys[start:start + 32]
        images = normalize(torch.stack([store.image(i) for i, _ in chunk])).to(analysis.device)
        masks = torch.stack([store.input_mask(i, c) for i, c in chunk]).long().to(analysis.device)
        feats = embed(images)
        for region, weights in (("fg", (masks == 1).float()), ("bg", (masks == 0).float())):
            pooled = masked_average_pool(feats, weights).cpu().numpy()
            vectors.append(pooled)
            rows += [(i, c, region) for i, c in chunk]
        bar.update(len(chunk))
    bar.close()
    frame = pd.DataFrame(rows, columns=["image", "class_id", "region"])
    frame.attrs["vectors"] = np.concatenate(vectors)
    return frame


def embed_2d(vectors: np.ndarray, seed: int, perplexity: float = 30.0) -> np.ndarray:
    """scikit-learn TSNE, seeded; perplexity capped below the number of vectors."""
    from sklearn.manifold import TSNE

    perplexity = min(perplexity, max(1.0, (len(vectors) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(vectors)


def plot(frame: pd.DataFrame, names, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    classes = sorted(frame.class_id.unique())
    colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for k, class_id in enumerate(classes):
        for region, marker in (("fg", "o"), ("bg", "x")):
            part = frame[(frame.class_id == class_id) & (frame.region == region)]
            ax.scatter(part.x, part.y, s=14, marker=marker, color=colours(k % colours.N), alpha=0.75,
                       label=f"{names.get(class_id, class_id)} ({'FG' if region == 'fg' else 'BG'})")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def run(args: argparse.Namespace) -> pd.DataFrame:
    suffix = f"-split{args.split}" + (f"-{args.method}" if args.method else "")
    analysis = open_analysis(args, "tsne", suffix)
    frame = map_vectors(analysis, args.method, args.per_class, args.seed)
    coords = embed_2d(frame.attrs.pop("vectors"), args.seed)
    frame["x"], frame["y"] = coords[:, 0], coords[:, 1]
    analysis.save_table(frame, "coordinates")
    source = args.method or f"{analysis.models.backbone_options()['backbone']} layer2+layer3"
    analysis.save_figure(plot(frame, analysis.dataset.class_names(),
                              f"tSNE of MAP vectors, {analysis.dataset.name} split {args.split} ({source})"), "tsne")
    print(f"{len(frame)} vectors ({len(frame) // 2} images x FG/BG) embedded; outputs in {analysis.out}")
    return frame
