"""Configuration fields that carry their command-line flag: help, choices, metavar, bounds, run identity.

`bench.cli.arguments` turns the fields of a configuration dataclass into argparse options, so each
option's default, help text and bounds are written once, beside the field.
"""
from __future__ import annotations

from dataclasses import field
from typing import Dict, Optional


def option(default, help: str, *, identity: bool = True, choices=None, metavar: Optional[str] = None,
           cli: bool = True, alias: Optional[Dict] = None, minimum=None, maximum=None, path: Optional[str] = None,
           omit_default: bool = False):
    """A dataclass field with its flag's metadata; `identity=False`: it never changes a result; `alias`:
    {"name", "offset", "help"} of a second flag giving the values in another numbering (exclusive with it);
    `minimum`/`maximum`: the bounds a numeric value given on the command line must keep (inclusive); `path`:
    "file", "folder" or "any", what the value must be when it exists (`bench.cli.arguments.path_type`);
    `omit_default`: left out of the run identity at its default (an option added after runs were recorded, whose
    default is what they did: their identity, and the baselines holding it, stay valid)."""
    meta = {"help": help, "identity": identity, "choices": choices, "metavar": metavar, "cli": cli, "alias": alias,
            "minimum": minimum, "maximum": maximum, "path": path, "omit_default": omit_default}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


#: the largest seed: manifests and file names hold seeds of up to nine digits
MAX_SEED = 999_999_999
