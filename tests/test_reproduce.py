"""`bench reproduce` end to end on a tiny card (synthetic-tiny, the tiny profile): runs, resumes after an
interruption without redoing cells, writes reproduction.json/.md/.html; a claim built to hold holds, one built to
fail fails; bad cards and folders are refused with one line and nothing written."""
import json

import pytest

import bench.runs.runner as runner_module
from bench.cli.commands import main
from bench.cli.reproduce import recorded_timings

CARD = {
    "schema": 1, "name": "tiny", "title": "A tiny card", "citation": "Nobody, 2026", "url": "https://example.org",
    "dataset": "synthetic-tiny",
    "experiments": [
        {"name": "main", "methods": ["support-copy", "all-foreground", "panet"], "splits": [1], "shots": [1, 2],
         "seeds": [0], "episodes": 30},
        {"name": "sim", "analysis": "similarity", "args": {"split": 1, "pairs": 20}},
    ],
    "tables": [
        {"id": "t1", "title": "mIoU", "where": "Table 1", "experiment": "main", "metric": "miou",
         "rows": {"support-copy": "Copy", "panet": "PANet"}, "columns": ["1", "mean"], "shots": [1, 2],
         "reported": {"support-copy": {"1": [50.0, 50.0]}}},
        {"id": "f3", "title": "similarity", "where": "Figure 3", "experiment": "sim", "file": "pairs.csv",
         "rows": {"sim": "pairs"}, "columns": ["fg_cosine", "bg_cosine"], "reported": {"sim": {"1": [0.5, 0.6]}}},
    ],
    "claims": [
        # cosines of ReLU features are >= 0 and these images share their class: built to hold
        {"id": "positive", "text": "same-class BG MAP vectors are similar", "where": "Figure 3", "kind": "value",
         "experiment": "sim", "file": "pairs.csv", "column": "bg_cosine", "threshold": 0.05},
        # mIoU lies in 0..100: a 100-point lead cannot be measured: built to fail
        {"id": "impossible", "text": "all-foreground leads by 100 points", "where": "Table 1", "kind": "methods",
         "experiment": "main", "a": ["all-foreground"], "b": ["support-copy"], "threshold": 100},
        {"id": "shots", "text": "2-shot beats 1-shot", "where": "Table 1", "kind": "shots", "experiment": "main",
         "a": ["panet"], "shots": [1, 2], "splits": ["mean"]},
    ],
}


def write_card(tmp_path, card=CARD, name="tiny.json"):
    path = tmp_path / name
    path.write_text(json.dumps(card))
    return path


def reproduce_args(card, out, *extra):
    return ["reproduce", str(card), "--dataset", "synthetic-tiny", "--profile", "tiny", "--out", str(out),
            "--checkpoints", str(out.parent / "checkpoints"), "--quiet", "--resamples", "200", *extra]


@pytest.fixture(scope="module")
def reproduced(cache_env, tmp_path_factory):
    """The tiny card reproduced after an interruption (the third cell raises KeyboardInterrupt)."""
    root = tmp_path_factory.mktemp("reproduce")
    card, out = write_card(root), root / "out"
    original, calls = runner_module.evaluate_manifest, []

    def interrupt_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(runner_module, "evaluate_manifest", interrupt_third)
    assert main(reproduce_args(card, out)) == 130
    patch.undo()
    done = {p.name: p.stat().st_mtime_ns for p in (out / "runs" / "main" / "episodes").glob("*.json")}
    assert len(done) == 2 and not (out / "reproduction.json").exists()
    assert main(reproduce_args(card, out, "--no-run")) == 0  # the partial reproduction: support-copy only
    partial = json.loads((out / "reproduction.json").read_text())
    assert main(reproduce_args(card, out)) == 0
    return {"card": card, "out": out, "done_before": done, "partial": partial}


def test_resume_keeps_the_cells_evaluated_before_the_interruption(reproduced):
    cells = {p.name: p.stat().st_mtime_ns for p in (reproduced["out"] / "runs" / "main" / "episodes").glob("*.json")}
    assert len(cells) == 6
    assert all(cells[name] == mtime for name, mtime in reproduced["done_before"].items())


def test_no_run_on_an_interrupted_reproduction_shows_its_finished_methods(reproduced):
    partial = reproduced["partial"]
    table = next(t for t in partial["tables"] if t["id"] == "t1")
    measured = {(r["key"], r["shot"]): r["cells"][0]["measured"] for r in table["rows"]}
    assert measured[("support-copy", 1)] is not None and measured[("panet", 1)] is None
    claims = {c["id"]: c["outcome"] for c in partial["claims"]}
    assert claims == {"positive": "holds", "impossible": "not run", "shots": "not run"}


def test_reproduction_record(reproduced):
    record = json.loads((reproduced["out"] / "reproduction.json").read_text())
    assert record["schema_version"] == 1 and record["card"] == "tiny" and record["on_paper_dataset"]
    claims = {c["id"]: c for c in record["claims"]}
    assert claims["positive"]["outcome"] == "holds"
    assert claims["impossible"]["outcome"] == "fails"
    assert claims["shots"]["outcome"] in ("holds", "fails", "inconclusive") and len(claims["shots"]["parts"]) == 1
    part = claims["impossible"]["parts"][0]
    assert part["lower"] <= part["difference"] <= part["upper"] < 100
    table = next(t for t in record["tables"] if t["id"] == "t1")
    assert [(r["key"], r["shot"]) for r in table["rows"]] == [("support-copy", 1), ("support-copy", 2),
                                                              ("panet", 1), ("panet", 2)]
    cell = table["rows"][0]["cells"][0]
    assert cell["paper"] == 50.0 and cell["lower"] <= cell["measured"] <= cell["upper"]
    assert cell["difference"] == pytest.approx(cell["measured"] - 50.0, abs=1e-3)
    assert record["timings"]["training"]["panet"] > 0
    assert record["reports"] == {"main": "runs/main/report.html"}
    assert (reproduced["out"] / "runs" / "main" / "report.html").is_file()
    markdown = (reproduced["out"] / "reproduction.md").read_text()
    assert "| impossible |" in markdown and "FAILS" in markdown and "## Table 1: mIoU" in markdown
    assert "<script" not in (reproduced["out"] / "reproduction.html").read_text()


def test_same_command_again_only_rewrites_the_reproduction(reproduced, capsys):
    before = (reproduced["out"] / "runs" / "main" / "episodes.csv").read_bytes()
    assert main(reproduce_args(reproduced["card"], reproduced["out"])) == 0
    assert (reproduced["out"] / "runs" / "main" / "episodes.csv").read_bytes() == before
    assert "written:" in capsys.readouterr().out


def test_off_paper_dataset_compares_claims_only(reproduced, tmp_path, capsys):
    card = write_card(tmp_path, {**CARD, "dataset": "pascal5i"})
    out = tmp_path / "out"
    args = reproduce_args(card, out, "--plan")
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "the paper's: pascal5i" in printed and "estimate:" in printed


def test_plan_runs_nothing_and_estimates_from_recorded_timings(reproduced, capsys):
    assert main(reproduce_args(reproduced["card"], reproduced["out"], "--plan")) == 0
    printed = capsys.readouterr().out
    assert "panet" in printed and "0/2 cells to evaluate" in printed and "(done)" in printed
    assert "estimate: " in printed and "recorded timings of" in printed


def test_plan_falls_back_on_the_committed_timings_named_by_their_path_in_the_repository(tmp_path):
    timings = recorded_timings(tmp_path / "empty", "simpropnet", "synthetic")
    assert timings["source"] == "docs/results/simpropnet-synthetic/reproduction.json" and timings["training"]


def test_the_card_s_profile_for_the_dataset_is_the_default(tmp_path, capsys):
    card = write_card(tmp_path, {**CARD, "profiles": {"synthetic-tiny": "ci"}})
    args = ["reproduce", str(card), "--dataset", "synthetic-tiny", "--out", str(tmp_path / "out"), "--plan"]
    assert main(args) == 0
    assert "training profile: ci (the card's for this dataset)" in capsys.readouterr().out
    assert main(args + ["--profile", "tiny"]) == 0
    assert "training profile: tiny\n" in capsys.readouterr().out


def test_plan_counts_cells_of_a_retrained_checkpoint_as_pending(reproduced, tmp_path, capsys):
    """--plan decides as the run does: a cell evaluated with an earlier training of its checkpoint is redone."""
    import shutil

    out, checkpoints = tmp_path / "out", tmp_path / "checkpoints"
    shutil.copytree(reproduced["out"], out)
    shutil.copytree(reproduced["out"].parent / "checkpoints", checkpoints)
    record = next(checkpoints.rglob("panet/split1-*/best.json"))
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "sha256": "0" * 64}))  # as if trained again since
    assert main(reproduce_args(reproduced["card"], out, "--plan")) == 0
    printed = capsys.readouterr().out
    assert "panet                 2/2 cells to evaluate" in printed
    assert "support-copy          0/2 cells to evaluate" in printed


WEIGHTS_CARD = {**CARD, "tables": [], "claims": [], "experiments": [
    {"name": "published", "methods": ["hsnet"], "splits": [1], "shots": [1], "seeds": [0], "episodes": 30,
     "weights": True, "weights_variant": ["hsnet.*-resnet50"]}]}


def test_published_weights_are_required_on_the_paper_s_dataset_only(tmp_path, capsys):
    """On the card's dataset a weights experiment needs --weights (refused in one line, nothing written); on
    another dataset, where no published checkpoint applies, its methods are trained there."""
    card = write_card(tmp_path, WEIGHTS_CARD, "published.json")
    out = tmp_path / "out"
    assert main(reproduce_args(card, out)) == 2
    assert "give them with --weights DIR" in capsys.readouterr().err and not out.exists()
    elsewhere = write_card(tmp_path, {**WEIGHTS_CARD, "dataset": "pascal5i"}, "published-voc.json")
    assert main(reproduce_args(elsewhere, out, "--plan")) == 0
    assert "1/1 cells to evaluate, 1 trainings unless their checkpoints exist" in capsys.readouterr().out


def test_list_shows_the_cards(capsys):
    assert main(["reproduce", "--list"]) == 0
    assert "simpropnet" in capsys.readouterr().out


@pytest.mark.parametrize("change, names", [
    ({"extra": 1}, "unknown key 'extra'"),
    ({"dataset": "imagenet"}, "bad.json.dataset: unknown dataset"),
    ({"experiments": [{"name": "main", "methods": ["nope"]}]}, "experiments[0].methods[0]: unknown method"),
    ({"experiments": [{"name": "main", "methods": ["panet"], "splits": "1"}]}, "experiments[0].splits: expected a list"),
    ({"experiments": [{"name": "a", "analysis": "nope"}]}, "experiments[0].analysis: unknown analysis"),
    ({"experiments": [{"name": "a", "analysis": "similarity", "args": {"pears": 3}}]}, "experiments[0].args"),
    ({"experiments": [{"name": "a", "analysis": "similarity", "args": {"out": "/tmp"}}]}, "experiments[0].args.out"),
    ({"tables": [{**CARD["tables"][0], "experiment": "nope"}]}, "tables[0].experiment: unknown experiment"),
    ({"tables": [{**CARD["tables"][0], "reported": {"panet": {"1": [1.0]}}}]}, "tables[0].reported.panet.1"),
    ({"claims": [{**CARD["claims"][1], "kind": "vibes"}]}, "claims[0].kind"),
    ({"claims": [{**CARD["claims"][1], "a": ["canet"]}]}, "claims[0]: 'canet' is not a method"),
])
def test_bad_cards_are_refused_in_one_line_before_anything_is_written(tmp_path, capsys, change, names):
    card = write_card(tmp_path, {**CARD, **change}, "bad.json")
    out = tmp_path / "out"
    assert main(reproduce_args(card, out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and names in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_folder_of_another_card_is_refused(reproduced, tmp_path, capsys):
    card = write_card(tmp_path, {**CARD, "name": "other"}, "other.json")
    assert main(reproduce_args(card, reproduced["out"])) == 2
    assert "reproduces tiny on synthetic-tiny with overrides {}" in capsys.readouterr().err


def test_unknown_experiment_in_only_is_refused(tmp_path, capsys):
    card = write_card(tmp_path)
    assert main(reproduce_args(card, tmp_path / "out", "--only", "nope")) == 2
    assert "--only nope" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_an_export_resumes_elsewhere_without_redoing_a_cell(reproduced, tmp_path, capsys):
    """--export copies what the docs need and what resumes the reproduction; a copy resumed on another
    machine (no checkpoints) only rewrites the aggregates and the comparison."""
    dest = tmp_path / "exported"
    assert main(reproduce_args(reproduced["card"], reproduced["out"], "--no-run", "--export", str(dest))) == 0
    assert (dest / "reproduction.json").is_file() and (dest / "analyses" / "sim" / "pairs.csv").is_file()
    assert len(list((dest / "runs" / "main" / "episodes").glob("*.csv"))) == 6
    assert not (dest / "runs" / "main" / "episodes.csv").exists() and not list(dest.rglob("*.svg"))
    cells = {p.name: p.read_bytes() for p in (dest / "runs" / "main" / "episodes").iterdir()}
    args = ["reproduce", str(reproduced["card"]), "--dataset", "synthetic-tiny", "--profile", "tiny", "--out",
            str(dest), "--checkpoints", str(tmp_path / "no-checkpoints"), "--no-train", "--quiet", "--resamples", "200"]
    assert main(args) == 0
    assert {p.name: p.read_bytes() for p in (dest / "runs" / "main" / "episodes").iterdir()} == cells
    resumed = json.loads((dest / "reproduction.json").read_text())
    original = json.loads((reproduced["out"] / "reproduction.json").read_text())
    assert [c["outcome"] for c in resumed["claims"]] == [c["outcome"] for c in original["claims"]]
    assert resumed["tables"] == original["tables"]
    assert main(reproduce_args(reproduced["card"], reproduced["out"], "--no-run", "--export",
                               str(reproduced["out"] / "inside"))) == 2
    assert "outside the reproduction folder" in capsys.readouterr().err
