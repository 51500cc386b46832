"""Golden fixture of CANet's head: the authors' `one_shot_network.ResNet` (icoz69/CaNet) run on fixed
backbone features with the harness's seeded head weights.

    python -m tests.golden.make_canet --clone /path/to/icoz69+CaNet [--commit SHA]

Their network starts from images; its ResNet trunk (conv1 .. layer3) is replaced at run time by stubs that
hand over fixed seeded layer2 / layer3 features, so that what runs is their head: layer5 (encoder), the
dense comparison (masked average pooling, layer55), the iterative optimisation module (residule1-3), the
ASPP (layer6_*, layer7) and layer9. Their released code is 1-shot only (the paper's attention k-shot is
not in it), so the fixture is 1-shot. Saved: 1 pass with an empty history, 4 passes each fed the previous
softmax (their evaluation loop), 1 pass with a seeded history, and their training loss (logits upsampled
align_corners=True, CrossEntropyLoss(ignore_index=255)), all in double precision, eval mode.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from methods import build_method  # noqa: E402
from methods.canet import AUTHORS_KEYS, AUTHORS_OPTIONS  # noqa: E402
from tests.golden.authors import authors_code, clone_arguments, import_from, save_fixture  # noqa: E402

NAME = "canet-head"
SEED = 20190616
FEATURE = 8  # feature map side (their stride 8 of a 57 x 57 image)
SIZE = 57
STEPS = 4
LAYER2 = 512


def build_ours(seed: int = SEED, **options) -> nn.Module:
    """Our CANet with the authors' head sizes, every head parameter drawn from `seed` (conv weights
    N(0, 2 / fan_in), biases N(0, 0.1^2)), double, eval mode. The (random-init) backbone is not used."""
    torch.manual_seed(seed)
    model = build_method("canet", backbone="resnet50", backbone_enum=None, **{**AUTHORS_OPTIONS, **options})
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if name.startswith("backbone."):
                continue
            noise = torch.randn(param.shape, generator=generator, dtype=torch.float64)
            param.copy_(noise * ((2.0 / param[0].numel()) ** 0.5 if param.dim() > 1 else 0.1))
    return model.double().eval()


def inputs(seed: int = SEED):
    """Query and support features [1, 1536, 8, 8] (layer2 ++ layer3, post-ReLU so non-negative), the
    support's {0, 1} mask [1, 57, 57], the query's {0, 1, 255} mask [1, 57, 57], a history [1, 2, 8, 8]."""
    generator = torch.Generator().manual_seed(seed)
    feats = torch.rand(2, LAYER2 + 1024, FEATURE, FEATURE, generator=generator) * 2
    masks = torch.zeros(2, SIZE, SIZE, dtype=torch.uint8)
    for mask in masks:
        top, left = torch.randint(2, SIZE // 2, (2,), generator=generator).tolist()
        height, width = torch.randint(10, SIZE // 2, (2,), generator=generator).tolist()
        mask[top:top + height, left:left + width] = 1
    masks[1, :3] = 255  # void in the query's label: ignored by the loss
    history = torch.softmax(3 * torch.randn(1, 2, FEATURE, FEATURE, generator=generator), dim=1)
    return {"query_feats": feats[:1], "support_feats": feats[1:], "support_mask": masks[:1],
            "query_mask": masks[1:], "history": history}


class _Handover(nn.Module):
    """Stub of their trunk: layer2 gets the (layer2 ++ layer3) features as its input, keeps them and returns
    the layer2 part; layer3 returns the kept layer3 part."""

    def __init__(self, store: dict, part: str):
        super().__init__()
        self.store, self.part = store, part

    def forward(self, x):
        if self.part == "layer2":
            self.store["x"] = x
            return x[:, :LAYER2]
        return self.store.pop("x")[:, LAYER2:]


def their_model(clone: Path, ours: nn.Module) -> nn.Module:
    network = import_from("one_shot_network")
    theirs = network.Res_Deeplab(num_classes=2)
    store: dict = {}
    for name in ("conv1", "bn1", "relu", "maxpool", "layer1"):
        setattr(theirs, name, nn.Identity())
    theirs.layer2, theirs.layer3 = _Handover(store, "layer2"), _Handover(store, "layer3")
    theirs.load_state_dict(AUTHORS_KEYS.to_authors(ours.state_dict()), strict=True)
    return theirs.double().eval()


def run_theirs(clone: Path):
    data = inputs()
    query, support = data["query_feats"].double(), data["support_feats"].double()
    support_mask = data["support_mask"][:, None].double()
    with authors_code(clone):
        theirs = their_model(clone, build_ours())
        with torch.no_grad():
            history = torch.zeros(1, 2, FEATURE, FEATURE, dtype=torch.float64)
            passes = []
            for _ in range(STEPS):  # their evaluation loop: each pass gets the previous softmax
                passes.append(theirs(query, support, support_mask, history))
                history = torch.softmax(passes[-1], dim=1)
            seeded = theirs(query, support, support_mask, data["history"].double())
            upsampled = F.interpolate(passes[0], size=(SIZE, SIZE), mode="bilinear", align_corners=True)
            loss = torch.nn.CrossEntropyLoss(ignore_index=255)(upsampled, data["query_mask"].long())
    return {**data, "logits_1pass": passes[0], f"logits_{STEPS}pass": passes[-1], "logits_seeded_history": seeded,
            "loss": loss}


def main(argv=None) -> None:
    clone, commit = clone_arguments(__doc__.splitlines()[0], "icoz69/CaNet", argv)
    tensors = run_theirs(clone)
    meta = {"authors_repo": "icoz69/CaNet", "commit": commit, "seed": SEED,
            "feature": FEATURE, "size": SIZE, "steps": STEPS, "shots": [1], "options": AUTHORS_OPTIONS,
            "dtype": "float64",
            "their_model": "one_shot_network.Res_Deeplab(num_classes=2), trunk conv1..layer3 stubbed with the features"}
    print(save_fixture(NAME, tensors, meta))


if __name__ == "__main__":
    main()
