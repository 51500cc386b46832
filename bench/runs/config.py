"""The run configuration: one dataclass per group of options, the one source of truth for each option.

Every field carries its help text (and its flag, choices, whether it belongs to the run's identity) in
its metadata; `bench.cli.arguments` builds the command lines of `bench run`, `bench train` and the
analyses from these fields, so a default or a help text is written once. Configurations are frozen:
resolving dataset-dependent defaults returns a new object (`dataclasses.replace`).

The identity of a configuration is every field not marked `identity=False`: those change where files
are, how fast or how verbosely, never a result. It has two parts. The protocol (`protocol()`: dataset,
splits, shots, seeds, episodes, sampling, size filter, scoring, input size, precision) is what a run
directory is; the method identity (`method_identity`: the method, for learned methods the training
options, the published weights it uses) is what each method's cells are, so a run directory can grow by
methods.
Published weights enter it as the entries each (method, split) uses, not as the paths that found them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Dict, List, Optional

from bench.core.options import MAX_SEED, option
from bench.evaluation.precision import PRECISIONS
from bench.evaluation.protocol import ScoringProtocol
from bench.runs.executors import EXECUTORS as EXECUTOR_REGISTRY
from bench.training.options import PublishedOptions, TrainingOptions
from methods import METHODS

#: the registered executors' names (`bench.runs.executors`; naming them imports none)
EXECUTORS = tuple(EXECUTOR_REGISTRY.names())


@dataclass(frozen=True)
class RuntimeOptions:
    """Where and how a run executes: never part of a result."""

    out: Optional[str] = option(None, "run directory (default runs/<dataset>-<config hash>; re-running resumes)",
                                identity=False)
    device: str = option("auto", "auto (cuda when available), cpu or cuda", identity=False)
    batch_size: int = option(16, "episodes per forward pass (results do not depend on it)", identity=False,
                             minimum=1, maximum=1024)
    quiet: bool = option(False, "no progress bars", identity=False)
    log_file: Optional[str] = option(None, "also write the plain, timestamped log lines (stages, epochs, cells, "
                                     "progress) to this file, appended, whatever stderr is", identity=False,
                                     metavar="FILE", path="file")
    overwrite: bool = option(False, "replace a run directory that holds a different config (removes only the "
                             "files the harness wrote)", identity=False)
    wait: bool = option(False, "if another `bench run` is writing the same --out, wait for it instead of "
                        "refusing", identity=False)
    no_feature_cache: bool = option(False, "encode every episode's images with the backbone again (slow; for "
                                    "checks and benchmarks)", identity=False)
    cache_budget: float = option(4.5, "GiB of memory for decoded images (a third) and cached codes (two thirds), "
                                 "least recently used evicted and recomputed; results do not depend on it; 0: "
                                 "unbounded", identity=False, metavar="GIB", minimum=0, maximum=4096)
    cache_spill: Optional[str] = option(None, "folder where evicted codes are spilled (bit-exact) instead of being "
                                        "recomputed", identity=False, metavar="DIR", path="folder")
    executor: str = option("local", "local: one cell after another in this process; ray: every cell is a Ray "
                           "task; slurm: every cell is a Slurm job (submitit)", identity=False, choices=EXECUTORS)
    address: Optional[str] = option(None, "with --executor ray: join this cluster (default: start a local one)",
                                    identity=False, metavar="ADDR")
    threads: Optional[int] = option(None, "torch threads of evaluation and training in this process (default: "
                                    "$OMP_NUM_THREADS when set, else the cores available to the process); recorded in "
                                    "config.json's environment", identity=False, metavar="N", minimum=1, maximum=1024)
    train_jobs: int = option(0, "with --executor local: trainings run at once, each in a worker process with "
                             "--threads / N threads (0: on a CPU one per thread when the trainings are long, 1000 "
                             "steps or more, else one; on a GPU one)", identity=False, metavar="N", minimum=0, maximum=1024)
    cpus_per_task: int = option(1, "with --executor ray or slurm: CPUs (and torch threads) per task", identity=False,
                                metavar="N", minimum=1, maximum=1024)
    connect_timeout: float = option(10.0, "with --executor ray --address: seconds to wait for the cluster to "
                                    "answer before giving up, checked before anything is written", identity=False,
                                    metavar="S", minimum=0.1, maximum=600)
    partition: Optional[str] = option(None, "with --executor slurm: the partition the jobs are submitted to "
                                      "(default: the cluster's)", identity=False, metavar="NAME")
    time_limit: int = option(240, "with --executor slurm: minutes each job (one training or one cell) may run",
                             identity=False, metavar="MIN", minimum=1, maximum=100_000)
    gpus_per_task: int = option(0, "with --executor slurm: GPUs per job (0: the jobs run on CPUs)", identity=False,
                                metavar="N", minimum=0, maximum=64)
    array_parallelism: int = option(64, "with --executor slurm: jobs of an array running at once", identity=False,
                                    metavar="N", minimum=1, maximum=100_000)
    slurm_logs: Optional[str] = option(None, "with --executor slurm: folder of submitit's job files and logs "
                                       "(default: .submitit/ in the run directory, or in --checkpoints for "
                                       "`bench train`)", identity=False, metavar="DIR", path="folder")


def cache_budgets(runtime: RuntimeOptions) -> Dict[str, Optional[int]]:
    """Bytes of the image store's and the code cache's budgets (None: unbounded)."""
    if runtime.cache_budget <= 0:
        return {"store": None, "codes": None}
    total = int(runtime.cache_budget * 1024 ** 3)
    return {"store": total // 3, "codes": total - total // 3}


@dataclass(frozen=True)
class RunConfig:
    """Everything `bench run` needs; `identity()` is what makes two runs the same run."""

    methods: List[str] = option([], "registered method names (see `bench list`), shell-style patterns ('simpropnet*') or all",
                                metavar="M")
    plugin: Optional[List[str]] = option(None, "a Python file registering methods (repeatable; recorded with its "
                                         "sha256 in config.json); installed plugins (entry points "
                                         "fss_bench.methods) are always loaded", identity=False, metavar="FILE",
                                         path="file")
    dataset: str = option("synthetic", "a registered dataset: synthetic (generated locally), synthetic-tiny, pascal5i, "
                          "coco20i, fss1000, deepglobe, isic2018, chest-xray (`python -m bench datasets` shows each)")
    fold_convention: Optional[str] = option(None, "COCO-20i folds: interleaved (fold k tests classes k, k+4, ..., "
                                            "k+76: FWB, HSNet, PFENet's use_split_coco; the default) or contiguous "
                                            "(1-20, 21-40, ...)", choices=("interleaved", "contiguous"))
    data_root: Optional[str] = option(None, "dataset folder (synthetic: where to generate/cache it; default "
                                      "$FSS_BENCH_CACHE or ~/.cache/fss-bench)", identity=False, path="folder")
    lists: Optional[str] = option(None, "folder of split lists laid out like the shipped ones (trn/fold0.txt .. "
                                  "val/fold3.txt)", identity=False, path="folder")
    splits: List[int] = option([1, 2, 3, 4], "splits 1..4 (the paper's numbering)", metavar="K",
                               alias={"name": "folds", "offset": 1, "help": "the same splits in the codebases' "
                                      "numbering 0..3 (--folds 0 = --splits 1; recorded as splits)"})
    shots: List[int] = option([1, 5], "support images per episode", metavar="K", minimum=1, maximum=100)
    seeds: List[int] = option([0, 1, 2], "one episode set per seed (the paper's three random sets of test pairs)",
                              metavar="S", minimum=0, maximum=MAX_SEED)
    episodes: Optional[int] = option(None, "episodes per (split, shot, seed) (default: the dataset's protocol, 1000 "
                                     "for most)", minimum=1, maximum=100_000)
    class_sampling: Optional[str] = option(None, "list: queries follow the (image, class) list, as OSLSM/CANet/HSNet "
                                           "on PASCAL; uniform: class first, as PANet and HSNet on COCO (default: "
                                           "the dataset's protocol)", choices=("list", "uniform"))
    queries: Optional[str] = option(None, "sampled: --episodes queries drawn per seed; every-image: each test "
                                    "(image, class) pair a query once, supports drawn per seed (HSNet's FSS-1000 "
                                    "protocol) (default: sampled)", choices=("sampled", "every-image"))
    min_object_pixels: int = option(0, "drop (image, class) pairs with fewer object pixels (PFENet: 2048); 0 = off",
                                    minimum=0, maximum=100_000_000)
    identical_input: bool = option(False, "identical-input test (paper Tables 2, 6): support = query with its "
                                   "ground truth")
    input_size: Optional[int] = option(None, "side of the square method input (default: the training profile's, "
                                       "112 synthetic / 48 synthetic-tiny / 321 PASCAL; the backbones downsample "
                                       "by up to 16)", minimum=16, maximum=2048)
    precision: str = option("fp32", "numeric precision of evaluation: fp32 (full), bf16 or fp16 (torch.autocast; a few "
                            "boundary pixels per episode change, so another precision is another run); training and "
                            "checkpoints stay fp32", choices=tuple(PRECISIONS), omit_default=True)
    episodes_from: Optional[List[str]] = option(None, "replay saved manifests (CSV files or folders of them) "
                                                "exactly", identity=False, metavar="FILE", path="any")
    scoring: ScoringProtocol = field(default_factory=ScoringProtocol)
    training: TrainingOptions = field(default_factory=TrainingOptions)
    published: PublishedOptions = field(default_factory=PublishedOptions)
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)

    def __post_init__(self) -> None:
        # a repeated name or number would repeat cells (and every row of episodes.csv): keep the first
        for name in ("methods", "splits", "shots", "seeds"):
            object.__setattr__(self, name, list(dict.fromkeys(getattr(self, name))))

    def to_dict(self) -> Dict:
        return asdict(self)

    def identity(self) -> Dict:
        return _identity(self)

    def protocol(self) -> Dict:
        """The identity of the run directory: everything but the methods and how they got their weights."""
        return protocol_of(self.identity())

    @classmethod
    def from_dict(cls, data: Dict) -> "RunConfig":
        """The inverse of `to_dict` (a Ray payload, a config.json's "config")."""
        return cls(**{**data, "scoring": ScoringProtocol(**data.get("scoring", {})),
                      "training": TrainingOptions(**data.get("training", {})),
                      "published": PublishedOptions(**data.get("published", {})),
                      "runtime": RuntimeOptions(**data.get("runtime", {}))})


def _identity(obj) -> Dict:
    out = {}
    for f in fields(obj):
        if not f.metadata.get("identity", True):
            continue
        value = getattr(obj, f.name)
        if f.metadata.get("omit_default") and value == f.default:
            continue
        if is_dataclass(value):
            value = _identity(value)
            if not value:  # a group without identity fields (published: its chosen entries are added by the run)
                continue
        out[f.name] = value
    return out


#: the keys of an identity that belong to the methods, not to the protocol (`weights`: the published entries)
METHOD_KEYS = ("methods", "training", "published", "weights")


def protocol_of(identity: Dict) -> Dict:
    """The protocol part of a run identity (also of a config.json written when the identity held the methods)."""
    return {k: v for k, v in identity.items() if k not in METHOD_KEYS}


def method_identity(method: str, training: Dict, weights: Dict[str, str], code: bool = True) -> Dict:
    """What makes a method's cells: its name, its training options' identity (learned methods) and the
    published entries it uses (`weights`: {"<method>/split<k>": entry} of the run, filtered here).

    A training-free method has no checkpoint whose hash would tell its versions apart, so its identity also
    holds `code`: the sha256 of the source file of the module that registered it (a plugin file; a built-in
    method's own file in `methods/`). Editing that file makes its recorded cells another identity's, refused
    until they are replaced (--overwrite), never reported as the new code's. Shared helpers (methods/common.py,
    the backbones) are deliberately not hashed: hashing the package would retire every recorded cell at any
    edit anywhere, while the helpers' numbers are guarded by the regression baselines (reports/baselines).
    `code=False`: without it (an identity derived from a record written before identities held it).
    """
    mine = {k: v for k, v in sorted(weights.items()) if k.split("/", 1)[0] == method}
    training = {k: v for k, v in training.items() if v is not None}  # an option added later is unset in old records
    learned = METHODS.card(method).trainable
    code = None if learned or not code else METHODS.card(method).code_sha256
    return {"method": method, **({"training": training} if learned else {}),
            **({"code": code} if code else {}), **({"weights": mine} if mine else {})}


def method_identities(config: "RunConfig", weights: Dict[str, str]) -> Dict[str, Dict]:
    """The method identity of each of the config's methods, in the config's order."""
    training = _identity(config.training)
    return {m: method_identity(m, training, weights) for m in config.methods}


def recorded_methods(record: Dict) -> Dict[str, Dict]:
    """The method identities a config.json records: its `methods` map, or for a run directory written before
    runs could grow, the identities derived from its identity (methods, training options, weights)."""
    if isinstance(record.get("methods"), dict):
        return dict(record["methods"])
    identity = record.get("identity", {})
    training, weights = identity.get("training", {}), identity.get("weights", {})
    return {m: method_identity(m, training, weights, code=False) for m in identity.get("methods", [])}


def same_identity(recorded: Dict, current: Dict) -> bool:
    """Whether cells recorded under `recorded` are `current`'s. A record written before identities held the
    code (no `code` key) is trusted to be the current code's, as a cell whose checkpoint is not on this
    machine is trusted: a run made before then resumes as it did."""
    if "code" not in recorded:
        current = {k: v for k, v in current.items() if k != "code"}
    return recorded == current


def learned_methods(record: Dict) -> List[str]:
    """The methods of a config.json whose recorded identity has training options, in the run's order: what a
    report calls learned, read from the record alone (a plugin's method is known without its code)."""
    identities = recorded_methods(record)
    return [m for m in dict.fromkeys(record["config"]["methods"]) if "training" in identities.get(m, {})]
