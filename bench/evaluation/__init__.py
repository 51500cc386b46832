"""Evaluation of a method on a manifest: the scoring protocol, the loop, the code cache, qualitative outputs."""
