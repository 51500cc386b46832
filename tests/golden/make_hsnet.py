"""Golden fixture for HSNet: the authors' HypercorrSqueezeNetwork (juhongm999/hsnet) run on CPU in double
precision with our seeded ResNet-50 weights (mapped by the entry's KeyMap), at 1 shot (their forward) and
5 shots (their `predict_mask_nshot`), on one fixed 65 x 65 episode.

    python -m tests.golden.make_hsnet --clone /work/clones/juhongm999+hsnet --commit $(cat .../.authors_commit)

Their `resnet50(pretrained=True)` is patched at run time to torchvision's `resnet50(weights=None)` (the
weights are ours); nothing in their files changes. Their fc layer, unused by their forward, keeps its own
initialisation (our backbone has none).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import torch

from methods.hsnet import HSNet, hsnet_keymap
from tests.golden.authors import (authors_code, clone_arguments, import_from, perturb_group_norms, save_fixture, seeded_state,
                                 statistics_from)

NAME = "hsnet-resnet50"
SEED = 7
SIZE = 65
SHOTS = 5
BIAS_SHIFT = 0.04


def seeded_model(seed: int = SEED) -> HSNet:
    """Our HSNet (ResNet-50, random init from `seed`), BN statistics and GroupNorm affines perturbed, double."""
    torch.manual_seed(seed)
    model = HSNet(backbone="resnet50", backbone_enum=None)
    seeded_state(model, seed)
    perturb_group_norms(model, seed + 1)
    model = model.double()
    # BN statistics set from the fixed episode itself: centred pre-ReLU features of both signs, so that the
    # cosines spread over [-1, 1] and ReLU(cosine) matters
    query, supports, _ = episode(seed)
    statistics_from(model.backbone, lambda: model.features(torch.cat([query, supports[0]]).double()))
    model.learner.decoder2[2].bias.data[1] -= BIAS_SHIFT  # about half the pixels foreground per shot: votes 0..5
    return model.eval()


def episode(seed: int = SEED) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One query [1, 3, S, S], SHOTS supports [1, K, 3, S, S] (float32 values) and their 0/1 masks [1, K, S, S]."""
    generator = torch.Generator().manual_seed(seed)
    query = torch.randn(1, 3, SIZE, SIZE, generator=generator)
    supports = torch.randn(1, SHOTS, 3, SIZE, SIZE, generator=generator)
    masks = torch.zeros(1, SHOTS, SIZE, SIZE, dtype=torch.long)
    for k in range(SHOTS):  # a different rectangle per shot, each covering the centre (layer4 is 3 x 3)
        top, left = 6 + 3 * k, 20 - 4 * k
        masks[0, k, top:top + 36 - 2 * k, left:left + 30 + 3 * k] = 1
    return query, supports, masks


def authors_outputs(clone: Path, state: Dict[str, torch.Tensor], query, supports, masks) -> Dict[str, torch.Tensor]:
    with authors_code(clone):
        import torchvision.models.resnet as tv_resnet

        original = tv_resnet.resnet50
        tv_resnet.resnet50 = lambda *args, **kwargs: original(weights=None)
        try:
            network = import_from("model.hsnet").HypercorrSqueezeNetwork("resnet50", False)
        finally:
            tv_resnet.resnet50 = original
        theirs = hsnet_keymap().to_authors(state)
        theirs.update({k: v for k, v in network.state_dict().items() if k.startswith("backbone.fc.")})
        network.load_state_dict(theirs, strict=True)
        network = network.double().eval()
        query, supports, float_masks = query.double(), supports.double(), masks.double()
        with torch.no_grad():
            one_shot = network(query, supports[:, 0], float_masks[:, 0])
            per_shot = torch.cat([network(query, supports[:, k], float_masks[:, k]) for k in range(SHOTS)])
            batch = {"query_img": query, "support_imgs": supports, "support_masks": float_masks}
            five_shot = network.predict_mask_nshot(batch, nshot=SHOTS)
    return {"logits_1shot": one_shot, "logits_per_shot": per_shot, "mask_5shot": five_shot}


def main() -> None:
    clone, commit = clone_arguments(__doc__.splitlines()[0], "juhongm999/hsnet", None)
    model = seeded_model()
    query, supports, masks = episode()
    outputs = authors_outputs(clone, model.state_dict(), query, supports, masks)
    mask = outputs["mask_5shot"]
    print(f"1-shot logits {tuple(outputs['logits_1shot'].shape)}, 5-shot foreground fraction {mask.mean():.3f}")
    meta = {"authors": "juhongm999/hsnet", "commit": commit, "seed": SEED,
            "size": SIZE, "shots": SHOTS, "options": {"backbone": "resnet50", "backbone_enum": None},
            "dtype": "float64", "weights": "seeded_model(seed): torch.manual_seed, seeded_state, GroupNorm affines"}
    save_fixture(NAME, {"query": query, "supports": supports, "support_masks": masks, **outputs}, meta)


if __name__ == "__main__":
    main()
