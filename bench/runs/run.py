"""`bench run`: evaluate methods on fixed-seed episode sets, resumable, into one run directory."""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pandas as pd

from analyses.summary import collapse_warnings, format_table
from bench.core.environment import (HOME_VARIABLE, describe_environment, home_path, resolve_device,
                                    torch_threads)
from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_json
from bench.core.log import log, log_session
from bench.core.progress import progress_bar
from bench.data.catalog import FSSDataset, card_of, open_dataset
from bench.data.episodes import (
    EpisodeSpec,
    check_manifest,
    image_ids,
    manifest_hash,
    read_manifest,
    sample_episodes,
    write_manifest,
)
from bench.data.images import ImageStore
from bench.evaluation.authors import check_scoring
from bench.evaluation.precision import check_precision
from bench.runs.cells import Cell, method_cells
from bench.runs.config import RunConfig, RuntimeOptions, recorded_methods
from bench.runs.executors import EXECUTORS, executor_class
from bench.runs.executors.base import Executor, TaskHook
from bench.runs.results import write_results
from bench.runs.rundir import RunDir, format_times, time_per_method
from bench.runs.session import Session, open_session
from bench.training import distributed
from bench.training.models import ModelProvider, is_trainable
from bench.training.options import SELECT_ON, TrainingOptions
from bench.training.published import PublishedModels
from bench.training.profiles import get_profile
from methods import METHODS, FewShotSegmenter, MethodError, RegistryError
from methods.plugins import load_plugins

MIN_INPUT_SIZE = 16


def check_methods(names: List[str]) -> List[str]:
    """The registered methods that `names` stand for (names, shell-style patterns, `all`), in order; a name
    or pattern that matches nothing is one BenchError listing the known ones."""
    if not names:
        raise BenchError("give at least one method with --methods")
    try:
        return METHODS.expand(names)
    except RegistryError as exc:
        raise BenchError(str(exc)) from None


def check_authors_pipelines(methods: List[str], scoring) -> None:
    """Before anything is trained or written: `--pipeline authors` needs methods that can declare an authors'
    pipeline (a builder defining `authors_pipeline`; whether this configuration does is checked when it is built)
    and void ignored."""
    check_scoring(scoring)

    def can_declare(name: str) -> bool:
        return getattr(METHODS.get(name).builder, "authors_pipeline", None) not in (None, FewShotSegmenter.authors_pipeline)

    none = [m for m in methods if not can_declare(m)]
    if none:
        declared = [m for m in METHODS.names() if can_declare(m)]
        raise BenchError(f"--pipeline authors: {', '.join(none)} declare{'s' if len(none) == 1 else ''} no authors' "
                         f"test pipeline (those that can: {', '.join(declared) or 'none'}); use --pipeline shared")


def check_training(options: TrainingOptions, dataset: str) -> None:
    if options.train_seed < 0:
        raise BenchError(f"--train-seed must be >= 0, got {options.train_seed}")
    negative = [s for s in options.train_seeds or [] if s < 0]
    if negative:
        raise BenchError(f"--train-seeds must be >= 0, got {negative[0]}")
    if options.select_on not in SELECT_ON:
        raise BenchError(f"unknown --select-on '{options.select_on}'; choose from {', '.join(SELECT_ON)}")
    if options.epochs is not None and options.epochs < 1:
        raise BenchError(f"--epochs must be >= 1, got {options.epochs}")
    get_profile(options.profile, dataset)


def validate(config: RunConfig) -> None:
    """Check the arguments that need no data, before anything is opened or written."""
    check_methods(config.methods)
    runtime = config.runtime
    if any(k < 1 for k in config.shots):
        raise BenchError(f"shots must be >= 1, got {config.shots}")
    if config.episodes is not None and config.episodes < 1:
        raise BenchError(f"--episodes must be >= 1, got {config.episodes}")
    negative = [s for s in config.seeds if s < 0]
    if negative:
        raise BenchError(f"--seeds must be >= 0, got {negative[0]}")
    if config.input_size is not None and config.input_size < MIN_INPUT_SIZE:
        raise BenchError(f"--input-size must be >= {MIN_INPUT_SIZE} (the backbones downsample by up to 16), "
                         f"got {config.input_size}")
    if config.scoring.eval_size is not None and config.scoring.eval_size < 1:
        raise BenchError(f"--eval-size must be >= 1, got {config.scoring.eval_size}")
    if config.min_object_pixels < 0:
        raise BenchError(f"--min-object-pixels must be >= 0, got {config.min_object_pixels}")
    if config.scoring.pipeline == "authors":
        check_authors_pipelines(check_methods(config.methods), config.scoring)
    if config.identical_input and config.shots != [1]:
        raise BenchError("the identical-input test is 1-shot only: use --shots 1")
    check_executor(runtime).check(len(config.training.seeds()), "run")
    if distributed.from_env().enabled:
        raise BenchError("torchrun is for `bench train` (one training on several processes); "
                         "spread an evaluation grid with --executor ray or slurm")
    if runtime.batch_size < 1:
        raise BenchError(f"--batch-size must be >= 1, got {runtime.batch_size}")
    check_training(config.training, config.dataset)
    if config.published.weights_variant and not config.published.weights:
        raise BenchError("--weights-variant chooses among published weights: give --weights DIR as well")


def check_executor(runtime: RuntimeOptions) -> Executor:
    """The executor of `--executor` (registered in `bench.runs.executors`), not checked yet."""
    if runtime.executor not in EXECUTORS:
        raise BenchError(f"unknown executor '{runtime.executor}'; choose from {', '.join(EXECUTORS.names())}")
    return executor_class(runtime.executor)(runtime)


def with_dataset_defaults(config: RunConfig) -> RunConfig:
    """Options left unset filled from the dataset's protocol (its card's `defaults`), then the harness's."""
    card = card_of(config.dataset)
    defaults = card.defaults
    card.check_fold_convention(config.fold_convention)
    queries = config.queries or defaults.get("queries", "sampled")
    if queries == "every-image" and config.episodes is not None:
        raise BenchError("--queries every-image makes each test pair a query once: leave out --episodes")
    if queries == "every-image" and config.episodes_from:
        raise BenchError("--queries every-image samples new manifests: leave out --episodes-from (a replayed "
                         "manifest keeps its own queries)")
    return replace(
        config, queries=queries, training=config.training.normalized(),
        fold_convention=config.fold_convention or (card.fold_conventions[0] if card.fold_conventions else None),
        class_sampling=config.class_sampling or defaults.get("class_sampling", card.class_sampling),
        episodes=_given(config.episodes, None if queries == "every-image" else defaults.get("episodes", 1000)),
        input_size=_given(config.input_size, defaults.get("input_size")),
        scoring=replace(config.scoring, eval_size=_given(config.scoring.eval_size, defaults.get("eval_size"))))


def _given(value, default):
    return default if value is None else value  # 0 is given (and refused by validate), not unset


def protocol_header(config: RunConfig, dataset: FSSDataset) -> str:
    """One line of the choices that make the episodes and the scores: printed first, kept in config.json."""
    folds = f", {config.fold_convention} folds" if config.fold_convention else ""
    queries = ("every test pair a query once" if config.queries == "every-image"
               else f"{config.episodes} episodes, class sampling {config.class_sampling}")
    scoring = f"{config.scoring.eval_size} x {config.scoring.eval_size}" if config.scoring.eval_size else "original size"
    size = f", min object {config.min_object_pixels} px" if config.min_object_pixels else ""
    return (f"{dataset.name}{folds}: splits {' '.join(map(str, config.splits))}, shots "
            f"{' '.join(map(str, config.shots))}, seeds {' '.join(map(str, config.seeds))}; {queries}{size}; "
            f"input {config.input_size}, scored at {scoring}" + ("; identical input" if config.identical_input else "")
            + ("; the authors' pipelines (--pipeline authors)" if config.scoring.pipeline == "authors" else "")
            + (f"; precision {config.precision}" if config.precision != "fp32" else ""))


def default_out(config: RunConfig, weights: Optional[Dict[str, str]] = None) -> Path:
    """runs/<dataset>-<hash of the config identity but the methods (and the published weights used)>, under
    $FSS_BENCH_HOME when it is set: the same command resumes the same directory, and a command with other
    methods and the same options adds them to it."""
    identity = {k: v for k, v in config.identity().items() if k != "methods"}
    identity.update({"weights": weights} if weights else {})
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    return home_path("runs") / f"{config.dataset}-{digest}"


def replayed_manifests(config: RunConfig, dataset: FSSDataset) -> Dict[str, pd.DataFrame]:
    """Manifests given with --episodes-from (files or folders of *.csv), keyed by episode-set name."""
    files: List[Path] = []
    for entry in config.episodes_from or []:
        path = Path(entry)
        files.extend(sorted(path.glob("*.csv")) if path.is_dir() else [path])
    if not files:
        raise BenchError(f"--episodes-from found no manifest CSV files in {config.episodes_from}")
    manifests = {}
    for path in files:
        manifest = read_manifest(path)
        check_manifest(dataset, manifest, str(path), config.identical_input)
        first = manifest.iloc[0]
        name = EpisodeSpec(int(first.split), int(first.shot), int(first.seed)).cell
        if name in manifests:
            raise BenchError(f"--episodes-from holds two manifests for {name}")
        manifests[name] = manifest
    return manifests


def sampled_manifests(config: RunConfig, dataset: FSSDataset) -> Dict[str, pd.DataFrame]:
    manifests = {}
    for split in config.splits:
        for shot in config.shots:
            for seed in config.seeds:
                spec = EpisodeSpec(split, shot, seed, config.episodes or 0, config.class_sampling,
                                   config.min_object_pixels, config.identical_input, config.queries)
                manifests[spec.cell] = sample_episodes(dataset, spec)
    return manifests


def resolve(config: RunConfig, dataset: FSSDataset) -> Tuple[RunConfig, Dict[str, pd.DataFrame]]:
    """The config with its dataset-dependent defaults filled in, and the run's manifests by name.

    With --episodes-from the grid (splits, shots, seeds, episodes) comes from the manifests.
    """
    profile = get_profile(config.training.profile, config.dataset)
    config = replace(config, training=replace(config.training, profile=profile.name),
                     input_size=config.input_size or profile.input_size)
    for split in config.splits:
        dataset.check_split(split)
        dataset.check_files(split, "test")
    if not config.episodes_from:
        manifests = sampled_manifests(config, dataset)
        if config.queries == "every-image":  # the list's length, recorded
            config = replace(config, episodes=max(len(m) for m in manifests.values()))
        return config, manifests
    manifests = replayed_manifests(config, dataset)
    config = replace(config, splits=sorted({int(m.split.iloc[0]) for m in manifests.values()}),
                     shots=sorted({int(m.shot.iloc[0]) for m in manifests.values()}),
                     seeds=sorted({int(m.seed.iloc[0]) for m in manifests.values()}),
                     episodes=max(len(m) for m in manifests.values()))
    for split in config.splits:
        dataset.check_files(split, "test")
    return config, manifests


def run(config: RunConfig, hook: Optional[TaskHook] = None) -> Path:
    """Evaluate every (method, split, shot, seed) cell that is not finished yet; return the run dir.

    Everything is checked before the run directory is touched: the arguments, the data every episode
    uses (each image and label decoded once), the manifests, the checkpoints and the output folder.
    Log lines go to stderr when it is not a terminal (unless quiet) and to --log-file.
    `hook`: called by the Ray and Slurm executors' tasks (tests inject faults with it).
    """
    with log_session(config.runtime.log_file, config.runtime.quiet, "bench run", (BenchError, MethodError)):
        return _run(config, hook)


def _run(config: RunConfig, hook: Optional[TaskHook]) -> Path:
    plugins = load_plugins(config.plugin)  # before any method name is checked
    config = with_dataset_defaults(replace(config, methods=check_methods(config.methods)))
    validate(config)
    runtime = config.runtime
    published = PublishedModels(config.published, config.dataset) if config.published.used else None
    if runtime.out:
        RunDir(Path(runtime.out)).check_writable()
    dataset = open_dataset(config.dataset, config.data_root, config.lists, progress=not runtime.quiet,
                           fold_convention=config.fold_convention)
    config, manifests = resolve(config, dataset)
    header = protocol_header(config, dataset)
    print(header)
    log(f"bench run: {header}")
    if published is not None:
        published.resolve(config.methods, config.splits, config.input_size)
    weights = published.identity() if published is not None else {}
    dataset_hash = dataset.fingerprint(config.splits)
    manifest_hashes = {name: manifest_hash(m) for name, m in sorted(manifests.items())}
    out = Path(runtime.out) if runtime.out else default_out(config, weights)
    config = replace(config, runtime=replace(runtime, out=str(out)))
    run_dir = RunDir(out)
    run_dir.check_writable()
    # the lock is asked before the expensive checks (every image decoded, checkpoints trained or verified)
    with run_dir.lock(runtime.wait), torch_threads(runtime.threads) as threads:
        executor = check_executor(config.runtime)
        device = resolve_device(runtime.device) if executor.in_process else runtime.device
        if executor.in_process:
            check_precision(device, config.precision)
        session = open_session(config, device, dataset=dataset, published=published)
        record, summary = _checked_run(session, executor, manifests, header, dataset_hash, manifest_hashes, run_dir,
                                       plugins, threads, hook)
    log(f"run finished: {out}")
    print(f"run directory: {out}")
    present = record["config"]["methods"]  # every method of the run directory, in order of addition
    print(format_table(summary, "miou", present))
    for line in collapse_warnings(summary, [m for m in present if is_trainable(m)]):
        print(line)
    print()
    print(format_table(summary, "fbiou", present))
    print()
    print(format_times(time_per_method(run_dir.cell_metas(), present)))
    if weights:
        print(f"\npublished weights evaluated; compare with the reported numbers: python -m bench verify --run {out}")
    return out


def _checked_run(session: Session, executor: Executor, manifests: Dict[str, pd.DataFrame], header: str,
                 dataset_hash: str, manifest_hashes: Dict[str, str], run_dir: RunDir, plugins: List[Dict], threads: int,
                 hook: Optional[TaskHook]) -> Tuple[Dict, pd.DataFrame]:
    """The checks that read data (every image, the checkpoints) and the evaluation, under the run's lock; the
    run's config.json record and its summary (checks before anything is written: `run_dir.prepare` writes)."""
    config, dataset, published, identities = session.config, session.dataset, session.published, session.identities
    runtime, out = config.runtime, run_dir.path
    check_episode_data(session.store, manifests, runtime.quiet)
    models = session.models
    if any(is_trainable(m) for m in config.methods):
        print(checkpoints_line(models))
    cells = run_cells_of(identities, manifest_hashes)
    checkpoint_ids = {c.checkpoint_key: session.checkpoint_id(c) for c in cells}
    checkpoint_hashes = {c.checkpoint_key: models.for_seed(c.train_seed).verify_checkpoint(c.method, c.split)
                         for c in cells}
    protocol = {**config.protocol(), "dataset_hash": dataset_hash, "manifests": manifest_hashes}
    existing = run_dir.prepare(protocol, identities, runtime.overwrite)
    record = merged_record(existing, {
        "format": RunDir.FORMAT,
        "identity": protocol,
        "config": config.to_dict(),
        "methods": identities,
        "protocol": header,
        "dataset": {"name": dataset.name, "root": str(getattr(dataset, "root", "")), "hash": dataset_hash,
                    "class_names": {str(k): v for k, v in dataset.class_names().items()}},
        "manifests": manifest_hashes,
        "checkpoints": {k: v for k, v in checkpoint_ids.items() if v},
        **({"weights": published.record()} if published is not None else {}),
        "environment": {**describe_environment(session.device), "plugins": plugins},
    })
    atomic_write_json(run_dir.config_path, record)
    for name, manifest in manifests.items():
        write_manifest(manifest, run_dir.manifest_path(name))
    todo = pending_cells(cells, run_dir, manifest_hashes, checkpoint_ids, checkpoint_hashes)
    log(f"{len(todo)} cells to evaluate ({', '.join(config.methods)}; executor {runtime.executor}, device "
        f"{session.device}) into {out}")
    log(executor.describe_threads(threads))
    executor.evaluate_grid(session, run_dir, manifest_hashes, todo, hook)
    run_dir.remove_stale_temporaries()  # every writer of this run has finished
    summary = write_results(run_dir, record)
    return record, summary


def check_episode_data(store: ImageStore, manifests: Dict[str, pd.DataFrame], quiet: bool) -> None:
    """Decode every image and label the episodes use (a corrupt file or an unexpected label value is one
    BenchError naming it), into the store that evaluation then reads from."""
    ids = sorted(image_ids(manifests.values()))
    bar = progress_bar(total=len(ids), desc="checking images", quiet=quiet, unit="img")
    for image_id in ids:
        store.label(image_id)
        bar.update(1)
    bar.close()
    log(f"checked the {len(ids)} images and labels the episodes use")


def checkpoints_line(models: ModelProvider) -> str:
    """The line `bench run` and `bench train` print first: where checkpoints are read from and written to."""
    return (f"checkpoints: {models.root.absolute()} (read from and written to; set with --checkpoints, or "
            f"{HOME_VARIABLE} for runs/ and checkpoints/ together)")


def run_cells_of(identities: Dict[str, Dict], manifest_hashes: Dict[str, str]) -> List[Cell]:
    """The command's cells, method by method, split by split."""
    names = sorted(manifest_hashes, key=lambda name: (Cell.of("-", name).split, name))
    return [cell for identity in identities.values() for cell in method_cells(identity, names)]


def merged_record(existing: Optional[Dict], record: Dict) -> Dict:
    """The config.json of a run that extends `existing` (same protocol): every method present, in order of
    addition, with its identity, checkpoints and published weights; the rest is this command's."""
    if existing is None:
        return record
    recorded = {**recorded_methods(existing), **record["methods"]}
    order = dict.fromkeys([*existing.get("config", {}).get("methods", []), *recorded])  # json keys come back sorted
    methods = {m: recorded[m] for m in order if m in recorded}
    merged = {**record, "methods": methods, "config": {**record["config"], "methods": list(methods)}}
    for key in ("checkpoints", "weights"):
        kept = {k: v for k, v in existing.get(key, {}).items() if k.split("/", 1)[0] not in record["methods"]}
        if kept or key in record:
            merged[key] = {**kept, **record.get(key, {})}
    return merged


def pending_cells(cells: List[Cell], run_dir: RunDir, manifest_hashes: Dict[str, str],
                  checkpoint_ids: Dict[str, Optional[str]], checkpoint_hashes: Dict[str, Optional[str]]) -> List[Cell]:
    """The cells with no finished result for their current manifest and checkpoint (its folder and,
    where the checkpoint is here, its content hash)."""
    todo = [c for c in cells if not run_dir.cell_done(c, manifest_hashes[c.manifest], checkpoint_ids[c.checkpoint_key],
                                                      checkpoint_hashes[c.checkpoint_key])]
    if len(todo) < len(cells):
        print(f"resuming {run_dir.path}: {len(cells) - len(todo)} finished cells kept, {len(todo)} to run",
              file=sys.stderr)
    return todo
