"""reproduction.md and reproduction.html from a reproduction.json (`bench reproduce`): the paper's tables side by
side with the measured numbers and their 95% intervals, and the claims table. Renders from the file alone."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from jinja2 import Environment, PackageLoader

from bench.core.fileio import atomic_write_text

OUTCOME_MARK = {"holds": "holds", "fails": "FAILS", "inconclusive": "inconclusive", "not run": "not run"}


def number(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def interval(lower: Optional[float], upper: Optional[float]) -> str:
    return "" if lower is None or upper is None else f" [{lower:.2f}, {upper:.2f}]"


def cell_text(cell: Dict) -> str:
    """paper / measured [lower, upper] (difference)"""
    text = f"{number(cell['paper'])} / {number(cell['measured'])}{interval(cell['lower'], cell['upper'])}"
    return text + (f" ({cell['difference']:+.2f})" if cell["difference"] is not None else "")


def header_lines(record: Dict) -> List[str]:
    lines = [f"# Reproduction: {record['title']}", "", f"{record['citation']} ({record['url']})", ""]
    where = (f"on **{record['dataset']}**, the paper's dataset: absolute numbers are compared"
             if record["on_paper_dataset"] else
             f"on **{record['dataset']}**, not the paper's {record['paper_dataset']}: compare the claims and "
             "orderings, not the absolute numbers (the paper's column is for reference)")
    lines += [f"Measured {where}. Card `{record['card']}`, commit {record['commit']}, {record['created']}; "
              f"95% bootstrap intervals ({record['resamples']} resamples, seed {record['interval_seed']}).", ""]
    return lines


def claim_row(claim: Dict) -> List[str]:
    rank = {"fails": 0, "inconclusive": 1, "holds": 2}  # the part deciding the outcome: the first failing one, ...
    worst = min(claim["parts"], key=lambda part: rank[part["outcome"]], default=None)
    detail = (f"{worst['part']}: {worst['difference']:+.3g}{interval(worst['lower'], worst['upper'])}"
              if worst else claim["note"])
    return [claim["id"], f"{claim['text']} ({claim['where']})", claim["statement"], OUTCOME_MARK[claim["outcome"]],
            f"{len(claim['parts'])}", detail]


def claims_markdown(record: Dict) -> List[str]:
    """The claims table (and the count of each outcome) as Markdown lines."""
    lines = ["| id | claim (where) | checked as | outcome | parts | deciding part: difference [95% CI] |",
             "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in claim_row(c)) + " |" for c in record["claims"]]
    counts = {o: sum(c["outcome"] == o for c in record["claims"]) for o in OUTCOME_MARK}
    return lines + ["", ", ".join(f"{n} {o}" for o, n in counts.items() if n)]


def table_markdown(record: Dict, table: Dict) -> List[str]:
    """One paper table side by side with the measured numbers, as Markdown lines."""
    lines = [(f"mean of each column of `{table['file']}` over its rows" if table["file"] else table["metric"])
             + f", experiment `{table['experiment']}`; each cell: paper / measured [95% CI]"
             + (" (measured - paper)" if record["on_paper_dataset"] else "")
             + (f". **{table['note']}**" if table["note"] else ""), ""]
    lines += ["| row | shot | " + " | ".join(table["columns"]) + " |", "|---|---|" + "---|" * len(table["columns"])]
    for row in table["rows"]:
        lines.append(f"| {row['label']} | {row['shot']} | " + " | ".join(cell_text(c) for c in row["cells"]) + " |")
    return lines


def markdown(record: Dict) -> str:
    """reproduction.md: the header, the claims table, each table, the recorded timings."""
    lines = header_lines(record) + ["## Claims", ""] + claims_markdown(record) + [""]
    for table in record["tables"]:
        lines += [f"## {table['where']}: {table['title']}", ""] + table_markdown(record, table) + [""]
    timings = record["timings"]
    if timings["training"] or timings["cell"]:
        lines += ["## Recorded timings (seconds)", "", "| method | training (median per checkpoint) | cell (median) |",
                  "|---|---|---|"]
        for method in sorted(set(timings["training"]) | set(timings["cell"])):
            lines.append(f"| {method} | {number(timings['training'].get(method), 1)} | "
                         f"{number(timings['cell'].get(method), 1)} |")
        lines.append("")
    return "\n".join(lines)


def html(record: Dict) -> str:
    """reproduction.html: one self-contained page (every string escaped)."""
    env = Environment(loader=PackageLoader("reports", "templates"), autoescape=True)
    env.filters.update(number=number, interval=lambda c: interval(c["lower"], c["upper"]))
    return env.get_template("reproduction.html.j2").render(record=record, claim_row=claim_row,
                                                           header=header_lines(record))


def write_pages(record: Dict, out: Path) -> List[Path]:
    """reproduction.md and reproduction.html next to reproduction.json."""
    paths = [out / "reproduction.md", out / "reproduction.html"]
    atomic_write_text(paths[0], markdown(record))
    atomic_write_text(paths[1], html(record))
    return paths
