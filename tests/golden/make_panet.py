"""Golden fixture of PANet: the authors' FewShotSeg (kaixin96/PANet) run on the harness's seeded weights.

    python -m tests.golden.make_panet --clone /path/to/kaixin96+PANet [--commit SHA]

Builds our PANet with `AUTHORS_OPTIONS` from a fixed seed, maps its state dict onto their names with
`AUTHORS_KEYS`, loads it into THEIR model (CPU, double, strict) and saves their 1-way 1-shot and 5-shot
outputs (logits at image size) and alignment losses (train mode, `align=True`) on fixed seeded inputs.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from methods import build_method  # noqa: E402
from methods.panet import AUTHORS_KEYS, AUTHORS_OPTIONS  # noqa: E402
from tests.golden.authors import authors_code, clone_arguments, import_from, save_fixture, seeded_state  # noqa: E402

NAME = "panet-vgg16"
SEED = 20190801
SIZE = 65
SHOTS = (1, 5)
IGNORE = 255


def seeded_weights(model: torch.nn.Module, seed: int) -> None:
    """Every parameter from one seeded generator: conv weights N(0, 2 / fan_in), biases N(0, 0.1^2)
    (independent of torch's own initialisers, so the fixture does not depend on them)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param in sorted(model.named_parameters()):
            noise = torch.randn(param.shape, generator=generator, dtype=torch.float64)
            scale = (2.0 / param[0].numel()) ** 0.5 if param.dim() > 1 else 0.1
            param.copy_(noise * scale)


def build_seeded(method: str, seed: int, **options) -> torch.nn.Module:
    """The harness method with every parameter from `seed` (`seeded_weights`), double, eval mode.

    Built on the meta device (torch's own initialisation, 3 s of VGG16's unused classifier, is skipped):
    every parameter is then written by `seeded_weights`, and the model must have no buffers."""
    with torch.device("meta"):
        model = build_method(method, backbone_enum=None, **options)
    model = model.to_empty(device="cpu")
    assert not list(model.buffers()), "buffers would stay uninitialised: seed them too"
    seeded_weights(model, seed)
    seeded_state(model, seed)
    return model.double().eval()


def build_ours(seed: int = SEED) -> torch.nn.Module:
    """Our PANet equal to the authors' model, seeded."""
    return build_seeded("panet", seed, **AUTHORS_OPTIONS)


def episode(seed: int = SEED):
    """Query [1, 3, S, S], supports [1, 5, 3, S, S] (float32 values in double), {0, 1, 255} masks of the
    supports [1, 5, S, S] and of the query [1, S, S]: a random box of foreground ringed by void."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(1 + max(SHOTS), 3, SIZE, SIZE, generator=generator).double()
    masks = torch.zeros(1 + max(SHOTS), SIZE, SIZE, dtype=torch.long)
    for mask in masks:
        top, left = torch.randint(4, SIZE // 2, (2,), generator=generator).tolist()
        height, width = torch.randint(12, SIZE // 2, (2,), generator=generator).tolist()
        mask[top - 3:top + height + 3, left - 3:left + width + 3] = IGNORE
        mask[top:top + height, left:left + width] = 1
    return images[:1], images[None, 1:], masks[None, 1:], masks[:1]


def their_masks(masks: torch.Tensor):
    """Their 1-way fg / bg masks (dataloaders/customized.py getMask): fg = the class, bg = everything else."""
    return (masks == 1).double(), (masks != 1).double()


def run_theirs(clone: Path):
    query, supports, masks, query_mask = episode()
    fg, bg = their_masks(masks)
    ours = build_ours()
    out = {"query": query.float(), "supports": supports.float(), "support_masks": masks.to(torch.uint8),
           "query_mask": query_mask.to(torch.uint8)}
    with authors_code(clone):
        fewshot = import_from("models.fewshot")
        theirs = fewshot.FewShotSeg(pretrained_path=None, cfg={"align": True})
        theirs.load_state_dict(AUTHORS_KEYS.to_authors(ours.state_dict()), strict=True)
        theirs = theirs.double()
        for shots in SHOTS:
            args = ([[supports[:, k] for k in range(shots)]], [[fg[:, k] for k in range(shots)]],
                    [[bg[:, k] for k in range(shots)]], [query])
            with torch.no_grad():
                logits, _ = theirs.eval()(*args)
                train_logits, align = theirs.train()(*args)
            assert torch.equal(logits, train_logits), "their encoder has no train-mode layers"
            assert float(align) > 0, "pick a seed whose query prediction has foreground (PAR not skipped)"
            loss = F.cross_entropy(train_logits, query_mask, ignore_index=IGNORE) + align  # train.py's loss
            out[f"logits_{shots}shot"], out[f"align_{shots}shot"], out[f"loss_{shots}shot"] = logits, align, loss
    return out


def main(argv=None) -> None:
    clone, commit = clone_arguments(__doc__.splitlines()[0], "kaixin96/PANet", argv)
    tensors = run_theirs(clone)
    meta = {"authors_repo": "kaixin96/PANet", "commit": commit, "seed": SEED,
            "size": SIZE, "shots": list(SHOTS), "options": AUTHORS_OPTIONS, "dtype": "float64",
            "their_model": "models.fewshot.FewShotSeg(pretrained_path=None, cfg={'align': True})"}
    print(save_fixture(NAME, tensors, meta))


if __name__ == "__main__":
    main()
