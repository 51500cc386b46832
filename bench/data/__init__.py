"""Datasets, the synthetic benchmark, episode sampling and image handling, with the shipped split lists."""
