"""Published checkpoints in a run: the authors' files found, checked and loaded into harness models.

`bench run --weights DIR` (a folder holding the authors' files under their own names, see `bench
weights`) or `--weights TAG=FILE` (repeatable; TAG is an entry's full name `method.tag`) makes every
cell of a method that has published weights for the run's dataset load the checkpoint of its split
(split k = the authors' fold k - 1) instead of training one. A file is read weights-only, its state
dict (the entry's `state_key`, DataParallel's `module.` stripped) renamed by the entry's `KeyMap`,
and loaded strictly into `build_method(method, **entry.options)` (with `backbone_enum=None` where the
method takes it: the file holds the backbone too, so no ImageNet weights are read). Where several entries fit a split
(e.g. ResNet-50 and ResNet-101), `--weights-variant PATTERN ...` keeps those whose name matches one of
the patterns that name an entry of that method (the other patterns leave the method alone).

Everything is checked before a run writes anything: the file exists, has the entry's sha256 where the
entry knows it, fits the architecture key by key and shape by shape, holds only finite weights, belongs to
the cell's dataset and fold, was trained on the harness's normalisation, and is evaluated at its input size
(a method that is not `native_resolution` needs the run's `--input-size` to equal it). A file's fold is
verified only by the entry's sha256 or a fold the file records (`fold_key`); where neither exists (none of
the registered authors' files records one) the run prints a `warning:` line and its cells and config.json
record `fold_verified: false`.

An entry with several files (`PublishedWeights.files`: GF-SAM's DINOv2 and SAM files, shared by every fold)
is found under `--weights DIR` by each file's name, or given as `--weights TAG=DIR` (a folder holding its
files under their names; a single file is refused: it is one of several). Each file is checked as above
(its own sha256 where known), renamed by its own `KeyMap` (whose rules add the part's module prefix), and
the parts' state dicts, which must not overlap, are loaded together, strictly, into one model. Its cells
record as `weights_sha256` the parts' digests joined (`part=sha256,...`) and each file's as
`weights_files`.
"""
from __future__ import annotations

import fnmatch
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from bench.core.errors import BenchError
from bench.core.fileio import sha256_file
from bench.core.paths import kind_of, not_regular
from bench.data.images import IMAGENET_MEAN, IMAGENET_STD
from bench.training.checkpoints import check_finite, load_tensors
from bench.training.options import PublishedOptions  # noqa: F401  (declared with the other options)
from methods import METHODS, FewShotSegmenter, build_method
from methods.common import BackboneMethod
from methods.weights import WEIGHTS, PublishedWeights, WeightFile

SHOWN_KEYS = 3  # keys named in a did-not-fit error (then a count)
NORMALISATION_TOLERANCE = 1e-6


def fold_of(split: int) -> int:
    """The authors' fold of a harness split (split k tests the classes of fold k - 1)."""
    return split - 1


def parse_weights(values: Sequence[str]) -> Tuple[Optional[Path], Dict[str, Path]]:
    """(the one DIR, {entry name: FILE}) of `--weights` values; TAG=FILE has no path separator left of '='."""
    folder, files = None, {}
    for value in values:
        tag, sep, file = value.partition("=")
        if sep and "/" not in tag and "\\" not in tag:
            if not tag or not file:
                raise BenchError(f"--weights '{value}': give TAG=FILE with TAG an entry's name (see `bench weights`)")
            if tag not in WEIGHTS:
                raise BenchError(f"--weights {value}: unknown published weights '{tag}' "
                                 f"(`bench weights` lists the {len(WEIGHTS.names())} registered ones)")
            if tag in files:
                raise BenchError(f"--weights names {tag} twice")
            files[tag] = Path(file)
            continue
        if not Path(value).is_dir():
            kind = kind_of(Path(value))
            raise BenchError(f"--weights folder does not exist: {value} (or give TAG=FILE)" if kind is None else
                             f"--weights {value} is not a folder (it is {kind}; give a folder or TAG=FILE)")
        if folder is not None:
            raise BenchError(f"--weights takes one folder, got {folder} and {value}")
        folder = Path(value)
    return folder, files


def check_normalisation(entry: PublishedWeights) -> None:
    mean, std = entry.normalisation.get("mean"), entry.normalisation.get("std")
    ours = (IMAGENET_MEAN.flatten(), IMAGENET_STD.flatten())
    try:
        same = all(torch.allclose(torch.tensor(list(v), dtype=torch.float32), o, atol=NORMALISATION_TOLERANCE)
                   for v, o in zip((mean, std), ours))
    except (TypeError, RuntimeError, ValueError):
        same = False
    if not same:
        raise BenchError(f"published weights {entry.name} expect inputs normalised with mean {mean}, std {std}; the "
                         f"harness normalises with ImageNet's {tuple(round(float(x), 3) for x in ours[0])}, "
                         f"{tuple(round(float(x), 3) for x in ours[1])}: not supported")


def build_options(entry: PublishedWeights) -> Dict:
    """The entry's builder options; a method that takes `backbone_enum` gets None unless the entry sets it:
    the published file holds the whole model, so no pretrained backbone weights are needed (nor fetched)."""
    builder = METHODS.card(entry.method).builder
    try:
        takes = "backbone_enum" in inspect.signature(builder).parameters
    except (TypeError, ValueError):
        takes = False
    takes = takes or (isinstance(builder, type) and issubclass(builder, BackboneMethod))
    return {**({"backbone_enum": None} if takes else {}), **dict(entry.options)}


def check_fold(entry: PublishedWeights, payload: Mapping, path: Path) -> None:
    """Where the authors' file names its fold (`entry.fold_key`), it must be the entry's."""
    if not entry.fold_key:
        return
    value = payload.get(entry.fold_key)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if not isinstance(value, int) or isinstance(value, bool):
        raise BenchError(f"{path} holds no fold in '{entry.fold_key}': not the file of {entry.name} (download it "
                         f"from {entry.url})")
    if value != entry.fold:
        raise BenchError(f"{path} is the checkpoint of fold {value}, not of fold {entry.fold} ({entry.name}): "
                         f"put the file of fold {entry.fold} there")


def fold_warning(entry: PublishedWeights, path: Path) -> str:
    return (f"warning: {entry.name}: the fold of {path} is not verified (the authors' file records no fold and the "
            f"entry no sha256): a file of another fold would be scored as fold {entry.fold}")


def _shown(keys: List[str]) -> str:
    return ", ".join(keys[:SHOWN_KEYS]) + (f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else "")


def harness_state(entry: PublishedWeights, path: Path, part: Optional[WeightFile] = None) -> Dict[str, torch.Tensor]:
    """The weights of an authors' file in harness names (read weights-only, `state_key`, KeyMap); `part`: which
    of the entry's files it is (default: its only one)."""
    part = part or entry.parts[0]
    what = f"{entry.name}'s {part.part} file" if part.part else entry.name
    payload = load_tensors(path)
    state = payload.get(part.state_key) if part.state_key else payload
    if not isinstance(state, Mapping):
        raise BenchError(f"{path} holds no '{part.state_key}' state dict: not the file of {what} "
                         f"(download it from {part.url})")
    odd = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    if odd:
        raise BenchError(f"{path} ({what}) holds entries that are not tensors: {_shown(odd)}")
    check_fold(entry, payload, path)
    check_finite(state, path, f"not a usable {what}; download it again from {part.url}")
    return part.keys.to_harness(state)


def combined_state(entry: PublishedWeights, paths: Mapping[str, Path]) -> Dict[str, torch.Tensor]:
    """The harness state dict of all of an entry's files ({part: path}); two files giving one key is an error."""
    state: Dict[str, torch.Tensor] = {}
    owner: Dict[str, str] = {}
    for part in entry.parts:
        own = harness_state(entry, paths[part.part], part)
        twice = sorted(set(own) & set(state))
        if twice:
            raise BenchError(f"{paths[part.part]} and {paths[owner[twice[0]]]} both hold {_shown(twice)} "
                             f"({entry.name}): not the files of its parts")
        state.update(own)
        owner.update(dict.fromkeys(own, part.part))
    return state


def load_into(model: torch.nn.Module, state: Mapping[str, torch.Tensor], entry: PublishedWeights,
              path: Union[Path, str]) -> None:
    """Load strictly; every missing key, unexpected key or wrong shape is listed in one BenchError."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k} {list(state[k].shape)} vs {list(own[k].shape)}" for k in set(own) & set(state)
                    if state[k].shape != own[k].shape)
    problems = [f"{len(keys)} {what} ({_shown(keys)})"
                for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                   ("wrong shapes (file vs model)", shapes)) if keys]
    if problems:
        raise BenchError(f"{path} does not fit {entry.method} with the options of {entry.name}: {'; '.join(problems)}")
    model.load_state_dict(state, strict=True)


@dataclass(frozen=True)
class Published:
    """The published checkpoint one (method, split) of a run uses."""

    entry: PublishedWeights
    #: the file; for an entry with several files the folder holding them under their names
    path: Path

    @property
    def checkpoint_id(self) -> str:
        return f"published/{self.entry.name}"

    @property
    def paths(self) -> Dict[str, Path]:
        """{part: file} ("" the one file of a single-file entry)."""
        if not self.entry.multi_file:
            return {"": self.path}
        return {part.part: self.path / part.file_name for part in self.entry.parts}

    @property
    def described(self) -> str:
        """The files, for messages."""
        return " and ".join(map(str, self.paths.values()))


class PublishedModels:
    """The published checkpoint of every (method, split) of a run that uses them (one run's `--weights`)."""

    def __init__(self, options: PublishedOptions, dataset: str, input_size: Optional[int] = None):
        self.dataset, self.input_size = dataset, input_size
        self.folder, self.files = parse_weights(options.weights or [])
        self.variants = list(options.weights_variant or [])
        self._chosen: Dict[Tuple[str, int], Published] = {}
        self._hashes: Dict[Path, str] = {}

    def methods(self) -> List[str]:
        """The methods whose cells use published weights: named by a TAG=FILE, or with entries for the
        run's dataset when a folder is given."""
        named = {WEIGHTS.get(tag).method for tag in self.files}
        if self.folder is not None:
            named |= {e.method for e in WEIGHTS.entries() if e.dataset == self.dataset}
        return sorted(named)

    def resolve(self, methods: Sequence[str], splits: Sequence[int], input_size: Optional[int] = None) -> None:
        """Choose the checkpoint of every (method, split) that uses one; check names, folds and files.
        `input_size`: the run's (a method that does not resize its input must be given its entry's)."""
        self.input_size = input_size if input_size is not None else self.input_size
        uses = set(self.methods())
        for tag in self.files:
            entry = WEIGHTS.get(tag)
            if entry.method not in methods:
                raise BenchError(f"--weights {tag}=...: {entry.method} is not among --methods {' '.join(methods)}")
            if entry.multi_file and self.files[tag].is_file():
                raise BenchError(f"--weights {tag}={self.files[tag]}: {tag} is {len(entry.parts)} files "
                                 f"({', '.join(p.file_name for p in entry.parts)}): give {tag}=DIR, a folder holding "
                                 "them under these names, or --weights DIR")
            if entry.dataset != self.dataset or entry.fold not in {fold_of(split) for split in splits}:
                raise BenchError(f"--weights {tag} is the checkpoint of {entry.dataset} fold {entry.fold} (split "
                                 f"{entry.fold + 1}); this run evaluates {self.dataset} split(s) "
                                 f"{' '.join(map(str, splits))}")
        for method in methods:
            if method not in uses:
                continue
            for split in splits:
                entry, path = self._choose(method, split)
                check_normalisation(entry)
                chosen = Published(entry, path)
                if entry.multi_file and not path.is_dir():
                    raise BenchError(f"--weights {entry.name}={path}: not a folder (give the folder holding "
                                     f"{', '.join(p.file_name for p in entry.parts)})")
                for part in entry.parts:
                    file = chosen.paths[part.part]
                    unusable = not_regular(file, f"published weights {entry.name}:")
                    if unusable is not None:  # a FIFO, a device, a folder: never opened (a FIFO would block)
                        raise unusable
                    if not file.is_file():
                        where = (f" and put it at {file}" if self.folder is not None or entry.multi_file
                                 else f" (given as {file})")
                        raise BenchError(f"published weights {entry.name}: file {part.file_name} not found; download "
                                         f"it from {part.url}{where}")
                self._chosen[(method, split)] = chosen
        if not self._chosen:
            raise BenchError(f"--weights: none of --methods {' '.join(methods)} has published weights for "
                             f"{self.dataset} (`bench weights` lists them)")
        for chosen in self._chosen.values():
            if not chosen.entry.fold_verifiable:
                print(fold_warning(chosen.entry, chosen.path))

    def _choose(self, method: str, split: int) -> Tuple[PublishedWeights, Path]:
        given = [tag for tag in self.files if WEIGHTS.get(tag).method == method
                 and WEIGHTS.get(tag).fold == fold_of(split)]
        if len(given) > 1:
            raise BenchError(f"--weights gives {len(given)} checkpoints for {method} split {split}: {', '.join(given)}")
        if given:
            return WEIGHTS.get(given[0]), self.files[given[0]]
        candidates = WEIGHTS.find(method, self.dataset, fold_of(split))
        if self.folder is None or not candidates:
            known = sorted({e.fold for e in WEIGHTS.for_method(method) if e.dataset == self.dataset})
            raise BenchError(f"no published weights of {method} for {self.dataset} split {split} (fold "
                             f"{fold_of(split)}){'' if self.folder is None else ' in the registry'}; known folds: "
                             f"{', '.join(map(str, known)) or 'none'}"
                             f"{' (give a --weights folder or TAG=FILE for it)' if self.folder is None else ''}")
        # the patterns that name some entry of this method choose among its candidates; the others leave it alone
        variants = [p for p in self.variants if any(fnmatch.fnmatchcase(e.name, p) for e in WEIGHTS.for_method(method))]
        if variants:
            candidates = [e for e in candidates if any(fnmatch.fnmatchcase(e.name, p) for p in variants)]
            if not candidates:
                raise BenchError(f"no published weights of {method} for {self.dataset} split {split} match "
                                 f"--weights-variant {' '.join(variants)}; candidates: "
                                 f"{', '.join(e.name for e in WEIGHTS.find(method, self.dataset, fold_of(split)))}")
        if len(candidates) > 1:
            raise BenchError(f"{len(candidates)} published checkpoints fit {method} split {split}: "
                             f"{', '.join(e.name for e in candidates)}; choose with --weights-variant PATTERN "
                             "or --weights TAG=FILE")
        return candidates[0], self.folder if candidates[0].multi_file else self.folder / candidates[0].file_name

    def get(self, method: str, split: int) -> Optional[Published]:
        return self._chosen.get((method, split))

    def file_sha256s(self, method: str, split: int) -> Dict[str, str]:
        """{part: the file's sha256} (each file hashed once), checked against the part's where known."""
        chosen = self.get(method, split)
        digests = {}
        for part in chosen.entry.parts:
            path = chosen.paths[part.part]
            if path not in self._hashes:
                digest = sha256_file(path)
                if part.sha256 and digest != part.sha256.lower():
                    raise BenchError(f"{path} has sha256 {digest[:12]}..., the published {chosen.entry.name} has "
                                     f"{part.sha256[:12]}...: download it again from {part.url}")
                self._hashes[path] = digest
            digests[part.part] = self._hashes[path]
        return digests

    def sha256(self, method: str, split: int) -> Optional[str]:
        """The file's sha256 (hashed once), checked against the entry's where it has one; for an entry with
        several files their digests as `part=sha256,...` (in the entry's order)."""
        if self.get(method, split) is None:
            return None
        digests = self.file_sha256s(method, split)
        return digests[""] if "" in digests else ",".join(f"{part}={digest}" for part, digest in digests.items())

    def files_record(self, method: str, split: int) -> Dict[str, Dict[str, str]]:
        """{part: {file, sha256}} of an entry with several files ({} for one file)."""
        chosen = self.get(method, split)
        if chosen is None or not chosen.entry.multi_file:
            return {}
        digests = self.file_sha256s(method, split)
        return {part: {"file": str(path), "sha256": digests[part]} for part, path in chosen.paths.items()}

    def load(self, method: str, split: int, device: str = "cpu") -> Tuple[FewShotSegmenter, Dict]:
        """The method of a (method, split) with its published weights, and what identifies them."""
        chosen = self.get(method, split)
        entry, path = chosen.entry, chosen.path
        sha256 = self.sha256(method, split)
        model = build_method(entry.method, **build_options(entry))
        if not getattr(model, "native_resolution", False) and self.input_size not in (None, entry.input_size):
            raise BenchError(f"published weights {entry.name} are evaluated at {entry.input_size} x {entry.input_size} "
                             f"and {entry.method} does not resize its input: run with --input-size {entry.input_size}")
        size = getattr(model, "input_size", None)
        if getattr(model, "native_resolution", False) and size not in (None, entry.input_size):
            raise BenchError(f"published weights {entry.name} are evaluated at {entry.input_size} but their options "
                             f"build a {entry.method} that resizes to {size}")
        load_into(model, combined_state(entry, chosen.paths), entry, chosen.described)
        files = {part: record["sha256"] for part, record in self.files_record(method, split).items()}
        return model.to(device).eval(), {"sha256": sha256, "weights": entry.name, "path": str(path),
                                         "fold_verified": entry.fold_verifiable, **({"files": files} if files else {})}

    def arguments(self) -> List[str]:
        """The chosen checkpoints as `--weights TAG=FILE` values with absolute paths (for Ray workers)."""
        return list(dict.fromkeys(f"{p.entry.name}={p.path.absolute()}" for p in self._chosen.values()))

    def identity(self) -> Dict[str, str]:
        """{"<method>/split<k>": entry name}: which published model each (method, split) is."""
        return {f"{m}/split{s}": p.entry.name for (m, s), p in sorted(self._chosen.items())}

    def record(self) -> Dict[str, Dict]:
        """What config.json records of each chosen checkpoint."""
        return {f"{m}/split{s}": {"weights": p.entry.name, "file": str(p.path), "sha256": self.sha256(m, s),
                                  "url": p.entry.url, "input_size": p.entry.input_size,
                                  "fold_verified": p.entry.fold_verifiable,
                                  **({"files": self.files_record(m, s)} if p.entry.multi_file else {})}
                for (m, s), p in sorted(self._chosen.items())}
