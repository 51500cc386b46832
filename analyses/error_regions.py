"""Similarity of mispredicted regions across same-class pairs: the paper's Section 3.1 ratio.

    python -m analyses.error_regions --method canet --split 1 [--pairs 1000]

SimPropNet (Gairola et al., IJCAI 2020, Section 3.1) argues that FSS methods err in regions that are
similar across images of a class: for image pairs (A, B) of one class it computes masked-average-pooled
(MAP) vectors over the mispredicted region (Z^e) and over the ground-truth region (Z^g) and reports
the ratio (Z^e(A) . Z^e(B)) / (Z^g(A) . Z^g(B)): 0.87 +/- 0.25 over 1000 PASCAL pairs for CANet.

Here, for each seeded same-class pair of the split's test list, A is segmented with B as its 1-shot
support and B with A; the mispredicted region is every non-void pixel where prediction and ground
truth differ (false positives and false negatives), at the method's input resolution. MAP vectors use
the frozen backbone's layer2+layer3 features (the paper used VGG-16 features). A pair whose error
region is empty in A or B (a perfect prediction), or whose ground-truth product is zero, has no ratio:
it is counted and reported, never divided by zero.

Outputs (in --out): pairs.csv (per pair: error pixels, dot products, ratio), summary.csv, ratios.png/.svg.
"""
from __future__ import annotations

import argparse

from analyses.cli import PAIRS, add_arguments, command
from bench.cli.arguments import Parser

IMPLEMENTATION = "analyses.impl.error_regions"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m analyses.error_regions", description=__doc__)
    add_arguments(parser, methods="one")
    parser.add_argument("--pairs", type=PAIRS, default=1000, help="same-class image pairs (paper: 1000)")
    return parser


run, main, __getattr__ = command(build_parser, IMPLEMENTATION)


if __name__ == "__main__":
    raise SystemExit(main())
