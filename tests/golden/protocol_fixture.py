"""Reading the protocol fixtures: per-episode pixel counts of the authors' own test pipelines (HSNet, Min,
Kang, Cho, ICCV 2021; PFENet, Tian et al., TPAMI 2020) run end to end on `fixtures/voc-sized` with the
episodes of `fixtures/voc-sized-manifests` (made by tests/golden/make_protocol_{hsnet,pfenet}.py), and the
harness's counts on the same episodes for comparison.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Tuple

import pandas as pd

from analyses.metrics import COUNT_COLUMNS
from bench.data.episodes import read_manifest

FIXTURES = Path(__file__).parent / "fixtures"
MANIFESTS = FIXTURES / "voc-sized-manifests"


def voc_sized_root() -> Tuple[Path, Path]:
    """The committed VOC-layout tree and its split lists (val/fold0.txt, trn/fold0.txt)."""
    root = FIXTURES / "voc-sized"
    return root, root / "lists"


def manifests() -> Dict[int, pd.DataFrame]:
    """The episode manifests by shot (split 1, seed 0, 10 episodes each)."""
    frames = [read_manifest(path) for path in sorted(MANIFESTS.glob("*.csv"))]
    return {int(frame["shot"].iloc[0]): frame for frame in frames}


def load(name: str) -> Tuple[Dict, Dict[str, pd.DataFrame], Dict[int, pd.DataFrame]]:
    """(meta, counts per configuration, manifests by shot) of `fixtures/NAME.json` ('protocol-hsnet',
    'protocol-pfenet'). Counts: a DataFrame per configuration with `episode`, `class_id`, `query` and
    COUNT_COLUMNS, in manifest order; a configuration names its shot in `meta['configurations']`."""
    record = json.loads((FIXTURES / f"{name}.json").read_text())
    counts = {}
    for config, rows in record["counts"].items():
        frame = pd.DataFrame([[r["episode"], r["class_id"], r["query"], *r["counts"]] for r in rows],
                             columns=["episode", "class_id", "query", *COUNT_COLUMNS])
        counts[config] = frame
    return record["meta"], counts, manifests()


def episode_record(row, counts) -> Dict:
    """One episode of a fixture: its manifest row's identity and [fg_inter, fg_union, bg_inter, bg_union]."""
    return {"episode": int(row.episode), "class_id": int(row.class_id), "query": str(row.query),
            "counts": [int(c) for c in counts]}


def harness_counts(method, manifest: pd.DataFrame, eval_size: Optional[int], input_size: int) -> pd.DataFrame:
    """The harness's current pipeline on the fixture: `evaluate_manifest` on an ImageStore of the voc-sized
    tree at `input_size`, scored at `eval_size` (None: original size)."""
    from bench.data.voc import open_pascal5i
    from bench.data.images import ImageStore
    from bench.evaluation.loop import evaluate_manifest
    from bench.evaluation.protocol import ScoringProtocol

    root, lists = voc_sized_root()
    store = ImageStore(open_pascal5i(root, lists), input_size)
    return evaluate_manifest(method, store, manifest, ScoringProtocol(eval_size=eval_size), batch_size=1, quiet=True)


def compare(theirs: pd.DataFrame, ours: pd.DataFrame) -> Dict:
    """Episodes whose counts differ, the largest difference as % of the episode's pixels, mIoU both ways
    (per-class IoU from summed counts, mean over the classes present)."""
    cols = list(COUNT_COLUMNS)
    a, b = theirs[cols].to_numpy(), ours[cols].to_numpy()
    pixels = a[:, 1] + a[:, 2]  # fg_union + bg_inter: every scored (non-void) pixel
    diff = abs(a - b).max(axis=1)

    def miou(frame):
        sums = frame.groupby("class_id")[["fg_inter", "fg_union"]].sum()
        return float((sums["fg_inter"] / sums["fg_union"].clip(lower=1)).mean() * 100)
    return {"differing": int((diff > 0).sum()), "max_diff_pct": float((100 * diff / pixels).max()),
            "miou_authors": miou(theirs), "miou_harness": miou(ours)}
