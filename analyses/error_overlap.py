"""Overlap of few-shot and supervised segmentation errors: the paper's Table 1.

    python -m analyses.error_overlap --method canet --split 1

SimPropNet (Gairola et al., IJCAI 2020, Section 3.1, Table 1) compares the errors of FSS methods
(CANet, AMP) with those of a supervised model (DeepLab v3+) on the same images and finds little
overlap and a large gap in true predictions: FSS methods fail where a supervised model does not. The
paper does not define the numbers; here, pooled over the 1-shot episodes of seed --seed of the split
(the same manifest as `bench run`), with void pixels excluded, at each label's original size:

* FN overlap = |FN_fss & FN_sup| / |FN_fss | FN_sup| (intersection over union of the missed regions);
* FP overlap = the same for the false-positive regions;
* TP gap = (|TP_sup| - |TP_fss|) / |ground-truth foreground| (points of foreground recall);
* also |FN_fss & FN_sup| / |FN_fss|: the share of the FSS method's misses that the supervised model
  also misses (and the same for FP).
All in percent. The supervised reference: torchvision's DeepLabV3-ResNet50 with VOC-label weights on
PASCAL-5i (`--supervised-weights PATH` when offline); on the synthetic benchmarks a model the harness
trains on all 20 classes (bench/supervised.py). It predicts the episode's class where its argmax is it.

Outputs (in --out): overlap.csv, episodes.csv (per-episode pixel counts), overlap.png / .svg.
"""
from __future__ import annotations

import argparse

from analyses.cli import EPISODES, add_arguments, command
from bench.cli.arguments import Parser, path_type

IMPLEMENTATION = "analyses.impl.error_overlap"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m analyses.error_overlap", description=__doc__)
    add_arguments(parser, methods="one")
    parser.add_argument("--episodes", type=EPISODES, default=1000, help="1-shot episodes of seed --seed")
    parser.add_argument("--supervised-weights", metavar="PATH", type=path_type("file"),
                        help="PASCAL: local DeepLabV3-ResNet50 VOC-label weights file (offline)")
    return parser


run, main, __getattr__ = command(build_parser, IMPLEMENTATION)


if __name__ == "__main__":
    raise SystemExit(main())
