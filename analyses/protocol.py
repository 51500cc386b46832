"""Protocol sensitivity: one model, the evaluation choices that differ across the FSS literature.

    python -m analyses.protocol --methods simpropnet canet --split 1

The same trained models are evaluated on the same split under each protocol choice on which the
peer codebases disagree (see the harness README, Protocol): the resolution at which predictions are
scored (each label's original size, PFENet; 400 x 400, HSNet; 417 x 417, PANet), void (255) pixels
ignored or scored as background (OSLSM), 1000 or 5000 episodes, PFENet's minimum object size filter
(2 x 32 x 32 px on PASCAL, scaled by image area on other datasets), list-proportional or uniform
class sampling, and reporting the mean of three seeds or the best seed (BAM, HDMNet). Each variant
is a resumable `bench run` directory under --out; the table gives mIoU and FB-IoU per variant, the
change from the default protocol and, per method, the spread (max - min) over variants.

Outputs (in --out): protocol.csv, spread.csv, protocol.png / .svg, and one run directory per variant.
"""
from __future__ import annotations

import argparse

from analyses.cli import EPISODES, SEED, SHOTS, add_arguments, command
from bench.cli.arguments import Parser

IMPLEMENTATION = "analyses.impl.protocol"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m analyses.protocol", description=__doc__)
    add_arguments(parser, methods="many")
    parser.add_argument("--shots", nargs="+", type=SHOTS, default=[1], metavar="K", help="support images per episode")
    parser.add_argument("--seeds", nargs="+", type=SEED, default=[0, 1, 2], metavar="S", help="episode sets")
    parser.add_argument("--episodes", type=EPISODES, default=1000, help="episodes of the default protocol")
    return parser


run, main, __getattr__ = command(build_parser, IMPLEMENTATION)


if __name__ == "__main__":
    raise SystemExit(main())
