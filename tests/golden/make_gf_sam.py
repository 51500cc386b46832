"""Golden fixture for GF-SAM: the authors' `GFSAM` (ANDYZAQ/GF-SAM, matcher/GFSAM.py, with their vendored dinov2
and segment_anything) run on CPU with our seeded reduced foundation models (the `REDUCED` options: a 4-block
DINOv2 ViT-S/14 at 224 and a small SAM at 256), on seeded episodes of 1 and 2 shots.

    git clone <bare or remote ANDYZAQ/GF-SAM> /tmp/gfsam
    python -m tests.golden.make_gf_sam --clone /tmp/gfsam

Patched at run time, never in their files: `.cuda()`, downloads, and their hard-coded DINOv2 input of 518
(`encoder_img_size`, `encoder_feat_size`, `encoder_transform` set on the instance to REDUCED's 224). Their
ViT and SAM are built with the same dimensions and given our weights (the same state-dict names, less their
unused `mask_token`). The fixture holds the predicted masks, the point prompts and a checksum of the weights.
"""
from __future__ import annotations

from functools import partial
from typing import Dict, Tuple

import torch

from methods.gf_sam import GFSAM
from tests.golden.authors import redraw_vectors, their_reduced_sam, authors_code, clone_arguments, import_from, save_fixture

NAME = "gf-sam-reduced"
SEED = 5
REDUCED = {"dino": "vit_small", "dino_size": 224, "dino_overrides": {"depth": 4},
           "sam_reduced": {"img_size": 256, "embed_dim": 96, "depth": 2, "heads": 2, "window": 4,
                           "prompt_dim": 64, "decoder_mlp": 128, "decoder_heads": 2}}
SIZE = 256
EPISODES = ((1, 0), (2, 1), (1, 2))  # (shots, episode seed); 0 and 2: many clusters, the fallback mask


def seeded_model(seed: int = SEED) -> GFSAM:
    """Our reduced GF-SAM: PyTorch's default initialisation from `seed`, then every 1-d parameter (biases, norm
    affines, layer scales) drawn anew (zeros and ones would hide a misplaced one)."""
    torch.manual_seed(seed)
    model = GFSAM(**REDUCED).eval()
    generator = torch.Generator().manual_seed(seed)
    redraw_vectors(model, generator)
    return model


def fingerprint(model: GFSAM) -> torch.Tensor:
    """Sum and sum of squares of every parameter (no forward pass: exact across thread counts up to summation)."""
    return torch.tensor([[p.detach().double().sum(), p.detach().double().square().sum()] for p in model.parameters()])


def episode(shots: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Query [3, S, S], supports [K, 3, S, S] in [0, 1] (multiples of 1/255), masks [K, S, S]: smooth seeded
    colour fields with a brighter rectangle, the masks those rectangles."""
    g = torch.Generator().manual_seed(seed)

    def image():
        base = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=(SIZE, SIZE), mode="bilinear",
                                               align_corners=False)[0] * 0.6
        mask = torch.zeros(SIZE, SIZE)
        y, x = (torch.randint(0, SIZE // 2, (2,), generator=g)).tolist()
        mask[y:y + SIZE // 3, x:x + SIZE // 3] = 1
        base = base + 0.4 * mask * torch.tensor([0.9, 0.3, 0.5]).view(3, 1, 1)
        return (base.clamp(0, 1) * 255).round() / 255, mask

    pairs = [image() for _ in range(shots + 1)]
    return pairs[0][0], torch.stack([p[0] for p in pairs[1:]]), torch.stack([p[1] for p in pairs[1:]])


def theirs(clone, model: GFSAM):
    """Their GFSAM with our weights and the reduced sizes."""
    with authors_code(clone, hide=("segment_anything", "dinov2", "matcher", "utils")):
        vits = import_from("dinov2.models.vision_transformer")
        layers = import_from("dinov2.layers")
        sam_modeling = import_from("segment_anything.modeling")
        predictor_cls = import_from("segment_anything").SamPredictor
        gfsam_module = import_from("matcher.GFSAM")
        transforms = import_from("torchvision.transforms")
        data_transforms = import_from("dinov2.data.transforms")
        vit = model.encoder.vit
        dino = vits.DinoVisionTransformer(img_size=REDUCED["dino_size"], patch_size=14, embed_dim=vit.embed_dim,
                                          depth=len(vit.blocks), num_heads=vit.blocks[0].attn.num_heads, mlp_ratio=4,
                                          init_values=1e-5, ffn_layer="mlp", block_chunks=0,
                                          block_fn=partial(layers.NestedTensorBlock, attn_class=layers.MemEffAttention))
        state = dict(vit.state_dict(), mask_token=torch.zeros_like(dino.mask_token))
        dino.load_state_dict(state)
        dino.eval()
        r = REDUCED["sam_reduced"]
        ours = model.sam
        sam = their_reduced_sam(sam_modeling, r, SIZE, ours.state_dict())
        net = gfsam_module.GFSAM(encoder=dino, generator=predictor_cls(sam), input_size=SIZE, device=torch.device("cpu"))
        size = REDUCED["dino_size"]
        net.encoder_img_size, net.encoder_feat_size = size, size // 14
        net.encoder_transform = transforms.Compose([
            data_transforms.MaybeToTensor(),
            transforms.Resize(size, interpolation=transforms.InterpolationMode.BILINEAR),
            data_transforms.make_normalize_transform(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))])
        return net


def main(argv=None) -> None:
    clone, commit = clone_arguments(__doc__, "ANDYZAQ/GF-SAM", argv)
    model = seeded_model()
    net = theirs(clone, model)
    tensors: Dict[str, torch.Tensor] = {"fingerprint": fingerprint(model)}
    maps = []
    find_points = net.find_points
    net.find_points = lambda sim_map, feats: (maps.append(sim_map[0].clone()), find_points(sim_map, feats))[1]
    with torch.no_grad():
        for shots, seed in EPISODES:
            query, supports, masks = episode(shots, seed)
            net.set_reference(supports[None], masks[None].clone())
            net.set_target(query[None])
            pred, (points, states) = net.predict()
            net.clear()
            tensors[f"prompt_map{shots}-{seed}"] = maps[-1]
            tensors[f"pred{shots}-{seed}"] = pred[0].bool()
            tensors[f"points{shots}-{seed}"] = torch.as_tensor(points)
            tensors[f"states{shots}-{seed}"] = torch.as_tensor(states)
            print(f"{shots}-shot: {len(points)} points, foreground {pred.mean().item():.3f}")
    meta = {"repository": "ANDYZAQ/GF-SAM", "commit": commit, "seed": SEED, "options": REDUCED,
            "episodes": [list(e) for e in EPISODES], "size": SIZE, "torch": torch.__version__}
    print(save_fixture(NAME, tensors, meta))


if __name__ == "__main__":
    main()
