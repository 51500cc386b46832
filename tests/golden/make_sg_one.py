"""Golden fixture of SG-One: the authors' OneModel (xiaomengyc/SG-One) run on the harness's seeded weights.

    python -m tests.golden.make_sg_one --clone /path/to/xiaomengyc+SG-One [--commit SHA]

Their code is Python-2-era; at run time (never in their files): `models/vgg/vgg_sg.py` is read, its two
Python 2 `print "..."` statements (in `restore`, which is not run) are rewritten as calls in memory and
the result executed as module `models.vgg.vgg_sg` (their `models/__init__.py` imports a missing
`models/vgg.py`, so the two packages are stood in by empty modules); `vgg16(pretrained=True)` is built
without the ImageNet download; `oneshot/onemodel_sg-one.py` (a name `import` cannot spell) is loaded
from its path. `Variable`, `F.upsample` and `.cuda()` (patched by `authors_code`) work as they are.
Saved: their 1-shot `forward` and `forward_5shot_avg` logits, the 5 per-shot logits and the OR mask of
`forward_5shot_max` / `get_pred_5shot_max`, on fixed seeded inputs, in double precision.
"""
from __future__ import annotations

import importlib.util
import re
import sys
import types
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from methods.sg_one import AUTHORS_KEYS, AUTHORS_OPTIONS  # noqa: E402
from tests.golden.authors import authors_code, clone_arguments, save_fixture  # noqa: E402
from tests.golden.make_panet import build_seeded, episode  # noqa: E402

NAME = "sg-one-vgg16"
SEED = 20181022
SHOTS = 5  # their k-shot functions are written for exactly 5


def build_ours(seed: int = SEED, **options) -> torch.nn.Module:
    """Our SG-One equal to the authors' model, seeded."""
    return build_seeded("sg-one", seed, **{**AUTHORS_OPTIONS, **options})


def load_their_model_module(clone: Path):
    """Their OneModel module, with `models.vgg.vgg_sg` made importable under Python 3 (see above)."""
    source_path = clone / "models" / "vgg" / "vgg_sg.py"
    source, count = re.subn(r'^(\s*)print "(.*)"\s*$', r'\1print("\2")', source_path.read_text(), flags=re.M)
    assert count == 2, f"expected the 2 Python 2 print statements of {source_path}, found {count}"
    for name in ("models", "models.vgg"):
        package = types.ModuleType(name)
        package.__path__ = []
        sys.modules[name] = package
    vgg = types.ModuleType("models.vgg.vgg_sg")
    vgg.__file__ = str(source_path)
    exec(compile(source, str(source_path), "exec"), vgg.__dict__)  # noqa: S102 - their code, golden script only
    built = vgg.vgg16
    vgg.vgg16 = lambda pretrained=False, **kwargs: built(pretrained=False, **kwargs)  # weights come from ours
    sys.modules["models.vgg.vgg_sg"] = sys.modules["models.vgg"].vgg_sg = vgg
    spec = importlib.util.spec_from_file_location("sg_one_onemodel", clone / "oneshot" / "onemodel_sg-one.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_theirs(clone: Path):
    query, supports, masks, _ = episode(SEED)
    fg = (masks == 1).double()  # their support masks are the binary class masks
    ours = build_ours()
    out = {"query": query.float(), "supports": supports.float(), "support_masks": masks.to(torch.uint8)}
    with authors_code(clone):
        theirs = load_their_model_module(Path(clone).resolve()).OneModel(None)
        theirs.load_state_dict(AUTHORS_KEYS.to_authors(ours.state_dict()), strict=True)
        theirs = theirs.double().eval()
        with torch.no_grad():
            _, similarity, vector, logits = theirs(query, supports[:, 0], None, fg[:, :1])
            out.update(logits_1shot=logits, similarity_1shot=similarity, vector_1shot=vector.flatten(1))
            images, shot_masks = [supports[0, k] for k in range(SHOTS)], [fg[0, k:k + 1] for k in range(SHOTS)]
            out["logits_5shot_avg"] = theirs.forward_5shot_avg(query, images, shot_masks)[3]
            max_outputs = theirs.forward_5shot_max(query, images, shot_masks)
            out["logits_5shot_max_per_shot"] = torch.stack(max_outputs[3], dim=1)  # [1, 5, 2, h, w]
            out["mask_5shot_max"] = theirs.get_pred_5shot_max(max_outputs, query)[1].to(torch.uint8)
    return out


def main(argv=None) -> None:
    clone, commit = clone_arguments(__doc__.splitlines()[0], "xiaomengyc/SG-One", argv)
    tensors = run_theirs(clone)
    meta = {"authors_repo": "xiaomengyc/SG-One", "commit": commit, "seed": SEED,
            "size": tuple(tensors["query"].shape[-2:]), "shots": [1, SHOTS], "options": AUTHORS_OPTIONS,
            "dtype": "float64", "their_model": "oneshot/onemodel_sg-one.py OneModel(None), vgg16 not pretrained",
            "runtime_patches": "vgg_sg.py's 2 Python 2 print statements rewritten in memory; empty models, "
                               "models.vgg packages; vgg16(pretrained=False); .cuda() a no-op"}
    print(save_fixture(NAME, tensors, meta))


if __name__ == "__main__":
    main()
