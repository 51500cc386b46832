"""Base-class vs novel-class mIoU of a trained method: how much of what it learned is class-specific.

    python -m analyses.base_novel --methods dcama hsnet --splits 1 2 3 4 [--shots 1 5] [--episodes 1000]

A few-shot network is trained on the base classes of a split and tested on its novel classes. This command
scores one trained checkpoint, through the same evaluation loop and scoring as `bench run`, on episodes of
both: held-out images of the base classes (those the trainer never fits: the images it validates on) and the
split's test episodes of the novel classes. A large base-over-novel gap says the network memorised its
training classes instead of learning to compare support and query (a method whose decoder reads query
features can; one that sees only correlations, as HSNet, less so: Min et al., ICCV 2021, Section 3).

Outputs (in --out): gap.csv (per method, split and shot: base and novel mIoU and FB-IoU, the base-minus-novel
gap, the episodes), episodes-<method>-split<k>.csv (per-episode counts of both class sets: any metric recomputes
from them; a rerun keeps those whose episodes are still the ones sampled), gap.png / .svg.
"""
from __future__ import annotations

import argparse

from analyses.cli import EPISODES, SHOTS, add_arguments, command
from bench.cli.arguments import Parser

IMPLEMENTATION = "analyses.impl.base_novel"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m analyses.base_novel", description=__doc__)
    add_arguments(parser, methods="many", splits="many")
    parser.add_argument("--shots", nargs="+", type=SHOTS, default=[1, 5], metavar="K", help="shots per episode")
    parser.add_argument("--episodes", type=EPISODES, default=1000, help="episodes per class set and shot")
    return parser


run, main, __getattr__ = command(build_parser, IMPLEMENTATION)


if __name__ == "__main__":
    raise SystemExit(main())
