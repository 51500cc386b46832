"""The shared-vs-authors pipeline gap: one checkpoint, the same episodes, two ways of preparing and scoring them.

    python -m analyses.pipeline_gap --methods hsnet --dataset pascal5i --data-root VOC --weights DIR --split 1

Under the shared pipeline every method sees an episode prepared one way (the fair comparison); under the
authors' pipeline each method sees it as its authors' test loader prepares it (`bench run --pipeline
authors`; see bench.evaluation.authors). The field argues about exactly this difference (e.g. HSNet's
400 x 400 versus original-size scoring, juhongm999/hsnet issues 1, 5, 6). Both are resumable `bench run`
directories under --out (`shared/`, `authors/`) on the same manifests; per method and shot the table gives
mIoU under each, the paired difference (authors - shared) with its 95% cluster-bootstrap interval
(`analyses.stats.paired_difference`), the episodes whose counts differ and the largest difference as a share of
an episode's scored pixels.

Outputs (in --out): pipeline_gap.csv, pipeline_gap.png / .svg, and the two run directories.
"""
from __future__ import annotations

import argparse

from analyses.cli import EPISODES, SEED, SHOTS, add_arguments, command
from bench.cli.arguments import RESAMPLES, Parser, add_options, number
from bench.runs.config import RunConfig
from bench.training.options import PublishedOptions

IMPLEMENTATION = "analyses.impl.pipeline_gap"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m analyses.pipeline_gap", description=__doc__)
    add_arguments(parser, methods="many")
    add_options(parser, PublishedOptions)
    add_options(parser, RunConfig, names=("input_size",))
    parser.add_argument("--eval-size", type=number(int, 1, 4096), default=None, help="score at the network's input size under both "
                        "pipelines (HSNet's 400 x 400) instead of each label's original size")
    parser.add_argument("--shots", nargs="+", type=SHOTS, default=[1, 5], metavar="K", help="support images per episode")
    parser.add_argument("--seeds", nargs="+", type=SEED, default=[0], metavar="S", help="episode sets")
    parser.add_argument("--episodes", type=EPISODES, default=1000, help="episodes per seed")
    parser.add_argument("--resamples", type=RESAMPLES, default=1000, help="bootstrap resamples of the paired interval")
    return parser


run, main, __getattr__ = command(build_parser, IMPLEMENTATION)


if __name__ == "__main__":
    raise SystemExit(main())
