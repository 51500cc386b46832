"""`bench verify`: a run's published-weights cells against the numbers their authors report.

Every (method, split, shot) evaluated from a published checkpoint (`bench run --weights`; its cells
record the entry's name) is compared with the entry's reported mIoU for that fold and shot, and its
FB-IoU where the entry reports one. The measured number is the run's: the cell's metric from the
verified per-episode counts (`load_results`, `analyses.summary.summarize`), mean over seeds, in percent.
A difference beyond the tolerance (in points) is a miss, and the command then exits 1 (as detectron2's
`verify_results`); a run without published-weights cells, or without any reported number for its shots,
is a one-line error (exit 2), as is a cell that names other published weights than config.json records.
The `fold` column says whether each file was proven to be of its fold (the entry's sha256 or a fold the
file records); an unverified one is also a `warning:` line.

The authors' numbers come from their own test loaders, so verification compares cells scored under the
authors' pipeline (`bench run --pipeline authors`) by default: a cell of a method that declares one but was
scored under the shared pipeline is refused (`--pipeline shared` compares it anyway, and says so), unless its
entry reports no number for its shot (nothing of it is compared). A method
that declares no authors' pipeline is compared as scored, and its `pipeline` column says "shared".
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from analyses.summary import summarize
from bench.core.errors import BenchError
from bench.runs.cells import Cell
from bench.runs.results import load_results
from methods.weights import WEIGHTS

METRICS = (("miou", "mIoU"), ("fbiou", "FB-IoU"))


@dataclass(frozen=True)
class Check:
    """One reported number against the run's."""

    weights: str
    split: int
    shot: int
    metric: str
    reported: float
    measured: float
    seeds: int
    tolerance: float
    #: whether every cell's file was proven to be of its fold (by sha256 or the fold it records)
    fold_verified: bool = False
    #: the pipeline its cells were scored under: "authors" or "shared"
    pipeline: str = "shared"

    @property
    def difference(self) -> float:
        return self.measured - self.reported

    @property
    def ok(self) -> bool:
        return abs(self.difference) <= self.tolerance


def published_cells(metas: List[Dict]) -> Dict[Tuple[str, int, int], str]:
    """{(method, split, shot): entry name} of the cells evaluated from published weights."""
    found: Dict[Tuple[str, int, int], set] = {}
    for meta in metas:
        if meta.get("weights"):
            cell = Cell.of(str(meta.get("method")), str(meta.get("cell")))
            found.setdefault((cell.method, cell.split, cell.shot), set()).add(meta["weights"])
    mixed = [key for key, names in found.items() if len(names) > 1]
    if mixed:
        method, split, shot = mixed[0]
        raise BenchError(f"the seeds of {method} split {split} {shot}-shot were evaluated with different published "
                         f"weights ({', '.join(sorted(found[mixed[0]]))}): re-run them")
    return {key: names.pop() for key, names in sorted(found.items())}


def check_tolerance(tolerance: float) -> float:
    """A `--tolerance` in points: finite and >= 0 (nan or inf would pass everything, a negative one fail it)."""
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise BenchError(f"--tolerance must be a finite number >= 0, got {tolerance}")
    return tolerance


def check_claims(metas: List[Dict], config: Dict, path: Path) -> None:
    """Every cell names the published weights config.json records for its method and split (and their sha256),
    and no other: a cell edited to claim (or to drop) published weights is refused."""
    recorded = config.get("weights") or {}
    if not isinstance(recorded, dict):
        raise BenchError(f"{path}/config.json is damaged: its 'weights' is not an object")
    for meta in metas:
        cell = Cell.of(str(meta.get("method")), str(meta.get("cell")))
        record = recorded.get(f"{cell.method}/split{cell.split}")
        record = record if isinstance(record, dict) else {}
        claimed = (meta.get("weights"), meta.get("weights_sha256") if meta.get("weights") else None)
        if claimed != (record.get("weights"), record.get("sha256")):
            raise BenchError(f"{path}: cell {cell.method}__{cell.manifest} claims published weights "
                             f"{claimed[0] or 'none'} but config.json records {record.get('weights') or 'none'} for "
                             f"{cell.method} split {cell.split}: the cell was edited; re-run it")


def cell_pipelines(metas: List[Dict], pipeline: str, path: Path) -> Dict[Tuple[str, int, int], str]:
    """{(method, split, shot): pipeline name} of the published cells; a BenchError for a cell scored under the
    shared pipeline although its method declares an authors' one, when `pipeline` is "authors" (and its entry
    reports a number for its shot: a cell with nothing to compare, e.g. DCAMA's beside GF-SAM's, is not refused)."""
    names: Dict[Tuple[str, int, int], str] = {}
    for meta in metas:
        if not meta.get("weights"):
            continue
        cell = Cell.of(str(meta.get("method")), str(meta.get("cell")))
        record = meta.get("pipeline") if isinstance(meta.get("pipeline"), dict) else {}
        name = "authors" if record.get("name") == "authors" else "shared"
        compared = meta["weights"] not in WEIGHTS or bool(WEIGHTS.get(meta["weights"]).reported.get(cell.shot))
        if pipeline == "authors" and name == "shared" and record.get("authors_declared") and compared:
            raise BenchError(f"{path}: {cell.method} {cell.manifest} was scored under the shared pipeline, but its "
                             "authors' numbers come from their own test loader: re-run it with `bench run "
                             "--pipeline authors`, or compare it anyway with `bench verify --pipeline shared`")
        names[(cell.method, cell.split, cell.shot)] = name if names.get((cell.method, cell.split, cell.shot), name) \
            == name else "mixed"
    return names


def verify_run(path: Path, tolerance: float = 1.0, pipeline: str = "authors") -> List[Check]:
    """The checks of a finished run (one BenchError if there is nothing to check); `pipeline`: the pipeline
    the published cells must have been scored under where their method declares an authors' one."""
    check_tolerance(tolerance)
    results = load_results(path)
    check_claims(results.metas, results.config, path)
    pipelines = cell_pipelines(results.metas, pipeline, path)
    if results.config["config"].get("identical_input"):
        raise BenchError(f"{path} is an identical-input run (support = query): not comparable with reported numbers")
    cells = published_cells(results.metas)
    if not cells:
        raise BenchError(f"{path} has no cell evaluated from published weights (run `bench run --weights ...`)")
    summary = summarize(results.episodes).set_index(["method", "split", "shot"])
    unverified = {(str(m.get("method")), Cell.of(str(m.get("method")), str(m.get("cell"))).split) for m in results.metas
                  if m.get("weights") and m.get("weights_fold_verified") is not True}
    checks, unreported = [], []
    for (method, split, shot), name in cells.items():
        if name not in WEIGHTS:
            raise BenchError(f"{path} was evaluated with published weights '{name}', which are not registered (any "
                             "more): `bench weights` lists the known ones")
        reported: Optional[Dict] = WEIGHTS.get(name).reported.get(shot)
        row = summary.loc[(method, str(split), shot)]
        numbers = [(label, reported.get(key), row[f"{key}_mean"]) for key, label in METRICS
                   if reported and reported.get(key) is not None]
        if not numbers:
            unreported.append(f"{name} {shot}-shot")
        checks += [Check(name, split, shot, label, float(value), float(measured), int(row["seeds"]), tolerance,
                         (method, split) not in unverified and WEIGHTS.get(name).fold_verifiable,
                         pipelines[(method, split, shot)])
                   for label, value, measured in numbers]
    if not checks:
        raise BenchError(f"no reported number to compare with: the entries report none for {', '.join(unreported)}")
    return checks


def format_checks(checks: List[Check]) -> str:
    width = max(len("weights"), *(len(c.weights) for c in checks))
    lines = [f"{'weights':<{width}} {'shot':>4} {'metric':<6} {'seeds':>5} {'fold':<10} {'pipeline':<8} "
             f"{'reported':>8} {'measured':>8} {'diff':>6}  status"]
    for c in checks:
        lines.append(f"{c.weights:<{width}} {c.shot:>4} {c.metric:<6} {c.seeds:>5} "
                     f"{'verified' if c.fold_verified else 'unverified':<10} {c.pipeline:<8} {c.reported:>8.2f} "
                     f"{c.measured:>8.2f} {c.difference:>+6.2f}  {'ok' if c.ok else 'MISS'}")
    misses = sum(not c.ok for c in checks)
    tolerance = checks[0].tolerance
    lines.append(f"{len(checks) - misses} of {len(checks)} within +/- {tolerance:g} points of the reported numbers"
                 + (f"; {misses} missed" if misses else ""))
    sources = sorted({WEIGHTS.get(c.weights).source for c in checks if c.weights in WEIGHTS} - {""})
    lines += [f"reported numbers: {source}" for source in sources]
    return "\n".join(lines)


def fold_warnings(checks: List[Check]) -> List[str]:
    """A `warning:` line per published checkpoint whose fold was not verified."""
    return [f"warning: {name}: the file's fold was not verified (the authors' file records no fold and the entry "
            "no sha256): a file of another fold would have been scored as this one"
            for name in dict.fromkeys(c.weights for c in checks if not c.fold_verified)]


def verify_command(path: Path, tolerance: float, pipeline: str = "authors") -> int:
    """Print the table; 0 if every number is within the tolerance, 1 otherwise."""
    checks = verify_run(path, tolerance, pipeline)
    print(format_checks(checks))
    for line in fold_warnings(checks):
        print(line, file=sys.stderr)
    return 0 if all(c.ok for c in checks) else 1
