"""Inputs of tests/test_hardening_options.py: special files (FIFOs, devices, folders where a file is
expected), environment folders that cannot hold a cache, a Ray address nobody answers, and a
subprocess under an address-space limit for the values that would allocate without bound."""
from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

from tests.bad_input_builders import Env, published
from tests.published_fixture import ENTRIES

ROOT = Path(__file__).resolve().parents[1]
#: importing torch and the harness reserves about 3.7 GB of address space; a tiny run fits in 4 GB
ADDRESS_SPACE = 6 << 30


def fifo(env: Env, name: str = "fifo") -> Path:
    """A named pipe nobody writes to: reading it (or writing it, with no reader) would block forever."""
    path = env.tmp / name
    os.mkfifo(path)
    return path


def a_file(env: Env, name: str = "file") -> Path:
    path = env.tmp / name
    path.write_text("x")
    return path


def a_folder(env: Env, name: str = "folder") -> Path:
    path = env.tmp / name
    path.mkdir()
    return path


def weights_file(env: Env, target: str) -> List[str]:
    """PANet split 1 with `--weights panet.fold0=<target>` (target: 'fifo', 'folder' or a device path)."""
    path = {"fifo": lambda: fifo(env), "folder": lambda: a_folder(env)}.get(target, lambda: Path(target))()
    return published(env, None, f"{ENTRIES[0].name}={path}")


def synthetic(env: Env, *extra: str) -> List[str]:
    """A tiny synthetic run into env.out (uses FSS_BENCH_CACHE: generated there if missing)."""
    return ["run", "--methods", "support-copy", "--dataset", "synthetic-tiny", "--splits", "1", "--shots", "1",
            "--seeds", "0", "--episodes", "3", "--out", str(env.out), "--quiet", *extra]


def cache_at(env: Env, value: str) -> List[str]:
    env.patch.setenv("FSS_BENCH_CACHE", value)
    return synthetic(env)


def home_at(env: Env, value: str) -> List[str]:
    """A PASCAL run without --out (so under $FSS_BENCH_HOME/runs) nor --checkpoints."""
    env.patch.setenv("FSS_BENCH_HOME", value)
    args = env.pascal()
    i = args.index("--out")
    return args[:i] + args[i + 2:]


def free_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def limited(args: Sequence[str], cwd: Path, timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m bench ARGS` in `cwd` under ADDRESS_SPACE of address space (a regression fails instead of
    exhausting the machine) and `timeout` seconds."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    environ = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, env=environ, preexec_fn=limit,
                          capture_output=True, text=True, timeout=timeout)
