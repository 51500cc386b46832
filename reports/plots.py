"""Figures of a report as base64 data URIs (self-contained HTML): matplotlib charts as PNG, qualitative
panels as JPEG at display size with outlined masks."""
from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

#: height in pixels of a qualitative panel, as displayed (the JPEG is encoded at that size)
PANEL_HEIGHT = 96
JPEG_QUALITY = 60
JPEG_SUBSAMPLING = 2  # 4:2:0
#: outline colours (saturated, each drawn over a dark halo so that it stays visible on any image)
OUTLINES = {"support": (0, 220, 255), "truth": (255, 225, 0), "prediction": (255, 40, 210)}


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
            below, above = (part.miou - part.ci_low).clip(lower=0), (part.ci_high - part.miou).clip(lower=0)
            ax.errorbar(x, part.miou, yerr=[below, above], fmt="none",
                        ecolor="black", elinewidth=0.8, capsize=2)
        ax.set_xticks(range(len(splits)))
        ax.set_xticklabels([f"split-{s}" for s in splits])
        ax.set_title(f"{shot}-shot")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("mIoU (%), 95% bootstrap CI")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return data_uri(fig)


def _band(mask: np.ndarray, outside: bool, width: int = 2) -> np.ndarray:
    """The `width`-pixel boundary band of `mask`, just outside it or just inside it."""
    if outside:
        return ndimage.binary_dilation(mask, iterations=width) & ~mask
    return mask & ~ndimage.binary_erosion(mask, iterations=width)


def outlined(image: np.ndarray, layers) -> np.ndarray:
    """`image` with the boundary of each (mask, colour, outside) of `layers` drawn as a 2-pixel line in
    `colour` over a dark 1-pixel halo. A mask drawn outside and one drawn inside stay side by side where
    their boundaries coincide (ground truth outside, prediction inside)."""
    lines = [(_band(mask.astype(bool), outside), colour) for mask, colour, outside in layers]
    out = image.copy()
    for line, _ in lines:
        out[ndimage.binary_dilation(line)] = (20, 20, 20)
    for line, colour in lines:
        out[line] = colour
    return out


def _resized(image: np.ndarray, masks, height: int):
    """The image (bilinear) and its masks (nearest) at `height` pixels, aspect ratio kept."""
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    picture = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
    return picture, [np.asarray(Image.fromarray(m.astype(np.uint8)).resize((width, height), Image.NEAREST)) > 0
                     for m in masks]


def jpeg_uri(picture: np.ndarray, quality: int = JPEG_QUALITY) -> str:
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="JPEG", quality=quality, optimize=True, subsampling=JPEG_SUBSAMPLING)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def qualitative_strip(support: np.ndarray, support_mask: np.ndarray, query: np.ndarray, truth: np.ndarray,
                      prediction: np.ndarray, height: int = PANEL_HEIGHT) -> str:
    """One episode as a JPEG strip of two panels: the support with its mask, the query with the ground
    truth (outside the object) and the prediction (inside the predicted region), masks drawn as outlines
    in the colours of OUTLINES."""
    s_img, (s_mask,) = _resized(support, [support_mask], height)
    q_img, (gt, pred) = _resized(query, [truth, prediction], height)
    gap = np.full((height, 4, 3), 255, dtype=np.uint8)
    panels = [outlined(s_img, [(s_mask, OUTLINES["support"], True)]), gap,
              outlined(q_img, [(gt, OUTLINES["truth"], True), (pred, OUTLINES["prediction"], False)])]
    return jpeg_uri(np.concatenate(panels, axis=1))
