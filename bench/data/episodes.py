"""Fixed-seed episode sets: sampled once from a seed into a manifest, then replayed as data.

An episode is (class, query image, k support images). Queries come from the split's test list of
(image, class) pairs; supports are k distinct images of the same list that contain the class,
all different from the query.

Class sampling:
* ``list`` (default, as OSLSM, CANet and HSNet): queries follow the (image, class) list, so a
  class is sampled in proportion to its number of pairs. The list is traversed in shuffled cycles
  (every pair is used once before any is used again), so 1000 episodes cover the list evenly.
* ``uniform`` (as PANet, and HSNet on COCO-20i): a class uniformly at random, then one of its pairs
  uniformly.

Queries ``every-image`` (HSNet's FSS-1000 protocol): every pair of the list is a query once, in
list order, whatever ``episodes`` says; the seed draws only the supports.

The query sequence depends on (seed, split) only, so the 1- and 5-shot sets of one seed share
their queries and can be compared episode by episode; supports depend on (seed, split, shot).
Nothing depends on batch size, worker count or device.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Set, Tuple

import numpy as np
import pandas as pd

from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_bytes, sha256_bytes
from bench.data.base import FSSDataset, Pair

MANIFEST_COLUMNS = ["episode", "split", "shot", "seed", "class_id", "query", "supports"]
SUPPORT_SEPARATOR = " "  # between the support ids of an episode; ids hold no whitespace (base.is_plain_name)
CLASS_SAMPLING = ("list", "uniform")
QUERIES = ("sampled", "every-image")


@dataclass(frozen=True)
class EpisodeSpec:
    """Everything that determines one manifest."""

    split: int
    shot: int
    seed: int
    episodes: int = 1000
    class_sampling: str = "list"
    min_object_pixels: int = 0
    identical_input: bool = False
    queries: str = "sampled"

    @property
    def cell(self) -> str:
        return cell_name(self.split, self.shot, self.seed)


CELL = re.compile(r"^split(?P<split>\d+)_shot(?P<shot>\d+)_seed(?P<seed>\d+)$")


def cell_name(split: int, shot: int, seed: int) -> str:
    """The name of one (split, shot, seed) cell: its manifest's file stem and part of its result files' names."""
    return f"split{split}_shot{shot}_seed{seed}"


def parse_cell(cell: str) -> Tuple[int, int, int]:
    """(split, shot, seed) of a cell name."""
    match = CELL.match(cell)
    if match is None:
        raise BenchError(f"'{cell}' is not a cell name (split<k>_shot<k>_seed<s>)")
    return int(match["split"]), int(match["shot"]), int(match["seed"])


def usable_pairs(dataset: FSSDataset, split: int, min_object_pixels: int) -> List[Pair]:
    """The split's test pairs, minus those whose object is smaller than the size filter."""
    pairs = dataset.pairs(split, "test")
    if min_object_pixels > 0:
        pairs = [p for p in pairs if dataset.class_pixel_count(p[0], p[1]) >= min_object_pixels]
    return pairs


def images_by_class(pairs: List[Pair]) -> Dict[int, List[str]]:
    by_class: Dict[int, set] = {}
    for image_id, class_id in pairs:
        by_class.setdefault(class_id, set()).add(image_id)
    return {c: sorted(ids) for c, ids in sorted(by_class.items())}


def support_ids(field: str) -> List[str]:
    """The support image ids of a manifest's `supports` field."""
    return field.split(SUPPORT_SEPARATOR)


def join_supports(ids) -> str:
    return SUPPORT_SEPARATOR.join(ids)


def image_ids(manifests) -> Set[str]:
    """Every image id (queries and supports) that the given manifests use."""
    return {i for m in manifests for i in [*m["query"], *(s for field in m["supports"] for s in support_ids(field))]}


def query_sequence(pairs: List[Pair], spec: EpisodeSpec) -> List[Pair]:
    """The episodes' (query, class) pairs, from (seed, split) only."""
    if spec.queries == "every-image":  # each pair once, in list order; the seed draws the supports only
        return list(pairs)
    rng = np.random.default_rng([spec.seed, spec.split, 0])
    if spec.class_sampling == "uniform":
        by_class: Dict[int, List[Pair]] = {}
        for pair in pairs:
            by_class.setdefault(pair[1], []).append(pair)
        classes = sorted(by_class)
        out = []
        for _ in range(spec.episodes):
            members = by_class[classes[rng.integers(len(classes))]]
            out.append(members[rng.integers(len(members))])
        return out
    out: List[Pair] = []
    while len(out) < spec.episodes:
        out.extend(pairs[i] for i in rng.permutation(len(pairs)))
    return out[: spec.episodes]


def sample_episodes(dataset: FSSDataset, spec: EpisodeSpec) -> pd.DataFrame:
    """Sample the manifest of one (split, shot, seed) cell from the split's test list."""
    dataset.check_split(spec.split)
    return sample_from_pairs(usable_pairs(dataset, spec.split, spec.min_object_pixels), spec, dataset.class_names())


def sample_from_pairs(pairs: List[Pair], spec: EpisodeSpec, class_names: Dict[int, str]) -> pd.DataFrame:
    """Sample episodes from a given (image, class) pair list (test lists, held-out training pairs)."""
    if spec.shot < 1:
        raise BenchError(f"shots must be >= 1, got {spec.shot}")
    if spec.queries not in QUERIES:
        raise BenchError(f"unknown query protocol '{spec.queries}'; choose from {', '.join(QUERIES)}")
    if spec.class_sampling not in CLASS_SAMPLING:
        raise BenchError(f"unknown class sampling '{spec.class_sampling}'; choose from {', '.join(CLASS_SAMPLING)}")
    if spec.identical_input and spec.shot != 1:
        raise BenchError("the identical-input test is 1-shot only (use --shots 1)")
    if not pairs:
        raise BenchError(f"split {spec.split} has no usable (image, class) pairs")
    by_class = images_by_class(pairs)
    needed = 1 if spec.identical_input else spec.shot + 1
    short = {c: len(ids) for c, ids in by_class.items() if len(ids) < needed}
    if short:
        detail = ", ".join(f"{class_names.get(c, c)} ({n})" for c, n in short.items())
        raise BenchError(
            f"{spec.shot}-shot episodes need {needed} usable images per class; split {spec.split} has fewer for: {detail}"
        )
    support_rng = np.random.default_rng([spec.seed, spec.split, spec.shot])
    rows = []
    for episode, (query, class_id) in enumerate(query_sequence(pairs, spec)):
        if spec.identical_input:
            supports = [query]
        else:
            candidates = [i for i in by_class[class_id] if i != query]
            picks = support_rng.choice(len(candidates), size=spec.shot, replace=False)
            supports = [candidates[i] for i in picks]
        rows.append((episode, spec.split, spec.shot, spec.seed, class_id, query, join_supports(supports)))
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def manifest_bytes(manifest: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    manifest[MANIFEST_COLUMNS].to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


def manifest_hash(manifest: pd.DataFrame) -> str:
    return sha256_bytes(manifest_bytes(manifest))


def write_manifest(manifest: pd.DataFrame, path: Path) -> str:
    """Write atomically; return the sha256 of the bytes written."""
    data = manifest_bytes(manifest)
    atomic_write_bytes(path, data)
    return sha256_bytes(data)


INTEGER_COLUMNS = ["episode", "split", "shot", "seed", "class_id"]


def _first(flags: pd.Series) -> int:
    """Position of the first True (its file line is this + 2: the header, 1-based)."""
    return int(flags.to_numpy().argmax())


def read_manifest(path: Path) -> pd.DataFrame:
    """Read a manifest CSV and check its columns and types; errors name the file and the row."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"episode manifest not found: {path}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise BenchError(f"cannot parse episode manifest {path}: {exc}") from None
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise BenchError(f"episode manifest {path} lacks columns: {', '.join(missing)}")
    if frame.empty:
        raise BenchError(f"episode manifest {path} has no episodes")
    frame = frame[MANIFEST_COLUMNS].copy()
    for column in INTEGER_COLUMNS:
        values = frame[column].str.strip()
        bad = ~values.str.fullmatch(r"\d{1,9}")
        if bad.any():
            row = _first(bad)
            raise BenchError(f"episode manifest {path}, line {row + 2}: {column} {frame[column].iloc[row]!r} is not "
                             "a non-negative integer")
        frame[column] = values.astype(np.int64)
    for column in ("query", "supports"):
        empty = frame[column].str.strip() == ""
        if empty.any():
            row = _first(empty)
            raise BenchError(f"episode manifest {path}, line {row + 2} (episode {frame.episode.iloc[row]}): "
                             f"the {column} field is empty")
    repeated = frame.episode.duplicated()
    if repeated.any():
        row = _first(repeated)
        raise BenchError(f"episode manifest {path}, line {row + 2}: episode {frame.episode.iloc[row]} appears twice")
    for column in ("split", "shot", "seed"):
        if frame[column].nunique() != 1:
            raise BenchError(f"episode manifest {path} mixes several values of '{column}'")
    return frame


def check_manifest(dataset: FSSDataset, manifest: pd.DataFrame, source: str, identical_input: bool = False) -> None:
    """Check a replayed manifest against the dataset and the run: every episode has `shot` distinct
    supports that are not its query (an identical-input run: exactly its query), all from the split's
    test list with the episode's class. The first bad episode is named."""
    split, shot = int(manifest["split"].iloc[0]), int(manifest["shot"].iloc[0])
    dataset.check_split(split)
    if shot < 1:
        raise BenchError(f"{source}: shot {shot} is not >= 1")
    if identical_input and shot != 1:
        raise BenchError(f"{source}: an identical-input run replays 1-shot manifests, this one is {shot}-shot")
    known = {(i, c) for i, c in dataset.pairs(split, "test")}
    for row in manifest.itertuples(index=False):
        where = f"{source}: episode {row.episode}"
        supports = support_ids(row.supports)
        if len(supports) != shot:
            raise BenchError(f"{where} has {len(supports)} supports, expected {shot}")
        if len(set(supports)) != len(supports):
            raise BenchError(f"{where} repeats a support image ({row.supports}); supports must be distinct")
        if identical_input and supports != [row.query]:
            raise BenchError(f"{where}: in an identical-input run the support must be the query itself")
        if not identical_input and row.query in supports:
            raise BenchError(f"{where} uses its query {row.query} as a support, which leaks the answer; replay it "
                             "with --identical-input if this is an identical-input manifest")
        for image_id in [row.query, *supports]:
            if (image_id, row.class_id) not in known:
                raise BenchError(
                    f"{where} uses ({image_id}, class {row.class_id}), "
                    f"which is not in the test list of split {split}"
                )
