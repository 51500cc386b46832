"""The cell runner: evaluates one cell and writes its files; every executor uses it (in its workers)."""
from __future__ import annotations

import time
from dataclasses import asdict
from typing import Callable, Dict, Optional, Tuple

from analyses.metrics import evaluate_rows
from bench.core.log import log
from bench.data.episodes import read_manifest
from bench.evaluation.authors import method_pipeline
from bench.evaluation.features import CodeCache
from bench.evaluation.loop import evaluate_manifest
from bench.evaluation.precision import autocast
from bench.evaluation.qualitative import save_qualitative
from bench.runs.cells import Cell
from bench.runs.config import cache_budgets
from bench.runs.rundir import RunDir
from bench.runs.session import Session
from methods import FewShotSegmenter


class CellRunner:
    """Evaluates cells in one process, reusing decoded images, the feature cache and the loaded model."""

    def __init__(self, session: Session):
        config = session.config
        self.session, self.config, self.models, self.device = session, config, session.models, session.device
        budgets = cache_budgets(config.runtime)
        self.store = session.store
        self.features = None if config.runtime.no_feature_cache else CodeCache(
            self.store, self.device, budget_bytes=budgets["codes"], spill_dir=config.runtime.cache_spill)
        self._loaded: Dict = {}

    def close(self) -> None:
        """Drop cached codes and remove their spill folder (if any)."""
        if self.features is not None:
            self.features.close()

    def model(self, name: str, split: int, train_seed: Optional[int] = None) -> Tuple[FewShotSegmenter, Dict]:
        if (name, split, train_seed) not in self._loaded:
            self._loaded.clear()  # one learned model in memory at a time
            self._loaded[(name, split, train_seed)] = self.models.for_seed(train_seed).get(name, split)
        return self._loaded[(name, split, train_seed)]

    def evaluate(self, run_dir: RunDir, cell: Cell, manifest_sha256: str, checkpoint_id: Optional[str], quiet: bool,
                 extra_meta: Optional[Dict] = None, before_write: Optional[Callable] = None) -> Dict:
        """Evaluate one cell and write its files atomically (a repeated cell overwrites); return its meta.

        `checkpoint_id`: the driver's `Session.checkpoint_id(cell)`, recorded in the meta.
        `before_write(csv_path, rows)` is called once the rows exist, before any file is written.
        """
        config = self.config
        method, checkpoint = self.model(cell.method, cell.split, cell.train_seed)
        identity = self.session.identities[cell.method]
        manifest = read_manifest(run_dir.manifest_path(cell.manifest))
        start = time.perf_counter()
        # a native-resolution method sees every image at its own size: nothing to cache at the input size
        authors = config.scoring.pipeline == "authors"
        features = self.features if CodeCache.supports(method) and not method.native_resolution and not authors \
            else None
        with autocast(self.device, config.precision):
            rows = evaluate_manifest(method, self.store, manifest, config.scoring,
                                     batch_size=config.runtime.batch_size, device=self.device, features=features,
                                     desc=cell.label, quiet=quiet)
        meta = {"method": cell.method, "cell": cell.manifest, "seconds": round(time.perf_counter() - start, 3),
                "device": self.device, "precision": config.precision, "options": method.options(),
                "manifest_sha256": manifest_sha256,
                "method_identity": identity, "pipeline": pipeline_record(method, authors),
                **({} if cell.train_seed is None else {"train_seed": cell.train_seed}),
                "checkpoint": checkpoint_id,
                "checkpoint_sha256": checkpoint.get("sha256"), "checkpoint_val_miou": checkpoint.get("val_miou"),
                "select_on": checkpoint.get("select_on"), "checkpoint_train_seconds": checkpoint.get("train_seconds"),
                "checkpoint_best_epoch": checkpoint.get("best_epoch"),
                **({"weights": checkpoint["weights"], "weights_sha256": checkpoint["sha256"],
                    "weights_fold_verified": checkpoint.get("fold_verified", False),
                    # an entry with several files (DINOv2 + SAM): each file's sha256, {part: sha256}
                    **({"weights_files": checkpoint["files"]} if checkpoint.get("files") else {})}
                   if "weights" in checkpoint else {}),
                **(extra_meta or {})}
        if before_write is not None:
            before_write(run_dir.cell_paths(cell)[0], rows)
        # the cell's files last: a cell that counts as done has its qualitative file too
        if cell.shot == min(config.shots) and cell.seed == min(config.seeds):
            with autocast(self.device, config.precision):
                meta["qualitative_sha256"] = save_qualitative(method, self.store, manifest, rows,
                                                              run_dir.qualitative_path(cell), self.device, features,
                                                              config.scoring)
        run_dir.write_cell(cell, rows, meta)
        scores = evaluate_rows(rows)
        log(f"{cell.label}: mIoU {100 * scores['miou']:.2f}, FB-IoU {100 * scores['fbiou']:.2f}, "
            f"{len(rows)} episodes in {meta['seconds']:.1f} s")
        return meta


def pipeline_record(method: FewShotSegmenter, authors: bool) -> Dict:
    """What a cell records of its pipeline: "shared", or the authors' declared pipeline it followed."""
    if not authors:
        return {"name": "shared", "authors_declared": method.authors_pipeline() is not None}
    return {"name": "authors", **asdict(method_pipeline(method, type(method).__name__))}
