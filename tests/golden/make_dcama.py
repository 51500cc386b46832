"""Golden fixtures for DCAMA: the authors' model (pawn-sxy/DCAMA, model/DCAMA.py) run on CPU in float32 with our
seeded ResNet-50 and ResNet-101 weights (mapped by the entries' KeyMap), at 1 shot (their forward, a batch of two
episodes) and 5 shots (their `predict_mask_nshot` and the `self.model(..., nshot)` call inside it, batch of
one as their test), on fixed 64 x 64 episodes. Float32, not double as HSNet's: their code casts the support
masks with `.float()`, so a double model fails in their attention's matmul.

    git clone <bare or remote pawn-sxy/DCAMA> /tmp/dcama-clone
    python -m tests.golden.make_dcama --clone /tmp/dcama-clone

Patched at run time, never in their files: `.cuda()` (a no-op), downloads (refused), and `timm.models.layers`
(their Swin file imports it; a stub module, unused by ResNet). Their `feature_extractor_path` is a temporary
file of our seeded backbone weights (torchvision's ResNet with its own fc, which their forward never uses).
The fixture holds the inputs, their outputs and a checksum of the weights, not the weights (14 M parameters
beside the backbone): `seeded_model(seed)` rebuilds them and the test checks the checksum first.
"""
from __future__ import annotations

import sys
import tempfile
import types
from pathlib import Path
from typing import Dict, Tuple

import torch

from methods.dcama import DCAMA, dcama_keymap
from tests.golden.authors import (authors_code, clone_arguments, import_from, perturb_group_norms, save_fixture, seeded_state,
                                 statistics_from, their_dcama_outputs)

BACKBONES = ("resnet50", "resnet101")
NAMES = {backbone: f"dcama-{backbone}" for backbone in BACKBONES}
NAME = NAMES["resnet50"]
SEED = 11
SIZE = 64
SHOTS = 5
BIAS_SHIFT = 0.06


def seeded_model(seed: int = SEED, backbone: str = "resnet50") -> DCAMA:
    """Our DCAMA (ResNet-50 or -101, random init from `seed`), BN and GroupNorm affines perturbed, BN statistics from
    the fixed episode itself (one pass with momentum 1, so that the features are centred and the attention
    weights spread), float32, eval mode."""
    torch.manual_seed(seed)
    model = DCAMA(backbone=backbone, backbone_enum=None)
    seeded_state(model, seed)
    perturb_group_norms(model, seed + 1)
    model.decoder[2][2].bias.data[1] += BIAS_SHIFT  # about half the pixels foreground
    query, supports, _ = episode(seed)
    statistics_from(model.backbone, lambda: model.features(torch.cat([query[:1], supports[0]])))
    return model.eval()


def checksum(state: Dict[str, torch.Tensor]) -> torch.Tensor:
    """Per entry (sorted names), the sum and the sum of squares, in double: a fingerprint of the weights."""
    return torch.tensor([[v.double().sum().item(), v.double().square().sum().item()]
                         for _, v in sorted(state.items())], dtype=torch.float64)


def episode(seed: int = SEED) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two queries [2, 3, S, S], SHOTS supports each [2, K, 3, S, S] (float32 values), 0/1 masks [2, K, S, S]."""
    generator = torch.Generator().manual_seed(seed)
    query = torch.randn(2, 3, SIZE, SIZE, generator=generator)
    supports = torch.randn(2, SHOTS, 3, SIZE, SIZE, generator=generator)
    masks = torch.zeros(2, SHOTS, SIZE, SIZE, dtype=torch.long)
    for b in range(2):
        for k in range(SHOTS):  # a different rectangle per episode and shot, each covering the centre, and
            if k % 2:           # every other one a corner (layer4 is 2 x 2: align_corners samples the corners)
                top, left = 6 + 3 * k + 2 * b, 18 - 3 * k
                masks[b, k, top:top + 34 - 2 * k - 4 * b, left:left + 28 + 3 * k] = 1
            elif b == 0:
                masks[b, k, 20 + 2 * k:, 16 + 3 * k:] = 1
            else:
                masks[b, k, :40 - 2 * k, :36 - 3 * k] = 1
    return query, supports, masks


def _timm_stub() -> Dict[str, types.ModuleType]:
    """`timm`, `timm.models`, `timm.models.layers` with the three names their Swin file imports (never called)."""
    def unused(*args, **kwargs):
        raise RuntimeError("timm stub: the golden fixture builds their ResNet model only")

    layers = types.ModuleType("timm.models.layers")
    layers.DropPath, layers.to_2tuple, layers.trunc_normal_ = unused, unused, unused
    models = types.ModuleType("timm.models")
    models.layers = layers
    timm = types.ModuleType("timm")
    timm.models = models
    return {"timm": timm, "timm.models": models, "timm.models.layers": layers}


def authors_outputs(clone: Path, backbone_name: str, state: Dict[str, torch.Tensor], query, supports,
                    masks) -> Dict[str, torch.Tensor]:
    from torchvision import models

    stubs = {k: v for k, v in _timm_stub().items() if k not in sys.modules}
    sys.modules.update(stubs)
    theirs = dcama_keymap().to_authors(state)
    try:
        with authors_code(clone), tempfile.TemporaryDirectory() as tmp:
            backbone = getattr(models, backbone_name)(weights=None).state_dict()
            backbone.update({k[len("feature_extractor."):]: v for k, v in theirs.items()
                             if k.startswith("feature_extractor.")})
            path = Path(tmp) / f"{backbone_name}.pth"
            torch.save(backbone, path)
            network = import_from("model.DCAMA").DCAMA(backbone_name, str(path), False)
            own = network.state_dict()
            theirs.update({k: v for k, v in own.items() if k.startswith(("feature_extractor.fc.", "model.pe."))})
            network.load_state_dict(theirs, strict=True)
            network = network.eval()
            one_shot, five_shot_mask, five_shot = their_dcama_outputs(network, query, supports, masks.float(), SHOTS)
    finally:
        for name in stubs:
            sys.modules.pop(name, None)
    return {"logits_1shot": one_shot, "logits_5shot": five_shot, "mask_5shot": five_shot_mask}


def main() -> None:
    clone, commit = clone_arguments(__doc__.splitlines()[0], "pawn-sxy/DCAMA", None)
    query, supports, masks = episode()
    for backbone in BACKBONES:
        model = seeded_model(SEED, backbone)
        outputs = authors_outputs(clone, backbone, model.state_dict(), query, supports, masks)
        print(f"{backbone}: 1-shot logits {tuple(outputs['logits_1shot'].shape)}, 1-shot foreground fraction "
              f"{outputs['logits_1shot'].argmax(1).double().mean():.3f}, 5-shot {outputs['mask_5shot'].double().mean():.3f}")
        meta = {"authors": "pawn-sxy/DCAMA", "commit": commit, "seed": SEED, "size": SIZE, "shots": SHOTS,
                "options": {"backbone": backbone, "backbone_enum": None}, "dtype": "float32",
                "weights": "seeded_model(seed, backbone): torch.manual_seed, seeded_state, GroupNorm affines, BN "
                           "statistics from the episode; `checksum` holds their per-entry sums"}
        save_fixture(NAMES[backbone], {"query": query, "supports": supports, "support_masks": masks,
                                       "checksum": checksum(model.state_dict()), **outputs}, meta)


if __name__ == "__main__":
    main()
