"""Foreground vs background similarity of same-class image pairs: the paper's Figure 3.

    python -m analyses.similarity --split 1 [--pairs 4000]

SimPropNet (Gairola et al., IJCAI 2020, Section 3.1, Figure 3) measures, for 4000 same-class image
pairs from PASCAL VOC, the cosine similarity of the foreground masked-average-pooled (MAP) vectors
and of the background MAP vectors computed on frozen ResNet-50 layer2+layer3 features, and finds the
background more similar than the foreground for every class: the premise of FG/BG attentive fusion.
This command computes the same on the dataset profile's frozen backbone (ResNet-50 on PASCAL-5i,
synthnet on the synthetic benchmark). Background = pixels that are neither the class nor void.

Outputs (in --out): pairs.csv (one row per pair), per_class.csv (means and standard deviations per
class and overall), similarity.png / .svg (box plots per class, FG vs BG).
"""
from __future__ import annotations

import argparse

from analyses.cli import PAIRS, add_arguments, command
from bench.cli.arguments import Parser

IMPLEMENTATION = "analyses.impl.similarity"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m analyses.similarity", description=__doc__)
    add_arguments(parser)
    parser.add_argument("--pairs", type=PAIRS, default=4000, help="number of same-class image pairs (paper: 4000)")
    return parser


run, main, __getattr__ = command(build_parser, IMPLEMENTATION)


if __name__ == "__main__":
    raise SystemExit(main())
