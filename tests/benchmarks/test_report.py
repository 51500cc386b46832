"""`bench report` on a small finished run (the reference methods on `synthetic-tiny`, split 1, 1 and 5 shots,
20 episodes, qualitative panels saved): rendering only, the run is made once."""
import pytest

from bench.cli.commands import main


@pytest.fixture(scope="module")
def finished_run(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("report-bench") / "run"
    assert main(["run", "--methods", "support-copy", "all-foreground", "--dataset", "synthetic-tiny",
                 "--splits", "1", "--shots", "1", "5", "--seeds", "0", "--episodes", "20",
                 "--out", str(out), "--quiet"]) == 0
    return out


@pytest.mark.benchmark(group="report")
def test_report_rendering(benchmark, finished_run):
    report = finished_run.parent / "report.html"
    status = benchmark.pedantic(main, args=(["report", "--run", str(finished_run), "--out", str(report)],),
                                rounds=3, iterations=1)
    assert status == 0 and report.stat().st_size > 0
