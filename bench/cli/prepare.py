"""`python -m bench prepare pascal5i|coco20i|deepglobe ...`: dataset roots from the official archives (issue 15)."""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.arguments import path_type
from bench.data.deepglobe import make_deepglobe_tiles
from bench.data.prepare.coco import prepare_coco
from bench.data.prepare.pascal import prepare_pascal

#: an archive that exists must be a regular file (a FIFO would block the reader, a device never ends)
ARCHIVE, FOLDER = path_type("file", Path), path_type("folder", Path)


def add_prepare_parser(subparsers) -> argparse.ArgumentParser:
    """Register `prepare` with its `pascal5i`, `coco20i` and `deepglobe` sub-commands."""
    parser = subparsers.add_parser("prepare", help="build a dataset root from the official archives")
    kinds = parser.add_subparsers(dest="dataset", required=True)
    pascal = kinds.add_parser("pascal5i", help="VOC2012 JPEGImages + SegmentationClassAug from VOC and SBD")
    pascal.add_argument("--voc", required=True, type=ARCHIVE, help="VOCtrainval_11-May-2012.tar")
    pascal.add_argument("--sbd", required=True, type=ARCHIVE, help="SBD benchmark.tgz")
    pascal.add_argument("--out", required=True, type=Path, help="data root (VOC2012/ goes inside; it must be new, "
                        "empty or made by this command)")
    pascal.add_argument("--lists", type=FOLDER, default=None, help="split lists folder to check against "
                        "(default: the shipped PASCAL-5i lists)")
    coco = kinds.add_parser("coco20i", help="COCO2014 images + class-index PNGs (HSNet's layout)")
    coco.add_argument("--train-zip", required=True, type=ARCHIVE, help="train2014.zip")
    coco.add_argument("--val-zip", required=True, type=ARCHIVE, help="val2014.zip")
    coco.add_argument("--annotations", required=True, type=ARCHIVE, help="annotations_trainval2014.zip")
    coco.add_argument("--out", required=True, type=Path, help="data root (COCO2014/ goes inside; it must be new, "
                      "empty or made by this command)")
    deepglobe = kinds.add_parser("deepglobe", help="DeepGlobe land-cover images cut into PATNet's 6 x 6 tiles")
    deepglobe.add_argument("--src", required=True, type=FOLDER, help="folder of <id>_sat.jpg / <id>_mask.png "
                           "(the Kaggle DeepGlobe land-cover train set, or its train/ folder)")
    deepglobe.add_argument("--out", required=True, type=Path, help="folder to create (images/, labels/, tiles.txt); "
                           "new, empty or made by this command")
    for sub in (pascal, coco, deepglobe):
        sub.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def prepare_command(args) -> int:
    """Run the chosen preparation and print a summary; BenchErrors propagate as one line to the caller."""
    if args.dataset == "pascal5i":
        summary = prepare_pascal(args.voc, args.sbd, args.out, lists_dir=args.lists, quiet=args.quiet)
        print(f"PASCAL-5i ready at {summary['root']}: {summary['images']} images, {summary['masks']} masks, "
              f"all {summary['listed_images']} listed images present ({summary['written']} files written this run)")
        return 0
    if args.dataset == "deepglobe":
        summary = make_deepglobe_tiles(args.src, args.out, progress=not args.quiet)
        print(f"DeepGlobe tiles ready at {args.out}: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
        return 0
    summary = prepare_coco(args.train_zip, args.val_zip, args.annotations, args.out, quiet=args.quiet)
    print(f"COCO-20i ready at {summary['root']}: " + ", ".join(f"{k} {v}" for k, v in summary.items() if k != "root"))
    return 0

