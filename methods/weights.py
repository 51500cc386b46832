"""Published checkpoints as data, apart from the architectures (as timm's pretrained configs and
torchvision's `Weights` enums).

A method file declares each checkpoint its authors released as a `PublishedWeights` entry named
`method.tag` (for example `pfenet.pascal5i-fold0-resnet50`): the file name the authors publish, where
it is downloaded from (text for the user: nothing is fetched), the builder options of the architecture
it fits, its evaluation input size and normalisation, its dataset and fold, its sha256 where known and
the paper's reported numbers. Its `keys` is a `KeyMap`: how the authors' state-dict names map onto the
harness module's names, in both directions (loading a checkpoint; giving the authors' model the
harness's seeded weights in the golden tests).

An entry whose model is assembled from several released files (the training-free methods: a DINOv2 file
and a SAM file, the same for every fold) lists them as `files`, one `WeightFile` per part, each with its
own file name, download address, sha256, state-dict entry and `KeyMap` (whose rules put the part under
its module prefix); its `file_name` and `url` are then the parts' joined (what `bench weights` shows).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from methods.registry import MethodError, Registry

IMAGENET_NORMALISATION = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
DATAPARALLEL_PREFIX = "module."


@dataclass(frozen=True)
class KeyMap:
    """Renames between the authors' state-dict keys and the harness's, by ordered prefix rules.

    `rules` are (authors' prefix, harness prefix) pairs; the first rule whose prefix matches a key
    renames it, keys no rule matches keep their name. `ignore_authors` are regular expressions of the
    authors' keys the harness has no module for (dropped on load, e.g. an unused classifier), and
    `ignore_harness` the harness keys their file does not hold (e.g. buffers of a module they lack).
    """

    rules: Sequence[Tuple[str, str]] = ()
    ignore_authors: Sequence[str] = ()
    ignore_harness: Sequence[str] = ()

    @staticmethod
    def _rename(key: str, pairs: Sequence[Tuple[str, str]]) -> str:
        for source, target in pairs:
            if key.startswith(source):
                return target + key[len(source):]
        return key

    def to_harness(self, authors_state: Mapping) -> Dict:
        """The authors' state dict (a `module.` prefix of DataParallel stripped) in harness names."""
        state = strip_prefix(authors_state, DATAPARALLEL_PREFIX)
        return {self._rename(k, self.rules): v for k, v in state.items()
                if not any(re.fullmatch(p, k) for p in self.ignore_authors)}

    def to_authors(self, harness_state: Mapping) -> Dict:
        """The harness's state dict in the authors' names (for their model, in the golden tests)."""
        reverse = [(target, source) for source, target in self.rules]
        return {self._rename(k, reverse): v for k, v in harness_state.items()
                if not any(re.fullmatch(p, k) for p in self.ignore_harness)}


def strip_prefix(state: Mapping, prefix: str) -> Dict:
    """`state` with `prefix` removed from every key that has it (DataParallel's `module.`)."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


@dataclass(frozen=True)
class WeightFile:
    """One released file of a published model: a part of an entry with several files (`PublishedWeights.files`)."""

    #: the part's name (e.g. "dinov2", "sam"), unique in its entry; "" for the one file of a single-file entry
    part: str
    file_name: str
    url: str
    sha256: Optional[str] = None
    #: the authors' names -> the harness model's (the whole model's: the rules add the part's module prefix)
    keys: KeyMap = field(default_factory=KeyMap)
    #: as `PublishedWeights.state_key` ("" for the top level)
    state_key: str = ""


@dataclass(frozen=True)
class PublishedWeights:
    """One checkpoint released by a method's authors."""

    method: str
    tag: str
    #: the file name as the authors publish it (inside `--weights DIR`, possibly with sub-folders)
    file_name: str
    #: where the user downloads it (never fetched by the harness)
    url: str
    dataset: str
    fold: int
    #: builder options of the architecture the checkpoint fits
    options: Mapping = field(default_factory=dict)
    keys: KeyMap = field(default_factory=KeyMap)
    #: the side the authors evaluate at (the method's own test-time resizing uses it)
    input_size: int = 473
    normalisation: Mapping = field(default_factory=lambda: dict(IMAGENET_NORMALISATION))
    sha256: Optional[str] = None
    #: the paper's numbers for this fold: {shots: {"miou": float, "fbiou": float or None}}
    reported: Mapping[int, Mapping[str, Optional[float]]] = field(default_factory=dict)
    #: where the reported numbers come from (paper, table)
    source: str = ""
    #: the state-dict entry of the authors' file that holds the weights ("state_dict"), or "" for the top level
    state_key: str = "state_dict"
    #: the top-level entry of the authors' file that holds the fold it was trained on, or "" where the file
    #: carries none (HSNet saves a bare state dict, PFENet {epoch, state_dict, optimizer}): a file of another
    #: fold is then told apart only by `sha256`
    fold_key: str = ""
    #: the released files of a model assembled from several (then `file_name`, `url`, `sha256`, `keys` and
    #: `state_key` are not given: the first two are filled with the parts' joined, for display)
    files: Tuple[WeightFile, ...] = ()
    #: the files are the same for every fold (a training-free method's foundation models): no file of
    #: another fold exists, so its fold needs no proof
    fold_free: bool = False

    def __post_init__(self) -> None:
        if not self.files:
            return
        parts = [f.part for f in self.files]
        if not all(parts) or len(set(parts)) != len(parts):
            raise MethodError(f"published weights {self.name}: its files need distinct, non-empty part names, "
                              f"got {parts}")
        if self.sha256 or self.fold_key or self.state_key not in ("", "state_dict") or self.keys != KeyMap():
            raise MethodError(f"published weights {self.name}: an entry with several files gives sha256, keys and "
                              "state_key per file")
        object.__setattr__(self, "state_key", "")
        object.__setattr__(self, "file_name", self.file_name or " + ".join(f.file_name for f in self.files))
        object.__setattr__(self, "url", self.url or " ; ".join(f"{f.part}: {f.url}" for f in self.files))

    @property
    def name(self) -> str:
        return f"{self.method}.{self.tag}"

    @property
    def multi_file(self) -> bool:
        return bool(self.files)

    @property
    def parts(self) -> Tuple[WeightFile, ...]:
        """Its files: `files`, or the one file a single-file entry describes (part "")."""
        return self.files or (WeightFile("", self.file_name, self.url, self.sha256, self.keys, self.state_key),)

    @property
    def fold_verifiable(self) -> bool:
        """Whether loading its file proves the file is of its fold (by its sha256, or by the fold it holds;
        always for files shared by every fold)."""
        return bool(self.sha256 or self.fold_key or self.fold_free)


class WeightsRegistry(Registry):
    """`method.tag` -> PublishedWeights: the generic strict registry (duplicates and unknown names are errors),
    its entries registered as data rather than by decorator, and looked up by method, dataset and fold."""

    def __init__(self) -> None:
        super().__init__("published weights", plural="published weights")

    def register(self, *entries: PublishedWeights) -> None:
        for entry in entries:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", entry.tag):
                raise MethodError(f"weights tag '{entry.tag}' of {entry.method}: use lower-case letters, digits, '.', '-', '_'")
            self._add(entry.name, entry)

    def entries(self, pattern: str = "*") -> List[PublishedWeights]:
        return [self._entries[n] for n in self.names(pattern)]

    def for_method(self, method: str) -> List[PublishedWeights]:
        self._load()
        return [e for e in self._entries.values() if e.method == method]

    def find(self, method: str, dataset: str, fold: int, **options) -> List[PublishedWeights]:
        """The entries of `method` for (dataset, fold) whose options include `options`."""
        return [e for e in self.for_method(method) if e.dataset == dataset and e.fold == fold
                and all(e.options.get(k) == v for k, v in options.items())]


WEIGHTS = WeightsRegistry()
register_weights = WEIGHTS.register
