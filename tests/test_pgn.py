"""PGN: graph attention between query regions and support pixels, the pyramid, one graph over all shots."""
import torch
from torch import nn

from methods.pgn import GraphAttentionUnit
from tests.method_helpers import tiny_method


def small(**options):
    return tiny_method("pgn", **options)


def identity_gau(width=3, gain=20.0):
    gau = GraphAttentionUnit(width)
    for conv in (gau.theta, gau.phi):
        nn.init.zeros_(conv.bias)
        conv.weight.data = gain * torch.eye(width)[:, :, None, None]
    return gau


def test_attention_spans_all_shots_and_finds_the_matching_node():
    """theta = phi = scaled identity: a query node equal to shot 2's nodes attends (almost) only to them,
    so the softmax runs over one graph of K x h x w support nodes."""
    gau = identity_gau()
    support = torch.zeros(1, 2, 3, 2, 2)
    support[0, 0, 0] = 1.0  # shot 1: every node is e1
    support[0, 1, 1] = 1.0  # shot 2: every node is e2
    query = torch.zeros(1, 3, 1, 2)
    query[0, 1, 0, 0] = 1.0  # region 1 looks like shot 2
    query[0, 0, 0, 1] = 1.0  # region 2 looks like shot 1
    attn = gau.attention(query, support)
    assert attn.shape == (1, 2, 8)
    assert torch.allclose(attn.sum(dim=2), torch.ones(1, 2))
    assert attn[0, 0, 4:].sum() > 0.99 and attn[0, 1, :4].sum() > 0.99


def test_message_is_attention_weighted_sum_of_support_values():
    gau = identity_gau()
    support = torch.randn(1, 1, 3, 2, 2)
    query = torch.randn(1, 3, 1, 1)
    values = torch.randn(1, 3, 4)
    query_values = torch.zeros(1, 3, 1, 1)
    captured = {}
    gau.fuse.register_forward_hook(lambda m, inputs, out: captured.setdefault("in", inputs[0]))
    gau(query, query_values, support, values)
    attn = gau.attention(query, support)
    expected = (values * attn[:, 0][:, None]).sum(dim=2)
    assert torch.allclose(captured["in"][:, :3, 0, 0], expected, atol=1e-6)


def test_duplicated_shots_give_the_one_shot_output():
    """Duplicating every node halves each attention weight and leaves every message unchanged."""
    method = small().eval()
    gen = torch.Generator().manual_seed(0)
    query, supports = torch.randn(2, 3, 48, 48, generator=gen), torch.randn(2, 1, 3, 48, 48, generator=gen)
    masks = torch.zeros(2, 1, 48, 48, dtype=torch.long)
    masks[..., 10:30, 5:40] = 1
    with torch.no_grad():
        one = method(query, supports, masks)
        two = method(query, supports.repeat(1, 2, 1, 1, 1), masks.repeat(1, 2, 1, 1))
    assert torch.allclose(one, two, atol=1e-5)


def test_pyramid_levels_and_support_nodes_are_masked():
    method = small(grids=[1.0, 0.5], global_branch=True).eval()
    assert len(method.gaus) == 3
    feats = torch.randn(1, method.feature_channels, 6, 6)
    masks = torch.zeros(1, 48, 48, dtype=torch.long)  # empty mask: every node is the constant epsilon
    with torch.no_grad():
        (nodes,) = method.support_code(feats, masks)
        assert torch.allclose(nodes, torch.full_like(nodes, 5e-4))
        out = method.reason(method.query_code(torch.randn(1, method.feature_channels, 6, 6))[0], nodes[:, None])
    assert out.shape == (1, 16, 6, 6)
