"""Protocol fixture of PFENet (Tian et al., Prior Guided Feature Enrichment Network for Few-Shot
Segmentation, TPAMI 2020): the authors' own test pipeline (dvlab-research/PFENet: `util.dataset.SemData`
in mode val reading the voc-sized tree with cv2, their test transform, their PFENet, their
`test.validate` loop and `intersectionAndUnionGPU`) run end to end on the committed episodes, with the
seeded deep-stem ResNet-50 weights of make_pfenet.

    python -m tests.golden.make_protocol_pfenet --clone /work/clones/pfenet

Writes fixtures/protocol-pfenet.json: per episode [fg_inter, fg_union, bg_inter, bg_union] for shots 1
and 5 with their config's `resized_val: True` (util/transform.py `Resize` to VAL_SIZE), scored with
`ori_resize` True (the original label padded with 255 to a square; their config) and False (the
transformed label at VAL_SIZE); float32 as their test. Their PASCAL bins 60/30/15/8 (60 x 60 features at
473) are scaled to the 16 x 16 features of VAL_SIZE: 16/8/4/2.

Run-time patches, their files untouched: `.cuda()` a no-op, downloads refused (`authors_code`, and
`pretrained=False`); `torch.histc` accepts integer tensors (their int64 argmax; CUDA's histc takes it);
`SemData.__getitem__` wrapped: before calling theirs it sets `sub_class_file_list[class]` to the episode's
supports and replaces the `random` module their util/dataset.py uses by a script whose `randint` picks
the episode's class and its supports in manifest order (`data_list` is replaced by the episodes' queries);
`intersectionAndUnionGPU` as imported in their test.py wrapped to record each episode's counts (index 0 =
background, 1 = foreground). `validate` reads the module globals `args` (their config's values, with
split 999 so that it runs `len(val_loader)` episodes; SemData gets split 0) and `logger`, set here.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.golden.authors import authors_code, clone_arguments, import_from
from tests.golden.make_pfenet import SEED, harness_model
from tests.golden.make_protocol_hsnet import histc_any_dtype, patched
from tests.golden.protocol_fixture import FIXTURES, MANIFESTS, episode_record, manifests, voc_sized_root

VAL_SIZE = 121  # their 473; 8k + 1 with 16 x 16 features (their bins scaled by 16/60), seconds per episode on CPU
BINS = [16, 8, 4, 2]
ENTRY = "pfenet.pascal5i-fold0-resnet50"
NAME = "protocol-pfenet"
CONFIG = {"classes": 2, "ignore_label": 255, "manual_seed": 321, "fix_random_seed_val": True, "use_coco": False,
          "use_split_coco": False, "batch_size_val": 1, "multiprocessing_distributed": False, "rank": 0,
          "ngpus_per_node": 1, "layers": 50, "vgg": False}  # their config/pascal/pascal_split0_resnet50.yaml
READOUT = 1.246  # median ratio of the two channel halves' means on these episodes: about half the pixels foreground


def protocol_model():
    """make_pfenet.harness_model (float32) with its last 1x1 classifier replaced by a seeded readout:
    foreground = mean of a random half of the channels, background = READOUT x the other half's mean. With
    the random classifier the margins are thousands, negative almost everywhere (no object pixel predicted)."""
    model = harness_model(ENTRY, bins=BINS)[0].float()
    head = model.cls[3]
    half = head.in_channels // 2
    order = torch.randperm(head.in_channels, generator=torch.Generator().manual_seed(SEED))
    head.weight.data.zero_()
    head.bias.data.zero_()
    head.weight.data[1, order[:half]] = 1 / half
    head.weight.data[0, order[half:]] = READOUT / half
    return model


def paths(root: Path, image_id: str):
    return (os.path.join(str(root), "VOC2012/JPEGImages", image_id + ".jpg"),
            os.path.join(str(root), "VOC2012/SegmentationClassAug", image_id + ".png"))


def run_validate(clone: Path, model, manifest, shot: int, ori_resize: bool, resized_val: bool = True):
    """Their `test.validate` on the manifest's episodes; returns the episode records and its class mIoU."""
    root = voc_sized_root()[0].resolve()
    rows = list(manifest.itertuples(index=False))
    recorded, script = [], []

    def randint(a, b):
        value = script.pop(0)
        assert a <= value <= b, (a, b, value)
        return value

    with authors_code(clone, hide=("model", "util", "test")):
        test = import_from("test")
        dataset, transform = import_from("util.dataset"), import_from("util.transform")
        mean, std = [v * 255 for v in (0.485, 0.456, 0.406)], [v * 255 for v in (0.229, 0.224, 0.225)]
        resize = transform.Resize if resized_val else transform.test_Resize
        val_transform = transform.Compose([resize(size=VAL_SIZE), transform.ToTensor(),
                                           transform.Normalize(mean=mean, std=std)])
        list_file = Path(tempfile.mkdtemp()) / "val.txt"
        images = sorted({i for r in rows for i in [r.query, *r.supports.split()]})
        list_file.write_text("".join(f"VOC2012/JPEGImages/{i}.jpg VOC2012/SegmentationClassAug/{i}.png\n" for i in images))
        try:
            val_data = dataset.SemData(split=0, shot=shot, data_root=str(root), data_list=str(list_file),
                                       transform=val_transform, mode="val")
        finally:
            list_file.unlink()
            list_file.parent.rmdir()
        val_data.data_list = [paths(root, r.query) for r in rows]
        getitem = dataset.SemData.__getitem__

        def scripted_getitem(self, index):
            row = rows[index]
            label = np.array(Image.open(paths(root, row.query)[1]))
            present = [c for c in np.unique(label).tolist() if c in self.sub_val_list]
            self.sub_class_file_list = {c: [] for c in self.sub_val_list}
            self.sub_class_file_list[row.class_id] = [paths(root, s) for s in row.supports.split()]
            script[:] = [present.index(row.class_id) + 1] + [k + 1 for k in range(shot) for _ in (0, 1)]
            item = getitem(self, index)
            assert not script and int(item[4][0]) == self.sub_val_list.index(row.class_id)
            return item

        counting = test.intersectionAndUnionGPU

        def intersection_and_union(output, target, K, ignore_index=255):
            inter, union, new_target = counting(output, target, K, ignore_index)
            if len(recorded) < len(rows):
                recorded.append(episode_record(rows[len(recorded)], [inter[1], union[1], inter[0], union[0]]))
            else:  # their loop runs one episode more than test_num: the first again (the loader's next epoch)
                assert [int(v) for v in (inter[1], union[1], inter[0], union[0])] == recorded[0]["counts"]
            return inter, union, new_target

        their = import_from("model.PFENet").PFENet(
            layers=50, classes=2, zoom_factor=8, criterion=torch.nn.CrossEntropyLoss(ignore_index=255),
            BatchNorm=torch.nn.BatchNorm2d, pretrained=False, shot=shot, ppm_scales=BINS, vgg=False)
        their.load_state_dict(harness_entry_keys().to_authors(model.state_dict()), strict=True)
        loader = torch.utils.data.DataLoader(val_data, batch_size=1, shuffle=False, num_workers=0)
        test.args = argparse.Namespace(**CONFIG, split=999, ori_resize=ori_resize, resized_val=resized_val,
                                       val_size=VAL_SIZE, shot=shot)
        test.logger = logging.getLogger("pfenet-protocol")
        with patched(dataset, "random", types.SimpleNamespace(randint=randint)), \
                patched(dataset.SemData, "__getitem__", scripted_getitem), \
                patched(test, "intersectionAndUnionGPU", intersection_and_union), \
                patched(torch, "histc", histc_any_dtype()), torch.no_grad():
            _, _, _, _, class_miou = test.validate(loader, torch.nn.DataParallel(their.float()),
                                                   torch.nn.CrossEntropyLoss(ignore_index=255))
    assert len(recorded) == len(rows)
    return recorded, float(class_miou)


def harness_entry_keys():
    from methods.weights import WEIGHTS
    return WEIGHTS.get(ENTRY).keys


def main(argv=None) -> None:
    clone, commit = clone_arguments(__doc__.splitlines()[0], "dvlab-research/PFENet", argv)
    model = protocol_model()
    by_shot = manifests()
    counts, configurations, their_scores = {}, {}, {}
    for shot in (1, 5):
        for ori_resize in (True, False):
            name = f"shot{shot}-{'original' if ori_resize else f'size{VAL_SIZE}'}"
            start = time.time()
            counts[name], their_scores[name] = run_validate(clone, model, by_shot[shot], shot, ori_resize)
            configurations[name] = {"shot": shot, "ori_resize": ori_resize, "resized_val": True,
                                    "eval_size": None if ori_resize else VAL_SIZE}
            print(f"{name}: {time.time() - start:.1f} s, their class mIoU {their_scores[name]:.4f}")
    check, _ = run_validate(clone, model, by_shot[1], 1, True, resized_val=False)
    same = check == counts["shot1-original"]
    print("resized_val False (test_Resize) gives the same shot1-original counts:", same)
    meta = {"repository": "dvlab-research/PFENet", "commit": commit, "val_size": VAL_SIZE, "bins": BINS,
            "seed": SEED, "dtype": "float32", "entry": ENTRY, "configurations": configurations,
            "episodes": sorted(p.name for p in MANIFESTS.glob("*.csv")), "data": "fixtures/voc-sized",
            "weights": f"make_protocol_pfenet.protocol_model(): make_pfenet.harness_model(entry, bins=BINS), float32, last "
                       f"classifier a seeded half-channel readout (READOUT {READOUT}); mapped by the entry's KeyMap",
            "their_scores": {k: {"class_miou": v} for k, v in their_scores.items()},
            "test_resize_same": same,
            "note": "their_scores: validate's class mIoU over the fold's 5 classes (absent ones count 0); their "
                    "s_x stacks the supports in reverse order (s_x = cat([s_k, s_x])); supports are the "
                    "manifest's, not filtered by their 2 x 32 x 32 pixel rule (make_dataset)"}
    path = FIXTURES / f"{NAME}.json"
    path.write_text(json.dumps({"meta": meta, "counts": counts}, indent=1, sort_keys=True) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
