"""The SimPropNet paper's numbers (its paper card, bench/papers/cards/simpropnet.json), keyed by our method names."""
from __future__ import annotations

from functools import lru_cache
from typing import Dict, Optional

from bench.papers.card import PaperCard, Table
from bench.papers.loader import load_card

CARD = "simpropnet"
#: methods the harness compares that the SimPropNet paper's tables lack (PFENet: TPAMI 2020; HSNet: ICCV 2021,
#: after it): their Table 3 / 4 rows show our numbers only, with no paper number or difference under them
NOT_IN_PAPER = ("pfenet", "hsnet")


@lru_cache(maxsize=1)
def paper_card() -> PaperCard:
    return load_card(CARD)


def _table(table_id: str) -> Optional[Table]:
    return next((t for t in paper_card().tables if t.id == table_id), None)


def _labels(*table_ids: str) -> Dict[str, str]:
    """Our method name -> the paper's label, from the rows of the card's tables (the first table's label wins)."""
    names: Dict[str, str] = {}
    for table_id in table_ids:
        for method, label in _table(table_id).rows.items():
            names.setdefault(method, label)
    return names


#: our names -> the paper's, for Tables 3 and 4 (PGN and FWB are in Table 4 only) and for Table 5's ablations
PAPER_NAMES = _labels("table3", "table4")
TABLE5_NAMES = _labels("table5")


def paper_value(table: str, method: str, metric: str, shot: int, split: str) -> Optional[float]:
    """The paper's number for one cell (a split number or "mean"), or None."""
    found = _table(table)
    if method in NOT_IN_PAPER or found is None or found.metric != metric or str(split) not in found.columns:
        return None
    value = found.reported.get(method, {}).get(str(shot))
    return None if value is None else value[found.columns.index(str(split))]
