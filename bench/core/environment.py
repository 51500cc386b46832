"""What produced a result: package versions, git revision, platform and device."""
from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Dict, Iterator, Optional

from bench.core.errors import BenchError

#: environment variables that choose the CPU kernels, and so the rounding, of training and evaluation:
#: oneDNN's instruction set (convolutions), ATen's vectorised kernels, MKL's code path, the thread count.
#: Training amplifies rounding, so a trained checkpoint differs between an AVX-512 and an AVX2 machine
#: unless these are pinned (`.ci/run` pins them for the regression check).
NUMERICS_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_CBWR", "OMP_NUM_THREADS")

PACKAGES = ("fss-bench", "torch", "torchvision", "numpy", "pandas", "pillow", "scikit-learn", "matplotlib")


def package_versions() -> Dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_revision() -> str:
    """The source checkout's commit (with '-dirty' for local changes), or 'unknown' when installed."""
    source = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


HOME_VARIABLE = "FSS_BENCH_HOME"
CACHE_VARIABLE = "FSS_BENCH_CACHE"


def usable_folder(path: Path, what: str) -> Path:
    """`path` if it is a writable folder or could be made one (its nearest existing ancestor is a writable
    folder); else a BenchError naming `what`. Nothing is created."""
    existing = next((p for p in (path, *path.parents) if os.path.lexists(p)), None)
    if existing is not None and not existing.is_dir():
        kind = "is" if existing == path else f"is under {existing}, which is"
        raise BenchError(f"{what} {path} {kind} not a folder")
    if existing is not None and (not os.access(existing, os.W_OK | os.X_OK)
                                 or os.statvfs(existing).f_flag & os.ST_RDONLY):
        where = "" if existing == path else f" (its folder {existing} is not writable)"
        raise BenchError(f"{what} {path} is not writable{where}")
    return path


def folder_variable(variable: str) -> Optional[Path]:
    """The folder an environment variable names, checked with `usable_folder` (None when it is unset);
    set but empty is an error, not a silent fallback to the default."""
    value = os.environ.get(variable)
    if value is None:
        return None
    if not value.strip():
        raise BenchError(f"{variable} is set but empty: unset it or name a folder")
    return usable_folder(Path(value).expanduser(), variable)


def home_path(name: str) -> Path:
    """A default location: `$FSS_BENCH_HOME/<name>` when FSS_BENCH_HOME is set, else `<name>` in the current
    folder (`runs`, `checkpoints`)."""
    home = folder_variable(HOME_VARIABLE)
    return home / name if home is not None else Path(name)


def cache_dir() -> Path:
    """The cache folder (generated datasets, pretrained backbones, COCO tables): $FSS_BENCH_CACHE, else
    ~/.cache/fss-bench."""
    cache = folder_variable(CACHE_VARIABLE)
    return cache if cache is not None else Path.home() / ".cache" / "fss-bench"


def resolve_device(requested: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; an unknown or unavailable device is a BenchError."""
    import torch  # here, not at the top: the command line answers --help without torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested not in ("cpu", "cuda") and not requested.startswith("cuda:"):
        raise BenchError(f"unknown device '{requested}'; use auto, cpu or cuda")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError("--device cuda was asked for but no CUDA GPU is visible to torch")
    return requested


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def numerics() -> Dict[str, object]:
    """What decides floating-point rounding on the CPU here: the pinning variables (None: not set), the
    kernels ATen dispatches to and the thread count."""
    import torch

    return {"cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": torch.get_num_threads(), **{name: os.environ.get(name) for name in NUMERICS_VARIABLES}}


def available_cores() -> int:
    """The CPUs this process may run on (its affinity: a container's or taskset's share), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads() -> int:
    """The torch threads of evaluation when --threads is not given: $OMP_NUM_THREADS when it is a positive
    integer (as torch reads it; `.ci/run` pins it), else the cores available to this process."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else available_cores()


@contextlib.contextmanager
def torch_threads(requested: Optional[int]) -> Iterator[int]:
    """torch's intra-op threads set to `requested` (None: `default_threads()`) for the block, which gets the
    number; the previous number is restored after it. It can change the last bits of floating-point sums (so
    it is recorded), never the protocol; on a busy machine fewer threads than torch's default can be ten
    times faster."""
    import torch

    previous, threads = torch.get_num_threads(), requested or default_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(previous)


def describe_environment(device: str) -> Dict[str, object]:
    import torch

    info: Dict[str, object] = {
        "versions": package_versions(),
        "git_revision": git_revision(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cores_available": available_cores(),
        "torch_threads": torch.get_num_threads(),
        "numerics": numerics(),
        "device": device,
        "argv": sys.argv,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info
