"""`bench check`: the CI regression check of mIoU against a committed baseline.

A baseline is a JSON file (under reports/baselines/) listing, per (method, dataset, split, shot), the
mIoU (mean over seeds, percent) of a reference run, with the identity of what produced it: the protocol
(dataset and its hash, grid, manifests' sha256, scoring), each method's checkpoint id (its training
recipe) and the CPU numerics settings. A run of another protocol is refused in one line (exit 2) instead of
being listed entry by entry; other numerics or another training recipe are said before the table.
The check fails (exit 1) if any entry of the baseline is missing from the run or lower by more than the
tolerance (default 1.0 mIoU), and prints a table of every entry. `--update` rewrites the baseline from
the run after showing the differences.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Tuple

import pandas as pd

from analyses.summary import summarize
from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_json, check_writable_target
from bench.runs.results import load_results
from bench.runs.verify import check_tolerance

Key = Tuple[str, str, str, int]
ENTRY_FIELDS = ("method", "dataset", "split", "shot", "miou")


def _entries(results) -> Dict[Key, float]:
    """(method, dataset, split, shot) -> mIoU, recomputed from the run's verified per-episode rows (a damaged
    or edited episodes.csv is refused by load_results, and summary.csv is never trusted)."""
    dataset = results.config["dataset"]["name"]
    summary = summarize(results.episodes)
    return {(r.method, dataset, str(r.split), int(r.shot)): float(r.miou_mean) for r in summary.itertuples()}


def run_identity(config: Dict) -> Dict:
    """What produced a run's numbers, from its config.json: the protocol (its identity without the method
    list), each method's checkpoint (its training recipe's id) and the CPU numerics settings."""
    protocol = {k: v for k, v in config.get("identity", {}).items() if k != "methods"}
    numerics = {k: v for k, v in (config.get("environment", {}).get("numerics") or {}).items() if k != "cpu"}
    return {"protocol": protocol, "checkpoints": config.get("checkpoints", {}), "numerics": numerics}


def _entry(entry: object) -> Tuple[Key, float]:
    """One baseline entry, checked: names and split are strings (split 'mean' or a number), shot an integer, miou
    a finite percentage."""
    if not isinstance(entry, dict):
        raise TypeError(f"an entry is a {type(entry).__name__}, not an object")
    missing = [k for k in ENTRY_FIELDS if k not in entry]
    if missing:
        raise KeyError(f"an entry lacks {', '.join(missing)}")
    method, dataset, split, shot, miou = (entry[k] for k in ENTRY_FIELDS)
    if not all(isinstance(v, str) for v in (method, dataset)) or not isinstance(split, (str, int)) \
            or isinstance(split, bool) or not isinstance(shot, int) or isinstance(shot, bool):
        raise TypeError(f"method, dataset and split must be strings, shot an integer, in {entry}")
    if not (isinstance(miou, (int, float)) and not isinstance(miou, bool) and math.isfinite(miou) and 0 <= miou <= 100):
        raise ValueError(f"miou must be a finite number of points from 0 to 100, got {miou!r} for "
                         f"{method} {dataset} split {split} {shot}-shot")
    return (method, dataset, str(split), shot), float(miou)


def read_baseline(path: Path) -> Tuple[Dict[Key, float], Dict]:
    """A baseline's entries and its identity ({} for a baseline written before identities); any entry that is
    not well-formed, a repeated entry or an empty list is refused (each would switch the check off)."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"baseline file not found: {path} (create it with --update)")
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            raise TypeError("it holds no list of entries")
        pairs = [_entry(e) for e in data["entries"]]
        if not pairs:
            raise ValueError("it has no entries: it would pass any run")
        entries = dict(pairs)
        if len(entries) < len(pairs):
            raise ValueError("it lists an entry twice")
        identity = data.get("identity", {})
        if not isinstance(identity, dict):
            raise TypeError("identity is not an object")
        return entries, identity
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BenchError(f"baseline {path} is not a valid baseline file ({str(exc).strip(chr(39))})") from None


def _differences(run: Dict, baseline: Dict) -> List[str]:
    """'key (run X, baseline Y)' for each top-level key whose value differs."""
    keys = sorted(set(run) | set(baseline))
    return [f"{k} (run {_short(run.get(k))}, baseline {_short(baseline.get(k))})" for k in keys
            if run.get(k) != baseline.get(k)]


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 40 else text[:37] + "..."


def identity_notes(run: Dict, baseline: Dict) -> List[str]:
    """Lines saying how the run's making differs from the baseline's; a different protocol is a BenchError."""
    if not baseline:
        return ["note: the baseline records no identity (written before identities): only the numbers are compared"]
    protocol = _differences(run["protocol"], baseline.get("protocol", {}))
    if protocol:
        raise BenchError("the run is not the baseline's configuration, so its numbers are not comparable: it differs "
                         f"in {'; '.join(protocol)}")
    notes = []
    numerics = _differences(run["numerics"], baseline.get("numerics", {}))
    if numerics:
        notes.append("note: CPU numerics differ from the baseline's, so trained methods can differ by training noise "
                     f"alone (pin them as .ci/run does): {'; '.join(numerics)}")
    recipes = _differences(run["checkpoints"], baseline.get("checkpoints", {}))
    if recipes:
        notes.append(f"note: trained with another recipe than the baseline: {'; '.join(recipes)}")
    return notes


def compare(run: Dict[Key, float], baseline: Dict[Key, float], tolerance: float) -> pd.DataFrame:
    rows = []
    for key in sorted(set(baseline) | set(run)):
        base, now = baseline.get(key), run.get(key)
        if base is None:
            status = "new"
        elif now is None:
            status = "MISSING"
        elif not now >= base - tolerance:  # a NaN run value is a regression, not a pass
            status = "REGRESSED"
        else:
            status = "ok"
        rows.append(dict(zip(["method", "dataset", "split", "shot"], key), baseline=base, run=now,
                         change=None if base is None or now is None else now - base, status=status))
    return pd.DataFrame(rows)


def format_report(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in ("baseline", "run", "change"):
        shown[column] = shown[column].map(lambda v: "-" if v is None or pd.isna(v) else f"{v:.2f}")
    return shown.to_string(index=False)


def check(run_dir: Path, baseline_path: Path, tolerance: float = 1.0, update: bool = False) -> int:
    """Print the comparison; return 0 if nothing regressed or is missing (or after --update), else 1."""
    check_tolerance(tolerance)
    if update:
        check_writable_target(baseline_path)
    results = load_results(run_dir)
    run, identity = _entries(results), run_identity(results.config)
    baseline, baseline_identity = read_baseline(baseline_path) if Path(baseline_path).is_file() or not update else ({}, {})
    if not update:
        for line in identity_notes(identity, baseline_identity):
            print(line)
    table = compare(run, baseline, tolerance)
    print(format_report(table))
    if update:
        entries = [dict(zip(["method", "dataset", "split", "shot"], k), miou=round(v, 4)) for k, v in sorted(run.items())]
        atomic_write_json(baseline_path, {"source_run": str(run_dir), "identity": identity, "entries": entries})
        print(f"baseline {baseline_path} rewritten from {run_dir} ({len(entries)} entries)")
        return 0
    bad: List[str] = list(table[table.status.isin(["REGRESSED", "MISSING"])].status)
    if bad:
        print(f"FAILED: {bad.count('REGRESSED')} regressed by more than {tolerance} mIoU, {bad.count('MISSING')} missing")
        return 1
    print(f"OK: {len(baseline)} baseline entries within {tolerance} mIoU")
    return 0
