"""Errors, file I/O, progress and the environment: what every other layer uses; imports nothing else of ours."""
