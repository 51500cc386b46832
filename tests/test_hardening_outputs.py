"""Issue 25, outputs: nothing written over a device, FIFO or folder; no regression gate or verify switched off by
a tolerance or a baseline; no method output, published or trained checkpoint scored when it is malformed or
non-finite; a published file whose fold cannot be verified is said so.

The cases of the bad-input shape end with exit 2, one `error:` line, and every file byte-identical
(tests/test_bad_inputs.py); the others are ordinary tests.
"""
from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List

import pytest

from bench.cli.commands import main
from bench.core.errors import BenchError
from bench.core.fileio import atomic_write_bytes
from methods.panet import PANet
from reports.check import compare
from tests.refusals import Case, assert_one_error_line, assert_untouched, tree
from tests.bad_input_builders import Env, published
from tests.hardening_outputs_builders import (
    REAL_ENTRY,
    bad_method,
    baseline,
    claim_published,
    drop_field,
    fifo,
    link_to_device,
    published_non_finite,
    published_with_sha256,
    set_field,
    trained_non_finite,
    with_fold_key,
)
from tests.plugin_helpers import ROOT, clean_registry  # noqa: F401 - a fixture


@pytest.fixture
def env(tmp_path, voc_root, pascal_run, trained, monkeypatch):
    with contextlib.ExitStack() as stack:
        env = Env(tmp_path / "case", voc_root, pascal_run, trained, monkeypatch, stack)
        env.tmp.mkdir()
        yield env


def report(env: Env, out: Path) -> List[str]:
    return ["report", "--run", str(env.run_dir()), "--out", str(out), "--resamples", "20"]


NAN, INF = float("nan"), float("inf")

CASES = [
    # 3: output paths that are not regular files
    Case("report-out-fifo", lambda e: report(e, fifo(e)), "is not a regular file"),
    Case("report-out-link-to-device", lambda e: report(e, link_to_device(e)), "is not a regular file"),
    Case("check-update-baseline-fifo", lambda e: ["check", "--run", str(e.run_dir()), "--baseline", str(fifo(e)),
                                                  "--update"], "must be a regular file"),
    Case("check-update-baseline-link-to-device", lambda e: ["check", "--run", str(e.run_dir()), "--baseline",
                                                            str(link_to_device(e)), "--update"], "must be a regular file"),
    # 8: the regression gate and verify cannot be switched off
    Case("check-tolerance-nan", lambda e: baseline(e) + ["--tolerance", "nan"], "--tolerance must be a finite number"),
    Case("check-tolerance-inf", lambda e: baseline(e) + ["--tolerance", "inf"], "--tolerance must be a finite number"),
    Case("check-tolerance-negative", lambda e: baseline(e) + ["--tolerance", "-50"], "got -50"),
    Case("baseline-nan-entry", lambda e: baseline(e, set_field("miou", NAN)), "miou must be a finite number"),
    Case("baseline-inf-entry", lambda e: baseline(e, set_field("miou", -INF)), "miou must be a finite number"),
    Case("baseline-miou-below-0", lambda e: baseline(e, set_field("miou", -1000)), "from 0 to 100, got -1000"),
    Case("baseline-miou-as-text", lambda e: baseline(e, set_field("miou", "50")), "miou must be a finite number"),
    Case("baseline-missing-miou", lambda e: baseline(e, drop_field("miou")), "an entry lacks miou"),
    Case("baseline-shot-as-text", lambda e: baseline(e, set_field("shot", "one")), "shot an integer"),
    Case("baseline-entry-not-object", lambda e: baseline(e, lambda entries: entries + [3]), "an entry is a int"),
    Case("baseline-no-entries", lambda e: baseline(e, lambda entries: entries.clear()), "it has no entries"),
    Case("baseline-entries-not-list", lambda e: baseline(e, text='{"entries": {"a": 1}}'), "holds no list of entries"),
    Case("baseline-top-level-list", lambda e: baseline(e, text="[]"), "holds no list of entries"),
    Case("baseline-repeated-entry", lambda e: baseline(e, lambda entries: entries + [dict(entries[0], miou=0.0)]),
         "lists an entry twice"),
    Case("verify-tolerance-nan", lambda e: ["verify", "--run", str(e.run_dir()), "--tolerance", "nan"],
         "--tolerance must be a finite number"),
    Case("verify-tolerance-inf", lambda e: ["verify", "--run", str(e.run_dir()), "--tolerance", "inf"],
         "--tolerance must be a finite number"),
    Case("verify-cell-claims-published-weights", claim_published,
         f"cell support-copy__split1_shot1_seed0 claims published weights {REAL_ENTRY} but config.json records none"),
    # 6: non-finite checkpoints are refused at load
    Case("published-all-nan", lambda e: published_non_finite(e, NAN), "holds non-finite weights (NaN or inf)"),
    Case("published-one-inf", lambda e: published_non_finite(e, INF, every=False), "in 1 tensors"),
    Case("trained-checkpoint-nan", trained_non_finite, "holds non-finite weights (NaN or inf)"),
    # 7: a file that records its fold is checked against it
    Case("published-file-of-fold-2", lambda e: with_fold_key(e, 2), "is the checkpoint of fold 2, not of fold 0"),
    Case("published-file-without-its-fold", lambda e: with_fold_key(e, None), "holds no fold in 'fold'"),
]


def test_there_are_enough_cases():
    assert len(CASES) >= 14 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_error_line_and_touches_nothing(case, env, capsys):
    args = case.build(env)
    before, links = tree(env.tmp), {p.name: p.lstat().st_mode for p in env.tmp.iterdir()}
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err
    env.patch.undo()
    assert_one_error_line(code, err, case.message)
    assert_untouched(before, tree(env.tmp))
    # FIFOs and links are not in `tree` (not regular files): each is still what it was
    assert {p.name: p.lstat().st_mode for p in env.tmp.iterdir()} == links


# ---- one shared check of output targets ----

def test_an_atomic_write_refuses_what_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to("/dev/null")
    (tmp_path / "folder").mkdir()
    for name in ("fifo", "link", "folder"):
        with pytest.raises(BenchError, match="refusing to replace it"):
            atomic_write_bytes(tmp_path / name, b"x")
    assert stat.S_ISFIFO((tmp_path / "fifo").lstat().st_mode) and (tmp_path / "link").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "folder", "link"]  # no temporary left
    atomic_write_bytes(tmp_path / "new", b"x")  # a new path and a regular file are written as before
    atomic_write_bytes(tmp_path / "new", b"y")
    assert (tmp_path / "new").read_bytes() == b"y"


def test_a_nan_run_value_is_a_regression():
    key = ("m", "d", "1", 1)
    assert list(compare({key: float("nan")}, {key: 50.0}, 1.0).status) == ["REGRESSED"]


# ---- huge --resamples, under an address-space limit ----

LIMITED = textwrap.dedent("""
    import resource, sys
    import torch  # imported before the limit: its mappings are what every command needs
    from bench.cli.commands import main
    resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.parametrize("command", ["report", "compare"])
def test_huge_resamples_are_refused_before_any_allocation(command, pascal_run, tmp_path):
    args = (["report", "--run", str(pascal_run), "--out", str(tmp_path / "r.html")] if command == "report"
            else ["compare", str(pascal_run), str(pascal_run)]) + ["--resamples", str(10 ** 12)]
    script = LIMITED.format(limit=6 << 30)  # measured: a whole report of such a run peaks at 3.8 GB of address space
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert lines == ["error: --resamples must be <= 100000, got 1000000000000"], lines
    assert not (tmp_path / "r.html").exists()


# ---- 6: method outputs are checked, naming the method, the cell and the episode ----

OUTPUTS = [
    ("nan-everywhere", "out[:] = float('nan')", False, "episode 0: the method returned non-finite logits"),
    ("nan-last-episode", "out[-1] = float('nan')", False, "episode 4: the method returned non-finite logits"),
    ("inf-one-pixel", "out[0, 0, 0, 0] = float('inf')", False, "episode 0: the method returned non-finite"),
    ("three-channels", "out = torch.cat([out, out[:, :1]], dim=1)", False, "logits of shape [5, 3,"),
    ("one-channel", "out = out[:, 1:]", False, "logits of shape [5, 1,"),
    ("short-batch", "out = out[:-1]", False, "episodes 0 to 4: the method returned logits of shape [4, 2,"),
    ("empty-map", "out = out[:, :, :0]", False, "logits of shape [5, 2, 0,"),
    ("no-batch-dimension", "out = out[0]", False, "logits of shape [2,"),
    ("a-tuple", "out = (out,)", False, "returned a tuple, not a tensor"),
    ("integer-logits", "out = out.long()", False, "torch.int64 logits"),
    ("native-nan", "out[:] = float('nan')", True, "episode 0: the method returned non-finite logits"),
]


@pytest.mark.parametrize("name,body,native,message", OUTPUTS, ids=[o[0] for o in OUTPUTS])
def test_a_malformed_method_output_is_one_error_line_and_nothing_is_scored(name, body, native, message, voc_root,
                                                                           tmp_path, clean_registry, capsys):
    method = f"bad-{name}"
    plugin = bad_method(tmp_path, method, body, native)
    out = tmp_path / "run"
    capsys.readouterr()
    code = main(["run", "--methods", method, "--plugin", str(plugin), "--dataset", "pascal5i", "--data-root",
                 str(voc_root), "--lists", str(voc_root / "lists"), "--splits", "1", "--shots", "1", "--seeds", "0",
                 "--episodes", "5", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert lines[0].startswith(f"error: {method} split1_shot1_seed0, ") and message in lines[0], lines[0]
    assert not list((out / "episodes").glob("*.csv")) and not (out / "episodes.csv").exists()


def test_a_method_output_is_checked_in_the_qualitative_pass_too(voc_root, tmp_path, clean_registry, capsys):
    """A method that is well-formed on its batch but not on the single episodes the qualitative pass re-runs."""
    plugin = bad_method(tmp_path, "bad-alone", "if b == 1:\n    out[:] = float('nan')")
    code = main(["run", "--methods", "bad-alone", "--plugin", str(plugin), "--dataset", "pascal5i", "--data-root",
                 str(voc_root), "--lists", str(voc_root / "lists"), "--splits", "1", "--shots", "1", "--seeds", "0",
                 "--episodes", "5", "--out", str(tmp_path / "run"), "--quiet"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: bad-alone split1_shot1_seed0, episode ")
    assert not list((tmp_path / "run" / "episodes").glob("*.csv"))


# ---- 7: a published file's fold, verified or not, is said ----

def test_an_unverified_fold_is_a_warning_and_recorded_in_the_cells_and_verify(env, capsys):
    args = published(env)
    out = Path(args[args.index("--out") + 1])
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "warning: panet.fold0: the fold of " in printed and "is not verified" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["weights"]["panet/split1"]["fold_verified"] is False
    meta = json.loads((out / "episodes" / "panet__split1_shot1_seed0.json").read_text())
    assert meta["weights_fold_verified"] is False
    assert main(["verify", "--run", str(out), "--tolerance", "100"]) == 0
    captured = capsys.readouterr()
    table = captured.out.splitlines()
    assert table[0].split()[4] == "fold" and table[1].split()[4] == "unverified"
    assert captured.err.strip().splitlines() == [
        "warning: panet.fold0: the file's fold was not verified (the authors' file records no fold and the entry no "
        "sha256): a file of another fold would have been scored as this one"]


def test_a_fold_proven_by_sha256_or_by_the_file_is_verified(env, capsys):
    args = published(env)
    out = Path(args[args.index("--out") + 1])
    published_with_sha256(env, env.tmp / "weights")
    assert main(args) == 0
    assert "warning" not in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["weights"]["panet/split1"]["fold_verified"] is True
    assert main(["verify", "--run", str(out), "--tolerance", "100"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1].split()[4] == "verified" and captured.err == ""
    # a file that records its own fold, the entry's
    other = env.tmp / "other"
    other.mkdir()
    env.tmp, env.out = other, other / "out"
    args = with_fold_key(env, 0)
    assert main(args) == 0
    assert json.loads((env.out / "config.json").read_text())["weights"]["panet/split1"]["fold_verified"] is True


def test_a_method_output_from_cached_codes_is_checked_too(env, capsys):
    """The feature-cache path (`decode` on cached backbone codes) goes through the same check."""
    original = PANet.decode
    env.patch.setattr(PANet, "decode", lambda self, q, s: original(self, q, s) * float("nan"))
    code = main(env.learned())
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: panet split1_shot1_seed0, episode 0: the method returned non-finite"), lines[0]
    assert not list((env.out / "episodes").glob("*.csv"))
