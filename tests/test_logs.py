"""Log lines for batch jobs (stderr not a terminal, --log-file) and progress bars on odd terminals."""
import io
import os
import re
import select
import sys

import pytest

import bench.core.progress as progress
from bench.cli.commands import main
from bench.core.errors import BenchError
from bench.core.log import format_seconds, log, log_session
from bench.core.progress import GridProgress, progress_bar

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "


def log_lines(text):
    """The timestamped log lines of `text`, without their timestamps."""
    return [line[20:] for line in text.splitlines() if re.match(STAMP, line)]


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal (on file descriptor 2)."""

    def isatty(self):
        return True

    def fileno(self):
        return 2


class Ticks:
    """A clock that moves `step` seconds each time it is read."""

    def __init__(self, step):
        self.now, self.step = 0.0, step

    def __call__(self):
        self.now += self.step
        return self.now


def test_lines_go_to_stderr_only_when_it_is_no_terminal_and_not_quiet(capsys, monkeypatch):
    log("outside a session")
    with log_session():
        log("to a pipe")
    with log_session(quiet=True):
        log("quiet")
    monkeypatch.setattr(sys, "stderr", FakeTerminal())
    with log_session():
        log("to a terminal")
    assert sys.stderr.getvalue() == ""
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert re.fullmatch(STAMP + "to a pipe\n", err), err


def test_log_file_is_appended_with_its_folder_and_records_how_it_ended(tmp_path, capsys):
    path = tmp_path / "new" / "folder" / "bench.log"
    with log_session(str(path), quiet=True, title="bench run"):
        log("first")
    with pytest.raises(BenchError):
        with log_session(str(path), title="bench train"):
            log("second")
            raise BenchError("bad input")
    with pytest.raises(KeyboardInterrupt):
        with log_session(str(path), quiet=True):
            raise KeyboardInterrupt
    lines = log_lines(path.read_text())
    assert lines[0].startswith("bench run started (pid ") and lines[1] == "first"
    assert lines[2].startswith("bench train started (pid ") and lines[3:5] == ["second", "error: bad input"]
    assert lines[-1] == "interrupted" and len(lines) == 7
    assert log_lines(capsys.readouterr().err) == ["second"]  # the command itself prints its error line
    with pytest.raises(BenchError, match="cannot write the log file"):
        with log_session(str(tmp_path)):  # a folder
            pass


def test_long_work_logs_a_progress_line_at_most_every_log_every_seconds(capsys, monkeypatch):
    monkeypatch.setattr(progress, "clock", Ticks(10.0))
    with log_session():
        bar = progress_bar(total=9, desc="encoding images", unit="img")
        for step in range(9):
            if step == 3:
                bar.set_postfix(loss="0.500")
            bar.update(1)
        bar.close()
    lines = log_lines(capsys.readouterr().err)
    assert len(lines) == 4, lines  # 90 s of work: at 30, 60 and 90 s, then the end
    assert lines[0] == "encoding images: 3/9 img (33%), 30 s elapsed, ETA 1m00s"
    assert lines[1] == "encoding images: 6/9 img (67%), loss 0.500, 1m00s elapsed, ETA 30 s"
    assert lines[3] == "encoding images: done, 9 img in 1m40s"


def test_short_work_and_quiet_bars_log_nothing_on_a_quiet_stderr(capsys, monkeypatch, tmp_path):
    with log_session():
        with progress_bar(total=3, desc="short") as bar:
            bar.update(3)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(progress, "clock", Ticks(40.0))
    with log_session(str(tmp_path / "log"), quiet=True):
        with progress_bar(total=2, desc="quiet bar", quiet=True) as bar:
            bar.update(1)
    assert capsys.readouterr().err == ""
    assert "quiet bar: 1/2 it (50%), 40 s elapsed, ETA 40 s" in log_lines((tmp_path / "log").read_text())


def test_grid_progress_still_counts_and_summarises(capsys):
    grid = GridProgress(3, "cells")
    grid.update(done=2)
    grid.update(failed=1, retries=1)
    grid.close()
    assert capsys.readouterr().err == "cells: 2/3 done, 1 failed, 1 retried attempts\n"


def test_format_seconds():
    assert [format_seconds(s) for s in (0.4, 59, 61, 3599, 3725)] == ["0 s", "59 s", "1m01s", "59m59s", "1h02m"]


def drawn_bar(text):
    """The line a bar drew at 50% (tqdm redraws after carriage returns), and the length of its filled part."""
    line = next((part for part in re.split(r"[\r\n]", text) if " 50%|" in part), "")
    return line, max((len(m) for m in re.findall(r"[#█]+", line)), default=0)


@pytest.mark.parametrize("columns", [None, "0", "120"])
def test_a_terminal_reporting_zero_columns_still_gets_a_bar(monkeypatch, columns):
    """Some batch systems give a pty of 0 columns; tqdm's dynamic width draws a bar of width 0 there."""
    monkeypatch.setattr(sys, "stderr", FakeTerminal())
    monkeypatch.setattr(os, "get_terminal_size", lambda fd=None: os.terminal_size((0, 0)))
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    bar = progress_bar(total=10, desc="work", mininterval=0)
    bar.update(5)
    text = sys.stderr.getvalue()
    bar.close()
    line, filled = drawn_bar(text)
    width = 120 if columns == "120" else progress.FALLBACK_SIZE[0]
    assert width - 10 <= len(line) <= width and filled >= 10, repr(text)


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="no pseudo-terminals here")
def test_a_real_zero_column_pty_gets_a_bar(monkeypatch):
    termios = pytest.importorskip("termios")
    fcntl = pytest.importorskip("fcntl")
    import struct

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
    stream = open(slave, "w", encoding="utf-8")
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.delenv("COLUMNS", raising=False)
    try:
        assert os.get_terminal_size(slave).columns == 0
        bar = progress_bar(total=10, desc="work", mininterval=0)
        bar.update(5)
        stream.flush()
        text = b""
        while select.select([master], [], [], 0.5)[0]:
            text += os.read(master, 65536)
        bar.close()
    finally:
        stream.close()
        os.close(master)
    line, filled = drawn_bar(text.decode("utf-8", "replace"))
    assert len(line) >= 70 and filled >= 10, repr(text)


def test_run_logs_cells_to_the_file_even_when_quiet(cache_env, tmp_path, capsys):
    log_file = tmp_path / "logs" / "run.log"
    args = ["run", "--methods", "support-copy", "all-foreground", "--dataset", "synthetic-tiny", "--splits", "1",
            "--shots", "1", "--seeds", "0", "--episodes", "8", "--out", str(tmp_path / "run"), "--quiet",
            "--log-file", str(log_file)]
    assert main(args) == 0
    assert log_lines(capsys.readouterr().err) == []
    lines = log_lines(log_file.read_text())
    assert lines[0].startswith("bench run started") and lines[-1] == f"run finished: {tmp_path / 'run'}"
    cells = [line for line in lines if line.startswith(("support-copy split1", "all-foreground split1"))]
    assert len(cells) == 2 and all(re.search(r": mIoU \d+\.\d\d, FB-IoU \d+\.\d\d, 8 episodes in ", c) for c in cells)
    assert main(args[:-1] + [str(tmp_path)]) == 2  # a folder is no log file
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --log-file must be a regular file") and len(err.splitlines()) == 1


def test_a_session_inside_another_writes_each_line_once(tmp_path, capsys):
    path = tmp_path / "analysis.log"
    with log_session(str(path), title="python -m analyses.context"):
        log("outer")
        with log_session(str(path), title="bench run"):  # the analysis' own `bench run`
            log("inner")
        log("after")
    assert log_lines(capsys.readouterr().err) == ["outer", "inner", "after"]
    lines = log_lines(path.read_text())
    assert lines[0].startswith("python -m analyses.context started") and lines[1:] == ["outer", "inner", "after"]
    with log_session():
        log("a new session")
    assert log_lines(capsys.readouterr().err) == ["a new session"]
