"""Without pycocotools and ray (the GPU machine has neither, and no registry): the packages import, `bench
run --help` answers and the device check's modules import. Each check runs in a fresh interpreter whose
import system refuses those names."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pycocotools", "ray", "submitit"):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, Refuse())
"""


def python(code):
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})


def test_the_block_refuses_the_optional_packages():
    done = python("import ray")
    assert done.returncode == 1 and "No module named 'ray'" in done.stderr


@pytest.mark.parametrize("code", [
    "import bench, methods, analyses, reports",
    "import bench.runs.run, bench.runs.executors, bench.data.catalog, bench.benchmarks.device",
    "import runpy; sys.argv = ['bench', 'run', '--help']; runpy.run_module('bench', run_name='__main__')",
    "from bench.data.catalog import open_dataset; open_dataset('synthetic-tiny')",
])
def test_without_pycocotools_and_ray(code, tmp_path):
    done = python(f"import os; os.environ['FSS_BENCH_CACHE'] = {str(tmp_path)!r}\n{code}")
    assert done.returncode == 0, done.stderr[-2000:]
