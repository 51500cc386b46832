"""Issue 25, options: numeric options, FSS_BENCH_CACHE / FSS_BENCH_HOME, the Ray address and options that
name files, as a careless or hostile user gives them. Each case ends with exit status 2 and one `error:`
line, leaves every file byte-identical and creates nothing; none hangs (a FIFO is never opened)."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from typing import List

import pytest

from analyses import context, error_overlap, identical, tsne
from bench.cli.commands import build_parser, main
from tests.refusals import Case, assert_one_error_line, assert_untouched, tree
from tests.bad_input_builders import Env
from tests.hardening_options_builders import (
    a_file,
    a_folder,
    cache_at,
    fifo,
    free_port,
    home_at,
    limited,
    weights_file,
)


def read_only_cache(env: Env) -> List[str]:
    if os.access("/proc/sys", os.W_OK):
        pytest.skip("/proc/sys is writable here")
    return cache_at(env, "/proc/sys")


CASES = [
    # numbers: NaN, infinities, negative, out of range, not a number; every command
    Case("cache-budget-nan", lambda e: e.pascal("--cache-budget", "nan"), "--cache-budget must be a finite number"),
    Case("cache-budget-inf", lambda e: e.pascal("--cache-budget", "inf"), "--cache-budget must be a finite number"),
    Case("cache-budget-negative", lambda e: e.pascal("--cache-budget", "-1"), "--cache-budget must be >= 0, got -1"),
    Case("episodes-1e12", lambda e: e.pascal("--episodes", "1e12"), "--episodes must be an integer, got '1e12'"),
    Case("seeds-ten-digits", lambda e: e.pascal("--seeds", "99999999999"), "--seeds must be <= 999999999"),
    Case("shots-1000", lambda e: e.pascal("--shots", "1000"), "--shots must be <= 100"),
    Case("min-object-pixels-huge", lambda e: e.pascal("--min-object-pixels", str(10 ** 12)),
         "--min-object-pixels must be <="),
    Case("batch-size-abc", lambda e: e.pascal("--batch-size", "abc"), "--batch-size must be an integer, got 'abc'"),
    Case("folds-abc", lambda e: e.pascal("--folds", "x"), "--folds must be an integer"),
    Case("cpus-per-task-huge", lambda e: e.pascal("--executor", "ray", "--cpus-per-task", "100000"),
         "--cpus-per-task must be <= 1024"),
    Case("connect-timeout-nan", lambda e: e.pascal("--connect-timeout", "nan"), "--connect-timeout must be a finite"),
    Case("train-epochs-nan", lambda e: ["train", "--methods", "panet", "--epochs", "nan"], "--epochs must be an integer"),
    Case("train-seed-ten-digits", lambda e: ["train", "--methods", "panet", "--train-seed", str(10 ** 10)],
         "--train-seed must be <= 999999999"),
    Case("report-resamples-nan", lambda e: ["report", "--run", str(e.tmp), "--resamples", "nan"],
         "--resamples must be an integer"),
    Case("report-resamples-huge", lambda e: ["report", "--run", str(e.tmp), "--resamples", str(10 ** 9)],
         "--resamples must be <= 100000"),
    Case("report-qualitative-abc", lambda e: ["report", "--run", str(e.tmp), "--qualitative", "a"],
         "--qualitative must be an integer"),
    Case("compare-resamples-inf", lambda e: ["compare", str(e.tmp), str(e.tmp), "--resamples", "inf"],
         "--resamples must be an integer"),
    Case("check-tolerance-nan", lambda e: ["check", "--run", str(e.tmp), "--baseline", "b.json", "--tolerance", "nan"],
         "--tolerance must be a finite number"),
    Case("verify-tolerance-nan", lambda e: ["verify", "--run", str(e.tmp), "--tolerance", "nan"],
         "--tolerance must be a finite number"),
    Case("methods-missing", lambda e: ["run", "--dataset", "pascal5i"], "the following arguments are required: --methods"),
    Case("unknown-flag", lambda e: e.pascal("--bogus", "3"), "unrecognized arguments: --bogus 3"),
    # FSS_BENCH_CACHE and FSS_BENCH_HOME
    Case("cache-is-a-file", lambda e: cache_at(e, str(a_file(e))), "FSS_BENCH_CACHE"),
    Case("cache-under-a-file", lambda e: cache_at(e, str(a_file(e) / "cache")), "which is not a folder"),
    Case("cache-empty", lambda e: cache_at(e, ""), "FSS_BENCH_CACHE is set but empty"),
    Case("cache-read-only", read_only_cache, "FSS_BENCH_CACHE /proc/sys is not writable"),
    Case("home-is-a-file", lambda e: home_at(e, str(a_file(e))), "FSS_BENCH_HOME"),
    Case("home-under-a-file", lambda e: home_at(e, str(a_file(e) / "home")), "which is not a folder"),
    Case("home-empty", lambda e: home_at(e, ""), "FSS_BENCH_HOME is set but empty"),
    # options that name files: say what the path is, never open a FIFO or a device
    Case("log-file-fifo", lambda e: e.pascal("--log-file", str(fifo(e))), "--log-file must be a regular file"),
    Case("log-file-folder", lambda e: e.pascal("--log-file", str(a_folder(e))), "(a directory)"),
    Case("log-file-device", lambda e: e.pascal("--log-file", "/dev/zero"), "(a character device)"),
    Case("episodes-from-fifo", lambda e: e.pascal("--episodes-from", str(fifo(e))), "(a FIFO)"),
    Case("episodes-from-device", lambda e: e.pascal("--episodes-from", "/dev/zero"), "(a character device)"),
    Case("lists-is-a-file", lambda e: e.pascal("--lists", str(a_file(e))), "--lists must be a directory"),
    Case("data-root-is-a-file", lambda e: e.pascal("--data-root", str(a_file(e))), "--data-root must be a directory"),
    Case("plugin-is-a-folder", lambda e: e.pascal("--plugin", str(a_folder(e, "p.py"))), "--plugin must be a regular"),
    Case("cache-spill-is-a-file", lambda e: e.pascal("--cache-spill", str(a_file(e))), "--cache-spill must be a dir"),
    Case("checkpoints-is-a-file", lambda e: e.pascal("--checkpoints", str(a_file(e))), "--checkpoints must be a dir"),
    Case("backbone-weights-fifo", lambda e: ["train", "--methods", "panet", "--backbone-weights", str(fifo(e))],
         "--backbone-weights must be a regular file"),
    Case("weights-tag-device", lambda e: weights_file(e, "/dev/zero"), "/dev/zero is not a regular file (it is a char"),
    Case("weights-tag-fifo", lambda e: weights_file(e, "fifo"), "is not a regular file (it is a FIFO)"),
    Case("weights-tag-folder", lambda e: weights_file(e, "folder"), "is not a regular file (it is a directory)"),
    Case("weights-folder-is-a-file", lambda e: e.pascal("--weights", str(a_file(e))), "is not a folder (it is a reg"),
    Case("baseline-fifo", lambda e: ["check", "--run", str(e.tmp), "--baseline", str(fifo(e))], "(a FIFO)"),
    Case("prepare-archive-fifo", lambda e: ["prepare", "pascal5i", "--voc", str(fifo(e)), "--sbd", str(e.tmp / "s"),
                                            "--out", str(e.tmp / "o")], "--voc must be a regular file"),
    Case("prepare-src-is-a-file", lambda e: ["prepare", "deepglobe", "--src", str(a_file(e)), "--out",
                                             str(e.tmp / "o")], "--src must be a directory"),
    # the Ray address, checked before anything is written
    Case("ray-address-malformed", lambda e: e.pascal("--executor", "ray", "--address", "nonsense"),
         "--address 'nonsense' is not HOST:PORT"),
]


def test_there_are_enough_cases():
    assert len(CASES) >= 14 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_option_is_one_error_line_and_touches_nothing(case, tmp_path, voc_root, cache_env, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a default ./runs or ./checkpoints would appear here
    with contextlib.ExitStack() as stack:
        env = Env(tmp_path / "case", voc_root, None, None, monkeypatch, stack)
        env.tmp.mkdir()
        args = case.build(env)
        before = tree(tmp_path)
        capsys.readouterr()
        code = main(args)
        err = capsys.readouterr().err
        monkeypatch.undo()
        after = tree(tmp_path)
    assert_one_error_line(code, err, case.message)
    assert_untouched(before, after)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case"]


@pytest.mark.parametrize("args,message", [
    (["--eval-size", "100000"], "--eval-size must be <= 4096"),  # was a 40 GB allocation
    (["--input-size", "100000"], "--input-size must be <= 2048"),
    (["--episodes", str(10 ** 12)], "--episodes must be <= 100000"),
    (["--batch-size", str(10 ** 6)], "--batch-size must be <= 1024"),
], ids=["eval-size", "input-size", "episodes", "batch-size"])
def test_huge_sizes_are_refused_under_a_memory_limit(args, message, tmp_path, cache_env):
    out = tmp_path / "out"
    result = limited(["run", "--methods", "support-copy", "--dataset", "synthetic-tiny", "--splits", "1", "--shots",
                      "1", "--seeds", "0", "--quiet", "--out", str(out), *args], tmp_path, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["run", "train"])
def test_unreachable_ray_address_is_one_line_within_seconds(command, tmp_path, cache_env):
    address = f"127.0.0.1:{free_port()}"
    args = [command, "--methods", "panet", "--dataset", "synthetic-tiny", "--splits", "1", "--executor", "ray",
            "--address", address, "--checkpoints", str(tmp_path / "ck"), "--quiet"]
    if command == "run":
        args += ["--shots", "1", "--seeds", "0", "--episodes", "3", "--out", str(tmp_path / "out")]
    result = limited(args, tmp_path, timeout=120)  # Ray alone retried for about 14 minutes
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and f"cannot reach the Ray cluster at {address}" in lines[0], result.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


def test_a_silent_ray_address_gives_up_after_connect_timeout(voc_root, tmp_path, monkeypatch, capsys):
    waited = []

    def silent(address, timeout):
        waited.append(timeout)
        raise socket.timeout("timed out")

    monkeypatch.setattr(socket, "create_connection", silent)
    out = tmp_path / "out"
    code = main(["run", "--methods", "support-copy", "--dataset", "pascal5i", "--data-root", str(voc_root),
                 "--lists", str(voc_root / "lists"), "--executor", "ray", "--address", "127.0.0.1:6379",
                 "--connect-timeout", "2.5", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and waited == [2.5]
    assert err == ("error: cannot reach the Ray cluster at 127.0.0.1:6379 within 2.5 s (no answer); is it running? "
                   "(--connect-timeout sets the wait)")
    assert not out.exists()


@pytest.mark.parametrize("module,args,message", [
    (context, ["--levels", "2"], "--levels must be <= 1, got 2"),
    (context, ["--pairs", "nan"], "--pairs must be an integer"),
    (tsne, ["--per-class", "0"], "--per-class must be >= 1, got 0"),
    (identical, ["--methods", "panet", "--episodes", str(10 ** 9)], "--episodes must be <= 100000"),
    (error_overlap, ["--method", "panet", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (error_overlap, ["--method", "panet", "--supervised-weights", "/dev/zero"], "(a character device)"),
], ids=["context-levels", "context-pairs", "tsne-per-class", "identical-episodes", "overlap-seed", "overlap-weights"])
def test_analyses_options_are_one_error_line(module, args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert module.main([*args, "--dataset", "synthetic-tiny", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_help_states_the_bounds(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for bound in ("(1 to 100000)", "(16 to 2048)", "(0 to 4096)", "(0 to 999999999)"):
        assert bound in text, bound


def test_help_still_exits_0_and_a_usage_error_returns_2(capsys):
    with pytest.raises(SystemExit) as done:
        main(["run", "--help"])
    assert done.value.code == 0
    assert main(["run", "--help-me"]) == 2


def test_bounds_leave_normal_values_alone(tmp_path, cache_env):
    """The defaults and the documented edge values parse as before (0 = unbounded cache, 0.25 GiB)."""
    parser = build_parser()
    args = parser.parse_args(["run", "--methods", "x", "--cache-budget", "0", "--episodes", "100000", "--seeds",
                              "0", "999999999", "--log-file", str(tmp_path / "new.log"), "--data-root",
                              str(tmp_path / "new")])
    assert (args.cache_budget, args.episodes, args.seeds) == (0.0, 100000, [0, 999999999])
    assert parser.parse_args(["run", "--methods", "x"]).cache_budget == 4.5
    assert subprocess.run([sys.executable, "-c", "pass"]).returncode == 0
