"""What `python -m analyses.error_overlap` runs (its options and documentation: analyses/error_overlap.py)."""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from analyses.common import Analysis, open_analysis
from bench.core.errors import BenchError
from bench.core.progress import progress_bar
from bench.data.base import IGNORE
from bench.data.episodes import EpisodeSpec, sample_episodes
from bench.data.images import ImageStore, build_batch, normalize
from bench.training.supervised import deeplab_pascal, train_synthetic_supervised

COUNTS = ["gt", "tp_fss", "tp_sup", "fn_fss", "fn_sup", "fn_both", "fp_fss", "fp_sup", "fp_both"]


def region_counts(pred_fss: torch.Tensor, pred_sup: torch.Tensor, target: torch.Tensor) -> dict:
    """Pixel counts of one episode: boolean predictions and a {0, 1, 255} target of the same size."""
    valid = target != IGNORE
    gt = (target == 1) & valid
    fn_fss, fn_sup = gt & ~pred_fss, gt & ~pred_sup
    fp_fss, fp_sup = valid & ~gt & pred_fss, valid & ~gt & pred_sup
    return {"gt": int(gt.sum()), "tp_fss": int((gt & pred_fss).sum()), "tp_sup": int((gt & pred_sup).sum()),
            "fn_fss": int(fn_fss.sum()), "fn_sup": int(fn_sup.sum()), "fn_both": int((fn_fss & fn_sup).sum()),
            "fp_fss": int(fp_fss.sum()), "fp_sup": int(fp_sup.sum()), "fp_both": int((fp_fss & fp_sup).sum())}


def _figures(t) -> dict:
    """The overlap figures (percent) of summed counts `t` (a mapping of COUNTS to numbers or arrays)."""
    def pct(num, den):
        num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
        return 100.0 * np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)

    return {"fn_overlap": pct(t["fn_both"], t["fn_fss"] + t["fn_sup"] - t["fn_both"]),
            "fp_overlap": pct(t["fp_both"], t["fp_fss"] + t["fp_sup"] - t["fp_both"]),
            "tp_gap": pct(t["tp_sup"] - t["tp_fss"], t["gt"]),
            "fn_shared_by_supervised": pct(t["fn_both"], t["fn_fss"]),
            "fp_shared_by_supervised": pct(t["fp_both"], t["fp_fss"]),
            "fss_fg_recall": pct(t["tp_fss"], t["gt"]), "supervised_fg_recall": pct(t["tp_sup"], t["gt"])}


def overlap_table(counts: pd.DataFrame) -> dict:
    """Pooled overlap figures (percent) from per-episode region counts."""
    return {k: float(v) for k, v in _figures(counts[COUNTS].sum().to_dict()).items()}


def overlap_intervals(counts: pd.DataFrame, resamples: int = 1000, seed: int = 0) -> dict:
    """95% percentile bootstrap intervals of the pooled figures (`<figure>_ci_low` / `_ci_high`): the distinct
    (query image, class) pairs resampled with replacement, each bringing its episodes, as analyses.stats does;
    `bench reproduce` reads them for the claims on these figures."""
    codes = counts.groupby(["query", "class_id"], sort=True).ngroup().to_numpy()
    n = int(codes.max()) + 1
    draws = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples)[:, codes]
    totals = {k: draws @ counts[k].to_numpy(float) for k in COUNTS}
    out = {}
    for name, samples in _figures(totals).items():
        low, high = np.nanpercentile(samples, [2.5, 97.5]) if np.isfinite(samples).any() else (np.nan, np.nan)
        out.update({f"{name}_ci_low": float(low), f"{name}_ci_high": float(high)})
    return out


def supervised_model(analysis: Analysis):
    if analysis.dataset.name.startswith("synthetic"):
        weights = analysis.models.backbone_options()["backbone_weights"]
        return train_synthetic_supervised(analysis.dataset, weights, analysis.models.root, analysis.input_size,
                                          quiet=analysis.args.quiet), analysis.input_size
    if analysis.dataset.name == "pascal5i":
        return deeplab_pascal(analysis.args.supervised_weights), 520
    raise BenchError(f"no supervised reference model for dataset {analysis.dataset.name}")


def run(args: argparse.Namespace) -> pd.DataFrame:
    analysis = open_analysis(args, "error_overlap", f"-split{args.split}-{args.method}")
    method, _ = analysis.models.get(args.method, args.split)
    supervised, sup_size = supervised_model(analysis)
    with torch.no_grad():
        counts = episode_counts(analysis, method.eval(), supervised.to(analysis.device), sup_size)
    figures = overlap_table(counts)
    result = pd.DataFrame([{"method": args.method, "split": args.split, "episodes": len(counts), **figures,
                            **overlap_intervals(counts)}])
    analysis.save_table(counts, "episodes")
    analysis.save_table(result, "overlap")
    analysis.save_figure(plot(figures, args.method, args.split), "overlap")
    print(result.round(2).to_string(index=False))
    print(f"outputs in {analysis.out}")
    return result


def episode_counts(analysis: Analysis, method, supervised, sup_size: int) -> pd.DataFrame:
    dataset = analysis.dataset
    manifest = sample_episodes(dataset, EpisodeSpec(analysis.args.split, 1, analysis.args.seed, analysis.args.episodes))
    store, sup_store = ImageStore(dataset, analysis.input_size), ImageStore(dataset, sup_size)
    rows = []
    bar = progress_bar(total=len(manifest), desc="episodes", quiet=analysis.args.quiet, unit="ep")
    for start in range(0, len(manifest), 16):
        chunk = manifest.iloc[start:start + 16]
        batch = build_batch(store, chunk).to(analysis.device)
        logits = method(batch.query, batch.supports, batch.support_masks)
        sup_logits = supervised(normalize(torch.stack([sup_store.image(q) for q in chunk["query"]])).to(analysis.device))
        for k, row in enumerate(chunk.itertuples(index=False)):
            target = torch.as_tensor(store.mask(row.query, row.class_id)).long()
            size = tuple(target.shape)
            fss = F.interpolate(logits[k:k + 1].float(), size=size, mode="bilinear", align_corners=False)[0]
            sup = F.interpolate(sup_logits[k:k + 1].float(), size=size, mode="bilinear", align_corners=False)[0]
            rows.append({"episode": row.episode, "class_id": row.class_id, "query": row.query,
                         **region_counts((fss[1] > fss[0]).cpu(), (sup.argmax(0) == row.class_id).cpu(), target)})
        bar.update(len(chunk))
    bar.close()
    return pd.DataFrame(rows)


def plot(figures: dict, method: str, split: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["fn_overlap", "fp_overlap", "tp_gap"]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(["FN overlap", "FP overlap", "TP gap"], [figures[n] for n in names], color=["tab:red", "tab:orange", "tab:blue"])
    ax.set_ylabel("%")
    ax.set_title(f"{method} vs supervised, split {split}")
    ax.grid(axis="y", alpha=0.3)
    return fig
