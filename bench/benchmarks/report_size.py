"""Report size: the HTML report of a 12-method, 4-split comparison must stay under 5 MB.

    python -m bench.benchmarks.report_size [--out DIR --checkpoints DIR --episodes N --budget-mb 5]

Builds the run cheaply (the paper's 12 methods, `synthetic-tiny` with the `tiny` training profile, splits
1-4, 1 and 5 shots, 3 seeds, 20 episodes: 3 minutes on 2 cores, training included; 4 CPU minutes). The
report's size hardly depends on the training (only the prediction outlines do): its qualitative panels
(the best, worst and a random episode per class of every method and split) are the synthetic images, the
same sizes (96-128 px) as `synthetic`'s, and its tables have the rows of the full comparison. Prints the report's size by part
and exits 1 when it is over the budget.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from bench.cli.commands import main as bench_main

METHODS = ["simpropnet", "canet", "panet", "sg-one", "amp", "oslsm", "co-fcn", "pgn", "fwb", "pfenet",
           "support-copy", "all-foreground"]


def parts(html: str) -> dict:
    """Bytes of the report by part: JPEG panels, PNG figures, the rest (tables, text, markup)."""
    images = {kind: re.findall(rf'src="data:image/{kind};base64,[^"]*"', html) for kind in ("jpeg", "png")}
    sizes = {f"{kind} ({len(found)})": sum(len(s) for s in found) for kind, found in images.items()}
    return {**sizes, "rest": len(html.encode()) - sum(sizes.values())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="run directory (default: a temporary one)")
    parser.add_argument("--checkpoints", help="checkpoint folder (default: inside the temporary folder)")
    parser.add_argument("--episodes", default="20")
    parser.add_argument("--budget-mb", type=float, default=5.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or Path(tmp) / "run")
        status = bench_main(["run", "--methods", *METHODS, "--dataset", "synthetic-tiny", "--profile", "tiny",
                             "--splits", "1", "2", "3", "4", "--shots", "1", "5", "--seeds", "0", "1", "2",
                             "--episodes", args.episodes, "--checkpoints", args.checkpoints or str(Path(tmp) / "ckpt"),
                             "--out", str(out), "--quiet"])
        if status != 0:
            return status
        report = Path(tmp) / "report.html"
        status = bench_main(["report", "--run", str(out), "--out", str(report)])
        if status != 0:
            return status
        size = report.stat().st_size
        print(f"report of {len(METHODS)} methods x 4 splits: {size / 1e6:.2f} MB (budget {args.budget_mb:g} MB)")
        for name, value in parts(report.read_text()).items():
            print(f"  {name:<12}{value / 1e6:8.2f} MB")
    return 0 if size <= args.budget_mb * 1e6 else 1


if __name__ == "__main__":
    sys.exit(main())
