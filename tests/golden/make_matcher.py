"""Golden fixture for Matcher: the authors' `Matcher` (aim-uofa/Matcher, matcher/Matcher.py with their vendored
dinov2 and amended segment_anything) run on CPU with our seeded reduced foundation models (a 4-block DINOv2
ViT-S/14 at 112, a small SAM at 128), on seeded episodes of 1 to 5 shots, in both of their configurations
(COCO's: matched points, random prompt subsets, the score filter; FSS's: k-means++ centres, every combination,
top-k merging), with point grids and thresholds reduced so that random weights keep some masks; and the
bidirectional matching alone at 224 (16 x 16 tokens), where more than 40 pairs are halved.

    git --git-dir=<mirror of aim-uofa/Matcher> archive HEAD | tar -x -C /tmp/matcher-clone
    python -m tests.golden.make_matcher --clone /tmp/matcher-clone --commit <HEAD's sha>

Needs their imports, not the harness's: POT (`ot`), opencv (`cv2`), scikit-learn. Patched at run time, never in
their files: `.cuda()`, downloads, `np.int` (gone from NumPy). Python's and torch's global generators are
seeded with 0 before each prediction (ours: per-episode generators from our `seed` option, 0).
The fixture holds the matched points, the prompts, the proposals' metrics, the prediction and a checksum of
the weights.
"""
from __future__ import annotations

import random
from functools import partial
from typing import Dict, Tuple

import numpy as np
import torch

from methods.matcher import Matcher
from tests.golden.authors import redraw_vectors, their_reduced_sam, authors_code, clone_arguments, import_from, save_fixture

NAME = "matcher-reduced"
SEED = 5
SIZE = 112
MODELS = {"dino": "vit_small", "input_size": SIZE, "dino_overrides": {"depth": 4},
          "sam_reduced": {"img_size": 128, "embed_dim": 96, "depth": 2, "heads": 2, "window": 4, "prompt_dim": 64,
                          "decoder_mlp": 128, "decoder_heads": 2}}
#: their two configurations with fewer prompts and thresholds that random weights pass
REDUCED = {
    "coco20i": {"points_per_side": 6, "max_sample_iterations": 6, "sample_range": (1, 4), "pred_iou_thresh": 0.0,
                "stability_score_thresh": 0.1, "sel_pred_iou_thresh": 0.0, "sel_stability_score_thresh": 0.1,
                "box_nms_thresh": 1.0, "purity_filter": 0.02, "deep_score_norm_filter": 0.01},
    "fss1000": {"num_centers": 5, "sample_range": (3, 4), "topk_scores_threshold": 0.7},
}
#: COCO's at 224 (16 x 16 tokens: more than 40 matched pairs, their halving)
REDUCED["coco20i_224"] = REDUCED["coco20i"]
SIZES = {"coco20i_224": 224}
#: (config, shots, episode seed) whose bidirectional matching alone is compared: more than 40 pairs in 5 shots
MATCHING = (("coco20i_224", 5, 0), ("coco20i_224", 3, 1))
#: (config, shots, episode seed)
EPISODES = (("coco20i", 1, 0), ("coco20i", 2, 1), ("coco20i", 5, 0), ("fss1000", 1, 3), ("fss1000", 3, 7))


def episode(shots: int, seed: int, size: int = SIZE) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Query [3, S, S], supports [K, 3, S, S] in [0, 1] (multiples of 1/255), masks [K, S, S]: smooth seeded
    colour fields with a brighter rectangle (up to half the side), the masks those rectangles."""
    g = torch.Generator().manual_seed(seed)

    def image():
        base = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=(size, size), mode="bilinear",
                                               align_corners=False)[0] * 0.6
        mask = torch.zeros(size, size)
        y, x, h, w = torch.randint(0, size // 2, (4,), generator=g).tolist()
        mask[y:y + size // 4 + h // 2, x:x + size // 4 + w // 2] = 1
        base = base + 0.4 * mask * torch.tensor([0.9, 0.3, 0.5]).view(3, 1, 1)
        return (base.clamp(0, 1) * 255).round() / 255, mask

    pairs = [image() for _ in range(shots + 1)]
    return pairs[0][0], torch.stack([p[0] for p in pairs[1:]]), torch.stack([p[1] for p in pairs[1:]])


def seeded_model(config: str = "coco20i", seed: int = SEED) -> Matcher:
    """Our reduced Matcher: PyTorch's default initialisation from `seed`, then every 1-d parameter drawn anew."""
    torch.manual_seed(seed)
    size = SIZES.get(config, SIZE)
    models = dict(MODELS, input_size=size, sam_reduced=dict(MODELS["sam_reduced"], img_size=size + size // 7))
    model = Matcher(config=config.split("_")[0], seed=0, **models, **REDUCED[config]).eval()
    generator = torch.Generator().manual_seed(seed)
    redraw_vectors(model, generator)
    with torch.no_grad():
        # random SAM logits are near 0 (stability 0 at offset 1) and mostly positive: larger ones, points that move
        # them more, and a negative offset (a constant upscaled channel, its hypernetwork weight a negative bias)
        decoder = model.sam.mask_decoder
        decoder.output_upscaling[3].bias[0] += 5
        for mlp in decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(60)
            mlp.layers[-1].bias.mul_(60)
            mlp.layers[-1].weight[0] = 0
            mlp.layers[-1].bias[0] = -0.6
        model.sam.prompt_encoder.point_embeddings[1].weight.mul_(10)
    return model


def fingerprint(model: Matcher) -> torch.Tensor:
    return torch.tensor([[p.detach().double().sum(), p.detach().double().square().sum()] for p in model.parameters()])


def pack(mask: torch.Tensor) -> torch.Tensor:
    """A boolean mask as bits (uint8)."""
    return torch.from_numpy(np.packbits(mask.bool().numpy().ravel()))


def mask_stats(masks: torch.Tensor) -> torch.Tensor:
    """[M, H, W] bool -> [M, 6] int64: area, box (x0, y0, x1, y1), sum of the flat indices of the pixels."""
    if len(masks) == 0:
        return torch.zeros(0, 6, dtype=torch.long)
    flat = masks.flatten(1).long()
    ys, xs = masks.any(2), masks.any(1)
    first = lambda a: a.float().argmax(1)  # noqa: E731
    last = lambda a: a.shape[1] - 1 - a.flip(1).float().argmax(1)  # noqa: E731
    return torch.stack([flat.sum(1), first(xs), first(ys), last(xs), last(ys),
                        (flat * torch.arange(flat.shape[1])).sum(1)], dim=1).long()


def theirs(clone, model: Matcher, config: str):
    """Their Matcher with our weights, their generator built as their build_matcher_oss does from the options."""
    cfg = model.cfg
    with authors_code(clone, hide=("segment_anything", "dinov2", "matcher", "utils")):
        vits = import_from("dinov2.models.vision_transformer")
        layers = import_from("dinov2.layers")
        sam_modeling = import_from("segment_anything.modeling")
        generator_cls = import_from("segment_anything").SamAutomaticMaskGenerator
        matcher_module = import_from("matcher.Matcher")
        vit = model.encoder.vit
        dino = vits.DinoVisionTransformer(img_size=model.input_size, patch_size=14, embed_dim=vit.embed_dim, depth=len(vit.blocks),
                                          num_heads=vit.blocks[0].attn.num_heads, mlp_ratio=4, init_values=1e-5,
                                          ffn_layer="mlp", block_chunks=0,
                                          block_fn=partial(layers.NestedTensorBlock, attn_class=layers.MemEffAttention))
        dino.load_state_dict(dict(vit.state_dict(), mask_token=torch.zeros_like(dino.mask_token)))
        dino.eval()
        r = MODELS["sam_reduced"]
        size = model.sam.image_encoder.img_size
        sam = their_reduced_sam(sam_modeling, r, size, model.sam.state_dict())
        # main_oss.py's mapping of its arguments (output_layer 3: every output of a multi-mask prompt)
        generator = generator_cls(
            sam, points_per_side=cfg["points_per_side"], points_per_batch=cfg["points_per_batch"],
            pred_iou_thresh=cfg["pred_iou_thresh"], stability_score_thresh=cfg["stability_score_thresh"],
            stability_score_offset=1.0, sel_stability_score_thresh=cfg["sel_stability_score_thresh"],
            sel_pred_iou_thresh=cfg["sel_pred_iou_thresh"], box_nms_thresh=cfg["box_nms_thresh"], sel_output_layer=3,
            output_layer=0, dense_pred=cfg["dense"], multimask_output=False, sel_multimask_output=cfg["multimask"])
        score_filter_cfg = {"emd": cfg["emd_filter"], "purity": cfg["purity_filter"], "coverage": cfg["coverage_filter"],
                            "score_filter": cfg["score_filter"], "score": cfg["deep_score_filter"],
                            "score_norm": cfg["deep_score_norm_filter"],
                            "topk_scores_threshold": cfg["topk_scores_threshold"]}
        return matcher_module.Matcher(
            encoder=dino, generator=generator, input_size=model.input_size, num_centers=cfg["num_centers"], use_box=False,
            use_points_or_centers=cfg["use_points"], sample_range=cfg["sample_range"],
            max_sample_iterations=cfg["max_sample_iterations"], alpha=cfg["alpha"], beta=cfg["beta"], exp=cfg["exp"],
            score_filter_cfg=score_filter_cfg, num_merging_mask=cfg["num_merging_mask"][0],
            device=torch.device("cpu")), matcher_module


def run_theirs(net, module, shots: int, seed: int) -> Dict[str, torch.Tensor]:
    """Their prediction of one episode and what it passed on the way (points, prompts, metrics)."""
    seen = {}
    rps_scores = module.RobustPromptSampler.get_mask_scores
    generate = net.generator.generate

    def scores(self, *args, **kwargs):
        purity, coverage, emd, *rest = rps_scores(self, *args, **kwargs)
        seen.setdefault("metrics", []).append((float(emd), float(purity), float(coverage)))
        return (purity, coverage, emd, *rest)

    def generated(image, select_point_coords=None, **kwargs):
        seen["prompt_sets"] = [torch.as_tensor(s) for s in select_point_coords]
        out = generate(image, select_point_coords=select_point_coords, **kwargs)
        seen["proposals"] = torch.stack([torch.as_tensor(a["segmentation"]) for a in out])
        return out

    query, supports, masks = episode(shots, seed, net.input_size[0])
    net.num_merging_mask = 9 if shots == 1 else 5
    if not net.use_points_or_centers:
        net.num_merging_mask = 10 if shots == 1 else 5
    random.seed(0)  # our model's `seed` option
    torch.manual_seed(0)
    np_int = getattr(np, "int", None)
    np.int = int
    module.RobustPromptSampler.get_mask_scores = scores
    net.generator.generate = generated
    matching = net.patch_level_matching
    net.patch_level_matching = lambda **kw: (lambda out: (seen.__setitem__("points", torch.as_tensor(out[0])), out)[1])(
        matching(**kw))
    try:
        net.set_reference(supports[None], masks[None].clone())
        net.set_target(query[None])
        pred = net.predict()
        net.clear()
    finally:
        module.RobustPromptSampler.get_mask_scores = rps_scores
        del net.generator.generate, net.patch_level_matching
        if np_int is None:
            del np.int
    metrics = torch.tensor(seen["metrics"], dtype=torch.float32)
    return {"points": seen["points"], "proposals": mask_stats(seen["proposals"]), "emd": metrics[:, 0],
            "purity": metrics[:, 1], "coverage": metrics[:, 2], "pred": pack(pred[0]),
            **{f"prompts{i}": s for i, s in enumerate(seen["prompt_sets"])}}


def main(argv=None) -> None:
    clone, commit = clone_arguments(__doc__, "aim-uofa/Matcher", argv)
    tensors: Dict[str, torch.Tensor] = {}
    for config in REDUCED:
        model = seeded_model(config)
        tensors[f"fingerprint-{config}"] = fingerprint(model)
        net, module = theirs(clone, model, config)
        with torch.no_grad():
            for name, shots, seed in EPISODES:
                if name != config:
                    continue
                out = run_theirs(net, module, shots, seed)
                for key, value in out.items():
                    tensors[f"{config}-{shots}-{seed}-{key}"] = value
                print(f"{config} {shots}-shot: {len(out['points'])} points, {len(out['proposals'])} proposals, "
                      f"foreground {np.unpackbits(out['pred'].numpy()).mean():.3f}")
            for name, shots, seed in MATCHING:
                if name != config:
                    continue
                query, supports, masks = episode(shots, seed, SIZES.get(config, SIZE))
                net.set_reference(supports[None], masks[None].clone())
                net.set_target(query[None])
                points = net.patch_level_matching(*net.extract_img_feats())[0]
                net.clear()
                tensors[f"{config}-{shots}-{seed}-matched"] = torch.as_tensor(points)
                print(f"{config} {shots}-shot matching: {len(points)} points")
    meta = {"repository": "aim-uofa/Matcher", "commit": commit, "seed": SEED, "models": MODELS,
            "reduced": {k: {o: list(v) if isinstance(v, tuple) else v for o, v in c.items()} for k, c in REDUCED.items()},
            "episodes": [list(e) for e in EPISODES], "matching": [list(e) for e in MATCHING], "size": SIZE,
            "sizes": SIZES, "torch": torch.__version__}
    print(save_fixture(NAME, tensors, meta))


if __name__ == "__main__":
    main()
