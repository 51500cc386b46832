"""The identical-input test: the paper's Tables 2 and 6.

    python -m analyses.identical --methods simpropnet canet --splits 1 2 3 4

SimPropNet (Gairola et al., IJCAI 2020, Sections 3.1 and 5.2) gives each method the query itself, with
its ground-truth mask, as the 1-shot support: an upper bound on how much similarity a network
propagates from support to query (Table 2 for CANet and AMP; Table 6 for SimPropNet with the gain
over each baseline, the "Delta" rows). This command runs `bench run --identical-input` and a regular
1-shot `bench run` on the same queries (the same seeds; both resumable, so existing results are
reused) and tabulates, per method and split, identical-input mIoU beside regular 1-shot mIoU, and
the gain of the first method over each other one.

Outputs (in --out, which also holds the two run directories): identical.csv, deltas.csv,
identical.png / .svg.
"""
from __future__ import annotations

import argparse

from analyses.cli import EPISODES, SEED, add_arguments, command
from bench.cli.arguments import Parser

IMPLEMENTATION = "analyses.impl.identical"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m analyses.identical", description=__doc__)
    add_arguments(parser, methods="many", splits="many")
    parser.add_argument("--seeds", nargs="+", type=SEED, default=[0, 1, 2], metavar="S", help="episode sets")
    parser.add_argument("--episodes", type=EPISODES, default=1000, help="episodes per (split, seed)")
    parser.add_argument("--identical-run", metavar="DIR", help="reuse this finished `bench run --identical-input` directory")
    parser.add_argument("--regular-run", metavar="DIR", help="reuse this finished regular 1-shot `bench run` directory")
    return parser


run, main, __getattr__ = command(build_parser, IMPLEMENTATION)


if __name__ == "__main__":
    raise SystemExit(main())
