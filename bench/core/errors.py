"""User-facing errors: the CLI prints them as one line and exits non-zero."""


class BenchError(Exception):
    """A problem with the user's input or data, reported without a traceback."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (a scheduler's kill, `kill PID`): handled as an interrupt, so the same cleanup runs and
    finished work is kept, but said as a termination."""
