"""Timing scripts that print figures (the cache benchmark, the executor benchmark)."""
