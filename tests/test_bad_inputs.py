"""Bad inputs and faults, as a careless or hostile user would give them.

Every case must end with exit status 2 and exactly one `error:` line (no traceback; a missing data
root adds its dataset's layout and sources in a few more lines), and every file
present before the command must be byte-identical after it, with nothing new left behind.
"""
from __future__ import annotations

import contextlib

import pytest

from bench.cli.commands import main
from tests.refusals import Case, assert_one_error_line, assert_untouched, tree
from tests.bad_input_builders import (
    Env,
    append_list_line,
    damage_npz,
    damage_record,
    damaged_config,
    drop_method_options,
    edit_cell,
    edit_cell_file,
    fail_fsync,
    flip_signs,
    fss_tree,
    hostile_checkpoint,
    locked_run,
    paint_mask,
    published,
    published_extra_key,
    published_runs_code,
    published_wrong_fold,
    read_only,
    remove_best,
    remove_image,
    resize_mask_file,
    truncate_episodes,
    truncate_jpeg,
    user_folder,
)


def replay(edit, shot: int = 1, *extra: str):
    return lambda env: env.pascal("--episodes-from", env.manifest(edit, shot), *extra)


CASES = [
    # command-line values
    Case("negative-seed", lambda e: e.pascal("--seeds", "-1"), "--seeds must be >= 0, got -1"),
    Case("input-size-0", lambda e: e.pascal("--input-size", "0"), "--input-size must be >= 16"),
    Case("eval-size-negative", lambda e: e.pascal("--eval-size", "-3"), "--eval-size must be >= 1, got -3"),
    Case("episodes-0", lambda e: e.pascal("--episodes", "0"), "--episodes must be >= 1"),
    Case("shots-0", lambda e: e.pascal("--shots", "0"), "shots must be >= 1"),
    Case("batch-size-0", lambda e: e.pascal("--batch-size", "0"), "--batch-size must be >= 1"),
    Case("epochs-0", lambda e: e.pascal("--epochs", "0"), "--epochs must be >= 1"),
    Case("train-seed-negative", lambda e: e.pascal("--train-seed", "-1"), "--train-seed must be >= 0"),
    Case("min-object-pixels-negative", lambda e: e.pascal("--min-object-pixels", "-5"), "--min-object-pixels must be >= 0"),
    Case("unknown-method", lambda e: e.pascal("--methods", "nope"), "unknown method 'nope'"),
    Case("unknown-dataset", lambda e: e.pascal("--dataset", "coco"), "unknown dataset 'coco'"),
    Case("split-5", lambda e: e.pascal("--splits", "5"), "split 5 is outside 1..4"),
    Case("missing-data-root", lambda e: e.pascal("--data-root", "/no/such/dir"), "data root does not exist",
         lines=8),
    Case("identical-5-shot", lambda e: e.pascal("--identical-input", "--shots", "5"), "identical-input test is 1-shot"),
    Case("ray-cpus-0", lambda e: e.pascal("--executor", "ray", "--cpus-per-task", "0"), "--cpus-per-task must be >= 1"),
    Case("train-seed-negative-train", lambda e: ["train", "--methods", "panet", "--train-seed", "-1"],
         "--train-seed must be >= 0"),
    Case("train-reference-method", lambda e: ["train", "--methods", "support-copy"], "has no parameters to train"),
    Case("train-epochs-0", lambda e: ["train", "--methods", "panet", "--epochs", "0"], "--epochs must be >= 1"),
    Case("train-unknown-method", lambda e: ["train", "--methods", "nope"], "unknown method 'nope'"),
    # output folders and faults
    Case("out-is-a-file", lambda e: (e.tmp / "file").write_text("x") and e.pascal("--out", str(e.tmp / "file")),
         "output path exists and is not a directory"),
    Case("out-is-a-user-folder", user_folder, "is a folder that is not an fss-bench run directory"),
    Case("out-under-proc", lambda e: e.pascal("--out", "/proc/fss-bench-test/run"), "cannot create folder /proc/fss-bench-test"),
    Case("out-read-only", read_only, "Read-only file system"),
    Case("disk-full", fail_fsync, "config.json: No space left on device"),
    Case("damaged-run-config", damaged_config, "is damaged; use --overwrite"),
    Case("run-in-use", locked_run, "is in use by process"),
    Case("different-config", lambda e: e.pascal("--out", str(e.run_dir()), "--class-sampling", "uniform"),
         "holds a run with a different config"),
    # replayed manifests
    Case("support-is-query", replay(lambda f: edit_cell(f, 2, "supports", f.loc[2, "query"])),
         "episode 2 uses its query"),
    Case("repeated-supports", replay(lambda f: edit_cell(f, 1, "supports", " ".join([f.loc[1, "supports"].split()[0]] * 3)), 3),
         "episode 1 repeats a support image"),
    Case("empty-supports", replay(lambda f: edit_cell(f, 0, "supports", "")), "line 2 (episode 0): the supports field is empty"),
    Case("class-id-abc", replay(lambda f: edit_cell(f, 3, "class_id", "abc")), "line 5: class_id 'abc' is not"),
    Case("too-many-supports", replay(lambda f: edit_cell(f, 0, "supports", "a b")), "episode 0 has 2 supports, expected 1"),
    Case("id-outside-list", replay(lambda f: edit_cell(f, 4, "query", "../../../../outside/secret")),
         "episode 4 uses (../../../../outside/secret"),
    Case("identical-run-regular-manifest", replay(lambda f: f, 1, "--identical-input"),
         "the support must be the query itself"),
    Case("repeated-episode", replay(lambda f: edit_cell(f, 1, "episode", "0")), "episode 0 appears twice"),
    Case("manifest-missing-column", replay(lambda f: f.drop(columns=["seed"])), "lacks columns: seed"),
    Case("manifest-mixed-splits", replay(lambda f: edit_cell(f, 1, "split", "2")), "mixes several values of 'split'"),
    # data trees
    Case("list-id-escapes-root", lambda e: append_list_line(e, "../../../../outside/secret__01"), "is not a plain file name"),
    Case("list-id-absolute", lambda e: append_list_line(e, "/etc/passwd__01"), "is not a plain file name"),
    Case("mask-value-30", lambda e: paint_mask(e, [30, 100]), "unexpected values 30, 100"),
    Case("mask-16-bit", lambda e: paint_mask(e, [257, 65535], mode="I;16"), "unexpected values 257, 65535"),
    Case("truncated-jpeg", truncate_jpeg, "corrupt image file"),
    Case("mask-size-differs", resize_mask_file, "image and mask sizes differ"),
    Case("missing-image", remove_image, "images listed in the test list of split 1 are missing"),
    Case("fss-class-with-space", lambda e: fss_tree(e, ["ice cream", "b", "c"]), "contains whitespace"),
    Case("fss-class-escapes-root", lambda e: fss_tree(e, ["../b", "c"]), "is not a plain folder name"),
    # finished runs read by report, compare and check
    Case("report-invalid-config", lambda e: (e.run_dir() / "config.json").write_text("{") and
         ["report", "--run", str(e.run_dir())], "is not valid JSON"),
    Case("report-not-a-run", lambda e: ["report", "--run", str(e.tmp)], "not a finished run directory"),
    Case("report-resamples-0", lambda e: ["report", "--run", str(e.run_dir()), "--resamples", "0"],
         "--resamples must be >= 1"),
    Case("report-qualitative-4", lambda e: ["report", "--run", str(e.run_dir()), "--qualitative", "4"],
         "--qualitative must be 0 to 3"),
    Case("report-reference-not-in-run", lambda e: ["report", "--run", str(e.run_dir()), "--reference", "canet"],
         "--reference canet is not a method of this run"),
    Case("report-out-is-folder", lambda e: ["report", "--run", str(e.run_dir()), "--out", str(e.tmp)], "is a folder"),
    Case("report-truncated-episodes", lambda e: truncate_episodes(e, "report"), "does not match the cells"),
    Case("report-edited-cell", edit_cell_file, "does not match its record"),
    Case("report-damaged-predictions", damage_npz, "does not match the hash its cell recorded"),
    Case("compare-resamples-0", lambda e: ["compare", str(e.run_dir()), str(e.run_dir()), "--resamples", "0"],
         "--resamples must be >= 1"),
    Case("compare-truncated-episodes", lambda e: truncate_episodes(e, "compare"), "does not match the cells"),
    Case("check-truncated-episodes", lambda e: truncate_episodes(e, "check"), "does not match the cells"),
    # checkpoints
    Case("checkpoint-runs-code", hostile_checkpoint, "not a weights-only tensor file"),
    Case("checkpoint-sign-flipped", flip_signs, "was changed after training"),
    Case("checkpoint-without-method-options", drop_method_options, "lacks 'method_options'"),
    Case("checkpoint-record-damaged", damage_record, "is not valid JSON"),
    Case("checkpoint-missing-beside-record", remove_best, "is missing beside its record"),
    # published checkpoints (bench run --weights) and bench verify
    Case("published-missing-file", lambda e: published(e, lambda folder: (folder / "sub" / "fold0.pth").unlink()),
         "published weights panet.fold0: file sub/fold0.pth not found; download it from"),
    Case("published-extra-key", published_extra_key, "1 unexpected keys (extra)"),
    Case("published-wrong-fold", published_wrong_fold, "--weights panet.fold2 is the checkpoint of pascal5i fold 2"),
    Case("published-runs-code", published_runs_code, "not a weights-only tensor file"),
    Case("published-unknown-tag", lambda e: e.pascal("--weights", "nope.fold0=x.pth"), "unknown published weights"),
    Case("verify-without-published-cells", lambda e: ["verify", "--run", str(e.run_dir())],
         "has no cell evaluated from published weights"),
]


def test_there_are_enough_cases():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_error_line_and_touches_nothing(case, tmp_path, voc_root, pascal_run, trained, monkeypatch,
                                                         capsys):
    with contextlib.ExitStack() as stack:
        env = Env(tmp_path / "case", voc_root, pascal_run, trained, monkeypatch, stack)
        env.tmp.mkdir()
        args = case.build(env)
        before = tree(env.tmp)
        capsys.readouterr()
        code = main(args)
        err = capsys.readouterr().err
        monkeypatch.undo()
        after = tree(env.tmp)
    assert_one_error_line(code, err, case.message, case.lines)
    assert_untouched(before, after)
    assert not (tmp_path / "case-pwned").exists()  # the hostile checkpoint ran nothing
