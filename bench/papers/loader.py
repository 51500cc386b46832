"""Loading paper cards: the types (`bench.papers.card.parse_fields`), then what the types alone do not catch:
names that must be registered, references between the card's parts, shapes of the reported numbers, analysis
arguments that their command accepts (each refusal one line). The analyses' light parsers are imported by name
(`analyses.<name>.build_parser`, no torch)."""
from __future__ import annotations

import contextlib
import importlib
import io
import json
from pathlib import Path
from typing import List, Set

from analyses.registry import ANALYSES
from bench.data.catalog import DATASETS
from bench.core.errors import BenchError
from bench.training.profiles import PROFILES
from bench.papers.card import (CARDS_DIR, DIRECTIONS, FILE_NAME, KINDS, METRICS, NAME, RUN_OPTIONS, SCHEMA_VERSION,
                               SCORING_OPTIONS, CardError, Experiment, PaperCard, parse_fields)
from methods.catalog import method_summaries

#: analysis arguments the reproduction sets itself (from the experiment, the command line, its folder)
RESERVED_ARGS = ("out", "run", "dataset", "data_root", "checkpoints", "profile", "device", "quiet", "log_file",
                 "train_dataset", "train_data_root", "lists", "plugin")


def _unique(names: List[str], where: str) -> None:
    seen: Set[str] = set()
    for name in names:
        if name in seen:
            raise CardError(f"{where}: {name!r} appears twice")
        seen.add(name)


def analysis_argv(experiment: Experiment) -> List[str]:
    """The experiment's analysis arguments as command-line flags (`pairs: 4000` -> --pairs 4000)."""
    argv: List[str] = []
    for key, value in experiment.args.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False:
            continue
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def _check_experiment(experiment: Experiment, where: str, methods: Set[str]) -> None:
    if not NAME.match(experiment.name):
        raise CardError(f"{where}.name: {experiment.name!r} is not a name (lower case letters, digits, . _ -)")
    if experiment.analysis:
        if experiment.methods:
            raise CardError(f"{where}: an experiment is a run (methods) or an analysis, not both")
        if experiment.analysis not in ANALYSES:
            raise CardError(f"{where}.analysis: unknown analysis {experiment.analysis!r} (known: {', '.join(ANALYSES)})")
        for key in experiment.args:
            if key in RESERVED_ARGS:
                raise CardError(f"{where}.args.{key}: set by `bench reproduce`, not by the card")
        parser = importlib.import_module(f"analyses.{experiment.analysis}").build_parser()
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said):
                parser.parse_args(analysis_argv(experiment))
        except SystemExit:
            reason = said.getvalue().strip().splitlines()[-1:] or ["refused"]
            raise CardError(f"{where}.args: `python -m analyses.{experiment.analysis} "
                            f"{' '.join(analysis_argv(experiment))}`: {reason[0]}") from None
        return
    if not experiment.methods:
        raise CardError(f"{where}: an experiment needs `methods` (a run) or `analysis`")
    for k, method in enumerate(experiment.methods):
        if method not in methods:
            raise CardError(f"{where}.methods[{k}]: unknown method {method!r} (see `python -m bench list`)")
    _unique(experiment.methods, f"{where}.methods")
    for key, values, low, high in (("splits", experiment.splits, 1, 4), ("shots", experiment.shots, 1, 100),
                                   ("seeds", experiment.seeds, 0, 2 ** 31 - 1),
                                   ("train_seeds", experiment.train_seeds, 0, 2 ** 31 - 1)):
        if not values:
            raise CardError(f"{where}.{key}: empty")
        for k, value in enumerate(values):
            if not low <= value <= high:
                raise CardError(f"{where}.{key}[{k}]: {value} is not in {low}..{high}")
    if experiment.episodes is not None and not 1 <= experiment.episodes <= 100_000:
        raise CardError(f"{where}.episodes: {experiment.episodes} is not in 1..100000")
    for key in experiment.options:
        if key not in RUN_OPTIONS + SCORING_OPTIONS:
            raise CardError(f"{where}.options.{key}: not a protocol option a card may set "
                            f"({', '.join(RUN_OPTIONS + SCORING_OPTIONS)})")
    if experiment.weights_variant and not experiment.weights:
        raise CardError(f"{where}.weights_variant: only experiments with published weights (weights: true) take it")
    if experiment.args:
        raise CardError(f"{where}.args: only analysis experiments take args")


def run_key(experiment: Experiment) -> tuple:
    """What puts two run experiments in one run directory: the protocol and how the methods get weights."""
    return (tuple(experiment.splits), tuple(experiment.shots), tuple(experiment.seeds), experiment.episodes,
            experiment.identical_input, tuple(sorted((k, str(v)) for k, v in experiment.options.items())),
            experiment.weights, tuple(experiment.weights_variant))


def check_card(card: PaperCard, where: str) -> None:
    """Refuse (CardError, one line) what the types alone do not catch."""
    if card.schema != SCHEMA_VERSION:
        raise CardError(f"{where}.schema: {card.schema} (this harness reads schema {SCHEMA_VERSION})")
    if not NAME.match(card.name):
        raise CardError(f"{where}.name: {card.name!r} is not a name (lower case letters, digits, . _ -)")
    if card.dataset not in DATASETS.names():
        raise CardError(f"{where}.dataset: unknown dataset {card.dataset!r} (see `python -m bench datasets`)")
    for dataset, profile in card.profiles.items():
        if dataset not in DATASETS.names():
            raise CardError(f"{where}.profiles: unknown dataset {dataset!r} (see `python -m bench datasets`)")
        if profile not in PROFILES:
            raise CardError(f"{where}.profiles.{dataset}: unknown training profile {profile!r} (known: "
                            f"{', '.join(sorted(PROFILES))})")
    methods = {name for name, _ in method_summaries()}
    if not card.experiments:
        raise CardError(f"{where}.experiments: empty")
    _unique([e.name for e in card.experiments], f"{where}.experiments")
    for k, experiment in enumerate(card.experiments):
        _check_experiment(experiment, f"{where}.experiments[{k}]", methods)
    _check_identities(card, where)
    experiments = {e.name: e for e in card.experiments}
    _unique([t.id for t in card.tables], f"{where}.tables")
    for k, table in enumerate(card.tables):
        _check_table(card, table, f"{where}.tables[{k}]", experiments)
    _unique([c.id for c in card.claims], f"{where}.claims")
    for k, claim in enumerate(card.claims):
        _check_claim(claim, f"{where}.claims[{k}]", experiments)


def _check_identities(card: PaperCard, where: str) -> None:
    """Within one protocol (one run directory), a method must have one training-seed set: its cells are one
    identity's."""
    seen = {}
    for experiment in card.experiments:
        if not experiment.is_run:
            continue
        protocol = run_key(experiment)
        for method in experiment.methods:
            other = seen.setdefault((protocol, method), (experiment.name, experiment.train_seeds))
            if other[1] != experiment.train_seeds:
                raise CardError(f"{where}.experiments: {method} has train_seeds {other[1]} in {other[0]!r} and "
                                f"{experiment.train_seeds} in {experiment.name!r} on the same protocol")


def _check_table(card: PaperCard, table, where: str, experiments) -> None:
    if table.experiment not in experiments:
        raise CardError(f"{where}.experiment: unknown experiment {table.experiment!r}")
    experiment = experiments[table.experiment]
    if not table.rows or not table.columns:
        raise CardError(f"{where}: needs rows and columns")
    if experiment.is_run:
        if table.metric not in METRICS:
            raise CardError(f"{where}.metric: {table.metric!r} is not one of {', '.join(METRICS)}")
        for row in table.rows:
            if row not in experiment.methods:
                raise CardError(f"{where}.rows.{row}: not a method of experiment {experiment.name!r}")
        _check_grid(f"{where}.columns", table.columns, f"{where}.shots", table.shots, experiment)
    else:
        if not table.file:
            raise CardError(f"{where}.file: an analysis table names the CSV its columns come from")
        _check_file_name(f"{where}.file", table.file)
        for row in table.rows:
            if row not in experiments or experiments[row].is_run:
                raise CardError(f"{where}.rows.{row}: not an analysis experiment of the card")
    for row, by_shot in table.reported.items():
        if row not in table.rows:
            raise CardError(f"{where}.reported.{row}: not a row of the table")
        for shot, values in by_shot.items():
            if not shot.isdigit() or int(shot) not in table.shots:
                raise CardError(f"{where}.reported.{row}.{shot}: not a shot of the table")
            if len(values) != len(table.columns):
                raise CardError(f"{where}.reported.{row}.{shot}: {len(values)} values for {len(table.columns)} columns")


def _check_grid(splits_key: str, splits: List[str], shots_key: str, shots: List[int], experiment: Experiment) -> None:
    """Split columns ("1".."4", "mean") and shots that the run experiment has."""
    for split in splits:
        if split != "mean" and (not split.isdigit() or int(split) not in experiment.splits):
            raise CardError(f"{splits_key}: {split!r} is not a split of {experiment.name!r} or 'mean'")
    for shot in shots:
        if shot not in experiment.shots:
            raise CardError(f"{shots_key}: {shot} is not a shot of experiment {experiment.name!r}")


def _check_file_name(where: str, file: str) -> None:
    """An analysis' output is named by a plain file name inside its folder: no path, nothing hidden."""
    if not FILE_NAME.match(file):
        raise CardError(f"{where}: {file!r} is not a file name of the analysis' folder (letters, digits, . _ -)")


def _check_claim(claim, where: str, experiments) -> None:
    if claim.kind not in KINDS:
        raise CardError(f"{where}.kind: {claim.kind!r} is not one of {', '.join(KINDS)}")
    if claim.direction not in DIRECTIONS:
        raise CardError(f"{where}.direction: {claim.direction!r} is not one of {', '.join(DIRECTIONS)}")
    if claim.experiment not in experiments:
        raise CardError(f"{where}.experiment: unknown experiment {claim.experiment!r}")
    experiment = experiments[claim.experiment]
    if claim.kind == "value":
        if experiment.is_run or not claim.file or not claim.column:
            raise CardError(f"{where}: a value claim reads `file` and `column` of an analysis experiment")
        _check_file_name(f"{where}.file", claim.file)
        return
    if not experiment.is_run:
        raise CardError(f"{where}.experiment: a {claim.kind} claim compares cells of a run experiment")
    if claim.metric != "miou":
        raise CardError(f"{where}.metric: claims compare mIoU (the intervals are mIoU's)")
    if not claim.a:
        raise CardError(f"{where}.a: the methods the claim is about")
    for method in claim.a + claim.b:
        if method not in experiment.methods:
            raise CardError(f"{where}: {method!r} is not a method of experiment {experiment.name!r}")
    if claim.kind == "methods" and not claim.b:
        raise CardError(f"{where}.b: a methods claim compares `a` with `b`")
    if claim.kind == "shots" and len(claim.shots) != 2:
        raise CardError(f"{where}.shots: a shots claim compares two shot settings [low, high]")
    _check_grid(f"{where}.splits", claim.splits, f"{where}.shots", claim.shots, experiment)


def parse_card(data: object, where: str = "card") -> PaperCard:
    """A PaperCard from parsed JSON, checked (CardError naming the key on the first problem)."""
    card = parse_fields(PaperCard, data, where)
    check_card(card, where)
    return card


def card_path(name_or_path: str) -> Path:
    """A registered card's file (`bench/papers/cards/<name>.json`) or a path to a card file."""
    if NAME.match(name_or_path) and (CARDS_DIR / f"{name_or_path}.json").is_file():
        return CARDS_DIR / f"{name_or_path}.json"
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        return path
    raise BenchError(f"no paper card {name_or_path!r}: give a card's name ({', '.join(card_names()) or 'none'}) "
                     "or the path of a card's .json file")


def load_card(name_or_path: str) -> PaperCard:
    """Read and check a card by name or path (BenchError: one line)."""
    path = card_path(name_or_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CardError(f"{path}: not a JSON card ({exc})") from None
    return parse_card(data, path.name)


def card_names() -> List[str]:
    return sorted(p.stem for p in CARDS_DIR.glob("*.json"))
