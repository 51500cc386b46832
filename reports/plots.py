"""Matplotlib figures of a report, returned as base64 PNG data URIs (self-contained HTML)."""
from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def data_uri(figure) -> str:
    plt = _pyplot()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def file_uri(path) -> str:
    return "data:image/png;base64," + base64.b64encode(open(path, "rb").read()).decode()


def miou_bars(boot: pd.DataFrame) -> str:
    """Mean-over-splits is not bootstrapped; bars show each split's pooled mIoU with its 95% interval."""
    plt = _pyplot()
    shots = sorted(boot.shot.unique())
    methods = list(dict.fromkeys(boot.method))
    splits = sorted(boot.split.unique())
    fig, axes = plt.subplots(1, len(shots), figsize=(5.5 * len(shots), 3.6), squeeze=False, sharey=True)
    width = 0.8 / max(len(methods), 1)
    palette = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20").colors  # distinct colours up to 20 methods
    for ax, shot in zip(axes[0], shots):
        for k, method in enumerate(methods):
            part = boot[(boot.method == method) & (boot.shot == shot)].set_index("split").reindex(splits)
            x = np.arange(len(splits)) + (k - (len(methods) - 1) / 2) * width
            ax.bar(x, part.miou, width, label=method, color=palette[k % len(palette)])
            ax.errorbar(x, part.miou, yerr=[part.miou - part.ci_low, part.ci_high - part.miou], fmt="none",
                        ecolor="black", elinewidth=0.8, capsize=2)
        ax.set_xticks(range(len(splits)))
        ax.set_xticklabels([f"split-{s}" for s in splits])
        ax.set_title(f"{shot}-shot")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("mIoU (%), 95% bootstrap CI")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return data_uri(fig)


def overlay(image: np.ndarray, mask: np.ndarray, colour) -> np.ndarray:
    out = image.astype(float).copy()
    out[mask] = 0.45 * out[mask] + 0.55 * np.array(colour, dtype=float)
    return out.astype(np.uint8)


def qualitative_figure(items) -> str:
    """items: (title, support image, support mask, query image, ground truth, prediction) rows."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(items), 3, figsize=(7.5, 2.5 * len(items)), squeeze=False)
    for row, (title, s_img, s_mask, q_img, gt, pred) in enumerate(items):
        panels = [(overlay(s_img, s_mask, (30, 144, 255)), "support + mask"),
                  (overlay(q_img, gt, (50, 205, 50)), "query + ground truth"),
                  (overlay(q_img, pred, (255, 140, 0)), f"prediction ({title})")]
        for col, (picture, label) in enumerate(panels):
            axes[row][col].imshow(picture)
            axes[row][col].set_title(label, fontsize=8)
            axes[row][col].axis("off")
    fig.tight_layout()
    return data_uri(fig)
