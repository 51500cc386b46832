"""Analyses of few-shot segmentation runs: metrics, identical-input test, similarity, tSNE."""
