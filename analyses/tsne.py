"""tSNE of foreground and background MAP vectors of a split's classes: the paper's Figure 6.

    python -m analyses.tsne --split 1 [--method simpropnet] [--per-class 60]

SimPropNet (Gairola et al., IJCAI 2020, Figure 6) shows that foreground and background masked-average-
pooled vectors of the split-1 classes form separate clusters. This command takes up to --per-class
test-list images of every class of the split, computes their FG and BG MAP vectors on the frozen
backbone (layer2+layer3), or with --method on that method's trained encoder output for the split,
and embeds all vectors with scikit-learn's TSNE (seeded). Background = neither the class nor void.

Outputs (in --out): coordinates.csv (one row per vector: image, class, region fg/bg, x, y),
tsne.png / .svg (coloured by class, FG as circles and BG as crosses).
"""
from __future__ import annotations

import argparse

from analyses.cli import PAIRS, add_arguments, command
from bench.cli.arguments import Parser

IMPLEMENTATION = "analyses.impl.tsne"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m analyses.tsne", description=__doc__)
    add_arguments(parser)
    parser.add_argument("--method", help="embed with this method's trained encoder instead of the raw backbone")
    parser.add_argument("--per-class", type=PAIRS, default=60, help="images per class (default 60)")
    return parser


run, main, __getattr__ = command(build_parser, IMPLEMENTATION)


if __name__ == "__main__":
    raise SystemExit(main())
