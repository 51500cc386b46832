"""Few-shot segmentation benchmark harness: datasets, fixed-seed episodes, evaluation, runs.

Entry point: `python -m bench run --methods support-copy all-foreground --shots 1 5`.
"""
