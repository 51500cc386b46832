"""`--pipeline authors` (bench.evaluation.authors): each step of the declared pipelines equals the library call
the authors' loaders make; the run records it; methods without one are refused before anything is written.
The end-to-end proof against the authors' own code is tests/test_authors_parity.py."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from bench.cli.commands import main
from bench.evaluation import authors
from methods.base import FewShotSegmenter, TestPipeline, cv2_nearest_index, longer_side_shape
from methods.hsnet import AUTHORS_PIPELINE as HSNET
from tests.refusals import assert_one_error_line

PFENET = TestPipeline(resize="longer-side", size=65, resample="cv2", support_void="void", shots="network",
                      source="test")
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def label(height: int, width: int, seed: int = 0) -> np.ndarray:
    values = np.random.default_rng(seed).choice([0, 1, 255], size=(height, width), p=[0.6, 0.3, 0.1])
    return values.astype(np.uint8)


@pytest.mark.parametrize("shape", [(375, 500), (500, 333), (40, 41), (64, 64)])
def test_hsnet_image_equals_torchvision_resize_totensor_normalize(shape):
    from torchvision import transforms

    theirs = transforms.Compose([transforms.Resize(size=(64, 64)), transforms.ToTensor(),
                                 transforms.Normalize(MEAN, STD)])(Image.fromarray(image(*shape)))
    assert torch.equal(authors.prepare_image(HSNET, 64, image(*shape)), theirs)


def test_hsnet_mask_is_f_interpolate_nearest_of_the_float_label():
    mask = label(375, 500)
    theirs = F.interpolate(torch.tensor(mask).float()[None, None], (64, 64), mode="nearest")[0, 0]
    assert torch.equal(authors.prepare_mask(HSNET, 64, mask), theirs.long())


@pytest.mark.parametrize("shape", [(375, 500), (500, 281), (65, 65), (30, 100)])
def test_pfenet_letterbox_of_image_and_mask(shape):
    height, width = shape
    new_h, new_w = longer_side_shape(height, width, 65)
    assert max(new_h, new_w) == 64 and new_h % 8 == 0 and new_w % 8 == 0
    pixels = image(height, width)
    prepared = authors.prepare_image(PFENET, 65, pixels)
    resized = F.interpolate(torch.tensor(pixels).permute(2, 0, 1).float()[None], (new_h, new_w), mode="bilinear",
                            align_corners=False)[0]
    expected = (resized - torch.tensor(MEAN).view(3, 1, 1) * 255) / (torch.tensor(STD).view(3, 1, 1) * 255)
    assert torch.allclose(prepared[:, :new_h, :new_w], expected, atol=1e-5)
    black = (-torch.tensor(MEAN) * 255) / (torch.tensor(STD) * 255)  # zero before normalisation, as theirs
    assert torch.allclose(prepared[:, new_h:, :].permute(1, 2, 0), black.expand(65 - new_h, 65, 3))
    assert torch.allclose(prepared[:, :, new_w:].permute(1, 2, 0), black.expand(65, 65 - new_w, 3))
    mask = label(height, width)
    prepared_mask = authors.prepare_mask(PFENET, 65, mask)
    rows = np.floor(np.arange(new_h) * (1.0 / (new_h / height))).astype(int).clip(max=height - 1)
    cols = np.floor(np.arange(new_w) * (1.0 / (new_w / width))).astype(int).clip(max=width - 1)
    assert np.array_equal(prepared_mask[:new_h, :new_w].numpy(), mask[rows][:, cols])
    assert (prepared_mask[new_h:] == 255).all() and (prepared_mask[:, new_w:] == 255).all()
    assert torch.equal(cv2_nearest_index(height, new_h), torch.tensor(rows))


class Scripted(FewShotSegmenter):
    """A network whose per-shot logits are given: shot k of episode b answers `answers[b][k]`."""

    def __init__(self, answers, pipeline):
        super().__init__()
        self.answers, self.pipeline, self.calls = answers, pipeline, 0

    def authors_pipeline(self):
        return self.pipeline

    def network(self, query, supports, support_masks):
        self.calls += 1
        assert supports.shape[1] == 1  # one shot per call, as their predict_mask_nshot
        return torch.stack([self.answers[b][self.calls - 1] for b in range(query.shape[0])])


def test_vote_is_hsnets_predict_mask_nshot():
    """Per-shot argmax summed, divided by max(largest vote, 1), foreground where >= 0.5."""
    generator = torch.Generator().manual_seed(0)
    answers = [torch.randn(5, 2, 8, 8, generator=generator) for _ in range(2)]
    answers[1] = torch.stack([torch.tensor([1.0, 0.0]).view(2, 1, 1).expand(2, 8, 8)] * 5)  # no votes at all
    batch = authors.Prepared(torch.zeros(2, 3, 8, 8), torch.zeros(2, 5, 3, 8, 8), torch.zeros(2, 5, 8, 8),
                             [np.zeros((8, 8), np.uint8)] * 2)
    pipeline = TestPipeline("square", 8, "pil", "background", "vote", "test")
    preds = list(authors.predictions(Scripted(answers, pipeline), pipeline, 8, batch, True, lambda x: x))
    votes = answers[0].argmax(dim=1).sum(dim=0)
    assert torch.equal(preds[0], votes.float() / max(int(votes.max()), 1) >= 0.5)
    assert not preds[1].any()


def test_original_size_scoring_crops_the_longer_side_square():
    """PFENet's ori_resize: logits to the longer side squared (align_corners), the label padded with void ==
    the logits' top-left crop scored against the label."""
    logits = torch.randn(2, 65, 65, generator=torch.Generator().manual_seed(1))
    framed = authors.framed(PFENET, 65, logits, (30, 50), at_input=False)
    full = F.interpolate(logits[None], size=(50, 50), mode="bilinear", align_corners=True)[0]
    assert framed.shape == (2, 30, 50) and torch.equal(framed, full[:, :30, :50])


def test_eval_size_other_than_the_input_is_refused():
    with pytest.raises(Exception, match="neither"):
        authors.scoring_size(HSNET, 400, 417, "hsnet")
    assert authors.scoring_size(HSNET, 400, 400, "hsnet") and not authors.scoring_size(HSNET, 400, None, "hsnet")


def test_a_method_without_an_authors_pipeline_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "--methods", "panet", "--pipeline", "authors", "--dataset", "synthetic-tiny",
                 "--out", str(out), "--quiet"])
    assert_one_error_line(code, capsys.readouterr().err, "panet declares no authors' test pipeline")
    assert not out.exists()


def test_void_as_background_is_refused_under_the_authors_pipeline(tmp_path, capsys):
    code = main(["run", "--methods", "hsnet", "--pipeline", "authors", "--void-as-background", "--dataset",
                 "synthetic-tiny", "--out", str(tmp_path / "run"), "--quiet"])
    assert_one_error_line(code, capsys.readouterr().err, "--void-as-background belongs to the shared pipeline")


def test_the_pipeline_is_recorded_and_keeps_older_identities(cache_env, trained_hsnet, tmp_path):
    """config.json and each cell record the pipeline; a shared run's identity has no `pipeline` key, so runs and
    baselines recorded before the option keep theirs; the authors' run is another run directory."""
    common = ["run", "--methods", "hsnet", "--dataset", "synthetic-tiny", "--splits", "1", "--shots", "1",
              "--seeds", "0", "--episodes", "4", "--checkpoints", str(trained_hsnet), "--no-train", "--quiet"]
    assert main(common + ["--out", str(tmp_path / "shared")]) == 0
    assert main(common + ["--out", str(tmp_path / "authors"), "--pipeline", "authors"]) == 0
    shared = json.loads((tmp_path / "shared" / "config.json").read_text())
    theirs = json.loads((tmp_path / "authors" / "config.json").read_text())
    assert "pipeline" not in shared["identity"]["scoring"] and theirs["identity"]["scoring"]["pipeline"] == "authors"
    cell = json.loads((tmp_path / "authors" / "episodes" / "hsnet__split1_shot1_seed0.json").read_text())
    assert cell["pipeline"]["name"] == "authors" and cell["pipeline"]["resample"] == "pil"
    cell = json.loads((tmp_path / "shared" / "episodes" / "hsnet__split1_shot1_seed0.json").read_text())
    assert cell["pipeline"] == {"name": "shared", "authors_declared": True}


@pytest.fixture(scope="module")
def trained_hsnet(cache_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("hsnet")
    assert main(["train", "--methods", "hsnet", "--dataset", "synthetic-tiny", "--splits", "1", "--checkpoints",
                 str(root), "--quiet"]) == 0
    return root


def test_verify_expects_the_authors_pipeline_where_the_method_declares_one(tmp_path):
    from bench.core.errors import BenchError
    from bench.runs.verify import cell_pipelines

    def cell(pipeline):
        return {"method": "hsnet", "cell": "split1_shot1_seed0", "weights": "hsnet.x", "pipeline": pipeline}
    declared_shared = cell({"name": "shared", "authors_declared": True})
    with pytest.raises(BenchError, match="scored under the shared pipeline"):
        cell_pipelines([declared_shared], "authors", tmp_path)
    assert cell_pipelines([declared_shared], "shared", tmp_path) == {("hsnet", 1, 1): "shared"}
    undeclared = cell({"name": "shared", "authors_declared": False})
    assert cell_pipelines([undeclared], "authors", tmp_path) == {("hsnet", 1, 1): "shared"}
    followed = cell({"name": "authors", "resize": "square"})
    assert cell_pipelines([followed], "authors", tmp_path) == {("hsnet", 1, 1): "authors"}
    assert cell_pipelines([followed, {**undeclared, "cell": "split1_shot1_seed1"}], "authors", tmp_path) == \
        {("hsnet", 1, 1): "mixed"}
    # an entry that reports no number for the shot (DCAMA's, run beside GF-SAM's): nothing compared, not refused
    import methods  # noqa: F401  (registers the entries)
    unreported = {**declared_shared, "method": "dcama", "weights": "dcama.pascal5i-resnet50-fold0"}
    assert cell_pipelines([unreported], "authors", tmp_path) == {("dcama", 1, 1): "shared"}
