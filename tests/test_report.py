"""`bench report`: a self-contained page rendered from saved files only, checked in headless Chromium."""
import base64
import io
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from markupsafe import escape

from analyses.registry import report_sections
from bench.cli.commands import main
from bench.runs.rundir import format_times, time_per_method
from reports.paper import paper_value
from reports.render import analyses_sections

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def run_args(voc_root, out):
    return ["run", "--methods", "support-copy", "all-foreground", "--dataset", "pascal5i", "--data-root", str(voc_root),
            "--lists", str(voc_root / "lists"), "--splits", "1", "2", "--shots", "1", "3", "--seeds", "0", "1",
            "--episodes", "20", "--out", str(out), "--quiet"]


@pytest.fixture(scope="module")
def report(voc_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    assert main(run_args(voc_root, out)) == 0
    assert main(["report", "--run", str(out), "--resamples", "200"]) == 0
    return out / "report.html"


def test_report_has_every_section_and_is_self_contained(report):
    html = report.read_text()
    for heading in ("Table 3 layout", "Table 4 layout", "Per-class IoU", "Statistics", "Paired differences",
                    "Qualitative results", "Provenance", "checkpoint selection", "Manifests",
                    "Wall time per method"):
        assert heading in html, heading
    assert not re.search(r'(src|href)="https?://', html)  # viewable with no network
    assert html.count('src="data:image/png;base64,') == 1  # the bars; qualitative panels are JPEG
    assert html.count('src="data:image/jpeg;base64,') >= 3


def test_report_numbers_come_from_the_episodes_at_full_precision(report, tmp_path):
    """Not from summary.csv (rounded to 4 decimals, so a value could round twice): a tampered one is ignored."""
    from analyses.summary import summarize
    from bench.runs.results import load_results

    run = tmp_path / "run"
    shutil.copytree(report.parent, run)
    tampered = pd.read_csv(run / "summary.csv")
    tampered["miou_mean"] += 7.77
    tampered.to_csv(run / "summary.csv", index=False)
    assert main(["report", "--run", str(run), "--resamples", "50"]) == 0
    html = (run / "report.html").read_text()
    summary = summarize(load_results(run).episodes)
    for row in summary[summary.split == "mean"].itertuples():
        assert f"{row.miou_mean:.2f} &plusmn; {row.miou_std:.2f}" in html, (row.method, row.shot)
        assert f"{row.miou_mean + 7.77:.2f} &plusmn;" not in html


def test_report_never_runs_a_model(report, monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise AssertionError("the report must not run a model")

    monkeypatch.setattr(torch.nn.Module, "__call__", refuse)
    assert main(["report", "--run", str(report.parent), "--out", str(tmp_path / "again.html"), "--resamples", "50"]) == 0
    assert (tmp_path / "again.html").stat().st_size > 10_000


def test_report_of_a_non_run_is_a_clear_error(tmp_path, capsys):
    assert main(["report", "--run", str(tmp_path)]) == 2
    assert "not a finished run directory" in capsys.readouterr().err


def test_time_per_method_counts_each_checkpoint_once():
    metas = [{"method": "a", "seconds": 2.0, "checkpoint": "a/1", "checkpoint_train_seconds": 10.0},
             {"method": "a", "seconds": 3.0, "checkpoint": "a/1", "checkpoint_train_seconds": 10.0},
             {"method": "a", "seconds": 1.0, "checkpoint": "a/2", "checkpoint_train_seconds": 5.0},
             {"method": "b", "seconds": 4.0, "checkpoint": "b/1"},  # written before training time was recorded
             {"method": "c", "seconds": 0.5, "checkpoint": None}]
    times = time_per_method(metas, ["a", "b", "c"]).set_index("method")
    assert times.loc["a"].tolist() == [3, 6.0, 2, 15.0]
    assert times.loc["b", "checkpoints"] == 1 and np.isnan(times.loc["b", "training_s"])
    assert times.loc["c", "checkpoints"] == 0 and np.isnan(times.loc["c", "training_s"])
    table = format_times(times.reset_index())
    assert [line.split()[-1] for line in table.splitlines()[2:5]] == ["15", "?", "-"]


def test_paper_numbers_are_looked_up_by_our_names():
    assert paper_value("table3", "simpropnet", "miou", 1, "1") == 54.86
    assert paper_value("table4", "canet", "fbiou", 5, "mean") == 69.6
    assert paper_value("table5", "simpropnet-dpr", "miou", 1, "mean") == 55.89
    assert paper_value("table3", "support-copy", "miou", 1, "1") is None


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium; .ci/run does)")
def test_report_renders_in_headless_chromium_without_console_errors(report, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install .[test])")
    from PIL import Image

    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(report.as_uri())
        broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).length")
        tables = page.evaluate("document.querySelectorAll('table').length")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert errors == [] and broken == 0 and tables >= 8
    pixels = np.asarray(Image.open(tmp_path / "report.png").convert("L"))
    assert pixels.shape[0] > 2000 and pixels.std() > 10  # a long page with content, not a blank one


PAYLOAD_CLASS = "<b>pwned"  # a folder name: no spaces or slashes, as FSS-1000 class names must be
PAYLOAD_PATH = '<img src=x onerror="window.xss=1">'


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    """A report whose data carries markup: an FSS-1000 class name, the --out and --lists paths, an analysis table."""
    from tests.voc_fixture import make_fss_tree

    base = tmp_path_factory.mktemp("xss")
    names = [PAYLOAD_CLASS, "plain_class"]
    make_fss_tree(base / "fss", names, images=3)
    lists = base / PAYLOAD_PATH / "lists"
    lists.mkdir(parents=True)
    for part, members in (("trn", ["t"]), ("val", ["v"]), ("test", names)):
        (lists / f"{part}.txt").write_text("".join(f"{n}\n" for n in members))
    out = base / PAYLOAD_PATH / "run"
    assert main(["run", "--methods", "support-copy", "all-foreground", "--dataset", "fss1000", "--data-root",
                 str(base / "fss"), "--lists", str(lists), "--splits", "1", "--shots", "1", "--seeds", "0", "--episodes", "6",
                 "--out", str(out), "--quiet"]) == 0
    (out / "analyses" / "similarity").mkdir(parents=True)
    pd.DataFrame({"class": [PAYLOAD_CLASS], "note": [PAYLOAD_PATH]}).to_csv(out / "analyses" / "similarity" / "t.csv",
                                                                          index=False)
    assert main(["report", "--run", str(out), "--resamples", "20"]) == 0
    return out / "report.html"


def test_strings_from_data_are_escaped_in_the_report(hostile_report):
    html = hostile_report.read_text()
    assert PAYLOAD_CLASS not in html and PAYLOAD_PATH not in html
    assert "&lt;b&gt;pwned" in html and "&lt;img src=x onerror=" in html


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium; .ci/run does)")
def test_no_element_is_created_from_data_in_the_browser(hostile_report):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install .[test])")
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        page.goto(hostile_report.as_uri())
        page.wait_for_timeout(300)  # an injected onerror would have fired by now
        found = page.evaluate("""() => ({
            xss: window.xss === 1,
            bold: [...document.querySelectorAll('b')].filter(b => b.textContent.includes('pwned')).length,
            handlers: document.querySelectorAll('[onerror]').length,
            text: document.body.innerText.includes('<b>pwned') && document.body.innerText.includes('onerror=')})""")
        browser.close()
    assert found == {"xss": False, "bold": 0, "handlers": 0, "text": True}


def _section(html, start, end):
    return html[html.index(start):html.index(end)]


def test_interval_section_shows_the_tables_numbers_in_methods_order(report):
    """One point estimate per cell: the statistics section's mIoU is Table 3's mean over seeds."""
    from analyses.summary import summarize
    from bench.runs.results import load_results

    html = report.read_text()
    stats = _section(html, 'id="stats"', 'id="qualitative"')
    summary = summarize(load_results(report.parent).episodes)
    for row in summary[summary.split != "mean"].itertuples():
        assert f"{row.miou_mean:.2f} &plusmn; {row.miou_std:.2f}" in html
        assert (f'<td class="name">{row.method}</td><td>{row.split}</td><td>{row.shot}</td>'
                f'<td>{row.miou_mean:.2f}</td>') in stats, (row.method, row.split, row.shot)
    assert "(query image, class) pairs" in stats
    # --methods support-copy all-foreground: that order everywhere, not the alphabetical one
    for start, end in (('id="tables"', 'id="classes"'), ('id="classes"', 'id="stats"'),
                       ('id="stats"', "<h3>Paired differences")):
        part = _section(html, start, end)
        assert part.index('<td class="name">support-copy') < part.index('<td class="name">all-foreground'), start


def _saved_tables(run_dir):
    from bench.evaluation.qualitative import load_qualitative

    return [load_qualitative(p)[0] for p in sorted((run_dir / "qualitative").glob("*.npz"))]


def test_qualitative_panels_are_small_jpegs_of_every_saved_kind(report):
    from PIL import Image

    from reports.plots import PANEL_HEIGHT

    html = report.read_text()
    panels = re.findall(r'<img src="data:image/jpeg;base64,([^"]+)"', html)
    tables = _saved_tables(report.parent)
    assert len(tables) == 4 and len(panels) == sum(len(t) for t in tables)  # best, worst and random of each class
    for kind in ("best", "worst", "random"):
        assert html.count(f": {kind}, IoU") == sum((t.kind == kind).sum() for t in tables)
    sizes = [Image.open(io.BytesIO(base64.b64decode(p))).size for p in panels]
    assert {h for _, h in sizes} == {PANEL_HEIGHT} and all(w < 3 * PANEL_HEIGHT for w, _ in sizes)
    # the fixture's images are random noise, the worst case for JPEG: still well under 10 kB a panel
    assert sum(len(p) for p in panels) / len(panels) < 10_000
    for label in ("support mask", "ground truth", "prediction"):
        assert label in _section(html, 'id="qualitative"', 'id="provenance"')


def test_qualitative_option_chooses_panels_per_class(report, tmp_path, capsys):
    tables = _saved_tables(report.parent)
    assert main(["report", "--run", str(report.parent), "--out", str(tmp_path / "one.html"), "--resamples", "20",
                 "--qualitative", "1"]) == 0
    html = (tmp_path / "one.html").read_text()
    assert html.count("data:image/jpeg") == sum((t.kind == "best").sum() for t in tables)
    assert ": worst, IoU" not in html and ": random, IoU" not in html
    assert main(["report", "--run", str(report.parent), "--out", str(tmp_path / "none.html"), "--resamples", "20",
                 "--qualitative", "0"]) == 0
    assert "data:image/jpeg" not in (tmp_path / "none.html").read_text()
    capsys.readouterr()
    assert main(["report", "--run", str(report.parent), "--out", str(tmp_path / "x.html"), "--qualitative", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --qualitative must be 0 to 3")


def test_reference_option_sets_the_paired_comparisons(report, tmp_path, capsys):
    assert main(["report", "--run", str(report.parent), "--out", str(tmp_path / "r.html"), "--resamples", "20",
                 "--reference", "all-foreground"]) == 0
    html = (tmp_path / "r.html").read_text()
    assert "Paired differences: all-foreground minus each method" in html
    paired = _section(html, "Paired differences", 'id="qualitative"')
    assert '<td class="name">support-copy</td>' in paired and '<td class="name">all-foreground</td>' not in paired
    for name in ("canet", "no-such-method"):  # registered but not in the run; unknown
        capsys.readouterr()
        assert main(["report", "--run", str(report.parent), "--out", str(tmp_path / "x.html"), "--reference", name]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0] == (f"error: --reference {name} is not a method of this run (its methods: "
                                            "support-copy, all-foreground)")
    assert not (tmp_path / "x.html").exists()


def test_a_learned_method_at_or_below_all_foreground_is_flagged(report, voc_root, tmp_path, monkeypatch, capsys):
    """The fixture's support-copy is below all-foreground on split 2; taken for a learned method it is flagged in
    the tables `bench run` prints, in what `bench report` prints and in the report."""
    import bench.runs.run
    import reports.render

    monkeypatch.setattr(bench.runs.run, "is_trainable", lambda name: name == "support-copy")
    # the report reads which methods are learned from config.json (issue 25: no plugin code needed)
    monkeypatch.setattr(reports.render, "learned_methods", lambda config: ["support-copy"])
    run = tmp_path / "run"
    shutil.copytree(report.parent, run)
    capsys.readouterr()
    assert main(run_args(voc_root, run)) == 0  # every cell finished: prints the tables again
    printed = capsys.readouterr().out
    mious, rest = printed.split("FB-IoU (%)")
    warning = [line for line in mious.splitlines() if line.startswith("warning:")]
    assert warning == [line for line in rest.splitlines() + mious.splitlines() if "warning" in line]
    assert len(warning) == 1 and warning[0].startswith(
        "warning: support-copy is at or below all-foreground's mIoU on 1-shot split 2; 3-shot split 2 (split-2 ")
    assert main(["report", "--run", str(run), "--resamples", "20"]) == 0
    assert capsys.readouterr().out.startswith(warning[0])
    html = (run / "report.html").read_text()
    assert "Collapsed training?" in html and str(escape(warning[0])) in html
    table3 = _section(html, 'id="tables"', "Table 4 layout")
    assert table3.count('class="collapsed"') == 2  # split 2 at 1 and 3 shots
    # only learned methods are checked (all-foreground is the floor they must beat, support-copy is not learned)
    monkeypatch.setattr(reports.render, "learned_methods", lambda config: [])
    assert main(["report", "--run", str(run), "--resamples", "20"]) == 0
    assert "Collapsed training?" not in (run / "report.html").read_text()


def test_the_reports_analysis_sections_come_from_the_registry(tmp_path):
    """Every analysis with a report title is a section of `bench report` when its folder is in the run."""
    for name in report_sections():
        (tmp_path / "analyses" / name).mkdir(parents=True)
    (tmp_path / "analyses" / "pipeline_gap").mkdir()  # registered without a title: not a section
    assert [s["title"] for s in analyses_sections(tmp_path)] == list(report_sections().values())
