"""Golden fixtures of PFENet: THEIR model (dvlab-research/PFENet `model/PFENet.py`) run on CPU in double
precision with our seeded weights (mapped by the published entries' KeyMap), at 1 and 5 shots.

    python -m tests.golden.make_pfenet --clone /work/clones/dvlab-research+PFENet [--commit SHA]

Run-time patches (their files untouched): `cv2` (imported by their model file, unused by it) stubbed,
`.cuda()` a no-op and downloads refused (`authors_code`), their ImageNet loader never called
(`pretrained=False`). Fixtures: `pfenet-resnet50` (deep-stem ResNet-50, 97 x 97 inputs: 13 x 13
features; their PASCAL bins 60/30/15/8 scaled to that size, 13/7/4/2, given to both models: recorded in
the meta) and `pfenet-vgg16bn` (their VGG16-BN with their COCO fractional bins 1/0.5/0.25/0.125, 113 x 113
inputs: layer3/4 at 8 x 8, bins 8/4/2/1). Inputs are stored in float16
(exact in double on both sides), outputs in double. `pfenet-resize`: their test transform
(util/transform.py `Resize` as test.py uses it, to a 65 px square here) on seeded images and labels; made
only where the real `cv2` is importable.
"""
from __future__ import annotations

import sys
import types

import numpy as np
import torch

from methods import build_method
from methods.weights import WEIGHTS
from tests.golden.authors import authors_code, clone_arguments, import_from, save_fixture, seeded_state

SEED = 0
CASES = {
    # fixture: (published entry whose options and KeyMap are used, input side, bins overriding the entry's)
    # their bins 60/30/15/8 on 60 x 60 features, scaled to 13 x 13 (the first bin the whole map, as at 473):
    # at 97 px the 60-cell bin would only replicate cells and cost most of the run in its 3 x 3 convs
    "pfenet-resnet50": ("pfenet.pascal5i-fold0-resnet50", 97, [13, 7, 4, 2]),
    "pfenet-vgg16bn": ("pfenet.coco20i-fold0-vgg16bn", 113, None),
}


def harness_model(entry_name: str, seed: int = SEED, bins=None):
    """Our model with the entry's options, seeded: every conv re-drawn He-normal (fan-in, so that the
    signal neither dies nor dominates the biases through the ~70 layers) with small random biases under
    `seed`, then BN perturbed by `seeded_state`."""
    entry = WEIGHTS.get(entry_name)
    options = dict(entry.options)
    if bins is not None:
        options["bins"] = bins
    torch.manual_seed(seed)
    model = build_method("pfenet", **options).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                torch.nn.init.normal_(module.bias, std=0.1)
    seeded_state(model, seed)
    return model.double(), entry


def inputs(side: int, seed: int = SEED):
    """One query and five supports (float16 values), masks with a rectangle of foreground and some 255."""
    gen = torch.Generator().manual_seed(seed)
    query = torch.randn(1, 3, side, side, generator=gen).half()
    supports = torch.randn(1, 5, 3, side, side, generator=gen).half()
    masks = torch.zeros(1, 5, side, side, dtype=torch.uint8)
    for k in range(5):
        top, left = (int(v) for v in torch.randint(0, side // 2, (2,), generator=gen))
        masks[0, k, top:top + side // 3 + 4 * k, left:left + side // 2] = 1
        masks[0, k, -3:, :] = 255
    return query, supports, masks


def their_output(module, model, entry, shots: int, query, supports, masks, vgg: bool):
    their = module.PFENet(layers=50, classes=2, zoom_factor=8, pretrained=False, shot=shots,
                          ppm_scales=list(model.bins), vgg=vgg)
    their.load_state_dict(entry.keys.to_authors(model.state_dict()), strict=True)
    their.double().eval()
    with torch.no_grad():
        return their(query.double(), s_x=supports[:, :shots].double(), s_y=masks[:, :shots].double())


RESIZE_CASES = ((61, 83), (30, 20), (78, 52), (100, 150))  # (H, W) of images to their test transform; at
# (78, 52) torch's "nearest" picks other label rows than cv2's INTER_NEAREST
RESIZE_SIZE = 65


def their_resize(module) -> dict:
    """Their test transform (util/transform.py Resize, ToTensor, Normalize with their mean/std x 255) on
    seeded images and labels: the inputs (normalised as the harness does) and their outputs."""
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    transform = module.Compose([module.Resize(size=RESIZE_SIZE), module.ToTensor(),
                                module.Normalize(mean=[v * 255 for v in mean], std=[v * 255 for v in std])])
    rng = np.random.default_rng(SEED)
    out = {}
    for index, (height, width) in enumerate(RESIZE_CASES):
        image = rng.integers(0, 256, (height, width, 3)).astype(np.float32)
        label = rng.choice([0, 1, 255], size=(height, width), p=[0.5, 0.4, 0.1]).astype(np.uint8)
        their_image, their_label = transform(image.copy(), label.copy())
        ours = torch.from_numpy(image).permute(2, 0, 1) / 255
        ours = (ours - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
        out.update({f"image{index}": ours, f"label{index}": torch.from_numpy(label),
                    f"their_image{index}": their_image, f"their_label{index}": their_label.to(torch.uint8)})
    return out


def main(argv=None) -> None:
    clone, commit = clone_arguments(__doc__.splitlines()[0], "dvlab-research/PFENet", argv)
    try:  # their transform needs the real cv2 (opencv-python-headless); their model file only imports it
        import cv2  # noqa: F401, PLC0415
        with authors_code(clone):
            tensors = their_resize(import_from("util.transform"))
        save_fixture("pfenet-resize", tensors, {
            "repo": "dvlab-research/PFENet", "commit": commit, "seed": SEED, "size": RESIZE_SIZE,
            "cases": [list(c) for c in RESIZE_CASES], "cv2": cv2.__version__,
            "their_call": f"Compose([Resize(size={RESIZE_SIZE}), ToTensor(), Normalize(mean*255, std*255)])",
            "note": "image<i>: the harness's normalised input; their_image<i>, their_label<i>: their transform's output"})
        print("pfenet-resize", len(RESIZE_CASES), "cases")
    except ImportError:
        print("cv2 not installed: pfenet-resize not made (pip install opencv-python-headless to make it)")
        sys.modules.setdefault("cv2", types.ModuleType("cv2"))
    for name, (entry_name, side, bins) in CASES.items():
        model, entry = harness_model(entry_name, bins=bins)
        query, supports, masks = inputs(side)
        vgg = "vgg" in entry.options["backbone"]
        with authors_code(clone):
            module = import_from("model.PFENet")
            outputs = {f"out{k}": their_output(module, model, entry, k, query, supports, masks, vgg) for k in (1, 5)}
        save_fixture(name, {"query": query, "supports": supports, "masks": masks, **outputs}, {
            "repo": "dvlab-research/PFENet", "commit": commit, "seed": SEED, "entry": entry_name,
            "options": {**entry.options, "bins": list(model.bins)}, "input": [side, side], "shots": [1, 5],
            "dtype": "float64", "their_call": f"PFENet(layers=50, zoom_factor=8, pretrained=False, shot=k, "
                                              f"ppm_scales={list(model.bins)}, vgg={vgg}).eval()",
            "note": "inputs float16 (cast to double on both sides); out<k>: their logits at 1 and 5 shots"})
        print(name, {k: tuple(v.shape) for k, v in outputs.items()})


if __name__ == "__main__":
    main()
