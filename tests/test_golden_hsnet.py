"""HSNet equals the authors' HypercorrSqueezeNetwork (fixture from tests/golden/make_hsnet.py; no clone needed)."""
import pytest
import torch

from bench.core.errors import BenchError
from bench.training.published import build_options, harness_state, load_into
from methods import build_method
from methods.common import BackboneMethod
from methods.weights import WEIGHTS
from tests.golden.authors import load_fixture
from tests.golden.make_hsnet import NAME, seeded_model


@pytest.fixture(scope="module")
def golden():
    tensors, meta = load_fixture(NAME)
    assert meta["authors"] == "juhongm999/hsnet"
    return tensors, seeded_model(meta["seed"])


def inputs(tensors, shots):
    return (tensors["query"].double(), tensors["supports"][:, :shots].double(), tensors["support_masks"][:, :shots])


def test_one_shot_logits_equal_theirs(golden):
    tensors, model = golden
    with torch.no_grad():
        ours = model(*inputs(tensors, 1))
    torch.testing.assert_close(ours, tensors["logits_1shot"], rtol=1e-4, atol=1e-6)


def test_five_shot_vote_equals_their_predict_mask_nshot(golden):
    tensors, model = golden
    query, supports, masks = inputs(tensors, 5)
    with torch.no_grad():
        per_shot = torch.cat([model(query, supports[:, k:k + 1], masks[:, k:k + 1]) for k in range(5)])
        scores = model(query, supports, masks)
    torch.testing.assert_close(per_shot, tensors["logits_per_shot"], rtol=1e-4, atol=1e-6)
    assert torch.equal(scores.argmax(dim=1).double(), tensors["mask_5shot"])


def test_their_checkpoint_layout_loads_through_the_keymap(golden, tmp_path):
    """A file laid out as their test.py reads it: torch.save of a DataParallel model's state_dict (`module.`
    prefix, their key names, their unused fc)."""
    tensors, model = golden
    entry = WEIGHTS.get("hsnet.pascal5i-fold0-resnet50")
    theirs = entry.keys.to_authors(model.state_dict())
    theirs.update({"backbone.fc.weight": torch.zeros(1000, 2048, dtype=torch.float64),
                   "backbone.fc.bias": torch.zeros(1000, dtype=torch.float64)})
    assert any(k.startswith("hpn_learner.encoder_layer4.0.conv1.") for k in theirs)
    path = tmp_path / "best_model.pt"
    torch.save({f"module.{k}": v for k, v in theirs.items()}, path)
    loaded = build_method("hsnet", **build_options(entry))  # the harness's own loading path (bench run --weights)
    load_into(loaded, harness_state(entry, path), entry, path)
    loaded = loaded.double().eval()
    assert loaded.native_resolution and loaded.input_size == 400
    with torch.no_grad():  # at the fixture's size: the network without its own 400 x 400 resize
        ours = BackboneMethod.forward(loaded, *inputs(tensors, 1))
    torch.testing.assert_close(ours, tensors["logits_1shot"], rtol=1e-4, atol=1e-6)
    del theirs["hpn_learner.decoder2.2.bias"]
    torch.save({f"module.{k}": v for k, v in theirs.items()}, path)
    with pytest.raises(BenchError, match="does not fit"):
        load_into(build_method("hsnet", **build_options(entry)), harness_state(entry, path), entry, path)
