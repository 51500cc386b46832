"""Golden fixture for DCAMA on a Swin backbone: the authors' model (pawn-sxy/DCAMA, model/DCAMA.py with
`backbone='swin'`, their model/base/swin_transformer.py, Microsoft's Swin) run on CPU in float32 with our
seeded weights (mapped by the entries' KeyMap), at 1 shot (their forward, two episodes) and 5 shots (their
`predict_mask_nshot` and the `self.model(..., nshot)` call inside it, one episode), on make_dcama's fixed
64 x 64 episodes.

    git clone <bare or remote pawn-sxy/DCAMA> /tmp/dcama-clone
    python -m tests.golden.make_dcama_swin --clone /tmp/dcama-clone

A REDUCED Swin of Swin-B's design (`SWIN`: their depths 2/2/18/2, embed_dim 32, heads 1/2/4/8, window 4, at
64 x 64: stages of 16, 8, 4, 2 tokens a side, shifted windows in the first two stages, the window clipped to the
map in the last, as Swin-B's 12-token window on its 12 x 12 stage 4). Patched at run time, never in their files:
`.cuda()` (a no-op), downloads (refused), their `SwinTransformer(...)` call in model/DCAMA.py (our reduced
arguments replace theirs) and their `DCAMA_model(in_channels=[128, 256, 512, 1024], ...)` call (the reduced
widths). Their `feature_extractor_path` is a temporary {'model': state dict} file, as Microsoft's checkpoint,
of our seeded Swin in Microsoft's names (their own model's final norm, head and attention buffers beside).
The fixture holds a checksum of the weights and of the episode (`seeded_model` and `episode` rebuild both)
and their outputs, not the inputs (about 110 KB); its JSON their model's state-dict names and shapes.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Dict, Tuple

import torch

from methods.dcama import DCAMA, dcama_keymap
from tests.golden.authors import (authors_code, clone_arguments, import_from, perturb_group_norms, save_fixture,
                                 their_dcama_outputs)
from tests.golden.make_dcama import SEED, SHOTS, SIZE, checksum, episode

NAME = "dcama-swin-reduced"
SWIN = {"img_size": SIZE, "embed_dim": 32, "depths": [2, 2, 18, 2], "num_heads": [1, 2, 4, 8], "window_size": 4}
OPTIONS = {"backbone": "swin-b", "swin": SWIN}
BIAS_SHIFT = -0.087  # about half the pixels foreground


def seeded_model(seed: int = SEED) -> DCAMA:
    """Our DCAMA on the reduced Swin (random init from `seed`): every 1-D backbone parameter (LayerNorm affines,
    biases) and the relative-position bias tables drawn anew (fresh ones are 1 / 0 / 0.02 N(0, 1), which
    would hide a mapping error between two of them), GroupNorm affines perturbed, float32, eval mode."""
    torch.manual_seed(seed)
    model = DCAMA(**OPTIONS)
    generator = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for name, param in model.backbone.named_parameters():
            if name.endswith("relative_position_bias_table"):
                param.copy_(torch.randn(param.shape, generator=generator))
            elif param.dim() == 1 and name.endswith("weight"):
                param.copy_(0.5 + torch.rand(param.shape, generator=generator))
            elif param.dim() == 1:
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
    perturb_group_norms(model, seed + 1)
    model.decoder[2][2].bias.data[1] += BIAS_SHIFT
    return model.eval()


def episode_checksum(seed: int = SEED) -> torch.Tensor:
    return checksum(dict(zip(("query", "supports", "support_masks"), episode(seed))))


def authors_outputs(clone: Path, state: Dict[str, torch.Tensor], query, supports, masks) -> Tuple[Dict[str, torch.Tensor], Dict]:
    """Their logits and 5-shot mask, and their model's state-dict names and shapes (the checkpoint layout)."""
    theirs = dcama_keymap().to_authors(state)
    with authors_code(clone), tempfile.TemporaryDirectory() as tmp:
        module = import_from("model.DCAMA")
        swin_class, model_class = module.SwinTransformer, module.DCAMA_model
        reduced = dict(SWIN)
        widths = [SWIN["embed_dim"] * 2 ** i for i in range(4)]
        module.SwinTransformer = lambda **given: swin_class(**{**given, **reduced})

        def reduced_model(in_channels, stack_ids):  # their class back in place while it runs (super(DCAMA_model, self))
            module.DCAMA_model = model_class
            try:
                return model_class(in_channels=widths, stack_ids=stack_ids)
            finally:
                module.DCAMA_model = reduced_model

        module.DCAMA_model = reduced_model
        backbone = swin_class(**{"patch_size": 4, **reduced}).state_dict()
        backbone.update({k[len("feature_extractor."):]: v for k, v in theirs.items() if k.startswith("feature_extractor.")})
        path = Path(tmp) / "swin.pth"
        torch.save({"model": backbone}, path)
        network = module.DCAMA("swin", str(path), False)
        own = network.state_dict()
        extra = {k: v for k, v in own.items() if k not in theirs}
        assert all(k.startswith(("model.pe.", "feature_extractor.norm.", "feature_extractor.head."))
                   or k.endswith((".attn_mask", ".relative_position_index")) for k in extra), sorted(extra)[:5]
        theirs.update(extra)
        network.load_state_dict(theirs, strict=True)
        network = network.eval()
        one_shot, five_shot_mask, five_shot = their_dcama_outputs(network, query, supports, masks.float(), SHOTS)
    keys = {k: list(v.shape) for k, v in own.items()}
    return {"logits_1shot": one_shot, "logits_5shot": five_shot, "mask_5shot": five_shot_mask.to(torch.uint8)}, keys


def main() -> None:
    clone, commit = clone_arguments(__doc__.splitlines()[0], "pawn-sxy/DCAMA", None)
    query, supports, masks = episode()
    model = seeded_model(SEED)
    outputs, keys = authors_outputs(clone, model.state_dict(), query, supports, masks)
    print(f"swin (reduced): 1-shot logits {tuple(outputs['logits_1shot'].shape)}, 1-shot foreground fraction "
          f"{outputs['logits_1shot'].argmax(1).double().mean():.3f}, 5-shot {outputs['mask_5shot'].double().mean():.3f}")
    meta = {"authors": "pawn-sxy/DCAMA", "commit": commit, "seed": SEED, "size": SIZE, "shots": SHOTS,
            "options": OPTIONS, "dtype": "float32",
            "weights": "seeded_model(seed): torch.manual_seed, backbone 1-D parameters and relative-position bias "
                       "tables drawn, GroupNorm affines; `checksum` holds their per-entry sums",
            "inputs": "tests.golden.make_dcama.episode(seed); `episode_checksum` holds their sums",
            "authors_keys": keys}
    save_fixture(NAME, {"checksum": checksum(model.state_dict()), "episode_checksum": episode_checksum(SEED), **outputs},
                 meta)


if __name__ == "__main__":
    main()
