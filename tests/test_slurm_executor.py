"""`--executor slurm` through submitit's local executor (FSS_BENCH_SLURM_CLUSTER=local: every job a local
process, as sbatch would start it): the same files as the local executor, a killed job's cell run again by
the same command and by it alone, a fourth executor added by registering one class, and the one-line hint
when submitit is missing."""
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from bench.cli.arguments import build
from bench.cli.commands import build_parser, main
from bench.cli.guard import exit_status
from bench.runs.cells import Cell
from bench.runs.config import RunConfig
from bench.runs.executors import EXECUTORS
from bench.runs.executors.base import Executor, TaskHook
from bench.runs.rundir import RunDir
from bench.runs.run import run
from bench.runs.runner import CellRunner
from bench.runs.session import Session
from tests.ray_faults import Faults
from tests.test_ray_executor import assert_like_local, assert_same_results, cell_metas

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A private dataset cache, a random synthnet backbone file, and submitit's local cluster (its jobs import
    this checkout: PYTHONPATH). The dataset is generated first, without forked workers: a fork after torch ran
    its thread pool can hang."""
    pytest.importorskip("submitit")
    import torch

    from bench.data.synthetic import TINY_SPEC, ensure_synthetic
    from methods.backbones import build_backbone

    root = tmp_path_factory.mktemp("slurm")
    patch = pytest.MonkeyPatch()
    patch.setenv("FSS_BENCH_CACHE", str(root / "cache"))
    patch.setenv("FSS_BENCH_SLURM_CLUSTER", "local")
    patch.setenv("PYTHONPATH", str(ROOT))
    ensure_synthetic(spec=TINY_SPEC, workers=1)
    torch.manual_seed(0)
    torch.save(build_backbone("synthnet").state_dict(), root / "synthnet.pt")
    yield root
    patch.undo()


def grid(env, out, checkpoints, *extra):
    return ["run", "--methods", "support-copy", "canet", "--dataset", "synthetic-tiny", "--profile", "tiny",
            "--backbone-weights", str(env / "synthnet.pt"), "--splits", "1", "--shots", "1", "--seeds", "0",
            "--episodes", "12", "--checkpoints", str(checkpoints), "--out", str(out), "--quiet", *extra]


@pytest.fixture(scope="module")
def local_run(env):
    """The grid with the local executor, with 1 torch thread as each job (--cpus-per-task 1)."""
    assert main(grid(env, env / "local", env / "ck-local", "--threads", "1")) == 0
    return env / "local"


def main_with(hook: Optional[TaskHook], argv: List[str]) -> int:
    """`python -m bench run ARGV` with `hook` in the jobs (the CLI's exit codes and error lines)."""
    return exit_status(lambda: run(build(RunConfig, build_parser().parse_args(argv)), hook))


def test_slurm_run_trains_and_evaluates_like_the_local_executor(env, local_run, tmp_path):
    assert main(grid(env, tmp_path / "slurm", tmp_path / "ck", "--executor", "slurm")) == 0
    assert_like_local(tmp_path / "slurm", tmp_path / "ck", local_run, env / "ck-local", "slurm")


def test_a_killed_job_is_run_again_by_the_same_command_alone(env, local_run, tmp_path, capsys):
    out, killed = tmp_path / "slurm", "canet__split1_shot1_seed0"  # killed mid-write, half its CSV written
    argv = grid(env, out, env / "ck-local", "--executor", "slurm", "--no-train")
    assert main_with(Faults([killed]), argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"1 of 2 cells failed ({killed}: " in err
    finished = cell_metas(out)
    assert list(finished) == ["support-copy__split1_shot1_seed0.json"]
    assert main_with(Faults([killed]), argv) == 0  # its second attempt: the hook lets it through
    assert_same_results(out, local_run)
    after = cell_metas(out)
    assert all(after[name] == data for name, data in finished.items())  # kept, not recomputed
    assert json.loads(after[f"{killed}.json"])["attempt"] == 2


class ReversedExecutor(Executor):
    """A fourth executor, registered by the test: the cells in reverse order, in this process."""

    name = "reversed"
    in_process = True

    def train_grid(self, session: Session, pairs, hook=None) -> None:
        for name, split in reversed(pairs):
            session.models.get(name, split)

    def evaluate_grid(self, session: Session, run_dir: RunDir, manifest_hashes: Dict[str, str], todo: List[Cell],
                      hook=None) -> None:
        runner = CellRunner(session)
        for cell in reversed(todo):
            runner.evaluate(run_dir, cell, manifest_hashes[cell.manifest], session.checkpoint_id(cell), quiet=True,
                            extra_meta={"executor": self.name})
        runner.close()


@pytest.fixture
def reversed_executor():
    EXECUTORS.register(ReversedExecutor.name)(ReversedExecutor)
    yield ReversedExecutor.name
    EXECUTORS._entries.pop(ReversedExecutor.name)


def test_a_fourth_executor_is_one_registered_class(env, local_run, tmp_path, reversed_executor):
    args = build_parser().parse_args(grid(env, tmp_path / "out", env / "ck-local", "--threads", "1", "--no-train"))
    config = build(RunConfig, args)
    out = run(replace(config, runtime=replace(config.runtime, executor=reversed_executor)))
    assert_same_results(out, local_run)
    assert json.loads((out / "episodes" / "canet__split1_shot1_seed0.json").read_text())["executor"] == "reversed"


def test_missing_submitit_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` raises ImportError
    args = ["run", "--methods", "canet", "--dataset", "synthetic-tiny", "--executor", "slurm",
            "--checkpoints", str(tmp_path / "ck"), "--out", str(tmp_path / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install "fss-bench[slurm]"' in err
    assert not (tmp_path / "out").exists()
