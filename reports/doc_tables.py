"""Tables of results in the docs, generated from committed results: `python -m reports.doc_tables [--check] FILE...`.

A Markdown file holds a generated block as

    <!-- generated from docs/results/simpropnet-synthetic/reproduction.json: claims -->
    ...
    <!-- end generated -->

where the part after the colon is `claims`, `header` or `table <id>` (a table of the card); a CSV source (an
analysis' table) takes `csv` and is shown whole, its numbers with two decimals. The command rewrites
each block from its source (a path relative to the repository root); `--check` rewrites nothing and exits 1
when a block differs from what its source gives (tests/test_doc_tables.py runs it on README.md and docs/).
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path
from typing import List, Optional

from reports.reproduction import claims_markdown, header_lines, table_markdown

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- generated from (?P<source>[\w./-]+\.(?:json|csv)): (?P<what>[\w .-]+) -->\n)(?P<body>.*?)"
                   r"(<!-- end generated -->)", re.S)


def render(source: str, what: str) -> str:
    """The Markdown of one block (its lines, each ending with a newline)."""
    path = (ROOT / source).resolve()
    if ROOT not in path.parents:
        raise ValueError(f"{source}: a generated block's source lies inside the repository")
    if path.suffix == ".csv":
        if what != "csv":
            raise ValueError(f"{source}: a CSV source's block is `csv`, not {what!r}")
        return "".join(line + "\n" for line in csv_markdown(path))
    record = json.loads(path.read_text())
    if what == "claims":
        lines = claims_markdown(record)
    elif what == "header":
        lines = header_lines(record)[2:-1]  # without the title and the trailing blank line
    elif what.startswith("table "):
        ident = what.split(" ", 1)[1]
        table = next((t for t in record["tables"] if t["id"] == ident), None)
        if table is None:
            raise ValueError(f"{source} has no table {ident!r}")
        lines = table_markdown(record, table)
    else:
        raise ValueError(f"unknown generated block {what!r} (claims, header or table <id>)")
    return "".join(line + "\n" for line in lines)


def csv_markdown(path: Path) -> List[str]:
    """A CSV file as a Markdown table: its header, then each row, floats with two decimals."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ValueError(f"{path.name} is empty")

    def cell(value: str) -> str:
        try:
            number = float(value)
        except ValueError:
            return value.replace("|", "\\|")
        return value if re.fullmatch(r"-?\d+", value) else f"{number:.2f}"

    return (["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
            + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows[1:]])


def regenerate(text: str) -> str:
    """`text` with every generated block rewritten from its source."""
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("source"), m.group("what").strip()) + m.group(5), text)


def stale_blocks(path: Path) -> List[str]:
    """The blocks of `path` that differ from what their sources give (their `source: what`)."""
    text = path.read_text()
    return [f"{m.group('source')}: {m.group('what').strip()}" for m in BLOCK.finditer(text)
            if m.group("body") != render(m.group("source"), m.group("what").strip())]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.doc_tables", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="Markdown files holding generated blocks")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is stale")
    args = parser.parse_args(argv)
    stale = 0
    for path in args.files:
        if args.check:
            for block in stale_blocks(path):
                print(f"{path}: stale generated block ({block}): run python -m reports.doc_tables {path}")
                stale += 1
        else:
            text = path.read_text()
            new = regenerate(text)
            if new != text:
                path.write_text(new)
                print(f"rewrote {path}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
