"""Few-shot segmentation benchmark harness: datasets, fixed-seed episodes, evaluation, runs.

Entry point: `python -m bench run --methods support-copy all-foreground --shots 1 5`.
"""
from bench.core.shadowing import refuse_shadowed_methods

refuse_shadowed_methods()  # before anything of ours imports `methods`
