"""Every table of results in README.md and docs/ is a block generated from committed results
(`python -m reports.doc_tables`); a block that differs from its source fails here."""
import json
from pathlib import Path

import pytest

import reports.doc_tables as doc_tables

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_generated_blocks_equal_their_committed_sources(page):
    assert doc_tables.stale_blocks(page) == []


RECORD = {"card": "tiny", "title": "T", "citation": "C", "url": "u", "dataset": "synthetic-tiny",
          "paper_dataset": "pascal5i", "on_paper_dataset": False, "commit": "abc", "created": "2026-12-05",
          "resamples": 1000, "interval_seed": 0,
          "claims": [{"id": "c1", "text": "A beats B", "where": "Table 3", "statement": "a - b > 0", "outcome": "holds",
                      "note": "", "parts": [{"part": "a - b", "difference": 2.0, "lower": 1.0, "upper": 3.0,
                                             "outcome": "holds"}]}],
          "tables": [{"id": "t3", "file": "", "metric": "miou", "experiment": "main", "note": "", "columns": ["1"],
                      "rows": [{"label": "A", "shot": 1, "cells": [{"paper": 50.0, "measured": 40.0, "lower": 39.0,
                                                                     "upper": 41.0, "difference": None}]}]}]}


def test_a_stale_block_is_found_and_rewritten(tmp_path, monkeypatch):
    monkeypatch.setattr(doc_tables, "ROOT", tmp_path)
    (tmp_path / "r.json").write_text(json.dumps(RECORD))
    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- generated from r.json: table t3 -->\n| typed | by hand |\n<!-- end generated -->\n"
                    "<!-- generated from r.json: claims -->\n<!-- end generated -->\n")
    assert doc_tables.stale_blocks(page) == ["r.json: table t3", "r.json: claims"]
    assert doc_tables.main(["--check", str(page)]) == 1
    assert doc_tables.main([str(page)]) == 0
    assert doc_tables.stale_blocks(page) == []
    text = page.read_text()
    assert "| A | 1 | 50.00 / 40.00 [39.00, 41.00] |" in text and "| c1 | A beats B (Table 3) |" in text
    assert text.startswith("intro\n")


def test_a_source_outside_the_repository_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(doc_tables, "ROOT", tmp_path / "repo")
    (tmp_path / "repo").mkdir()
    with pytest.raises(ValueError, match="inside the repository"):
        doc_tables.render("../r.json", "claims")


def test_a_csv_source_renders_whole_with_two_decimals(tmp_path):
    from reports.doc_tables import csv_markdown

    path = tmp_path / "gap.csv"
    path.write_text("method,split,base_miou,note\ndcama,1,63.7512,a|b\n")
    assert csv_markdown(path) == ["| method | split | base_miou | note |", "|---|---|---|---|",
                                  "| dcama | 1 | 63.75 | a\\|b |"]
