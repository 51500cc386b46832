"""Issue 25, run directories, analyses outputs, plugins and identities: what a careless or hostile user
gives `bench run`, report, compare and check (names that are paths, damaged or hostile run files, plugins
that exit, edited plugins, runs grown without their plugin), and what --overwrite and SIGTERM must keep."""
from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

import methods.support_copy
from bench.cli.commands import main
from bench.cli.guard import terminate_as_interrupt
from bench.core.outputs import RECORD_NAME, remove_outputs, write_output
from bench.runs.config import method_identity
from methods import METHODS
from tests.refusals import Case, assert_one_error_line, assert_untouched, tree
from tests.bad_input_builders import Env
from tests.hardening_runs_builders import (
    CELL,
    DEEP,
    PLUGIN_METHOD,
    Raw,
    damaged,
    grow,
    linked_folder,
    plugin_source,
    with_plugin,
)
from tests.plugin_helpers import ROOT, clean_registry  # noqa: F401  (fixture)

GRID = ["--dataset", "pascal5i", "--splits", "1", "--shots", "1", "--seeds", "0", "--episodes", "10", "--quiet"]


def run_args(voc_root: Path, out: Path, *methods: str, extra=()) -> List[str]:
    return ["run", "--methods", *methods, *GRID, "--data-root", str(voc_root), "--lists", str(voc_root / "lists"),
            "--out", str(out), *extra]


@pytest.fixture(scope="module")
def runs(voc_root, tmp_path_factory):
    """A finished support-copy run (`run`) and one of a plugin's method (`plugged`), side by side."""
    folder = tmp_path_factory.mktemp("hardening")
    assert main(run_args(voc_root, folder / "run", "support-copy")) == 0
    plugin = folder / "plugin.py"
    plugin.write_text(plugin_source(PLUGIN_METHOD))
    with pytest.MonkeyPatch.context() as patch:
        import methods.plugins as plugins

        patch.setattr(METHODS, "_entries", dict(METHODS._entries))
        patch.setattr(plugins, "_loaded", {})
        assert main(run_args(voc_root, folder / "plugged", PLUGIN_METHOD, extra=["--plugin", str(plugin)])) == 0
    return folder


def deep(record):
    return Raw(DEEP)


CASES = [
    # names that would be paths (class 4)
    Case("plugin-name-escapes", with_plugin(plugin_source("../../escaped")),
         "method name '../../escaped' is not a plain name"),
    Case("plugin-name-absolute", with_plugin(plugin_source("/tmp/fss-escaped")), "is not a plain name"),
    Case("plugin-name-cell-separator", with_plugin(plugin_source("a__b")), "is not a plain name"),
    Case("plugin-name-dot-dot", with_plugin(plugin_source("..")), "is not a plain name"),
    Case("config-method-name-escapes", damaged("config.json", lambda r: r["config"].update(methods=["../../x"])),
         "'config.methods' or 'methods' holds a value that is not a method name"),
    Case("config-manifest-name-escapes", damaged("config.json", lambda r: r.update(manifests={"../x": "0" * 64})),
         "'manifests' holds an entry"),
    Case("run-folder-is-a-link", lambda e: linked_folder(e, "qualitative"), "qualitative is a symbolic link"),
    Case("analyses-folder-is-a-link", lambda e: linked_folder(e, "analyses"), "analyses is a symbolic link"),
    # plugins that exit at import (class 15)
    Case("plugin-sys-exit-0", with_plugin("import sys\nsys.exit(0)\n"), "failed to load: SystemExit: 0"),
    Case("plugin-base-exception", with_plugin("class Stop(BaseException):\n    pass\nraise Stop('halt')\n"),
         "failed to load: Stop: halt"),
    # JSON nested too deeply, keys missing or of another type (class 12)
    Case("report-config-deep", damaged("config.json", deep), "nested too deeply"),
    Case("report-cell-record-deep", damaged(f"episodes/{CELL}.json", deep), "nested too deeply"),
    Case("compare-config-deep", damaged("config.json", deep, "compare"), "nested too deeply"),
    Case("check-cell-record-deep", damaged(f"episodes/{CELL}.json", deep, "check"), "nested too deeply"),
    Case("run-config-deep", damaged("config.json", deep, "run"), "is damaged; use --overwrite"),
    Case("config-lacks-manifests", damaged("config.json", lambda r: r.pop("manifests")), "lacks the key 'manifests'"),
    Case("config-methods-not-a-list", damaged("config.json", lambda r: r["config"].update(methods="support-copy")),
         "'methods' is not list"),
    Case("config-dataset-not-an-object", damaged("config.json", lambda r: r.update(dataset="pascal5i")),
         "'dataset' is not dict"),
    Case("config-identities-not-objects", damaged("config.json", lambda r: r.update(methods={"support-copy": 1})),
         "'methods' holds an identity that is not a JSON object"),
    Case("cell-record-lacks-sha256", damaged(f"episodes/{CELL}.json", lambda r: r.pop("sha256")),
         "lacks the key 'sha256'"),
    Case("cell-record-seconds-text", damaged(f"episodes/{CELL}.json", lambda r: r.update(seconds="fast")),
         "'seconds' is not int or float"),
    Case("cell-record-not-an-object", damaged(f"episodes/{CELL}.json", lambda r: Raw("[1, 2]")), "is not a JSON object"),
    Case("cell-record-of-another-cell", damaged(f"episodes/{CELL}.json", lambda r: r.update(cell="split2_shot1_seed0")),
         "is the record of another cell"),
    # edited plugins and plugins across commands (classes 5 and 14)
    Case("plugin-edited-rerun", lambda e: grow(e, plugin_source(PLUGIN_METHOD) + "# edited\n", PLUGIN_METHOD),
         f"cells of {PLUGIN_METHOD} with other method options or code (code: "),
    Case("grow-without-plugin", lambda e: grow(e, None, "support-copy"),
         f"holds cells of {PLUGIN_METHOD}, a method of plugin"),
    Case("grow-with-edited-plugin", lambda e: grow(e, plugin_source(PLUGIN_METHOD) + "# edited\n", "support-copy"),
         f"holds cells of {PLUGIN_METHOD} evaluated with other code than plugin"),
]


def test_there_are_enough_cases():
    assert len(CASES) >= 16 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_error_line_and_touches_nothing(case, tmp_path, voc_root, runs, clean_registry, monkeypatch,
                                                         capsys):
    with contextlib.ExitStack() as stack:
        env = Env(tmp_path / "case", voc_root, runs / "run", None, monkeypatch, stack)
        env.tmp.mkdir()
        args = case.build(env)
        before = tree(tmp_path)
        capsys.readouterr()
        code = main(args)
        err = capsys.readouterr().err
    after = tree(tmp_path)
    assert_one_error_line(code, err, case.message)
    assert_untouched(before, after)
    assert not Path("/tmp/fss-escaped__split1_shot1_seed0.csv").exists()


# ---- --overwrite and replaced runs remove only what the harness recorded writing (class 1) ----

def user_files(run: Path, elsewhere: Path) -> dict:
    """A user's files in and around a run: beside the analyses' outputs, in a linked folder elsewhere and behind
    a link named like a run file."""
    elsewhere.mkdir()
    (elsewhere / "paper_table.csv").write_text("mine\n")
    (elsewhere / "thesis_fig.svg").write_text("<svg/>\n")
    (elsewhere / f"{CELL}.csv").write_text("mine too\n")
    mine = run / "analyses" / "similarity"
    mine.mkdir(parents=True)
    write_output(mine, "similarity.csv", b"a,b\n1,2\n")  # the harness's output, recorded
    (mine / "thesis_fig.svg").write_text("<svg>mine</svg>\n")
    (mine / "paper_table.csv").write_text("mine\n")
    (run / "analyses" / "linked").symlink_to(elsewhere)
    (run / "report.html").symlink_to(elsewhere / "paper_table.csv")
    return tree(elsewhere)


@pytest.mark.parametrize("overwrite", [True, False], ids=["overwrite", "replace-unfinished"])
def test_a_replaced_run_removes_only_recorded_outputs_and_follows_no_link(tmp_path, voc_root, runs, overwrite):
    run = tmp_path / "run"
    shutil.copytree(runs / "run", run)
    if not overwrite:  # a run whose start failed: no finished cell, replaced without --overwrite
        for cell in (run / "episodes").glob("*.json"):
            cell.unlink()
    before = user_files(run, tmp_path / "elsewhere")
    assert main(run_args(voc_root, run, "support-copy", extra=["--episodes", "6", *(["--overwrite"] * overwrite)])) == 0
    assert tree(tmp_path / "elsewhere") == before
    assert (run / "report.html").is_symlink() and (run / "analyses" / "linked").is_symlink()
    kept = run / "analyses" / "similarity"
    assert sorted(p.name for p in kept.iterdir()) == ["paper_table.csv", "thesis_fig.svg"]


def test_analysis_outputs_are_recorded_and_removed_alone(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    write_output(folder, "table.csv", b"x\n")
    write_output(folder, "figure.png", b"png")
    (folder / "mine.csv").write_text("mine\n")
    assert json.loads((folder / RECORD_NAME).read_text()) == ["figure.png", "table.csv"]
    remove_outputs(folder)
    assert [p.name for p in folder.iterdir()] == ["mine.csv"]


# ---- a damaged cell record is redone by `bench run` (class 12) ----

def test_run_redoes_a_cell_whose_record_is_nested_too_deeply(tmp_path, voc_root, runs, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs / "run", run)
    record = run / "episodes" / f"{CELL}.json"
    good = record.read_bytes()
    record.write_text(DEEP)
    capsys.readouterr()
    assert main(run_args(voc_root, run, "support-copy")) == 0
    assert json.loads(record.read_text())["sha256"] == json.loads(good)["sha256"]  # redone, same numbers


# ---- identities and plugins across commands (classes 5 and 14) ----

def test_a_training_free_method_is_identified_by_its_own_file():
    code = hashlib.sha256(Path(methods.support_copy.__file__).read_bytes()).hexdigest()
    assert method_identity("support-copy", {}, {}) == {"method": "support-copy", "code": code}
    assert "code" not in method_identity("panet", {"profile": "tiny"}, {})  # its checkpoint's hash identifies it


def test_a_plugin_run_reports_without_the_plugin(tmp_path, runs, capsys):
    run = tmp_path / "plugged"
    shutil.copytree(runs / "plugged", run)
    assert main(["report", "--run", str(run), "--resamples", "20"]) == 0, capsys.readouterr().err
    assert main(["compare", str(run), str(run), "--resamples", "20"]) == 0
    assert PLUGIN_METHOD in (run / "report.html").read_text()


def test_a_method_calling_sys_exit_while_evaluating_is_one_error_line(tmp_path, voc_root, clean_registry, capsys):
    plugin = tmp_path / "exits.py"
    plugin.write_text(plugin_source(PLUGIN_METHOD) + "\n    def forward(self, *args):\n        sys.exit(0)\n")
    assert main(run_args(voc_root, tmp_path / "out", PLUGIN_METHOD, extra=["--plugin", str(plugin)])) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "SystemExit(0)" in lines[0]


# ---- SIGTERM: one line on stderr and in the log file, then an exact resume (class 15) ----

SLOW_PLUGIN = plugin_source("slow-copy", "import os, time") + '''
    def forward(self, *args):
        marker = os.environ["FSS_TEST_MARKER"]
        if not os.path.exists(marker):
            open(marker, "w").close()
        time.sleep(0.3)
        return super().forward(*args)
'''


def bench_process(*args: str, env: dict) -> subprocess.Popen:
    env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_sigterm_says_the_run_was_terminated_and_the_run_resumes_exactly(tmp_path, voc_root):
    plugin = tmp_path / "slow.py"
    plugin.write_text(SLOW_PLUGIN)
    marker, log_file = tmp_path / "started", tmp_path / "run.log"
    grid = ["--methods", "support-copy", "slow-copy", "--plugin", str(plugin), "--dataset", "pascal5i", "--data-root",
            str(voc_root), "--lists", str(voc_root / "lists"), "--splits", "1", "--shots", "1", "--seeds", "0", "1",
            "--episodes", "4", "--batch-size", "1", "--quiet"]
    env = {"FSS_TEST_MARKER": str(marker)}
    process = bench_process("run", *grid, "--out", str(tmp_path / "run"), "--log-file", str(log_file), env=env)
    deadline = time.time() + 120
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert err.strip().splitlines()[-1] == "terminated (SIGTERM): finished cells are saved; re-run the same command to resume"
    assert "terminated (SIGTERM)" in log_file.read_text().strip().splitlines()[-1]
    assert not (tmp_path / "run" / "episodes.csv").exists()
    resumed = bench_process("run", *grid, "--out", str(tmp_path / "run"), env=env)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    fresh = bench_process("run", *grid, "--out", str(tmp_path / "fresh"), env=env)
    assert fresh.wait(timeout=300) == 0, fresh.stderr.read()
    assert (tmp_path / "run" / "episodes.csv").read_bytes() == (tmp_path / "fresh" / "episodes.csv").read_bytes()


# ---- a user's files where the harness reads (neighbours of classes 1 and 12) ----

def test_a_users_file_among_the_cells_is_not_taken_for_a_cell(tmp_path, voc_root, runs, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs / "run", run)
    (run / "episodes" / "notes__mine.json").write_text("{}\n")
    assert main(run_args(voc_root, run, "support-copy")) == 0, capsys.readouterr().err
    assert (run / "episodes" / "notes__mine.json").read_text() == "{}\n"


def test_an_unreadable_analysis_table_is_one_error_line_in_the_report(tmp_path, runs, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs / "run", run)
    (run / "analyses" / "similarity").mkdir(parents=True)
    (run / "analyses" / "similarity" / "similarity.csv").write_bytes(b"\xff\xfe\x00bad")
    capsys.readouterr()
    assert main(["report", "--run", str(run), "--resamples", "20"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "analysis table" in lines[0] and "cannot be read" in lines[0]
    assert not (run / "report.html").exists()


def test_a_forked_worker_terminated_ends_silently_as_by_default():
    """A process pool's worker forked while a command runs inherits its SIGTERM handler; terminating the pool
    must end the worker as SIG_DFL does, not print a traceback from it."""
    context = multiprocessing.get_context("fork")
    with terminate_as_interrupt():
        worker = context.Process(target=time.sleep, args=(30,))
        worker.start()
        time.sleep(0.5)
        worker.terminate()
        worker.join(10)
    assert worker.exitcode == -signal.SIGTERM
