"""PFENet's authors' architecture against THEIR code (fixtures from tests/golden/make_pfenet.py), their
checkpoint layout through the published entries' KeyMap, and their test-time resizing rule.

The prior mask is computed inline in their forward (not a separable function of theirs): the end-to-end
fixtures cover it, at 1 shot and averaged over 5.
"""
import pytest
import torch

from bench.training.published import harness_state, load_into
from methods.pfenet import PFENet, authors_resize_shape, letterbox
from methods.weights import DATAPARALLEL_PREFIX, IMAGENET_NORMALISATION, WEIGHTS
from tests.golden.authors import load_fixture
from tests.golden.make_pfenet import CASES, harness_model

RTOL, ATOL = 1e-4, 1e-8  # double precision on both sides; the logits are O(1e-2), differences O(1e-15)


def fixture_episode(name, shots):
    tensors, meta = load_fixture(name)
    query = tensors["query"].double()
    supports = tensors["supports"][:, :shots].double()
    masks = tensors["masks"][:, :shots].long()
    return query, supports, masks, tensors[f"out{shots}"], meta


@pytest.fixture(scope="module")
def models():
    return {name: harness_model(entry, bins=bins)[0] for name, (entry, _, bins) in CASES.items()}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("shots", [1, 5])
def test_network_equals_theirs(models, name, shots):
    query, supports, masks, expected, meta = fixture_episode(name, shots)
    assert meta["repo"] == "dvlab-research/PFENet" and meta["options"]["bins"] == models[name].bins
    with torch.no_grad():
        ours = models[name].network(query, supports, masks)
    torch.testing.assert_close(ours, expected, rtol=RTOL, atol=ATOL)


def test_their_checkpoint_layout_loads_through_the_keymap(models, tmp_path):
    """A file laid out as their train.py writes it ({"state_dict": DataParallel keys, float32}) loads
    strictly into a model built with other weights: the same tensors, the same outputs."""
    seeded = models["pfenet-resnet50"]
    entry = WEIGHTS.get(CASES["pfenet-resnet50"][0])
    authors = entry.keys.to_authors(seeded.state_dict())
    assert any(k.startswith("down_supp.") for k in authors) and any(k.startswith("layer0.") for k in authors)
    path = tmp_path / "final.pth"
    torch.save({"epoch": 200, "state_dict": {DATAPARALLEL_PREFIX + k: v.float() if v.is_floating_point() else v
                                             for k, v in authors.items()},
                "optimizer": {"state": {}, "param_groups": []}}, path)
    torch.manual_seed(1)
    other = PFENet(**{**entry.options, "bins": seeded.bins}).eval()
    load_into(other, harness_state(entry, path), entry, path)  # the harness's own loading path
    other.double()  # the seeded weights are float32 values: exact both ways
    loaded = other.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in seeded.state_dict().items())
    query, supports, masks, _, _ = fixture_episode("pfenet-resnet50", 1)
    query, supports, masks = query[..., :33, :33], supports[..., :33, :33], masks[..., :33, :33]
    with torch.no_grad():
        torch.testing.assert_close(other.network(query, supports, masks), seeded.network(query, supports, masks),
                                   rtol=0, atol=0)


def test_published_entries_fit_the_authors_architecture():
    entries = WEIGHTS.for_method("pfenet")
    assert sorted(e.tag for e in entries) == [f"coco20i-fold{k}-vgg16bn" for k in range(4)] + \
        [f"pascal5i-fold{k}-resnet50" for k in range(4)]
    for entry in entries:
        assert entry.options["architecture"] == "authors" and entry.input_size == entry.options["input_size"]
        assert entry.input_size == (473 if entry.dataset == "pascal5i" else 641)


@pytest.mark.parametrize("size, expected", [
    ((375, 500), (352, 472)),  # 375 * 473 / 500 = 354.75 -> 354 -> 352; 473 -> 472
    ((500, 333), (472, 312)),
    ((100, 100), (472, 472)),  # smaller images are enlarged (their `Resize`, resized_val=True)
    ((473, 50), (472, 48)),
])
def test_resize_rule_is_theirs(size, expected):
    assert authors_resize_shape(*size, 473) == expected


def test_letterbox_equals_their_test_transform():
    """Their util/transform.py `Resize` (+ ToTensor, Normalize), run by make_pfenet.py with cv2, on images
    shrunk and enlarged: our letterbox gives the same image (float32 rounding) and the same label."""
    tensors, meta = load_fixture("pfenet-resize")
    for index, (height, width) in enumerate(meta["cases"]):
        image, label = tensors[f"image{index}"], tensors[f"label{index}"]
        assert image.shape[-2:] == (height, width)
        ours, our_label = letterbox(image[None].double(), label[None].long(), meta["size"])
        torch.testing.assert_close(ours[0].float(), tensors[f"their_image{index}"], rtol=0, atol=1e-5)
        assert torch.equal(our_label[0], tensors[f"their_label{index}"].long())


def test_letterbox_pads_black_and_ignore():
    images = torch.randn(2, 3, 30, 40)
    masks = torch.ones(2, 30, 40, dtype=torch.long)
    canvas, mask_canvas = letterbox(images, masks, 65)
    new_h, new_w = authors_resize_shape(30, 40, 65)
    assert (new_h, new_w) == (48, 64) and canvas.shape == (2, 3, 65, 65) and mask_canvas.shape == (2, 65, 65)
    black = [-m / s for m, s in zip(IMAGENET_NORMALISATION["mean"], IMAGENET_NORMALISATION["std"])]
    for c in range(3):
        assert torch.allclose(canvas[:, c, new_h:], torch.tensor(black[c]))
        assert torch.allclose(canvas[:, c, :, new_w:], torch.tensor(black[c]))
    assert (mask_canvas[:, :new_h, :new_w] == 1).all()
    assert (mask_canvas[:, new_h:] == 255).all() and (mask_canvas[:, :, new_w:] == 255).all()
    expected = torch.nn.functional.interpolate(images, size=(48, 64), mode="bilinear", align_corners=False)
    assert torch.equal(canvas[:, :, :48, :64], expected)


def test_test_time_resizing_around_the_network(monkeypatch):
    """forward = letterbox to 473 -> network -> logits to max(H, W) squared (align_corners) -> crop H x W."""
    model = PFENet(architecture="authors", bins=[8, 4], width=8)
    assert model.native_resolution and not PFENet(backbone="synthnet", bins=[2]).native_resolution
    seen = {}

    def network(query, supports, masks):
        seen.update(query=query, supports=supports, masks=masks)
        ramp = torch.linspace(0, 1, 473).view(1, 1, 1, 473).expand(1, 2, 473, 473)
        return ramp.clone()

    monkeypatch.setattr(model, "network", network)
    query, supports = torch.randn(1, 3, 120, 200), torch.randn(1, 2, 3, 120, 200)
    masks = torch.zeros(1, 2, 120, 200, dtype=torch.long)
    out = model(query, supports, masks)
    assert seen["query"].shape == (1, 3, 473, 473) and seen["supports"].shape == (1, 2, 3, 473, 473)
    # 120 * 473 / 200 = 283.8 -> 283 -> 280 rows, 473 -> 472 columns of the episode; the rest padded
    assert (seen["masks"][:, :, 280:] == 255).all() and (seen["masks"][:, :, :, 472:] == 255).all()
    assert (seen["masks"][:, :, :280, :472] == 0).all()
    assert out.shape == (1, 2, 120, 200)
    expected = torch.nn.functional.interpolate(network(None, None, None), size=(200, 200), mode="bilinear",
                                               align_corners=True)[..., :120, :200]
    torch.testing.assert_close(out, expected)
