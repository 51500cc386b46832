"""Runs: the configuration, the run directory and its records, cells, the cell runner, the executors."""
