"""GF-SAM through the harness interface, and its optional packages."""
import sys

import pytest
import torch

from methods.registry import MethodError


@pytest.mark.parametrize("package,module", [("timm", "timm"), ("segment-anything", "segment_anything")])
def test_a_missing_package_is_one_line_naming_it(monkeypatch, package, module):
    from methods.gf_sam import GFSAM
    monkeypatch.setitem(sys.modules, module, None)  # import fails
    with pytest.raises(MethodError) as error:
        GFSAM(dino="vit_small", dino_size=28, dino_overrides={"depth": 1})
    assert f"'{package}'" in str(error.value) and "\n" not in str(error.value)


def test_forward_returns_two_channel_logits_at_the_input_size():
    pytest.importorskip("timm")
    pytest.importorskip("segment_anything")
    from tests.golden.make_gf_sam import seeded_model
    model = seeded_model()
    query, supports = torch.randn(1, 3, 70, 90), torch.randn(1, 2, 3, 70, 90)
    masks = torch.zeros(1, 2, 70, 90, dtype=torch.long)
    masks[..., 20:50, 30:60] = 1
    logits = model(query, supports, masks)
    assert logits.shape == (1, 2, 256, 256)
    assert torch.equal(logits.sum(1), torch.ones(1, 256, 256))
