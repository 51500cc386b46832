"""`bench report`: one self-contained HTML page from a run directory's saved files (no model is run)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader

from analyses.summary import class_iou_table, summarize
from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_text, sha256_file
from bench.data.catalog import open_dataset
from bench.data.episodes import read_manifest, support_ids
from bench.evaluation.qualitative import load_qualitative
from bench.runs.cells import Cell
from bench.runs.results import load_results
from bench.runs.rundir import RERUN, RunDir, time_per_method
from reports import plots
from reports.paper import TABLE5_NAMES, paper_value
from reports.stats import bootstrap_table, paired_table

ABLATIONS = ["canet", "simpropnet-dpr", "simpropnet-fbaf", "simpropnet-dpr-fbaf", "simpropnet"]
ANALYSES = {"similarity": "FG vs BG similarity (Figure 3)", "tsne": "tSNE of MAP vectors (Figure 6)",
            "error_regions": "Error-region similarity (Section 3.1)", "error_overlap": "Error overlap (Table 1)",
            "identical": "Identical input (Tables 2 and 6)", "protocol": "Protocol sensitivity",
            "context": "FBAF gain vs background context (Figure 3's premise)"}


def load_run(run_dir: Path) -> Dict:
    """The run's verified results, with summaries recomputed at full precision from its episodes, as
    `bench run` prints them (summary.csv is rounded to 4 decimals and is not read)."""
    results = load_results(run_dir)
    episodes = results.episodes
    return {"dir": results.path, "config": results.config, "summary": summarize(episodes), "episodes": episodes,
            "class_iou": class_iou_table(episodes), "metas": results.metas}


def paper_table(summary: pd.DataFrame, metric: str, table: str, on_pascal: bool, methods: List[str]) -> Dict:
    """Rows of the Table 3 / 4 layout: ours (mean +/- std) and, on PASCAL-5i, the paper's with the difference."""
    splits = sorted(s for s in summary.split.unique() if s != "mean") + ["mean"]
    rows = []
    for shot in sorted(summary.shot.unique()):
        for method in methods:
            cells = summary[(summary.method == method) & (summary.shot == shot)].set_index("split")
            if cells.empty:
                continue
            row = {"method": method, "shot": shot, "cells": []}
            for split in splits:
                mean = cells[f"{metric}_mean"].get(split, np.nan)
                std = cells[f"{metric}_std"].get(split, np.nan)
                paper = paper_value(table, method, metric, shot, split) if on_pascal else None
                row["cells"].append({"mean": mean, "std": std, "paper": paper,
                                     "diff": None if paper is None or np.isnan(mean) else mean - paper})
            rows.append(row)
    return {"splits": splits, "rows": rows}


def ablation_table(summary: pd.DataFrame, on_pascal: bool) -> Optional[Dict]:
    present = [m for m in ABLATIONS if m in set(summary.method)]
    if len(present) < 2 or 1 not in set(summary.shot):
        return None
    table = paper_table(summary[summary.shot == 1], "miou", "table5", on_pascal, present)
    for row in table["rows"]:
        row["label"] = TABLE5_NAMES[row["method"]]
    return table


def class_tables(class_iou: Optional[pd.DataFrame], names: Dict[str, str]) -> List[Dict]:
    if class_iou is None or class_iou.empty:
        return []
    out = []
    for (split, shot), group in class_iou.groupby(["split", "shot"], sort=True):
        wide = group.pivot(index="method", columns="class_id", values="iou")
        out.append({"split": split, "shot": shot, "classes": [names.get(str(c), str(c)) for c in wide.columns],
                    "rows": [{"method": m, "values": list(wide.loc[m])} for m in wide.index]})
    return out


def qualitative_sections(run: Dict, limit: int = 6) -> List[Dict]:
    """Figures 4/5-style panels from qualitative/*.npz and the dataset's images (skipped if unavailable)."""
    run_dir = RunDir(run["dir"])
    saved = [m for m in run["metas"] if run_dir.qualitative_path(Cell.of(m["method"], m["cell"])).is_file()]
    if not saved:
        return []
    config, dataset_info = run["config"]["config"], run["config"]["dataset"]
    try:
        dataset = open_dataset(dataset_info["name"], dataset_info.get("root") or config.get("data_root"), config.get("lists"))
    except BenchError as exc:
        return [{"title": "qualitative results", "error": f"dataset not available to draw images: {exc}"}]
    sections = []
    for meta in saved:
        method, cell = meta["method"], meta["cell"]
        table, masks = checked_qualitative(run_dir, meta)
        order = table.assign(rank=table.kind.map({"best": 0, "worst": 1, "random": 2})).sort_values(["rank", "class_id"])
        items = []
        for k in list(order.index)[:limit]:
            row = table.loc[k]
            support = support_ids(row.supports)[0]
            items.append((f"{row.kind}, IoU {100 * row.iou:.0f}", dataset.read_image(support),
                          dataset.binary_mask(dataset.read_label(support), int(row.class_id)) == 1,
                          dataset.read_image(row.query),
                          dataset.binary_mask(dataset.read_label(row.query), int(row.class_id)) == 1, masks[k]))
        sections.append({"title": f"{method}, {cell}", "image": plots.qualitative_figure(items)})
    return sections


def checked_qualitative(run_dir: RunDir, meta: Dict):
    """A cell's saved predictions, refused unless they are the ones the cell recorded and show episodes of
    its manifest (so a replaced file cannot make the report read other images)."""
    path = run_dir.qualitative_path(Cell.of(meta["method"], meta["cell"]))
    recorded = meta.get("qualitative_sha256")
    if recorded is not None and sha256_file(path) != recorded:
        raise BenchError(f"{path} does not match the hash its cell recorded (changed or damaged): {RERUN}")
    table, masks = load_qualitative(path)
    manifest = read_manifest(run_dir.manifest_path(meta["cell"])).set_index("episode")
    for row in table.itertuples(index=False):
        if (row.episode not in manifest.index or manifest.loc[row.episode, "query"] != row.query
                or manifest.loc[row.episode, "supports"] != row.supports):
            raise BenchError(f"{path} shows episode {row.episode}, which is not that episode of the manifest: "
                             f"{RERUN}")
    return table, masks


def analyses_sections(run_dir: Path) -> List[Dict]:
    sections = []
    for name, title in ANALYSES.items():
        for folder in sorted((run_dir / "analyses").glob(f"{name}*")):
            qualifier = folder.name[len(name):]  # "" or "-split1-canet": one folder per split / method
            if folder.is_dir() and (not qualifier or qualifier.startswith("-")):
                sections.append(analysis_section(folder, f"{title} {qualifier[1:]}".strip()))
    return sections


def analysis_section(folder: Path, title: str) -> Dict:
    images = [plots.file_uri(p) for p in sorted(folder.glob("*.png"))]
    tables = []
    for csv in sorted(folder.glob("*.csv")):
        frame = pd.read_csv(csv)
        if len(frame) <= 40:
            tables.append({"name": csv.stem, "html": frame.round(3).to_html(index=False, classes="data", border=0)})
    return {"title": title, "images": images, "tables": tables}


def protocol_of(config: Dict) -> str:
    """The fold convention, query protocol and sampling of a run written before config.json kept its header."""
    folds = config.get("fold_convention") or "the dataset's only one"
    return (f"fold convention {folds}; queries "
            f"{config.get('queries') or 'sampled'}, class sampling {config.get('class_sampling') or 'list'}, "
            f"{config.get('episodes')} episodes")


def provenance(run: Dict) -> Dict:
    config = run["config"]
    methods = list(dict.fromkeys(config["config"]["methods"]))
    times = time_per_method(run["metas"], methods).round(1)
    walls = {row.method: {"evaluation": row.evaluation_s, "training": None if pd.isna(row.training_s) else row.training_s,
                          "checkpoints": row.checkpoints} for row in times.itertuples()}
    policies = sorted({str(m.get("select_on")) for m in run["metas"] if m.get("select_on")})
    checkpoints = {}
    for meta in run["metas"]:
        if meta.get("checkpoint"):
            checkpoints[meta["checkpoint"]] = {"sha256": meta.get("checkpoint_sha256"),
                                               "validation miou": meta.get("checkpoint_val_miou"),
                                               "best epoch": meta.get("checkpoint_best_epoch"),
                                               "training s": meta.get("checkpoint_train_seconds"),
                                               "selected on": meta.get("select_on")}
    return {"config": json.dumps(config["config"], indent=2), "environment": config["environment"],
            "protocol": config.get("protocol") or protocol_of(config["config"]),
            "dataset": config["dataset"], "manifests": config["manifests"], "walls": walls,
            "selection": policies or ["(no learned method)"], "checkpoints": checkpoints}


def render_report(run_dir: Path, out: Optional[Path] = None, resamples: int = 1000) -> Path:
    if resamples < 1:
        raise BenchError(f"--resamples must be >= 1, got {resamples}")
    out = Path(out or Path(run_dir) / "report.html")
    if out.is_dir():
        raise BenchError(f"--out {out} is a folder; give the report's file name, e.g. {out / 'report.html'}")
    run = load_run(run_dir)
    summary, episodes = run["summary"], run["episodes"]
    methods = list(dict.fromkeys(run["config"]["config"]["methods"]))
    on_pascal = run["config"]["dataset"]["name"] == "pascal5i"
    identical = bool(run["config"]["config"].get("identical_input"))
    boot = bootstrap_table(episodes, resamples)
    learned = [m for m in methods if m not in ("support-copy", "all-foreground")]
    reference = "simpropnet" if "simpropnet" in methods else (learned[0] if learned else methods[0])
    paired = paired_table(episodes, reference, resamples) if len(methods) > 1 else pd.DataFrame()
    # every string from data (paths, names, config values) is escaped; only our own markup is marked safe
    env = Environment(loader=PackageLoader("reports", "templates"), autoescape=True)
    html = env.get_template("report.html.j2").render(
        run_dir=str(run["dir"]), config=run["config"], methods=methods, on_pascal=on_pascal, identical=identical,
        table3=paper_table(summary, "miou", "table6" if identical else "table3", on_pascal, methods),
        table4=None if identical else paper_table(summary, "fbiou", "table4", on_pascal, methods),
        table5=None if identical else ablation_table(summary, on_pascal),
        class_tables=class_tables(run["class_iou"], run["config"]["dataset"].get("class_names", {})),
        boot=boot.to_dict("records"), bars=plots.miou_bars(boot), paired=paired.to_dict("records"),
        reference=reference, qualitative=qualitative_sections(run), analyses=analyses_sections(run["dir"]),
        provenance=provenance(run), fmt=_fmt, resamples=resamples)
    atomic_write_text(out, html)
    return out


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"
