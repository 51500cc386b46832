"""`bench report`: one self-contained HTML page from a run directory's saved files (no model is run)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader

from analyses.registry import report_sections
from analyses.stats import bootstrap_table, check_resamples, paired_table
from analyses.summary import class_iou_table, collapse_warnings, collapsed_cells, summarize
from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_text, check_writable_target, sha256_file
from bench.data.catalog import open_dataset
from bench.data.episodes import read_manifest, support_ids
from bench.evaluation.qualitative import KINDS, load_qualitative
from bench.runs.cells import Cell
from bench.runs.config import learned_methods
from bench.runs.results import load_results, load_runs
from bench.runs.rundir import RERUN, RunDir, time_per_method
from reports import plots
from reports.paper import TABLE5_NAMES, paper_value

#: the floor a learned method must beat: a learned method at or below it on a split is flagged
FLOOR = "all-foreground"
ABLATIONS = ["canet", "simpropnet-dpr", "simpropnet-fbaf", "simpropnet-dpr-fbaf", "simpropnet"]


def load_run(run_dir: Path) -> Dict:
    """The run's verified results, with summaries recomputed at full precision from its episodes, as
    `bench run` prints them (summary.csv is rounded to 4 decimals and is not read)."""
    results = load_runs(run_dir) if isinstance(run_dir, list) else load_results(run_dir)  # --runs: merged
    episodes = results.episodes
    return {"dir": results.path, "config": results.config, "summary": summarize(episodes), "episodes": episodes,
            "class_iou": class_iou_table(episodes), "metas": results.metas}


def paper_table(summary: pd.DataFrame, metric: str, table: str, on_pascal: bool, methods: List[str],
                collapsed: Optional[pd.DataFrame] = None) -> Dict:
    """Rows of the Table 3 / 4 layout: ours (mean +/- std) and, on PASCAL-5i, the paper's with the difference;
    cells of `collapsed` (method, split, shot) are flagged."""
    flagged = set() if collapsed is None else {(r.method, str(r.split), r.shot) for r in collapsed.itertuples()}
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
                train_std = cells[f"{metric}_train_std"].get(split, np.nan) if f"{metric}_train_std" in cells else np.nan
                paper = paper_value(table, method, metric, shot, split) if on_pascal else None
                row["cells"].append({"mean": mean, "std": std, "train_std": float(train_std), "paper": paper,
                                     "diff": None if paper is None or np.isnan(mean) else mean - paper,
                                     "collapsed": (method, split, shot) in flagged})
            rows.append(row)
    return {"splits": splits, "rows": rows}


def ablation_table(summary: pd.DataFrame, on_pascal: bool, methods: List[str]) -> Optional[Dict]:
    present = [m for m in methods if m in ABLATIONS and m in set(summary.method)]
    if len(present) < 2 or 1 not in set(summary.shot):
        return None
    table = paper_table(summary[summary.shot == 1], "miou", "table5", on_pascal, present)
    for row in table["rows"]:
        row["label"] = TABLE5_NAMES[row["method"]]
    return table


def class_tables(class_iou: Optional[pd.DataFrame], names: Dict[str, str], methods: List[str]) -> List[Dict]:
    if class_iou is None or class_iou.empty:
        return []
    out = []
    for (split, shot), group in class_iou.groupby(["split", "shot"], sort=True):
        wide = group.pivot(index="method", columns="class_id", values="iou")
        wide = wide.reindex([m for m in methods if m in wide.index] + sorted(set(wide.index) - set(methods)))
        out.append({"split": split, "shot": shot, "classes": [names.get(str(c), str(c)) for c in wide.columns],
                    "rows": [{"method": m, "values": list(wide.loc[m])} for m in wide.index]})
    return out


def qualitative_sections(run: Dict, methods: List[str], per_class: int = len(KINDS)) -> List[Dict]:
    """Figures 4/5-style panels, split by split and methods in order: per class, the first `per_class` of
    the best, worst and random episodes that `bench run` saved (qualitative/*.npz), drawn over the
    dataset's images (a note instead if the dataset is not available)."""
    run_dir = RunDir(run["dir"])
    rank = {method: k for k, method in enumerate(methods)}
    saved = sorted((m for m in run["metas"] if run_dir.qualitative_path(Cell.of(m["method"], m["cell"], m.get("train_seed"))).is_file()),
                   key=lambda m: (Cell.of(m["method"], m["cell"], m.get("train_seed")).split, rank.get(m["method"], len(rank)), m["method"]))
    if not saved or per_class == 0:
        return []
    config, dataset_info = run["config"]["config"], run["config"]["dataset"]
    try:
        dataset = open_dataset(dataset_info["name"], dataset_info.get("root") or config.get("data_root"), config.get("lists"))
    except BenchError as exc:
        return [{"title": "qualitative results", "error": f"dataset not available to draw images: {exc}"}]
    names = dataset_info.get("class_names", {})
    images: Dict[str, np.ndarray] = {}

    def picture(image_id: str) -> np.ndarray:  # a query or support shown for several methods is decoded once
        if image_id not in images:
            images[image_id] = dataset.read_image(image_id)
        return images[image_id]

    sections = []
    for meta in saved:
        table, masks = checked_qualitative(run_dir, meta)
        order = table.assign(rank=table.kind.map({kind: k for k, kind in enumerate(KINDS)}))
        order = order.sort_values(["class_id", "rank"], kind="stable")
        cards = []
        for k in order.groupby("class_id", sort=True).head(per_class).index:
            row = table.loc[k]
            support, class_id = support_ids(row.supports)[0], int(row.class_id)
            strip = plots.qualitative_strip(
                picture(support), dataset.binary_mask(dataset.read_label(support), class_id) == 1, picture(row.query),
                dataset.binary_mask(dataset.read_label(row.query), class_id) == 1, masks[k])
            cards.append({"class": names.get(str(class_id), str(class_id)), "kind": row.kind, "iou": 100 * row.iou,
                          "image": strip})
        cell = Cell.of(meta["method"], meta["cell"], meta.get("train_seed"))
        trained = "" if cell.train_seed is None else f" (training seed {cell.train_seed})"
        sections.append({"title": f"split {cell.split}: {cell.method}{trained}", "cell": cell.manifest, "cards": cards})
    return sections


def checked_qualitative(run_dir: RunDir, meta: Dict):
    """A cell's saved predictions, refused unless they are the ones the cell recorded and show episodes of
    its manifest (so a replaced file cannot make the report read other images)."""
    path = run_dir.qualitative_path(Cell.of(meta["method"], meta["cell"], meta.get("train_seed")))
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
    for name, title in report_sections().items():
        for folder in sorted((run_dir / "analyses").glob(f"{name}*")):
            qualifier = folder.name[len(name):]  # "" or "-split1-canet": one folder per split / method
            if folder.is_dir() and (not qualifier or qualifier.startswith("-")):
                sections.append(analysis_section(folder, f"{title} {qualifier[1:]}".strip()))
    return sections


def analysis_section(folder: Path, title: str) -> Dict:
    images = [plots.file_uri(p) for p in sorted(folder.glob("*.png"))]
    tables = []
    for csv in sorted(folder.glob("*.csv")):
        try:
            frame = pd.read_csv(csv)
        except (ValueError, UnicodeDecodeError, OSError) as exc:  # pandas' parser errors are ValueErrors
            raise BenchError(f"analysis table {csv} cannot be read ({type(exc).__name__}); remove it or write it "
                             "again with its analysis") from None
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


def reference_method(methods: List[str], learned: List[str], reference: Optional[str] = None) -> str:
    """The method every other one is compared with: `reference` if given (one of the run's methods), else
    SimPropNet, else the first of the `learned` methods, else the first one."""
    if reference is not None:
        if reference not in methods:
            raise BenchError(f"--reference {reference} is not a method of this run "
                             f"(its methods: {', '.join(methods)})")
        return reference
    return "simpropnet" if "simpropnet" in methods else (learned[0] if learned else methods[0])


def render_report(run_dir: Path, out: Optional[Path] = None, resamples: int = 1000, reference: Optional[str] = None,
                  qualitative: int = len(KINDS)) -> Path:
    """Write the report of a run (default <run>/report.html) and print its warnings (a collapsed training)."""
    check_resamples(resamples)
    if not 0 <= qualitative <= len(KINDS):
        raise BenchError(f"--qualitative must be 0 to {len(KINDS)} (bench run saves the {', '.join(KINDS)} episode of "
                         f"each class), got {qualitative}")
    out = Path(out or Path(run_dir) / "report.html")
    if out.is_dir():
        raise BenchError(f"--out {out} is a folder; give the report's file name, e.g. {out / 'report.html'}")
    check_writable_target(out)  # before the work; the write checks again
    run = load_run(run_dir)
    summary, episodes = run["summary"], run["episodes"]
    methods = list(dict.fromkeys(run["config"]["config"]["methods"]))
    learned = learned_methods(run["config"])  # from the record: a plugin's method needs no code here
    reference = reference_method(methods, learned, reference)
    on_pascal = run["config"]["dataset"]["name"] == "pascal5i"
    identical = bool(run["config"]["config"].get("identical_input"))
    collapsed = collapsed_cells(summary, learned, FLOOR)
    warnings = collapse_warnings(summary, learned, FLOOR)
    boot = bootstrap_table(episodes, resamples, methods)
    paired = paired_table(episodes, reference, resamples, methods) if len(methods) > 1 else pd.DataFrame()
    # every string from data (paths, names, config values) is escaped; only our own markup is marked safe
    env = Environment(loader=PackageLoader("reports", "templates"), autoescape=True)
    html = env.get_template("report.html.j2").render(
        run_dir=str(run["dir"]), config=run["config"], methods=methods, on_pascal=on_pascal, identical=identical,
        table3=paper_table(summary, "miou", "table6" if identical else "table3", on_pascal, methods, collapsed),
        table4=None if identical else paper_table(summary, "fbiou", "table4", on_pascal, methods),
        table5=None if identical else ablation_table(summary, on_pascal, methods),
        class_tables=class_tables(run["class_iou"], run["config"]["dataset"].get("class_names", {}), methods),
        boot=boot.to_dict("records"), bars=plots.miou_bars(boot), paired=paired.to_dict("records"),
        reference=reference, qualitative=qualitative_sections(run, methods, qualitative), per_class=qualitative,
        kinds=KINDS[:qualitative], outlines=plots.OUTLINES, panel_height=plots.PANEL_HEIGHT,
        analyses=analyses_sections(run["dir"]), provenance=provenance(run), fmt=_fmt, resamples=resamples,
        warnings=warnings, floor=FLOOR, floor_present=FLOOR in methods, learned=learned)
    atomic_write_text(out, html)
    for line in warnings:
        print(line)
    return out


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"
