"""Inputs of tests/test_hardening_outputs.py (issue 25): output paths that are not regular files, baselines and
tolerances that would switch the regression gate off, non-finite checkpoints, published files of another fold,
cells that claim published weights, and plugin methods with malformed outputs."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable, List

import torch

from bench.core.fileio import sha256_file
from tests.bad_input_builders import Env, published, write_checkpoint
from tests.published_fixture import ENTRIES, write_authors_file
from methods.weights import WEIGHTS

#: a registered entry (not a test one), so that verify has reported numbers to compare with
REAL_ENTRY = "hsnet.pascal5i-fold0-resnet50"


def fifo(env: Env, name: str = "fifo") -> Path:
    path = env.tmp / name
    os.mkfifo(path)
    return path


def link_to_device(env: Env) -> Path:
    path = env.tmp / "link"
    path.symlink_to("/dev/null")
    return path


# ---- the regression gate ----

def baseline(env: Env, edit: Callable[[List[dict]], object] | None = None, text: str | None = None) -> List[str]:
    """`bench check` of the run against its own baseline, after `edit` of the baseline's entries (or `text`)."""
    run = env.run_dir()
    path = env.tmp / "baseline.json"
    if text is None:
        entries = [{"method": "support-copy", "dataset": "pascal5i", "split": "1", "shot": 1, "miou": 50.0},
                   {"method": "all-foreground", "dataset": "pascal5i", "split": "1", "shot": 1, "miou": 20.0}]
        changed = edit(entries) if edit is not None else None
        entries = changed if isinstance(changed, list) else entries
        text = json.dumps({"source_run": "x", "entries": entries})  # json writes nan and inf as NaN, Infinity
    path.write_text(text)
    return ["check", "--run", str(run), "--baseline", str(path)]


def set_field(key: str, value) -> Callable[[List[dict]], None]:
    return lambda entries: entries[0].update({key: value})


def drop_field(key: str) -> Callable[[List[dict]], None]:
    return lambda entries: entries[0].pop(key)


def claim_published(env: Env) -> List[str]:
    """A support-copy cell edited to claim it was evaluated from published weights."""
    run = env.run_dir()
    for path in (run / "episodes").glob("support-copy__split1_shot1_seed*.json"):
        meta = json.loads(path.read_text())
        meta.update(weights=REAL_ENTRY, weights_sha256="0" * 64, weights_fold_verified=True)
        path.write_text(json.dumps(meta))
    return ["verify", "--run", str(run)]


# ---- checkpoints ----

def non_finite(value: float, every: bool = True) -> Callable[[dict], None]:
    """An edit of a state dict: every floating tensor (or only the first) filled with `value`."""
    def edit(state: dict) -> None:
        names = [k for k, v in state.items() if v.is_floating_point()]
        for name in names if every else names[:1]:
            state[name] = torch.full_like(state[name], value)
    return edit


def published_non_finite(env: Env, value: float, every: bool = True) -> List[str]:
    return published(env, lambda folder: write_authors_file(folder / ENTRIES[0].file_name, ENTRIES[0], 3,
                                                             non_finite(value, every)))


def trained_non_finite(env: Env) -> List[str]:
    best = env.best()
    payload = torch.load(best, weights_only=True)
    non_finite(float("nan"))(payload["model"])
    write_checkpoint(best, payload)  # with a consistent record: only the values are wrong
    return env.learned()


def with_fold_key(env: Env, fold_in_file) -> List[str]:
    """Entries whose authors' files record their fold under 'fold'; fold 0's file records `fold_in_file`."""
    def edit(folder: Path) -> None:
        path = folder / ENTRIES[0].file_name
        payload = torch.load(path, weights_only=True)
        if fold_in_file is not None:
            payload["fold"] = fold_in_file
        torch.save(payload, path)
    args = published(env, edit)
    env.patch.setattr(WEIGHTS, "_entries", {name: dataclasses.replace(e, fold_key="fold")
                                            for name, e in WEIGHTS._entries.items()})
    return args


def published_with_sha256(env: Env, folder: Path) -> None:
    """Give the test entry of fold 0 its file's sha256 (its fold is then verified)."""
    entry = ENTRIES[0]
    digest = sha256_file(folder / entry.file_name)
    env.patch.setitem(WEIGHTS._entries, entry.name, dataclasses.replace(entry, sha256=digest))


# ---- method outputs ----

PLUGIN = '''import torch
from methods import register_method
from methods.base import FewShotSegmenter


@register_method({name!r})
class Bad(FewShotSegmenter):
    """Returns malformed logits."""

    native_resolution = {native}

    def forward(self, query, supports, support_masks):
        b, _, h, w = query.shape
        out = torch.zeros(b, 2, h, w)
        out[:, 1, : h // 2] = 1.0
{body}
        return out
'''


def bad_method(folder: Path, name: str, body: str, native: bool = False) -> Path:
    """A plugin file registering `name`, whose forward runs `body` (indented code changing or replacing `out`)."""
    path = folder / f"{name.replace('-', '_')}.py"
    path.write_text(PLUGIN.format(name=name, native=native, body="\n".join("        " + line for line in body.split("\n"))))
    return path
