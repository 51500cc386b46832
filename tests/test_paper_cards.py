"""The paper cards (bench/papers/cards/*.json): each loads, their reported numbers agree with the published-weights
registry and with the SimPropNet paper, and a bad card is refused in one line naming the key."""
from __future__ import annotations

import copy
import fnmatch

import pytest

import methods  # noqa: F401  (the method modules register their published weights)
from bench.papers.card import CardError
from bench.papers.loader import card_names, load_card, parse_card
from methods.weights import WEIGHTS
from reports.paper import PAPER_NAMES, TABLE5_NAMES, paper_value


@pytest.mark.parametrize("name", card_names())
def test_every_card_loads(name):
    card = load_card(name)
    assert card.name == name and card.experiments


def test_the_cards_are_found():
    assert {"simpropnet", "hsnet", "pfenet", "dcama", "gf-sam"} <= set(card_names())


# --- published weights: the card's numbers are the entries' `reported` -------------------------------------------

def _entries(card, experiment, method):
    """fold -> the published-weights entry the experiment evaluates for `method` (as `--weights-variant` picks)."""
    own = WEIGHTS.for_method(method)  # the patterns that name none of the method's entries leave it alone
    patterns = [p for p in experiment.weights_variant or () if any(fnmatch.fnmatchcase(e.name, p) for e in own)]
    entries = [e for e in own if e.dataset == card.dataset and (
        not patterns or any(fnmatch.fnmatchcase(e.name, p) for p in patterns))]
    by_fold = {e.fold: e for e in entries}
    assert len(by_fold) == len(entries), f"{experiment.name}: several entries of {method} for one fold"
    return by_fold


@pytest.mark.parametrize("name, least", [("hsnet", 24), ("pfenet", 0), ("gf-sam", 16)])
def test_reported_numbers_are_the_published_entries(name, least):
    """Every (fold, shot, metric) that both the card and the entry report holds the same number."""
    card = load_card(name)
    compared = 0
    for experiment in card.experiments:
        if experiment.weights:
            for method in experiment.methods:
                assert set(_entries(card, experiment, method)) == {s - 1 for s in experiment.splits}, \
                    f"{experiment.name}: an entry per split"
    for table in card.tables:
        experiment = card.experiment(table.experiment)
        if not experiment.weights:
            continue
        for method, by_shot in table.reported.items():
            by_fold = _entries(card, experiment, method)
            for shot, values in by_shot.items():
                for column, value in zip(table.columns, values):
                    if column == "mean" or value is None or int(column) - 1 not in by_fold:
                        continue
                    reported = by_fold[int(column) - 1].reported.get(int(shot), {}).get(table.metric)
                    if reported is None:
                        continue
                    assert value == reported, (table.id, method, shot, column)
                    compared += 1
    assert compared >= least


def test_gf_sam_card_mean_mious_are_the_folds_mean():
    """The README's means (the card's mean column) are its per-fold logs' (the entries') to the rounding."""
    table = {t.id: t for t in load_card("gf-sam").tables}["table1"]
    for values in table.reported["gf-sam"].values():
        assert values[-1] == pytest.approx(sum(values[:4]) / 4, abs=0.05 + 1e-9)


def test_hsnet_card_mean_column_is_the_folds_mean():
    for table in load_card("hsnet").tables:
        if table.columns[-1] == "mean" and len(table.columns) == 5:
            for values in table.reported["hsnet"].values():
                assert values[-1] == pytest.approx(sum(values[:4]) / 4, abs=0.05 + 1e-9)


# --- the SimPropNet card holds the paper's numbers (formerly reports/data/paper_tables.csv) --------------------------

SPOT_CHECKS = [  # (table, row, shot, column, value) as the paper prints them
    ("table3", "simpropnet", "1", "1", 54.86), ("table3", "simpropnet", "5", "mean", 60.04),
    ("table3", "canet", "5", "3", 47.15), ("table3", "oslsm", "1", "2", 55.3), ("table3", "co-fcn", "5", "4", 33.9),
    ("table4", "simpropnet", "1", "mean", 72.96), ("table4", "pgn", "5", "mean", 70.5),
    ("table4", "co-fcn", "1", "mean", 60.1), ("table5", "simpropnet-dpr", "1", "3", 53.1),
    ("table5", "simpropnet-dpr-fbaf", "1", "mean", 57.09), ("table6", "simpropnet", "1", "mean", 76.36),
    ("table6", "amp", "1", "2", 69.34), ("table2", "canet", "1", "4", 52.76),
    ("table1", "error-overlap-canet", "1", "fn_overlap", 18.32), ("table1", "error-overlap-amp", "1", "tp_gap", 39.41),
    ("sec3.1", "error-regions-canet", "1", "ratio_mean", 0.87), ("sec3.1", "error-regions-canet", "1", "ratio_std", 0.25),
]


@pytest.mark.parametrize("table_id, row, shot, column, value", SPOT_CHECKS)
def test_simpropnet_card_spot_checks(table_id, row, shot, column, value):
    table = {t.id: t for t in load_card("simpropnet").tables}[table_id]
    assert table.reported[row][shot][table.columns.index(column)] == value


def test_simpropnet_card_holds_every_number_of_the_old_csv():
    """The 134 rows of paper_tables.csv: Table 3 (7 methods x 2 shots x 4 splits + mean), Table 4 (8 means x 2
    shots; FWB has none), Table 5 (5 x 5), Table 6 (3 x 5), Table 1 (2 x 3), Section 3.1 (mean, std)."""
    tables = {t.id: t for t in load_card("simpropnet").tables}
    counts = {tid: sum(v is not None for by_shot in tables[tid].reported.values() for values in by_shot.values()
                       for v in values) for tid in ("table3", "table4", "table5", "table6", "table1", "sec3.1")}
    assert counts == {"table3": 70, "table4": 16, "table5": 25, "table6": 15, "table1": 6, "sec3.1": 2}
    assert tables["table4"].reported["fwb"] == {"1": [None] * 5, "5": [None] * 5}
    assert tables["table2"].reported["amp"]["1"] == tables["table6"].reported["amp"]["1"][:4]


def test_report_reads_the_card():
    assert PAPER_NAMES["simpropnet"] == "SimPropNet" and PAPER_NAMES["fwb"] == "FWB"
    assert TABLE5_NAMES["simpropnet"] == "SimPropNet (DPr+FBAF+ICA)"
    assert paper_value("table6", "canet", "miou", 1, "mean") == 54.86
    assert paper_value("table4", "fwb", "fbiou", 1, "mean") is None
    assert paper_value("table4", "canet", "fbiou", 1, "1") is None  # FB-IoU: the mean only
    assert paper_value("table3", "simpropnet", "fbiou", 1, "1") is None  # another metric
    assert paper_value("table3", "hsnet", "miou", 1, "1") is None


# --- bad cards: refused with one line naming the key -----------------------------------------------------------------

GOOD = {
    "schema": 1, "name": "tiny", "title": "A card", "citation": "Someone, 2020", "url": "https://example.org",
    "dataset": "pascal5i",
    "experiments": [
        {"name": "main", "methods": ["canet", "simpropnet"], "shots": [1]},
        {"name": "pairs", "analysis": "similarity", "args": {"split": 1, "pairs": 10}},
    ],
    "tables": [{"id": "t", "title": "T", "where": "Table 1", "experiment": "main", "rows": {"canet": "CANet"},
                "columns": ["1", "mean"], "reported": {"canet": {"1": [50.0, 51.0]}}}],
    "claims": [{"id": "c", "text": "better", "where": "Table 1", "kind": "methods", "experiment": "main",
                "a": ["simpropnet"], "b": ["canet"]}],
}


def _set(data, path, value):
    *parents, last = path
    for key in parents:
        data = data[key]
    data[last] = value


def test_the_good_card_parses():
    card = parse_card(copy.deepcopy(GOOD))
    assert card.experiment("pairs").args == {"split": 1, "pairs": 10}


BAD = [  # (what, where in the dict, the value, what the message names)
    ("unknown key", ("experiments", 0, "colour"), "red", "card.experiments[0]: unknown key 'colour'"),
    ("unknown top-level key", ("version",), 2, "card: unknown key 'version'"),
    ("wrong type", ("experiments", 0, "shots"), "1", "card.experiments[0].shots"),
    ("wrong element type", ("experiments", 0, "shots"), [1.5], "card.experiments[0].shots[0]"),
    ("unknown method", ("experiments", 0, "methods"), ["nonet"], "card.experiments[0].methods[0]"),
    ("unknown dataset", ("dataset",), "pascal9i", "card.dataset"),
    ("unknown profile", ("profiles",), {"synthetic": "fast"}, "card.profiles.synthetic"),
    ("a profile for an unknown dataset", ("profiles",), {"pascal9i": "tiny"}, "card.profiles"),
    ("unknown analysis", ("experiments", 1, "analysis"), "astrology", "card.experiments[1].analysis"),
    ("bad analysis args", ("experiments", 1, "args"), {"pairs": "many"}, "card.experiments[1].args"),
    ("unknown analysis option", ("experiments", 1, "args"), {"colour": 1}, "card.experiments[1].args"),
    ("reserved analysis arg", ("experiments", 1, "args"), {"out": "x"}, "card.experiments[1].args.out"),
    ("unknown experiment in a table", ("tables", 0, "experiment"), "other", "card.tables[0].experiment"),
    ("unknown experiment in a claim", ("claims", 0, "experiment"), "other", "card.claims[0].experiment"),
    ("wrong number of reported values", ("tables", 0, "reported"), {"canet": {"1": [50.0]}},
     "card.tables[0].reported.canet.1"),
    ("a reported row that is not a row", ("tables", 0, "reported"), {"amp": {"1": [1.0, 2.0]}},
     "card.tables[0].reported.amp"),
    ("a table row that is not a method of its experiment", ("tables", 0, "rows"), {"amp": "AMP"},
     "card.tables[0].rows.amp"),
    ("a claim's method outside its experiment", ("claims", 0, "b"), ["amp"], "card.claims[0]"),
    ("an unknown claim kind", ("claims", 0, "kind"), "vibes", "card.claims[0].kind"),
    ("a missing key", ("claims", 0), {"id": "c"}, "card.claims[0]: missing key"),
    ("a value claim's file given as a path", ("claims", 0),
     {"id": "v", "text": "x", "where": "Figure 3", "kind": "value", "experiment": "pairs", "file": "../../x.csv",
      "column": "cosine"}, "card.claims[0].file"),
    ("an analysis table's file given as a path", ("tables", 0),
     {"id": "a", "title": "A", "where": "Figure 3", "experiment": "pairs", "rows": {"pairs": "pairs"}, "columns": ["cosine"],
      "file": "/etc/passwd", "reported": {}}, "card.tables[0].file"),
]


@pytest.mark.parametrize("what, path, value, names", BAD, ids=[b[0] for b in BAD])
def test_bad_cards_are_refused_naming_the_key(what, path, value, names):
    data = copy.deepcopy(GOOD)
    _set(data, path, value)
    with pytest.raises(CardError) as caught:
        parse_card(data)
    message = str(caught.value)
    assert names in message and "\n" not in message, message


def test_a_method_with_two_training_seed_sets_on_one_protocol_is_refused():
    data = copy.deepcopy(GOOD)
    data["experiments"].append({"name": "again", "methods": ["canet"], "shots": [1], "train_seeds": [0, 1, 2]})
    with pytest.raises(CardError) as caught:
        parse_card(data)
    message = str(caught.value)
    assert message.startswith("card.experiments:") and "canet" in message and "'again'" in message
    assert "\n" not in message
    data["experiments"][-1]["splits"] = [1]  # another protocol (its own run directory): allowed
    parse_card(data)
