"""Does FG/BG attentive fusion gain more when backgrounds are informative? A controlled test of Figure 3's premise.

    python -m analyses.context --split 1 --levels 0 0.25 0.5 0.75 1

SimPropNet (Gairola et al., IJCAI 2020, Section 3.1, Figure 3) motivates FG/BG attentive fusion (FBAF)
by the observation that on PASCAL VOC the backgrounds of two images of a class are more similar than
their foregrounds. Real data cannot vary that; the synthetic benchmark can: its background-context
variants (`synthetic-context<LEVEL>`) draw each image's scene and clutter from its main class with a
strength from 0 (backgrounds independent of the class) to 1 (each class on its own scene with its own
clutter), everything else generated alike. For each level this command generates the variant (cached),
measures Figure 3's FG and BG similarity (as `analyses.similarity`) and the BG - FG gap, trains and
evaluates `simpropnet-dpr` and `simpropnet-dpr-fbaf` (Table 5's rows without and with FBAF: same seeds,
same recipe, checkpoints selected on held-out images of the training classes) and gives FBAF's gain in
mIoU with a paired 95% bootstrap interval over the same episodes (the tables' mIoU: per episode set pooled,
then averaged). One training per method and level by default: the interval then covers the sampling of
queries, not training noise; `--train-seeds 0 1 2` trains each method three times and resamples those too.
Each level is a resumable `bench run` directory and a similarity folder under --out/level-<LEVEL>.

Outputs (in --out, rewritten after each level): context.csv (one row per level and shot; `wall_s` is this
invocation's time on the level, a few seconds when it resumed finished cells, `training_s` what the
checkpoints recorded when they were trained), context.png / .svg (gain and BG - FG similarity gap against
the level).
"""
from __future__ import annotations

import argparse

from analyses.cli import EPISODES, PAIRS, SEED, SHOTS, add_arguments, command
from bench.cli.arguments import RESAMPLES, Parser, add_options, number
from bench.runs.config import RunConfig

IMPLEMENTATION = "analyses.impl.context"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m analyses.context", description=__doc__)
    add_arguments(parser)
    parser.add_argument("--levels", nargs="+", type=number(float, 0, 1), default=[0.0, 0.25, 0.5, 0.75, 1.0], metavar="LEVEL",
                        help="background context levels in [0, 1]")
    parser.add_argument("--shots", nargs="+", type=SHOTS, default=[1], help="support images per episode")
    parser.add_argument("--seeds", nargs="+", type=SEED, default=[0, 1, 2], help="one episode set per seed")
    parser.add_argument("--episodes", type=EPISODES, default=1000, help="episodes per seed and level")
    add_options(parser, RunConfig, names=("train_seeds",))
    parser.add_argument("--pairs", type=PAIRS, default=4000,
                        help="same-class image pairs for the similarity (paper: 4000)")
    parser.add_argument("--resamples", type=RESAMPLES, default=1000, help="bootstrap resamples of the paired interval")
    return parser


run, main, __getattr__ = command(build_parser, IMPLEMENTATION)


if __name__ == "__main__":
    raise SystemExit(main())
