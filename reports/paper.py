"""The SimPropNet paper's numbers (reports/data/paper_tables.csv), keyed by our method names."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

PAPER_NAMES = {"simpropnet": "SimPropNet", "canet": "CANet", "panet": "PANet", "sg-one": "SG-One", "amp": "AMP",
               "oslsm": "OSLSM", "co-fcn": "co-FCN", "pgn": "PGN", "fwb": "FWB"}
#: methods the harness compares that the SimPropNet paper's tables lack (PFENet: TPAMI 2020; HSNet: ICCV 2021,
#: after it): their Table 3 / 4 rows show our numbers only, with no paper number or difference under them
NOT_IN_PAPER = ("pfenet", "hsnet")
TABLE5_NAMES = {"canet": "CANet (baseline)", "simpropnet-dpr": "DPr", "simpropnet-fbaf": "FBAF",
                "simpropnet-dpr-fbaf": "DPr+FBAF", "simpropnet": "SimPropNet (DPr+FBAF+ICA)"}


def paper_tables() -> pd.DataFrame:
    path = Path(str(resources.files("reports") / "data" / "paper_tables.csv"))
    return pd.read_csv(path, dtype={"split": str, "shot": str})


def paper_value(table: str, method: str, metric: str, shot: int, split: str):
    """The paper's number for one cell, or None."""
    names = TABLE5_NAMES if table == "table5" else PAPER_NAMES
    if method in NOT_IN_PAPER or method not in names:
        return None
    frame = paper_tables()
    hit = frame[(frame.table == table) & (frame.method == names[method]) & (frame.metric == metric)
                & (frame.shot == str(shot)) & (frame.split == str(split))]
    return float(hit.value.iloc[0]) if len(hit) else None
