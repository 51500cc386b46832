"""Running the authors' public code for golden fixtures: their modules imported from a clone whose path
the script is given, `.cuda()` and pretrained downloads patched at run time (never in their files).

A fixture is `NAME.pt` (a dict of tensors, read back with `torch.load(weights_only=True)`) beside
`NAME.json` (the authors' repository and commit, the seed, the options): data produced by running their
code, none of their code.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, Tuple

import torch

FIXTURES = Path(__file__).parent / "fixtures"


def clone_commit(clone: Path, given: str = "") -> str:
    """The commit the clone is at: `given` (a script's --commit, for an exported tree), else
    `git rev-parse HEAD` in the clone, else 'unknown'."""
    if given:
        return given
    try:
        return subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def clone_arguments(description: str, repo: str, argv=None) -> Tuple[Path, str]:
    """The golden scripts' command line: `--clone PATH` (a clone of `repo`) and `--commit SHA` (for an
    exported tree without .git); returns the clone and its commit."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--clone", type=Path, required=True, help=f"a clone of github.com/{repo}")
    parser.add_argument("--commit", default="", help="the clone's commit (default: git rev-parse HEAD in the clone)")
    args = parser.parse_args(argv)
    return args.clone, clone_commit(args.clone, args.commit)


def _no_download(*args, **kwargs):
    raise RuntimeError("golden fixtures use seeded weights: a pretrained download was attempted")


@contextlib.contextmanager
def authors_code(clone: Path, *, hide: Tuple[str, ...] = ("model", "models", "util", "utils", "common")) -> Iterator[None]:
    """Make the clone importable with `.cuda()` a no-op and downloads refused; undo both on exit.

    Top-level names the clone shares with other code (`model`, `util`, ...) are dropped from
    `sys.modules` before and after so two clones in one process do not see each other's modules.
    """
    clone = Path(clone).resolve()
    if not clone.is_dir():
        raise SystemExit(f"not a folder: {clone} (pass the path of a clone of the authors' repository)")

    def forget():
        for name in list(sys.modules):
            if name.split(".")[0] in hide:
                del sys.modules[name]

    patches = [(torch.Tensor, "cuda"), (torch.nn.Module, "cuda")]
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr in patches]
    hub_saved = torch.hub.load_state_dict_from_url
    import torch.utils.model_zoo as model_zoo
    zoo_saved = model_zoo.load_url
    forget()
    sys.path.insert(0, str(clone))
    try:
        torch.Tensor.cuda = lambda self, *a, **k: self
        torch.nn.Module.cuda = lambda self, *a, **k: self
        torch.hub.load_state_dict_from_url = _no_download
        model_zoo.load_url = _no_download
        yield
    finally:
        for owner, attr, value in saved:
            setattr(owner, attr, value)
        torch.hub.load_state_dict_from_url = hub_saved
        model_zoo.load_url = zoo_saved
        sys.path.remove(str(clone))
        forget()


def import_from(module: str):
    return importlib.import_module(module)


def save_fixture(name: str, tensors: Dict[str, torch.Tensor], meta: Dict) -> Path:
    """Write `fixtures/NAME.pt` and `fixtures/NAME.json`; return the .pt path."""
    FIXTURES.mkdir(parents=True, exist_ok=True)
    path = FIXTURES / f"{name}.pt"
    torch.save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, path)
    (FIXTURES / f"{name}.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def load_fixture(name: str) -> Tuple[Dict[str, torch.Tensor], Dict]:
    """The tensors and the metadata of a fixture (no unpickling beyond tensors)."""
    tensors = torch.load(FIXTURES / f"{name}.pt", map_location="cpu", weights_only=True)
    meta = json.loads((FIXTURES / f"{name}.json").read_text())
    return tensors, meta


def seeded_state(model: torch.nn.Module, seed: int) -> Dict[str, torch.Tensor]:
    """Perturb the BN running statistics of `model` deterministically (fresh BN stats are 0 / 1, which
    would hide a mapping error between two BN layers) and return its state dict."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
            module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=generator))
            if module.weight is not None:
                module.weight.data.copy_(0.5 + torch.rand(module.weight.shape, generator=generator))
                module.bias.data.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
    return model.state_dict()


def perturb_group_norms(model: torch.nn.Module, seed: int) -> None:
    """Set every GroupNorm's affine from `seed` (weights in [0.5, 1.5], biases ~ 0.1 N(0, 1)): fresh ones are
    1 / 0, which would hide a mapping error between two of them."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.GroupNorm):
            module.weight.data.copy_(0.5 + torch.rand(module.weight.shape, generator=generator))
            module.bias.data.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))


def statistics_from(backbone: torch.nn.Module, forward) -> None:
    """Set the BN statistics of `backbone` from one call of `forward()` (momentum 1), then back to eval: centred
    features of both signs, so that random-init features are not nearly parallel."""
    norms = [m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.momentum = 1.0
        torch.nn.Module.train(norm, True)
    with torch.no_grad():
        forward()
    for norm in norms:
        norm.momentum = 0.1
        norm.eval()


def their_reduced_sam(sam_modeling, reduced: Dict, size: int, state: Dict[str, torch.Tensor]):
    """The authors' vendored SAM (`sam_modeling`: their `segment_anything.modeling`) built as the harness's reduced
    SAM (`reduced`: methods.foundation.build_sam's keys; input `size`), given `state`, in eval mode."""
    from functools import partial

    r = reduced
    sam = sam_modeling.Sam(
        image_encoder=sam_modeling.ImageEncoderViT(
            depth=r["depth"], embed_dim=r["embed_dim"], img_size=size, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=r["heads"], patch_size=16, qkv_bias=True,
            use_rel_pos=True, global_attn_indexes=(r["depth"] - 1,), window_size=r["window"], out_chans=r["prompt_dim"]),
        prompt_encoder=sam_modeling.PromptEncoder(
            embed_dim=r["prompt_dim"], image_embedding_size=(size // 16, size // 16), input_image_size=(size, size),
            mask_in_chans=16),
        mask_decoder=sam_modeling.MaskDecoder(
            num_multimask_outputs=3, transformer_dim=r["prompt_dim"], iou_head_depth=3, iou_head_hidden_dim=r["decoder_mlp"],
            transformer=sam_modeling.TwoWayTransformer(depth=2, embedding_dim=r["prompt_dim"], mlp_dim=r["decoder_mlp"],
                                                       num_heads=r["decoder_heads"])),
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375])
    sam.load_state_dict(state)
    return sam.eval()


def their_dcama_outputs(network, query: torch.Tensor, supports: torch.Tensor, float_masks: torch.Tensor, shots: int):
    """Their DCAMA (pawn-sxy/DCAMA `model.DCAMA`) on a batch: the 1-shot logits of every episode, and for the first
    episode the `shots`-shot mask of `predict_mask_nshot` and the logits it takes the argmax of (their own calls,
    before its resize)."""
    with torch.no_grad():
        one_shot = network(query, supports[:, 0], float_masks[:, 0])
        batch = {"query_img": query[:1], "support_imgs": supports[:1], "support_masks": float_masks[:1]}
        shot_mask = network.predict_mask_nshot(batch, nshot=shots)
        query_feats = network.extract_feats(query[:1])
        shot_feats = [network.extract_feats(supports[:1, k]) for k in range(shots)]
        shot_logits = network.model(query_feats, shot_feats, float_masks[:1].clone(), shots)
    return one_shot, shot_mask, shot_logits


def redraw_vectors(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Every 1-d parameter (biases, norm affines, layer scales) of `model` drawn anew from `generator`: weights
    around 1, layer-scale gammas around 0.5, the others around 0 (zeros and ones would hide a misplaced one)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                noise = torch.randn(p.shape, generator=generator)
                p.copy_(1 + 0.2 * noise if name.endswith("weight") else 0.1 * noise if "gamma" not in name else 0.5 + 0.2 * noise)
