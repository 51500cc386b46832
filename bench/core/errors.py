"""User-facing errors: the CLI prints them as one line and exits non-zero."""


class BenchError(Exception):
    """A problem with the user's input or data, reported without a traceback."""
