"""Protocol fixture of HSNet (Min, Kang, Cho, Hypercorrelation Squeeze for Few-Shot Segmentation, ICCV
2021): the authors' own test pipeline (juhongm999/hsnet: `FSSDataset` / `DatasetPASCAL` reading the
voc-sized tree, their torchvision transform, their HypercorrSqueezeNetwork, their `test.test` loop and
`Evaluator`) run end to end on the committed episodes, with the seeded ResNet-50 weights of make_hsnet.

    python -m tests.golden.make_protocol_hsnet --clone /work/clones/hsnet

Writes fixtures/protocol-hsnet.json: per episode [fg_inter, fg_union, bg_inter, bg_union] for nshot 1 and
5, scored at IMG_SIZE (use_original_imgsize False) and at the original size (True), float32 as their test.

Run-time patches, their files untouched: `.cuda()` a no-op, downloads refused (`authors_code`);
torchvision `resnet50(pretrained=True)` -> `resnet50(weights=None)` (the weights are ours);
`DatasetPASCAL.sample_episode` returns the manifest's episode and `DatasetPASCAL.__len__` the number of
episodes (their 1000); `Evaluator.classify_prediction` wrapped to record each episode's area_inter /
area_union (rows 0 = background, 1 = foreground); `torch.histc` accepts integer tensors (their 1-shot
prediction is an int64 argmax: CUDA's histc takes it, the CPU's does not; cast to float32, exact);
`Logger.info` collected (their Logger is never
initialised: it would make a log folder). Their split list is read from `data/splits/pascal/val/fold0.txt`
relative to the working directory: the script runs in a temporary folder where that path is the
fixture's list.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

import torch

from methods.hsnet import hsnet_keymap
from tests.golden.authors import authors_code, clone_arguments, import_from
from tests.golden.make_hsnet import SEED, seeded_model
from tests.golden.protocol_fixture import FIXTURES, MANIFESTS, episode_record, manifests, voc_sized_root

IMG_SIZE = 128  # their 400; 128 keeps layer4 at 4 x 4 (13 x 13 at 400) and a 5-shot episode a few seconds on CPU
NAME = "protocol-hsnet"
EXTRA_SHIFT = 0.018  # median foreground margin of seeded_model on these episodes: about half the pixels foreground


def protocol_model():
    """make_hsnet.seeded_model (float32) with the foreground bias lowered by EXTRA_SHIFT, so that predicted
    boundaries cross the objects (with seeded_model alone ~80% of each image is foreground)."""
    model = seeded_model().float()
    model.learner.decoder2[2].bias.data[1] -= EXTRA_SHIFT
    return model


@contextlib.contextmanager
def patched(owner, name, value):
    saved = vars(owner).get(name, getattr(owner, name))  # a classmethod kept as its descriptor
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, saved)


def histc_any_dtype(histc=torch.histc):
    """torch.histc accepting integer tensors on CPU, as it does on CUDA (cast to float32: exact counts)."""
    def wrapped(tensor, *args, **kwargs):
        return histc(tensor if tensor.is_floating_point() else tensor.float(), *args, **kwargs)
    return wrapped


def their_network(state, original: bool):
    """Their HypercorrSqueezeNetwork('resnet50', use_original_imgsize) with `state` (our keys) mapped in."""
    import torchvision.models.resnet as tv_resnet

    original_resnet = tv_resnet.resnet50
    with patched(tv_resnet, "resnet50", lambda *a, **k: original_resnet(weights=None)):
        network = import_from("model.hsnet").HypercorrSqueezeNetwork("resnet50", original)
    theirs = hsnet_keymap().to_authors(state)
    theirs.update({k: v for k, v in network.state_dict().items() if k.startswith("backbone.fc.")})
    network.load_state_dict(theirs, strict=True)
    return torch.nn.DataParallel(network.float().eval())  # their test calls model.module.predict_mask_nshot


def run_test(clone: Path, state, manifest, shot: int, original: bool):
    """Their `test.test` on the manifest's episodes; returns the episode records and their (mIoU, FB-IoU)."""
    root, lists = voc_sized_root()
    rows = list(manifest.itertuples(index=False))
    recorded, log = [], []
    with tempfile.TemporaryDirectory() as work, authors_code(clone, hide=("model", "common", "data", "test")):
        (Path(work) / "data" / "splits").mkdir(parents=True)
        os.symlink(lists.resolve(), Path(work) / "data" / "splits" / "pascal")
        cwd = os.getcwd()
        os.chdir(work)
        try:
            test = import_from("test")
            pascal = import_from("data.pascal").DatasetPASCAL
            evaluator = import_from("common.evaluation").Evaluator
            logger = import_from("common.logger").Logger

            def sample_episode(self, idx):
                row = rows[idx]
                return row.query, row.supports.split(), int(row.class_id) - 1

            classify = evaluator.classify_prediction

            def classify_prediction(pred_mask, batch):
                inter, union = classify(pred_mask, batch)
                row = rows[len(recorded)]
                assert batch["query_name"][0] == row.query and int(batch["class_id"][0]) == row.class_id - 1
                assert [s[0] for s in batch["support_names"]] == row.supports.split()
                recorded.append(episode_record(row, [inter[1, 0], union[1, 0], inter[0, 0], union[0, 0]]))
                return inter, union

            with patched(pascal, "sample_episode", sample_episode), \
                    patched(pascal, "__len__", lambda self: len(rows)), \
                    patched(evaluator, "classify_prediction", classify_prediction), \
                    patched(torch, "histc", histc_any_dtype()), \
                    patched(logger, "info", classmethod(lambda cls, msg: log.append(msg))):
                evaluator.initialize()
                import_from("common.vis").Visualizer.initialize(False)
                test.FSSDataset.initialize(img_size=IMG_SIZE, datapath=str(root.resolve()), use_original_imgsize=original)
                loader = test.FSSDataset.build_dataloader("pascal", 1, 0, 0, "test", shot)
                with torch.no_grad():
                    miou, fb_iou = test.test(their_network(state, original), loader, shot)
        finally:
            os.chdir(cwd)
    assert len(recorded) == len(rows)
    return recorded, (float(miou), float(fb_iou))


def main(argv=None) -> None:
    import json

    clone, commit = clone_arguments(__doc__.splitlines()[0], "juhongm999/hsnet", argv)
    state = protocol_model().state_dict()
    by_shot = manifests()
    counts, configurations, their_scores = {}, {}, {}
    for shot in (1, 5):
        for original in (False, True):
            name = f"shot{shot}-{'original' if original else f'size{IMG_SIZE}'}"
            start = time.time()
            counts[name], their_scores[name] = run_test(clone, state, by_shot[shot], shot, original)
            configurations[name] = {"shot": shot, "use_original_imgsize": original,
                                    "eval_size": None if original else IMG_SIZE}
            fg = sum(r["counts"][0] for r in counts[name]) / max(1, sum(r["counts"][1] for r in counts[name]))
            print(f"{name}: {time.time() - start:.1f} s, their mIoU/FB-IoU {their_scores[name]}, summed fg IoU {fg:.3f}")
    meta = {"repository": "juhongm999/hsnet", "commit": commit, "img_size": IMG_SIZE, "seed": SEED,
            "dtype": "float32", "backbone": "resnet50", "configurations": configurations,
            "episodes": sorted(p.name for p in MANIFESTS.glob("*.csv")), "data": "fixtures/voc-sized",
            "weights": f"make_protocol_hsnet.protocol_model(): make_hsnet.seeded_model(seed), float32, foreground bias "
                       f"-{EXTRA_SHIFT}; mapped by hsnet_keymap().to_authors",
            "their_scores": {k: {"miou": v[0], "fb_iou": v[1]} for k, v in their_scores.items()},
            "note": "their_scores: test.test's return (mIoU over the fold's 5 classes, absent ones count 0)"}
    path = FIXTURES / f"{NAME}.json"
    path.write_text(json.dumps({"meta": meta, "counts": counts}, indent=1, sort_keys=True) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
