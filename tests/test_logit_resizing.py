"""The evaluator resizes a method's logits with the align_corners it was trained with."""
import numpy as np
import pytest
import torch

from bench.evaluation.protocol import ScoringProtocol
from methods import METHODS, build_method


def test_score_follows_align_corners():
    # a 2 x 2 foreground-score ramp upsampled to 5 x 5: the two modes put the 0 crossing in different columns
    fg = torch.tensor([[-3.0, 1.0], [-3.0, 1.0]])
    logits = torch.stack([torch.zeros_like(fg), fg])
    target = np.zeros((5, 5), dtype=np.uint8)
    target[:, 3:] = 1
    protocol = ScoringProtocol()
    counts = {corners: protocol.score(logits, target, corners) for corners in (False, True)}
    assert not torch.equal(counts[False], counts[True])  # 2 vs 1 foreground columns
    assert torch.equal(protocol.score(logits, target), counts[False])  # the default: align_corners=False


@pytest.mark.parametrize("name", ["canet", "fwb", "hsnet"])
def test_methods_trained_with_align_corners_are_scored_so(name):
    assert METHODS.card(name).builder.logits_align_corners is True


def test_default_is_align_corners_false():
    assert build_method("support-copy").logits_align_corners is False
