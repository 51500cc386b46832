"""Placeholder: this baseline is being written (issue 4)."""
