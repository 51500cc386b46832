"""The acceptance run of the foundation models' published weights on the VOC-layout fixture: `bench run
--methods dcama gf-sam --weights DIR --dataset pascal5i --data-root FIXTURE` with every file laid out as its
authors' (DCAMA's seeded ResNet-50 `best_model.pt` per fold; GF-SAM's `models/dinov2_vitl14_pretrain.pth` and
`models/sam_vit_h_4b8939.pth`, seeded, of the reduced architecture of tests/foundation_fixture.py: the real
ViT-L and ViT-H files are GBs), then `bench verify` against GF-SAM's reported numbers (DCAMA's entries report
none); Matcher, which has no PASCAL-5i log, on the COCO-20i fixture.

Slow (DCAMA ResNet-50 at 384 on CPU, 5-shot episodes): `-m slow`."""
import json
import os

import pytest

import methods  # noqa: F401  (the method modules register their published weights)
from bench.cli.commands import main
from bench.runs.cells import Cell
from bench.runs.rundir import RunDir
from bench.runs.verify import verify_run
from methods.gf_sam import REPORTED
from methods.weights import WEIGHTS
from tests.foundation_fixture import use_reduced, write_foundation_files
from tests.published_fixture import write_authors_file
from tests.voc_fixture import make_voc_tree

pytestmark = pytest.mark.slow
pytest.importorskip("timm")
pytest.importorskip("segment_anything")


def test_dcama_and_gf_sam_from_files_laid_out_as_the_authors_then_verify(tmp_path, monkeypatch, capsys):
    voc = tmp_path / "voc7"
    make_voc_tree(voc, per_class=7)  # enough images for 5-shot episodes
    use_reduced(monkeypatch)
    weights = tmp_path / "weights"
    write_foundation_files(weights, WEIGHTS.get("gf-sam.pascal5i-fold0"), seed=0)
    dcama = [WEIGHTS.get(f"dcama.pascal5i-resnet50-fold{fold}") for fold in range(4)]
    first = write_authors_file(weights / dcama[0].file_name, dcama[0], seed=0, ignored=None)
    for entry in dcama[1:]:  # one seeded file linked for every fold (ResNet-50 files are large)
        (weights / entry.file_name).parent.mkdir(parents=True, exist_ok=True)
        os.link(first, weights / entry.file_name)
    out = tmp_path / "run"
    assert main(["run", "--methods", "dcama", "gf-sam", "--weights", str(weights), "--weights-variant",
                 "dcama.*-resnet50-*", "--dataset", "pascal5i", "--data-root", str(voc), "--lists", str(voc / "lists"),
                 "--shots", "1", "5", "--seeds", "0", "--episodes", "1", "--checkpoints", str(tmp_path / "none"),
                 "--out", str(out), "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    for split in range(1, 5):
        assert config["checkpoints"][f"gf-sam/split{split}"] == f"published/gf-sam.pascal5i-fold{split - 1}"
        assert config["checkpoints"][f"dcama/split{split}"] == f"published/dcama.pascal5i-resnet50-fold{split - 1}"
        meta = RunDir(out).cell_meta(Cell("gf-sam", split, 5, 0))
        assert set(meta["weights_files"]) == {"dinov2", "sam"} and meta["weights_fold_verified"] is True
    assert not (tmp_path / "none").exists()  # nothing trained

    checks = verify_run(out, tolerance=100.0, pipeline="authors")
    assert {c.weights.split(".")[0] for c in checks} == {"gf-sam"}  # DCAMA's entries report no number
    assert len(checks) == 4 * 2 * 2  # folds x shots x (mIoU, FB-IoU)
    for c in checks:
        miou, fbiou = REPORTED["pascal5i"][c.shot][c.split - 1]
        assert c.reported == (miou if c.metric == "mIoU" else fbiou)
        assert c.fold_verified and c.pipeline == "shared" and c.ok
    capsys.readouterr()
    assert main(["verify", "--run", str(out), "--tolerance", "100"]) == 0
    printed = capsys.readouterr()
    assert "16 of 16 within +/- 100 points" in printed.out and "warning" not in printed.err
    assert main(["verify", "--run", str(out), "--tolerance", "0"]) == 1  # seeded weights: far from the paper


def test_matcher_on_the_coco_fixture_then_verify(tmp_path, monkeypatch, capsys):
    """Matcher's entries (COCO-20i, FSS-1000, LVIS-92i: it logged no PASCAL-5i) on the COCO-20i fixture, from the two
    files laid out as the authors'; `bench verify` compares with its logged numbers."""
    pytest.importorskip("pycocotools")
    from methods.matcher import REPORTED as MATCHER
    from tests.test_coco20i import make_root

    monkeypatch.setenv("FSS_BENCH_CACHE", str(tmp_path / "cache"))
    coco = make_root(tmp_path / "coco", "json")
    use_reduced(monkeypatch, "matcher")
    weights = tmp_path / "weights"
    write_foundation_files(weights, WEIGHTS.get("matcher.coco20i-fold0"), seed=0)
    out = tmp_path / "run"
    assert main(["run", "--methods", "matcher", "--weights", str(weights), "--dataset", "coco20i", "--data-root",
                 str(coco), "--splits", "1", "--shots", "1", "--seeds", "0", "--episodes", "2",
                 "--checkpoints", str(tmp_path / "none"), "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "config.json").read_text())["checkpoints"]["matcher/split1"] == \
        "published/matcher.coco20i-fold0"
    checks = verify_run(out, tolerance=100.0, pipeline="authors")
    assert sorted((c.metric, c.reported) for c in checks) == sorted(
        [("mIoU", MATCHER["coco20i"][1][0][0]), ("FB-IoU", MATCHER["coco20i"][1][0][1])])
    assert not (tmp_path / "none").exists()
