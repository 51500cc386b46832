"""`python -m bench reproduce CARD`: every experiment of a paper card run resumably into one folder, then the
paper's tables and claims compared with what was measured (`bench.papers.outcome`).

The folder (`--out`, default runs/reproduce-<card>-<dataset>):
  reproduce.json            what the folder reproduces (card, its sha256, dataset); another card is refused
  runs/<name>/              one run directory per protocol (`bench run --out`; named after its first experiment),
                            grown by the experiments that share it
  analyses/<experiment>/    each analysis experiment's outputs, with done.json once it finished
  reproduction.json / .md / .html   the comparison, rewritten from the saved results at the end of each call
Interrupted, the same command continues: finished cells, checkpoints and analyses are kept.
"""
from __future__ import annotations

import argparse
import importlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Tuple

from bench.cli.arguments import build
from bench.core.environment import home_path
from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_json, read_json, sha256_file
from bench.core.log import format_seconds, log
from bench.papers.card import Experiment, PaperCard
from bench.papers.loader import analysis_argv, card_path, load_card, run_key
from bench.runs.config import RunConfig

#: `bench reproduce` options passed to each analysis command as they are (flag, attribute)
ANALYSIS_PASS = ("dataset", "data_root", "lists", "train_dataset", "train_data_root", "profile", "backbone_weights",
                 "checkpoints", "no_train", "device", "quiet", "plugin")


@dataclass
class RunGroup:
    """The run experiments that share one run directory (one protocol and one way of getting weights)."""

    name: str
    experiments: List[Experiment] = field(default_factory=list)

    @property
    def methods(self) -> List[str]:
        return list(dict.fromkeys(m for e in self.experiments for m in e.methods))


def experiments_of(card: PaperCard, args: argparse.Namespace) -> Tuple[List[Experiment], List[Experiment]]:
    """(every experiment of the card, those --only selects), with the command line's overrides; an unknown
    name in --only is refused."""
    names = [e.name for e in card.experiments]
    for name in args.only or []:
        if name not in names:
            raise BenchError(f"--only {name}: the card {card.name} has no such experiment (it has {', '.join(names)})")
    everything = [with_overrides(e, args) for e in card.experiments]
    return everything, [e for e in everything if not args.only or e.name in args.only]


def with_overrides(experiment: Experiment, args: argparse.Namespace) -> Experiment:
    """A run experiment with the command line's --train-seeds, --seeds and --episodes, where given."""
    if not experiment.is_run:
        return experiment
    changes = {name: list(dict.fromkeys(value)) if isinstance(value, list) else value
               for name in ("train_seeds", "seeds", "episodes") if (value := getattr(args, name, None))}
    return replace(experiment, **changes) if changes else experiment


def run_groups(everything: List[Experiment], experiments: List[Experiment]) -> List[RunGroup]:
    """The run `experiments` grouped by run directory, in the card's order; a directory is named after the first
    experiment of its protocol among `everything` (all the card's, with the same overrides), whatever --only
    selects."""
    names: Dict[tuple, str] = {}
    for experiment in everything:
        if experiment.is_run:
            names.setdefault(run_key(experiment), experiment.name)
    groups: "OrderedDict[tuple, RunGroup]" = OrderedDict()
    for experiment in experiments:
        if experiment.is_run:
            key = run_key(experiment)
            groups.setdefault(key, RunGroup(names.get(key, experiment.name))).experiments.append(experiment)
    return list(groups.values())


def default_out(card: PaperCard, dataset: str) -> Path:
    return home_path("runs") / f"reproduce-{card.name}-{dataset}"


def check_folder(out: Path, card: PaperCard, path: Path, args: argparse.Namespace) -> None:
    """Claim `out` for this card, dataset and overrides, refusing a folder that holds another reproduction."""
    marker = out / "reproduce.json"
    mine = {"card": card.name, "dataset": args.dataset,
            "overrides": {k: getattr(args, k) for k in ("seeds", "episodes", "train_seeds") if getattr(args, k, None)}}
    if marker.is_file():
        recorded = read_json(marker, "reproduce.json")
        if not isinstance(recorded, dict) or {k: recorded.get(k, {} if k == "overrides" else None) for k in mine} != mine:
            what = recorded if isinstance(recorded, dict) else {}
            raise BenchError(f"{out} reproduces {what.get('card', '?')} on {what.get('dataset', '?')} with overrides "
                             f"{json.dumps(what.get('overrides', {}))}: give another --out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(marker, {**mine, "card_sha256": sha256_file(path)})


def uses_published(experiment: Experiment, args: argparse.Namespace) -> bool:
    """Whether the experiment's methods evaluate published checkpoints (given with --weights) rather than train."""
    return experiment.weights and bool(args.weights)


def run_config(args: argparse.Namespace, experiment: Experiment, methods: List[str], out: Path) -> RunConfig:
    """The `bench run` config of a group's methods with one training-seed set (`experiment`'s)."""
    values = dict(vars(args))
    values.update(methods=methods, splits=experiment.splits, shots=experiment.shots, seeds=experiment.seeds,
                  episodes=experiment.episodes, identical_input=experiment.identical_input, out=str(out),
                  train_seed=experiment.train_seeds[0],
                  train_seeds=None if experiment.cell_train_seeds == [None] else experiment.train_seeds,
                  weights=args.weights if uses_published(experiment, args) else None,
                  weights_variant=(experiment.weights_variant or None) if uses_published(experiment, args) else None,
                  **experiment.options)
    return build(RunConfig, argparse.Namespace(**values))


def schedule(groups: List[RunGroup], experiments: List[Experiment]) -> List[Tuple[Experiment, str, str]]:
    """The steps of a reproduction as (experiment, method or "", run directory name or ""), method by method:
    first the analyses that need no trained method, then each method (in the card's order) in every run
    directory it belongs to, followed by the analyses of that method; so an interrupted reproduction has
    whole methods to show, and each `bench run` call leaves a finished run directory."""
    analyses = [e for e in experiments if not e.is_run]
    steps = [(e, "", "") for e in analyses if "method" not in e.args]
    methods = list(dict.fromkeys(m for g in groups for m in g.methods))
    for method in methods:
        for group in groups:
            owner = next((e for e in group.experiments if method in e.methods), None)
            if owner is not None:
                steps.append((owner, method, group.name))
        steps += [(e, "", "") for e in analyses if e.args.get("method") == method]
    return steps + [(e, "", "") for e in analyses if "method" in e.args and e.args["method"] not in methods]


def run_method(args: argparse.Namespace, experiment: Experiment, method: str, run_dir: Path) -> None:
    """Run (or resume) one method of a run experiment into its run directory."""
    from bench.runs.run import run

    log(f"bench reproduce: {experiment.name}: {method} into {run_dir}")
    run(run_config(args, experiment, [method], run_dir))


def analysis_command(args: argparse.Namespace, experiment: Experiment, folder: Path) -> List[str]:
    """The argv of `python -m analyses.<name>` for an analysis experiment."""
    argv = analysis_argv(experiment) + ["--out", str(folder)]
    for name in ANALYSIS_PASS:
        value = getattr(args, name, None)
        if value in (None, False, []):
            continue
        flag = "--" + name.replace("_", "-")
        argv += [flag] if value is True else [flag, *map(str, value)] if isinstance(value, list) else [flag, str(value)]
    return argv


def run_analysis(args: argparse.Namespace, experiment: Experiment, out: Path) -> Path:
    """Run an analysis experiment unless its folder records the same command as done."""
    folder = out / "analyses" / experiment.name
    argv = analysis_command(args, experiment, folder)
    done = folder / "done.json"
    if done.is_file():
        record = read_json(done, "done.json")
        if isinstance(record, dict) and record.get("argv") == argv:
            log(f"bench reproduce: {experiment.name}: done earlier ({folder})")
            return folder
    log(f"bench reproduce: {experiment.name}: python -m analyses.{experiment.analysis} {' '.join(argv)}")
    start = time.perf_counter()
    status = importlib.import_module(f"analyses.{experiment.analysis}").main(argv)
    if status:
        raise BenchError(f"experiment {experiment.name}: `python -m analyses.{experiment.analysis}` failed "
                         f"(exit status {status}; its error is above)")
    atomic_write_json(done, {"argv": argv, "seconds": round(time.perf_counter() - start, 1)})
    return folder


def run_reports(out: Path, names: List[str], resamples: int) -> Dict[str, str]:
    """`bench report` of each finished run directory (kept while its episodes.csv is older; none for a run with
    a method not finished): run -> its page."""
    from reports.render import render_report

    reports = {}
    for name in names:
        run_dir = out / "runs" / name
        if not (run_dir / "episodes.csv").is_file():
            continue
        page = run_dir / "report.html"
        if not page.is_file() or page.stat().st_mtime < (run_dir / "episodes.csv").stat().st_mtime:
            try:
                render_report(run_dir, page, resamples, qualitative=0)
            except BenchError as exc:  # a method of the run not finished (an interrupted reproduction)
                log(f"bench reproduce: no report of {run_dir}: {exc}")
                continue
        reports[name] = page.relative_to(out).as_posix()
    return reports


def write_reproduction(card: PaperCard, everything: List[Experiment], out: Path, card_file: Path, dataset: str,
                       resamples: int) -> List[Path]:
    """reproduction.json (from the saved results of every experiment of the card present in `out`), .md, .html."""
    from bench.papers.outcome import reproduction
    from reports.reproduction import write_pages

    run_of = {e.name: g.name for g in run_groups(everything, everything) for e in g.experiments}
    record = reproduction(card, out, run_of, dataset, resamples)
    record["card_sha256"] = sha256_file(card_file)
    record["reports"] = run_reports(out, list(record["runs"]), resamples)
    atomic_write_json(out / "reproduction.json", record)
    return [out / "reproduction.json", *write_pages(record, out)]


#: what `--export` copies: the comparison, and what resumes the reproduction elsewhere (each run directory's
#: record, manifests, cells and their qualitative arrays, which a finished cell's record names; each analysis'
#: tables, figures and done.json); not the regenerated aggregates
#: (episodes.csv, report.html), SVG copies of figures or locks
EXPORT = ("reproduction.json", "reproduction.md", "reproduce.json", "runs/*/config.json", "runs/*/results.json",
          "runs/*/summary.csv", "runs/*/manifests/*.csv", "runs/*/episodes/*.csv", "runs/*/episodes/*.json",
          "runs/*/qualitative/*.npz", "analyses/*/*.csv", "analyses/*/*.png", "analyses/*/done.json")


def export(out: Path, dest: Path) -> int:
    """Copy the EXPORT files of a reproduction folder to `dest` (replacing what it held); the count copied."""
    import shutil

    if dest.resolve() == out.resolve() or out.resolve() in dest.resolve().parents:
        raise BenchError(f"--export {dest}: give a folder outside the reproduction folder {out}")
    if dest.exists():
        if not (dest / "reproduce.json").is_file():
            raise BenchError(f"--export {dest} exists and holds no exported reproduction: give a new folder")
        shutil.rmtree(dest)
    count = 0
    for pattern in EXPORT:
        for path in sorted(out.glob(pattern)):
            target = dest / path.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            count += 1
    return count


def reproduce(args: argparse.Namespace) -> Path:
    """Run what is missing of the card's experiments, then write the reproduction files; returns the folder."""
    card = load_card(args.card)
    path = card_path(args.card)
    everything, experiments = experiments_of(card, args)
    for experiment in experiments:
        if experiment.weights and not args.weights and args.dataset == card.dataset:  # elsewhere: trained
            raise BenchError(f"experiment {experiment.name} evaluates the authors' published checkpoints: give them "
                             "with --weights DIR (see `python -m bench weights`)")
    out = Path(args.out) if args.out else default_out(card, args.dataset)
    check_folder(out, card, path, args)
    if args.dataset != card.dataset:
        print(f"{card.name} reports {card.dataset}; this reproduction runs on {args.dataset}: its claims and "
              "orderings are compared, not the absolute numbers")
    start = time.perf_counter()
    if not args.no_run:
        for experiment, method, run_name in schedule(run_groups(everything, experiments), experiments):
            if method:
                run_method(args, experiment, method, out / "runs" / run_name)
            else:
                run_analysis(args, experiment, out)
    files = write_reproduction(card, everything, out, path, args.dataset, args.resamples)
    log(f"bench reproduce: {card.name} on {args.dataset} in {format_seconds(time.perf_counter() - start)}")
    for item in files:
        print(f"written: {item}")
    if args.export:
        print(f"exported {export(out, Path(args.export))} files to {args.export}")
    return out

