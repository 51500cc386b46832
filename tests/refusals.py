"""What every bad-input case checks: one `error:` line, exit status 2, and the files around untouched.

Shared by tests/test_bad_inputs.py and the tests/test_hardening_*.py suites.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List


@dataclass
class Case:
    name: str
    #: builds the command line from the case's environment (an Env, or a temporary folder)
    build: Callable[..., List[str]]
    message: str
    #: a missing data root also prints its dataset card's layout and sources: the error, then a few lines
    lines: int = 1


def tree(folder: Path) -> dict:
    """Every regular file below `folder`, by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_error_line(code: int, err: str, message: str, lines: int = 1) -> None:
    """Exit status 2 and 1..`lines` lines on stderr, the first an `error:` line holding `message`."""
    found = err.strip().splitlines()
    assert code == 2, err
    assert 1 <= len(found) <= lines and found[0].startswith("error: ") and "Traceback" not in err, err
    assert message in found[0], found[0]


def assert_untouched(before: dict, after: dict) -> None:
    """The same files, byte for byte (nothing created, removed or changed)."""
    assert after.keys() == before.keys(), sorted(set(after) ^ set(before))
    assert [name for name in before if before[name] != after[name]] == []
