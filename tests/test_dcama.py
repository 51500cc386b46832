"""DCAMA: shapes, the one-pass k-shot rule, the attention and positional encoding, training, the published
entries and their key maps."""
import math

import pytest
import torch

from bench.training.profiles import PROFILES
from methods import build_method
from methods.dcama import DCAMA, MaskAttention, positional_encoding
from methods.hsnet import TorchvisionFeatures
from methods.registry import MethodError
from methods.weights import WEIGHTS
from tests.method_helpers import square_episode, tiny_method, toy_training_losses


def synthetic(**options):
    torch.manual_seed(0)
    return build_method("dcama", **{"backbone": "synthnet", **PROFILES["synthetic"].options_for("dcama"), **options})


@pytest.mark.parametrize("shots", [1, 5])
def test_shapes_tiny_and_synthetic(shots):
    query, supports, masks = square_episode(shots=shots, size=48)
    with torch.no_grad():
        assert tiny_method("dcama").eval()(query, supports, masks).shape == (2, 2, 6, 6)  # output_stride 8
        assert synthetic().eval()(query, supports, masks).shape == (2, 2, 48, 48)  # 4x the layer1 map
        for stride in (2, 4):
            assert synthetic(output_stride=stride, resize_to_input=False).eval()(query, supports, masks).shape == (
                2, 2, 48 // stride, 48 // stride)


def test_identical_shots_give_the_one_shot_logits():
    """One pass over K copies of a support: the same attention weights (each split K ways over equal keys),
    the same max-pooled skip features: the 1-shot logits (no vote)."""
    method = synthetic().eval()
    query, supports, masks = square_episode(shots=1, size=48)
    with torch.no_grad():
        one = method(query, supports, masks)
        five = method(query, supports.expand(-1, 5, -1, -1, -1), masks.expand(-1, 5, -1, -1))
    torch.testing.assert_close(five, one, rtol=1e-4, atol=1e-5)


def test_attention_is_one_softmax_over_all_shots_pixels():
    torch.manual_seed(0)
    attention = MaskAttention(16, heads=8).eval()
    query, support = torch.randn(1, 5, 16), torch.randn(1, 2, 3, 16)
    mask = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])
    with torch.no_grad():
        out = attention(query, support, mask)
        q = attention.query(query + positional_encoding(query)).view(1, 5, 8, 2).transpose(1, 2)
        keys = support + positional_encoding(support)  # the encoding restarts in each shot
        k = attention.key(keys.reshape(1, 6, 16)).view(1, 6, 8, 2).transpose(1, 2)
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(2), dim=-1)  # [1, 8, 5, 6]
        expected = (weights * mask.reshape(1, 1, 1, 6)).sum(-1).mean(1)
        per_shot = torch.stack([attention(query, support[:, s:s + 1], mask[:, s:s + 1]) for s in range(2)]).mean(0)
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out, per_shot)  # not the mean of per-shot aggregations
    assert ((out >= 0) & (out <= 1)).all()


def test_positional_encoding_is_the_sinusoid():
    pe = positional_encoding(torch.zeros(2, 7, 6, dtype=torch.float64))
    assert pe.dtype == torch.float64 and pe.shape == (7, 6)
    for pos in (0, 3, 6):
        for i in range(3):
            angle = pos / 10000 ** (2 * i / 6)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_batched_k_shot_episodes_equal_one_at_a_time():
    """Each episode's keys are its own shots (their batched k-shot path mixes episodes; at batch 1 both agree)."""
    method = synthetic().eval()
    query, supports, masks = square_episode(shots=3, size=48)
    masks[1, :, 20:40, 4:20] = 1
    with torch.no_grad():
        batched = method(query, supports, masks)
        single = torch.cat([method(query[b:b + 1], supports[b:b + 1], masks[b:b + 1]) for b in range(2)])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-5)


def test_void_support_pixels_are_background():
    method = synthetic().eval()
    query, supports, masks = square_episode(size=48)
    with torch.no_grad():
        zero = method(query, supports, torch.where(masks == 1, 1, 0))
        void = method(query, supports, torch.where(masks == 1, 1, 255))
    assert torch.equal(zero, void)


def test_training_loss_decreases_on_a_toy_batch():
    losses = toy_training_losses("dcama")
    assert losses[-1] < losses[0] - 1e-3
    assert tiny_method("dcama").training_shots(0) == 1


def test_native_resolution_resizes_inside():
    method = synthetic(input_size=64).eval()
    assert method.native_resolution and method.authors_pipeline().size == 64
    assert method.authors_pipeline().shots == "network"
    query, supports = torch.randn(1, 3, 40, 50), torch.randn(1, 2, 3, 40, 50)
    masks = torch.zeros(1, 2, 40, 50, dtype=torch.long)
    masks[..., 10:30, 10:40] = 1
    with torch.no_grad():
        assert method(query, supports, masks).shape == (1, 2, 64, 64)


@pytest.mark.parametrize("backbone,maps,groups", [("resnet50", 16, (3, 4, 6, 3)), ("resnet101", 33, (3, 4, 23, 3))])
def test_resnet_taps_every_bottleneck_from_layer1(backbone, maps, groups):
    method = DCAMA(backbone=backbone, backbone_enum=None)
    assert method.group_sizes == groups and len(method.squeeze) == 3 and len(method.attention) == 3
    feats = method.features(torch.randn(1, 3, 64, 64))
    assert len(feats) == maps and feats[0].shape[-2:] == (16, 16) and (feats[0] < 0).any()
    assert len(TorchvisionFeatures(backbone)(torch.randn(1, 3, 64, 64))) == maps - 3  # HSNet's taps unchanged


def test_published_entries_are_well_formed_and_their_keys_map_both_ways():
    entries = WEIGHTS.entries("dcama.*")
    assert len(entries) == 24
    assert {(e.dataset, e.options["backbone"]) for e in entries} == {
        (d, b) for d in ("pascal5i", "coco20i") for b in ("resnet50", "resnet101", "swin-b")}
    assert sorted(e.fold for e in entries) == [f for f in range(4) for _ in range(6)]
    assert len({e.file_name for e in entries}) == 24
    assert all(e.input_size == 384 and e.options["input_size"] == 384 and e.state_key == "" for e in entries)
    assert all(not e.reported and "could not be read" in e.source for e in entries)
    built = {}
    for entry in entries:
        key = entry.options["backbone"]
        if key not in built:
            with torch.device("meta"):  # Swin-B's 88 M parameters: names and shapes only
                built[key] = DCAMA(**entry.options, backbone_enum=None)
        state = built[key].state_dict()
        theirs = entry.keys.to_authors(state)
        assert all(k.startswith(("feature_extractor.", "model.")) for k in theirs)
        assert "model.DCAMA_blocks.0.linears.0.weight" in theirs and "model.mixer3.2.bias" in theirs
        extra = {"module.model.pe.0.pe": torch.zeros(1), "module.feature_extractor.fc.bias": torch.zeros(1)}
        if key == "swin-b":  # Microsoft's names: patch merging at the end of stages 0-2, buffers, norm, head
            assert {k for k in theirs if ".downsample.reduction" in k} == {
                f"feature_extractor.layers.{i}.downsample.reduction.weight" for i in range(3)}
            assert theirs["feature_extractor.layers.2.blocks.17.attn.qkv.weight"].shape == (1536, 512)
            assert theirs["model.mixer1.0.weight"].shape == (128, 128 + 2 * 256 + 2 * 128, 3, 3)
            extra = {f"module.feature_extractor.{k}": torch.zeros(1) for k in (
                "norm.weight", "head.bias", "layers.0.blocks.1.attn_mask", "layers.3.blocks.0.attn.relative_position_index")}
        back = entry.keys.to_harness({**{f"module.{k}": v for k, v in theirs.items()}, **extra})
        assert back.keys() == state.keys()
    assert len(built) == 3


def test_swin_b_taps_every_block_of_every_stage():
    """Swin-B at 384 (theirs): 2 + 2 + 18 + 2 block outputs at strides 4, 8, 16, 32, widths 128 to 1024; stage 1
    only feeds the skip connection (three attentions, squeeze inputs 2, 18 and 2 coarse masks)."""
    with torch.device("meta"):
        method = DCAMA(backbone="swin-b", input_size=384)
        feats = method.features(torch.empty(1, 3, 384, 384))
    assert method.group_sizes == (2, 2, 18, 2) and len(method.attention) == 3
    assert [tuple(f.shape[1:]) for f in feats] == [(128 * 2 ** i, 96 >> i, 96 >> i)
                                                   for i, n in enumerate((2, 2, 18, 2)) for _ in range(n)]
    assert [block[0].in_channels for block in method.squeeze] == [2, 18, 2]
    assert method.backbone.identity["weights"] == "random-init"


def test_swin_weights_file_in_microsoft_names_loads(tmp_path):
    """The README's Swin file layout ({'model': state dict}, Microsoft's names and buffers) through
    `microsoft_to_timm`, on a reduced Swin; a wrong input size is a one-line error."""
    from methods.swin import SwinFeatures
    config = {"img_size": 32, "embed_dim": 16, "depths": [1, 1, 2, 1], "num_heads": [1, 1, 2, 2], "window_size": 2}
    torch.manual_seed(0)
    source = SwinFeatures(config)
    renamed = {(f"layers.{int(k.split('.')[1]) - 1}.downsample." + k.split(".downsample.")[1]
                if ".downsample." in k else k): v for k, v in source.state_dict().items()}
    renamed.update({"norm.weight": torch.ones(128), "head.weight": torch.zeros(10, 128),
                    "layers.0.blocks.0.attn.relative_position_index": torch.zeros(4, 4, dtype=torch.long)})
    assert "layers.0.downsample.reduction.weight" in renamed
    path = tmp_path / "swin.pth"
    torch.save({"model": renamed}, path)
    loaded = SwinFeatures(config, weights_path=str(path))
    images = torch.randn(1, 3, 32, 32)
    for a, b in zip(loaded(images), source(images)):
        assert torch.equal(a, b)
    assert loaded.identity["source"] == "file"
    with pytest.raises(MethodError, match="takes 32 x 32"):
        loaded(torch.randn(1, 3, 40, 40))


def test_bad_options_are_one_line_errors():
    with pytest.raises(MethodError, match="output_stride"):
        DCAMA(backbone="synthnet", output_stride=16)
    with pytest.raises(MethodError, match="unknown DCAMA backbone"):
        DCAMA(backbone="swin")
    with pytest.raises(MethodError, match="network order"):
        DCAMA(backbone="synthnet", groups=[["layer1"], ["layer2.1"], ["layer2.0"], ["layer3.0"]])
    with pytest.raises(MethodError, match="same channels"):
        DCAMA(backbone="synthnet", groups=[["layer1"], ["layer2.0"], ["layer2.1", "layer3.0"], ["layer3.1"]])
    with pytest.raises(MethodError, match="fixed"):
        DCAMA(backbone="resnet50", backbone_enum=None, groups=[["layer1"], ["layer2.0"], ["layer2.1"], ["layer3.0"]])
