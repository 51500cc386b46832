"""The run's ETA from the work left (trainings and cells, each at its timings) instead of from the rate of
cells, which jumped by hours when the cells that waited on trainings ended (issue 29, part 4)."""
import pytest

import bench.runs.executors.local as local
from bench.cli.commands import main
from bench.core import progress
from bench.core.progress import Progress, WorkEstimate, eta_text

HOUR, MINUTE = 3600.0, 60.0


def test_with_exact_timings_elapsed_plus_eta_stays_the_total():
    """4 splits, each a 1 h training then 10 cells of 1 min, in the local executor's order."""
    estimate = WorkEstimate()
    estimate.add("training", "m", 4)
    estimate.add("cell", "m", 40)
    elapsed, totals, by_rate = 0.0, [], []
    for split in range(4):
        estimate.finished("training", "m", HOUR)
        elapsed += HOUR
        for cell in range(10):
            estimate.finished("cell", "m", MINUTE)
            elapsed += MINUTE
            totals.append(elapsed + estimate.seconds_left())
            done = split * 10 + cell + 1
            by_rate.append(elapsed + elapsed / done * (40 - done))
    assert totals == [4 * HOUR + 40 * MINUTE] * 40
    # what the bar said: the first cell of a split extrapolates its training to every cell left
    assert max(by_rate) - min(by_rate) > 30 * HOUR


def test_no_estimate_until_each_kind_left_is_timed():
    estimate = WorkEstimate()
    estimate.add("training", "m", 2)
    estimate.add("cell", "m", 5)
    assert estimate.seconds_left() is None
    estimate.finished("training", "m", 100.0)
    assert estimate.seconds_left() is None  # cells never timed
    estimate.finished("cell", "m", 2.0)
    assert estimate.seconds_left() == 100.0 + 4 * 2.0


def test_recorded_timings_count_and_an_untimed_method_takes_its_kinds_mean():
    estimate = WorkEstimate([("cell", "a", 10.0), ("cell", "a", 20.0), ("training", "a", 300.0)])
    estimate.add("cell", "a", 2)
    estimate.add("cell", "b", 1)
    estimate.add("training", "b", 1)
    assert estimate.seconds_left() == 2 * 15.0 + 15.0 + 300.0
    estimate.finished("cell", "b", 3.0)
    assert estimate.seconds_left() == 2 * 15.0 + 300.0


def test_the_log_line_takes_the_estimate(monkeypatch):
    monkeypatch.setattr(progress, "clock", lambda: 0.0)
    bar = Progress(total=10, desc="cells", quiet=True, eta=lambda: 125.0)
    bar.n = 1
    assert bar.line(50.0).endswith("ETA 2m05s")
    bar.eta = lambda: None
    assert bar.line(50.0).endswith(eta_text(None))


@pytest.fixture
def estimates(monkeypatch):
    made = []
    original = local.work_estimate
    monkeypatch.setattr(local, "work_estimate", lambda *a: made.append(original(*a)) or made[-1])
    return made


def test_the_local_executor_times_trainings_and_cells_apart(cache_env, tmp_path, estimates):
    argv = ["run", "--methods", "panet", "support-copy", "--dataset", "synthetic-tiny", "--splits", "1", "2",
            "--shots", "1", "--seeds", "0", "--episodes", "4", "--checkpoints", str(tmp_path / "ckpt"),
            "--out", str(tmp_path / "run"), "--quiet"]
    assert main(argv) == 0
    first = estimates[0]
    assert sorted((k, len(t)) for k, t in first.timings.items()) == [
        (("cell", "panet"), 2), (("cell", "support-copy"), 2), (("training", "panet"), 2)]
    assert set(first.left.values()) == {0} and first.seconds_left() == 0
    # the run grows by a method: the recorded cells and trainings time the new work from the start
    argv[argv.index("support-copy")] = "all-foreground"
    assert main(argv) == 0
    second = estimates[1]
    assert sorted((k, len(t)) for k, t in second.timings.items()) == [
        (("cell", "all-foreground"), 2), (("cell", "panet"), 2), (("cell", "support-copy"), 2),
        (("training", "panet"), 2)]
    assert second.left == {("cell", "all-foreground"): 0}  # panet's cells were done: only the new method's
