"""What `python -m analyses.error_regions` runs (its options and documentation: analyses/error_regions.py)."""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from analyses.common import Analysis, open_analysis, same_class_pairs
from bench.core.progress import progress_bar
from bench.data.base import IGNORE
from bench.data.images import ImageStore, build_batch, normalize
from methods.common import masked_average_pool


def error_ratio(ze_a: torch.Tensor, ze_b: torch.Tensor, zg_a: torch.Tensor, zg_b: torch.Tensor) -> float:
    """(Ze(A) . Ze(B)) / (Zg(A) . Zg(B)); NaN when the denominator is zero."""
    denominator = float(torch.dot(zg_a, zg_b))
    return float(torch.dot(ze_a, ze_b)) / denominator if denominator > 0 else float("nan")


@torch.no_grad()
def predictions(analysis: Analysis, method, store: ImageStore, queries, supports, class_ids) -> torch.Tensor:
    """Binary predictions [N, S, S] at input size for 1-shot episodes."""
    rows = pd.DataFrame({"query": queries, "supports": supports, "class_id": class_ids})
    out = []
    for start in range(0, len(rows), 16):
        batch = build_batch(store, rows.iloc[start:start + 16]).to(analysis.device)
        logits = method(batch.query, batch.supports, batch.support_masks)
        logits = F.interpolate(logits.float(), size=batch.query.shape[-2:], mode="bilinear", align_corners=False)
        out.append((logits[:, 1] > logits[:, 0]).cpu())
    return torch.cat(out)


def run(args: argparse.Namespace) -> pd.DataFrame:
    analysis = open_analysis(args, "error_regions", f"-split{args.split}-{args.method}")
    method, _ = analysis.models.get(args.method, args.split)  # may train: outside no_grad
    with torch.no_grad():
        return _run(args, analysis, method.eval())


def _run(args: argparse.Namespace, analysis: Analysis, method) -> pd.DataFrame:
    backbone = analysis.backbone()
    store = ImageStore(analysis.dataset, analysis.input_size)
    pairs = same_class_pairs(analysis.dataset, args.split, args.pairs, args.seed)
    records = []
    bar = progress_bar(total=len(pairs), desc="pairs", quiet=args.quiet, unit="pair")
    for start in range(0, len(pairs), 16):
        chunk = pairs.iloc[start:start + 16]
        a, b, c = list(chunk.image_a), list(chunk.image_b), list(chunk.class_id)
        pred_a = predictions(analysis, method, store, a, b, c)
        pred_b = predictions(analysis, method, store, b, a, c)
        for images, preds, side in ((a, pred_a, "a"), (b, pred_b, "b")):
            gt = torch.stack([store.input_mask(i, k) for i, k in zip(images, c)]).long()
            valid = gt != IGNORE
            errors = ((preds != (gt == 1)) & valid).float()
            feats = backbone.mid_level(normalize(torch.stack([store.image(i) for i in images])).to(analysis.device))
            chunk_vectors = {"ze": masked_average_pool(feats, errors.to(analysis.device)).cpu(),
                             "zg": masked_average_pool(feats, (gt == 1).float().to(analysis.device)).cpu(),
                             "error_px": errors.sum(dim=(1, 2))}
            for key, value in chunk_vectors.items():
                chunk.attrs[f"{key}_{side}"] = value
        for k, row in enumerate(chunk.itertuples(index=False)):
            err_a, err_b = int(chunk.attrs["error_px_a"][k]), int(chunk.attrs["error_px_b"][k])
            ratio = float("nan")
            if err_a and err_b:
                ratio = error_ratio(chunk.attrs["ze_a"][k], chunk.attrs["ze_b"][k],
                                    chunk.attrs["zg_a"][k], chunk.attrs["zg_b"][k])
            records.append({"class_id": row.class_id, "image_a": row.image_a, "image_b": row.image_b,
                            "error_px_a": err_a, "error_px_b": err_b, "ratio": ratio})
        bar.update(len(chunk))
    bar.close()
    result = pd.DataFrame(records)
    summary = summarize(result)
    analysis.save_table(result, "pairs")
    analysis.save_table(summary, "summary")
    analysis.save_figure(plot(result, args.method, args.split), "ratios")
    print(f"{args.method}, split {args.split}: error-region ratio {summary.ratio_mean.iloc[0]:.3f} +/- "
          f"{summary.ratio_std.iloc[0]:.3f} over {summary.defined.iloc[0]} pairs ({summary.undefined.iloc[0]} "
          f"undefined: no error region or zero ground-truth product); outputs in {analysis.out}")
    return summary


def summarize(result: pd.DataFrame) -> pd.DataFrame:
    defined = result.ratio.dropna()
    return pd.DataFrame([{"pairs": len(result), "defined": len(defined), "undefined": len(result) - len(defined),
                          "ratio_mean": defined.mean() if len(defined) else np.nan,
                          "ratio_std": defined.std() if len(defined) > 1 else np.nan,
                          "ratio_median": defined.median() if len(defined) else np.nan}])


def plot(result: pd.DataFrame, method: str, split: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ratios = result.ratio.dropna()
    ax.hist(ratios, bins=40, color="tab:blue", alpha=0.8)
    if len(ratios):
        ax.axvline(ratios.mean(), color="black", linestyle="--", label=f"mean {ratios.mean():.2f}")
    ax.axvline(0.87, color="tab:red", linestyle=":", label="paper (CANet, PASCAL): 0.87")
    ax.set_xlabel("(Ze(A) . Ze(B)) / (Zg(A) . Zg(B))")
    ax.set_ylabel("pairs")
    ax.set_title(f"error-region similarity, {method}, split {split}")
    ax.legend()
    return fig
