"""GF-SAM's speed on CPU: seconds per 1-shot and 5-shot episode in the real configuration (DINOv2 ViT-L/14 at
518, SAM ViT-H at 1024, up to 128 point prompts) or the synthetic profile's (`--reduced`). Prints figures.

    python -m bench.benchmarks.gf_sam_speed [--reduced] [--episodes 2] [--threads 2]

The same as `python -m bench.benchmarks.foundation_speed --method gf-sam` (see there).
"""
from __future__ import annotations

from bench.benchmarks.foundation_speed import main as foundation_main


def main(argv=None) -> None:
    foundation_main(argv, method="gf-sam")


if __name__ == "__main__":
    main()
