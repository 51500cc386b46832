"""DCAMA equals the authors' model (fixtures from tests/golden/make_dcama.py and make_dcama_swin.py; no clone needed)."""
import pytest
import torch

from bench.core.errors import BenchError
from bench.training.published import build_options, harness_state, load_into
from methods import build_method
from methods.common import BackboneMethod
from methods.weights import WEIGHTS
from tests.golden.authors import load_fixture
from tests.golden.make_dcama import BACKBONES, NAMES, checksum, episode, seeded_model
from tests.golden.make_dcama_swin import NAME as SWIN_NAME, OPTIONS as SWIN_OPTIONS, episode_checksum
from tests.golden.make_dcama_swin import seeded_model as swin_seeded_model

RTOL, ATOL = 1e-4, 1e-6  # float32 (their code casts the masks to float32); logits here are about 0.1


@pytest.fixture(scope="module", params=BACKBONES)
def golden(request):
    tensors, meta = load_fixture(NAMES[request.param])
    assert meta["authors"] == "pawn-sxy/DCAMA" and len(meta["commit"]) == 40
    assert meta["options"]["backbone"] == request.param
    return tensors, seeded_model(meta["seed"], request.param)


def test_seeded_weights_are_the_fixture_s(golden):
    """The fixture stores a fingerprint, not the weights: a change of torch's RNG or init would show here. The
    parameters are drawn, so they match to 1e-6; the BN statistics are computed by a float32 forward pass of the
    episode, whose summation order follows the thread count (up to 4e-4 apart between 1 and 2 threads on
    ResNet-101), so they get the logits' own tolerance."""
    tensors, model = golden
    state = model.state_dict()
    names = sorted(state)
    statistics = torch.tensor([name.endswith(("running_mean", "running_var")) for name in names])
    ours, theirs = checksum(state), tensors["checksum"]
    assert len(names) == len(theirs)
    torch.testing.assert_close(ours[~statistics], theirs[~statistics], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours[statistics], theirs[statistics], rtol=1e-3, atol=1e-5)


def test_one_shot_logits_equal_theirs(golden):
    tensors, model = golden
    with torch.no_grad():
        ours = model(tensors["query"], tensors["supports"][:, :1], tensors["support_masks"][:, :1])
    torch.testing.assert_close(ours, tensors["logits_1shot"], rtol=RTOL, atol=ATOL)


def test_five_shot_one_pass_equals_their_predict_mask_nshot(golden):
    tensors, model = golden
    with torch.no_grad():
        ours = model(tensors["query"][:1], tensors["supports"][:1], tensors["support_masks"][:1])
    torch.testing.assert_close(ours, tensors["logits_5shot"], rtol=RTOL, atol=ATOL)
    assert torch.equal(ours.argmax(dim=1), tensors["mask_5shot"])
    assert 0.05 < tensors["mask_5shot"].float().mean() < 0.95  # the mask is not trivially one class


def test_their_checkpoint_layout_loads_through_the_keymap(golden, tmp_path):
    """A file laid out as their test.py reads it: torch.save of a DataParallel model's state_dict (`module.`
    prefix, their key names, their positional-encoding buffers and unused fc). ResNet-50 only (the
    ResNet-101 file is 230 MB to write; its key map is checked in tests/test_dcama.py)."""
    tensors, model = golden
    if model.backbone_name != "resnet50":
        pytest.skip("the file round trip runs on ResNet-50")
    entry = WEIGHTS.get(f"dcama.pascal5i-{model.backbone_name}-fold0")
    theirs = entry.keys.to_authors(model.state_dict())
    assert any(k.startswith("model.DCAMA_blocks.2.linears.1.") for k in theirs)
    theirs.update({"feature_extractor.fc.weight": torch.zeros(1000, 2048), "feature_extractor.fc.bias": torch.zeros(1000),
                   **{f"model.pe.{i}.pe": torch.zeros(1, 4, c) for i, c in enumerate((512, 1024, 2048))}})
    path = tmp_path / "best_model.pt"
    torch.save({f"module.{k}": v for k, v in theirs.items()}, path)
    loaded = build_method("dcama", **build_options(entry))  # the harness's own loading path (bench run --weights)
    state = harness_state(entry, path)
    load_into(loaded, state, entry, path)
    loaded = loaded.eval()
    assert loaded.native_resolution and loaded.input_size == 384
    with torch.no_grad():  # at the fixture's size: the network without its own 384 x 384 resize
        ours = BackboneMethod.forward(loaded, tensors["query"], tensors["supports"][:, :1], tensors["support_masks"][:, :1])
    torch.testing.assert_close(ours, tensors["logits_1shot"], rtol=RTOL, atol=ATOL)
    del state["decoder.2.2.bias"]  # their mixer3's last conv
    with pytest.raises(BenchError, match="does not fit"):
        load_into(loaded, state, entry, path)


# --- Swin (a reduced Swin of Swin-B's design; fixture from tests/golden/make_dcama_swin.py) ---

@pytest.fixture(scope="module")
def swin_golden():
    tensors, meta = load_fixture(SWIN_NAME)
    assert meta["authors"] == "pawn-sxy/DCAMA" and len(meta["commit"]) == 40
    assert meta["options"] == SWIN_OPTIONS
    torch.testing.assert_close(episode_checksum(meta["seed"]), tensors["episode_checksum"], rtol=1e-6, atol=1e-6)
    query, supports, masks = episode(meta["seed"])
    return tensors, meta, swin_seeded_model(meta["seed"]), (query, supports, masks)


def test_swin_seeded_weights_are_the_fixture_s(swin_golden):
    tensors, _, model, _ = swin_golden
    torch.testing.assert_close(checksum(model.state_dict()), tensors["checksum"], rtol=1e-6, atol=1e-6)


def test_swin_one_shot_logits_equal_theirs(swin_golden):
    tensors, _, model, (query, supports, masks) = swin_golden
    with torch.no_grad():
        ours = model(query, supports[:, :1], masks[:, :1])
    torch.testing.assert_close(ours, tensors["logits_1shot"], rtol=RTOL, atol=ATOL)


def test_swin_five_shot_one_pass_equals_their_predict_mask_nshot(swin_golden):
    tensors, _, model, (query, supports, masks) = swin_golden
    with torch.no_grad():
        ours = model(query[:1], supports[:1], masks[:1])
    torch.testing.assert_close(ours, tensors["logits_5shot"], rtol=RTOL, atol=ATOL)
    assert torch.equal(ours.argmax(dim=1), tensors["mask_5shot"].long())
    assert 0.05 < tensors["mask_5shot"].float().mean() < 0.95


def test_swin_checkpoint_layout_loads_through_the_keymap(swin_golden, tmp_path):
    """A file with their model's state-dict names (recorded from their model in the fixture: Microsoft's Swin,
    patch merging at the end of a stage, its attention buffers, final norm and head) under DataParallel's
    `module.`, through the Swin-B entries' KeyMap and the harness's loading path, into the reduced model."""
    tensors, meta, model, (query, supports, masks) = swin_golden
    entry = WEIGHTS.get("dcama.pascal5i-swin-b-fold0")
    theirs = entry.keys.to_authors(model.state_dict())
    recorded = meta["authors_keys"]
    assert set(theirs) <= set(recorded), sorted(set(theirs) - set(recorded))[:3]
    assert {k: list(v.shape) for k, v in theirs.items()} == {k: recorded[k] for k in theirs}
    extra = sorted(set(recorded) - set(theirs))
    assert extra and all(k.startswith(("model.pe.", "feature_extractor.norm.", "feature_extractor.head."))
                         or k.endswith((".attn_mask", ".relative_position_index")) for k in extra)
    theirs.update({k: torch.zeros(recorded[k]) for k in extra})
    path = tmp_path / "best_model.pt"
    torch.save({f"module.{k}": v for k, v in theirs.items()}, path)
    loaded = build_method("dcama", **{**build_options(entry), "swin": SWIN_OPTIONS["swin"], "input_size": None})
    load_into(loaded, harness_state(entry, path), entry, path)
    with torch.no_grad():
        ours = loaded.eval()(query, supports[:, :1], masks[:, :1])
    torch.testing.assert_close(ours, tensors["logits_1shot"], rtol=RTOL, atol=ATOL)
