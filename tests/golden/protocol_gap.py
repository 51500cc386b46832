"""Prints the shared-vs-authors pipeline gap on the voc-sized fixture: per configuration, the episodes whose counts
differ between the harness's shared pipeline and the authors' own code (the golden counts, which the authors'
pipeline equals), the largest difference as % of an episode's pixels, mIoU both ways, and the paired difference
(authors - shared) with its 95% cluster-bootstrap interval.

    python -m tests.golden.protocol_gap
"""
from __future__ import annotations

from analyses.stats import paired_difference
from tests.golden.protocol_fixture import compare, harness_counts, load
from tests.test_authors_parity import model_of

SIZES = {"protocol-hsnet": 128, "protocol-pfenet": 121}


def main() -> None:
    for name, size in SIZES.items():
        meta, golden, manifests = load(name)
        model = model_of(name)
        for config, setup in meta["configurations"].items():
            if name == "protocol-pfenet" and setup["eval_size"] is not None:
                continue  # their 121 x 121 scoring letterboxes the label; the shared --eval-size squashes it
            ours = harness_counts(model, manifests[setup["shot"]], setup["eval_size"], size)
            cell = {"method": name, "split": 1, "shot": setup["shot"], "seed": 0}
            gap = paired_difference(golden[config].assign(**cell), ours.assign(**cell), resamples=2000)
            found = compare(golden[config], ours)
            print(f"{name} {config}: {found['differing']} episodes differ, largest {found['max_diff_pct']:.2f}% of "
                  f"pixels; mIoU shared {found['miou_harness']:.2f}, authors {found['miou_authors']:.2f}; "
                  f"authors - shared {gap['difference']:+.2f} [{gap['lower']:+.2f}, {gap['upper']:+.2f}]")


if __name__ == "__main__":
    main()
