"""device.json and device.md of `python -m bench.benchmarks.device`: the record as measured, and its tables."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List


def _cell(value) -> str:
    return "-" if value is None else str(value)


def _table(header: List[str], rows: List[List]) -> List[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]]


def _comparison_rows(name: str, figures: Dict) -> List:
    if "error" in figures:
        return [name, "-", "-", "-", "-", "-", figures["error"], "-"]
    settings = " vs ".join(f"{s['device']} {s['precision']}" for s in figures.get("settings", []))
    return [name, settings, figures.get("episodes"), figures.get("identical"),
            f"{_cell(figures.get('changed_pixels_median'))} / {_cell(figures.get('changed_pixels_p90'))} / "
            f"{_cell(figures.get('changed_pixels_max'))}",
            f"{_cell(figures.get('miou_first'))} / {_cell(figures.get('miou_second'))}",
            " / ".join(_cell(v) for v in figures.get("episodes_per_s", [])), _cell(figures.get("changed_fraction_max"))]


def _same(figures: Dict) -> str:
    if not figures["cache_applies"]:
        return "no cache (native resolution)"
    compared = figures["cached_vs_uncached"]
    return (f"{compared.get('identical')}/{compared.get('episodes')} identical, "
            f"max {compared.get('changed_pixels_max')} px")


def markdown(record: Dict) -> str:
    parts = record["parts"]
    lines = [f"# Device check: {record['device']}" + (f" ({record['gpu']})" if record.get("gpu") else ""), "",
             f"torch {record['torch']}; " + ("no GPU visible: every part ran in its reduced form." if record["reduced"]
                                            else "full form."), "", "## Parts", ""]
    lines += _table(["part", "status", "wall s", "budget s", "note"],
                    [[name, p["status"], p.get("wall_s"), record["budgets_s"].get(name),
                      p.get("error") or p.get("note") or ""] for name, p in parts.items()])
    for name in ("tests", "main_job"):
        if parts.get(name, {}).get("command"):
            lines += ["", f"`{name}`: `{parts[name]['command']}`", "", "```", *parts[name].get("tail", []), "```"]
    if "speed" in parts and "error" not in parts["speed"]:
        rows = []
        for work, figures in parts["speed"].items():
            if not isinstance(figures, dict) or "uncached" not in figures:
                continue
            for mode in ("uncached", "cached"):
                if mode in figures:
                    f = figures[mode]
                    rows.append([work, mode, f["episodes"], f["seconds"], f["episodes_per_s"], f["peak_gpu_mib"],
                                 f["gpu_utilisation"], _same(figures)])
        lines += ["", "## Speed (random weights)", ""]
        lines += _table(["workload", "mode", "episodes", "s", "episodes/s", "peak GPU MiB", "GPU util %",
                         "cached vs uncached counts"], rows)
    rows = []
    if "counts" in parts and "error" not in parts["counts"]:
        rows.append(_comparison_rows("counts", parts["counts"]))
    for precision, figures in parts.get("precision", {}).items():
        if isinstance(figures, dict):
            rows.append(_comparison_rows(precision, figures))
    trained = parts.get("precision", {}).get("main job bf16", {})
    if "miou_by_shot" in trained:
        lines += ["", f"Trained main job at bf16 against fp32 (`{trained['command']}`): "
                  + "; ".join(f"{shot}-shot mIoU {v['miou_fp32']} (fp32) / {v['miou_bf16']} (bf16)"
                              for shot, v in trained["miou_by_shot"].items()) + "."]
    if rows:
        lines += ["", "## Per-episode counts compared (HSNet random weights; the trained main job)", "",
                  "Changed pixels: |d fg_inter| + |d bg_inter| per episode (a lower bound of flipped predictions), "
                  "median / p90 / max.", ""]
        lines += _table(["comparison", "settings", "episodes", "identical", "changed pixels", "mIoU %",
                         "episodes/s", "max fraction"], rows)
    return "\n".join(lines) + "\n"


def write_report(record: Dict, out: Path) -> None:
    (out / "device.json").write_text(json.dumps(record, indent=1, default=str))
    (out / "device.md").write_text(markdown(record))
