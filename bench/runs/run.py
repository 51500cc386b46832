"""`bench run`: evaluate methods on fixed-seed episode sets, resumable, into one run directory."""
from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pandas as pd

from analyses.summary import format_table
from bench.training import distributed
from bench.runs.config import EXECUTORS, RunConfig
from bench.data.catalog import FSSDataset, open_dataset
from bench.core.environment import describe_environment, resolve_device
from bench.data.episodes import (EpisodeSpec, check_manifest, manifest_hash, read_manifest, sample_episodes,
                            write_manifest)
from bench.core.errors import BenchError
from bench.data.images import ImageStore
from bench.evaluation.loop import evaluate_manifest
from bench.core.fileio import atomic_write_json
from bench.evaluation.features import CodeCache
from bench.evaluation.protocol import ScoringProtocol
from bench.training.models import ModelProvider
from bench.training.profiles import get_profile
from bench.training.train import SELECT_ON
from bench.core.progress import GridProgress, progress_bar
from bench.evaluation.qualitative import save_qualitative
from bench.runs.results import write_results
from bench.runs.rundir import RunDir, format_times, time_per_method
from methods import METHODS, FewShotSegmenter, RegistryError, build_method


MIN_INPUT_SIZE = 16


def validate(config: RunConfig) -> None:
    """Check the arguments that need no data, before anything is opened or written."""
    for name in config.methods:
        try:
            METHODS.get(name)
        except RegistryError as exc:
            raise BenchError(str(exc)) from None
    if not config.methods:
        raise BenchError("give at least one method with --methods")
    if any(k < 1 for k in config.shots):
        raise BenchError(f"shots must be >= 1, got {config.shots}")
    if config.episodes < 1:
        raise BenchError(f"--episodes must be >= 1, got {config.episodes}")
    negative = [s for s in config.seeds if s < 0]
    if negative:
        raise BenchError(f"--seeds must be >= 0, got {negative[0]}")
    if config.train_seed < 0:
        raise BenchError(f"--train-seed must be >= 0, got {config.train_seed}")
    if config.input_size is not None and config.input_size < MIN_INPUT_SIZE:
        raise BenchError(f"--input-size must be >= {MIN_INPUT_SIZE} (the backbones downsample by up to 16), "
                         f"got {config.input_size}")
    if config.eval_size is not None and config.eval_size < 1:
        raise BenchError(f"--eval-size must be >= 1, got {config.eval_size}")
    if config.min_object_pixels < 0:
        raise BenchError(f"--min-object-pixels must be >= 0, got {config.min_object_pixels}")
    if config.identical_input and config.shots != [1]:
        raise BenchError("the identical-input test is 1-shot only: use --shots 1")
    if config.executor not in EXECUTORS:
        raise BenchError(f"unknown executor '{config.executor}'; choose from {', '.join(EXECUTORS)}")
    if config.executor == "ray":
        from bench.runs.ray_executor import require_ray

        require_ray()
        if config.cpus_per_task < 1:
            raise BenchError(f"--cpus-per-task must be >= 1, got {config.cpus_per_task}")
    else:
        resolve_device(config.device)  # with Ray, each task resolves the device of its own machine
    if distributed.from_env().enabled:
        raise BenchError("torchrun is for `bench train` (one training on several processes); "
                         "spread an evaluation grid with --executor ray")
    if config.batch_size < 1:
        raise BenchError(f"--batch-size must be >= 1, got {config.batch_size}")
    if config.select_on not in SELECT_ON:
        raise BenchError(f"unknown --select-on '{config.select_on}'; choose from {', '.join(SELECT_ON)}")
    if config.epochs is not None and config.epochs < 1:
        raise BenchError(f"--epochs must be >= 1, got {config.epochs}")
    get_profile(config.profile, config.dataset)


def default_out(config: RunConfig) -> Path:
    """runs/<dataset>-<hash of the config identity>: the same command resumes the same directory."""
    digest = hashlib.sha256(json.dumps(config.identity(), sort_keys=True).encode()).hexdigest()[:10]
    return Path("runs") / f"{config.dataset}-{digest}"


def replayed_manifests(config: RunConfig, dataset: FSSDataset) -> Dict[str, pd.DataFrame]:
    """Manifests given with --episodes-from (files or folders of *.csv), keyed by cell name."""
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
        cell = EpisodeSpec(int(first.split), int(first.shot), int(first.seed)).cell
        if cell in manifests:
            raise BenchError(f"--episodes-from holds two manifests for {cell}")
        manifests[cell] = manifest
    return manifests


def sampled_manifests(config: RunConfig, dataset: FSSDataset) -> Dict[str, pd.DataFrame]:
    manifests = {}
    for split in config.splits:
        for shot in config.shots:
            for seed in config.seeds:
                spec = EpisodeSpec(split, shot, seed, config.episodes, config.class_sampling,
                                   config.min_object_pixels, config.identical_input)
                manifests[spec.cell] = sample_episodes(dataset, spec)
    return manifests


def resolve(config: RunConfig, dataset: FSSDataset) -> Dict[str, pd.DataFrame]:
    """Fill dataset-dependent defaults and return the run's manifests by cell.

    With --episodes-from the grid (splits, shots, seeds, episodes) comes from the manifests.
    """
    profile = get_profile(config.profile, config.dataset)
    config.profile = profile.name
    if config.input_size is None:
        config.input_size = profile.input_size
    for split in config.splits:
        dataset.check_split(split)
        dataset.check_files(split, "test")
    if not config.episodes_from:
        return sampled_manifests(config, dataset)
    manifests = replayed_manifests(config, dataset)
    config.splits = sorted({int(m.split.iloc[0]) for m in manifests.values()})
    config.shots = sorted({int(m.shot.iloc[0]) for m in manifests.values()})
    config.seeds = sorted({int(m.seed.iloc[0]) for m in manifests.values()})
    config.episodes = max(len(m) for m in manifests.values())
    for split in config.splits:
        dataset.check_files(split, "test")
    return manifests


def run(config: RunConfig) -> Path:
    """Evaluate every (method, split, shot, seed) cell that is not finished yet; return the run dir.

    Everything is checked before the run directory is touched: the arguments, the data every episode
    uses (each image and label decoded once), the manifests and the output folder.
    """
    validate(config)
    if config.out:
        RunDir(Path(config.out)).check_writable()
    dataset = open_dataset(config.dataset, config.data_root, config.lists, progress=not config.quiet)
    manifests = resolve(config, dataset)
    dataset_hash = dataset.fingerprint(config.splits)
    manifest_hashes = {cell: manifest_hash(m) for cell, m in sorted(manifests.items())}
    out = Path(config.out) if config.out else default_out(config)
    config.out = str(out)
    run_dir = RunDir(out)
    run_dir.check_writable()
    device = resolve_device(config.device) if config.executor == "local" else config.device
    store = ImageStore(dataset, config.input_size)
    check_episode_data(store, manifests, config.quiet)
    models = ModelProvider(dataset, get_profile(config.profile, config.dataset), Path(config.checkpoints),
                           backbone_weights=config.backbone_weights, backbone=config.backbone, seed=config.train_seed,
                           select_on=config.select_on, epochs=config.epochs, no_train=config.no_train,
                           device=device, quiet=config.quiet)
    checkpoint_ids = {f"{m}/split{s}": models.checkpoint_id(m, s) for m in config.methods for s in config.splits}
    checkpoint_hashes = {(m, s): models.verify_checkpoint(m, s) for m in config.methods for s in config.splits}
    identity = {**config.identity(), "dataset_hash": dataset_hash, "manifests": manifest_hashes}
    with run_dir.lock(config.wait):
        run_dir.prepare(identity, config.overwrite)
        atomic_write_json(run_dir.config_path, {
            "identity": identity,
            "config": config.to_dict(),
            "dataset": {"name": dataset.name, "root": str(getattr(dataset, "root", "")), "hash": dataset_hash,
                        "class_names": {str(k): v for k, v in dataset.class_names().items()}},
            "manifests": manifest_hashes,
            "checkpoints": {k: v for k, v in checkpoint_ids.items() if v},
            "environment": describe_environment(device),
        })
        for cell, manifest in manifests.items():
            write_manifest(manifest, run_dir.manifest_path(cell))
        todo = pending_cells(config, run_dir, manifest_hashes, models, checkpoint_hashes)
        if config.executor == "ray":
            from bench.runs.ray_executor import evaluate_grid

            evaluate_grid(config, run_dir, manifest_hashes, models, todo)
        else:
            evaluate_cells(config, CellRunner(config, dataset, models, device, store), run_dir, manifest_hashes, todo)
        run_dir.remove_stale_temporaries()  # every writer of this run has finished
        summary = write_results(run_dir, config.methods, sorted(manifest_hashes))
    print(f"run directory: {out}")
    print(format_table(summary, "miou"))
    print()
    print(format_table(summary, "fbiou"))
    print()
    print(format_times(time_per_method(run_dir.cell_metas(), config.methods)))
    return out


def check_episode_data(store: ImageStore, manifests: Dict[str, pd.DataFrame], quiet: bool) -> None:
    """Decode every image and label the episodes use (a corrupt file or an unexpected label value is one
    BenchError naming it), into the store that evaluation then reads from."""
    ids = sorted({i for m in manifests.values() for field in ("query", "supports")
                  for value in m[field] for i in value.split(" ")})
    bar = progress_bar(total=len(ids), desc="checking images", quiet=quiet, unit="img")
    for image_id in ids:
        store.label(image_id)
        bar.update(1)
    bar.close()


def cell_split(cell: str) -> int:
    return int(cell.split("_")[0].removeprefix("split"))


def pending_cells(config: RunConfig, run_dir: RunDir, manifest_hashes: Dict[str, str], models: ModelProvider,
                  checkpoint_hashes: Dict[Tuple[str, int], Optional[str]]) -> List[Tuple[str, str]]:
    """The (method, cell) pairs with no finished result for their current manifest and checkpoint (its
    folder and, where the checkpoint is here, its content hash)."""
    cells = sorted(manifest_hashes, key=lambda c: (cell_split(c), c))
    total = len(config.methods) * len(cells)
    todo = [(m, c) for m in config.methods for c in cells
            if not run_dir.cell_done(m, c, manifest_hashes[c], models.checkpoint_id(m, cell_split(c)),
                                     checkpoint_hashes[(m, cell_split(c))])]
    if len(todo) < total:
        print(f"resuming {run_dir.path}: {total - len(todo)} finished cells kept, {len(todo)} to run", file=sys.stderr)
    return todo


class CellRunner:
    """Evaluates cells in one process, reusing decoded images, the feature cache and the loaded model.

    Both executors evaluate a cell with `evaluate`: the local one in a loop, Ray in each worker.
    """

    def __init__(self, config: RunConfig, dataset: FSSDataset, models: ModelProvider, device: str,
                 store: Optional[ImageStore] = None):
        self.config, self.models, self.device = config, models, device
        self.store = store or ImageStore(dataset, config.input_size)
        self.features = None if config.no_feature_cache else CodeCache(self.store, device)
        self._loaded: Dict = {}

    def model(self, name: str, split: int) -> Tuple[FewShotSegmenter, Dict]:
        if (name, split) not in self._loaded:
            self._loaded.clear()  # one learned model in memory at a time
            self._loaded[(name, split)] = self.models.get(name, split)
        return self._loaded[(name, split)]

    def evaluate(self, run_dir: RunDir, name: str, cell: str, manifest_sha256: str, quiet: bool,
                 extra_meta: Optional[Dict] = None, before_write: Optional[Callable] = None) -> Dict:
        """Evaluate one cell and write its files atomically (a repeated cell overwrites); return its meta."""
        config, split = self.config, cell_split(cell)
        method, checkpoint = self.model(name, split)
        manifest = read_manifest(run_dir.manifest_path(cell))
        start = time.perf_counter()
        features = self.features if CodeCache.supports(method) else None
        protocol = ScoringProtocol(config.eval_size, config.void_as_background)
        rows = evaluate_manifest(method, self.store, manifest, protocol, batch_size=config.batch_size,
                                 device=self.device, features=features, desc=f"{name} {cell}", quiet=quiet)
        meta = {"method": name, "cell": cell, "seconds": round(time.perf_counter() - start, 3), "device": self.device,
                "options": method.options(), "manifest_sha256": manifest_sha256,
                "checkpoint": self.models.checkpoint_id(name, split), "checkpoint_sha256": checkpoint.get("sha256"),
                "checkpoint_val_miou": checkpoint.get("val_miou"), "select_on": checkpoint.get("select_on"),
                "checkpoint_train_seconds": checkpoint.get("train_seconds"),
                "checkpoint_best_epoch": checkpoint.get("best_epoch"),
                **(extra_meta or {})}
        if before_write is not None:
            before_write(run_dir.cell_paths(name, cell)[0], rows)
        # the cell's files last: a cell that counts as done has its qualitative file too
        if manifest.shot.iloc[0] == min(config.shots) and manifest.seed.iloc[0] == min(config.seeds):
            meta["qualitative_sha256"] = save_qualitative(method, self.store, manifest, rows,
                                                          run_dir.qualitative_path(name, cell), self.device,
                                                          features)
        run_dir.write_cell(name, cell, rows, meta)
        return meta


def evaluate_cells(config: RunConfig, runner: CellRunner, run_dir: RunDir, manifest_hashes: Dict[str, str],
                   todo: List[Tuple[str, str]]) -> None:
    """The local executor: evaluate the pending cells one after another in this process."""
    progress = GridProgress(len(todo), "cells", config.quiet)
    for name, cell in todo:
        runner.evaluate(run_dir, name, cell, manifest_hashes[cell], config.quiet)
        progress.update(done=1)
    progress.close()
