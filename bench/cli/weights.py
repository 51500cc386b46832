"""`bench weights [PATTERN]`: the registered published checkpoints, one line each.

A PATTERN with a wildcard (`*`, `?`, `[`) is matched against the names `method.tag` (fnmatch); one
without is a substring (`bench weights pfenet`). Nothing matching is one line and exit status 1
(as grep), so scripts can test for an entry. The entries are read from the light catalog
(`methods.catalog`): no method is imported.
"""
from __future__ import annotations

import fnmatch
from typing import List, Optional

from methods.catalog import weights_entries
from methods.weights import PublishedWeights


def _number(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}"


def weights_table(entries: List[PublishedWeights]) -> str:
    """A plain table: name, dataset, fold, input size, reported mIoU / FB-IoU per shot, file, download."""
    shots = sorted({shot for e in entries for shot in e.reported})
    header = ["name", "dataset", "fold", "size", *(f"{k}-shot mIoU/FB-IoU" for k in shots), "file", "download"]
    rows = []
    for e in entries:
        reported = [f"{_number(e.reported.get(k, {}).get('miou'))}/{_number(e.reported.get(k, {}).get('fbiou'))}"
                    for k in shots]
        rows.append([e.name, e.dataset, str(e.fold), str(e.input_size), *reported, e.file_name, e.url])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def weights_command(pattern: Optional[str]) -> int:
    glob = pattern or "*"
    if not any(c in glob for c in "*?["):
        glob = f"*{glob}*"
    known = weights_entries()
    entries = [e for e in known if fnmatch.fnmatchcase(e.name, glob)]
    if not entries:
        print(f"no published weights match '{pattern}' ({len(known)} registered; `bench weights` lists them)")
        return 1
    print(weights_table(entries))
    print(f"\n{len(entries)} published checkpoint(s); reported numbers in percent (-: not reported). Put the files "
          "under one folder by their file names and run `bench run --methods M --dataset D --weights DIR`.")
    return 0
