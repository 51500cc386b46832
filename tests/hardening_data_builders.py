"""Inputs of the data-hardening cases (tests/test_hardening_data.py): tiny COCO / VOC / SBD / DeepGlobe
archives and roots, with an `edit` hook that damages them the way a careless or hostile user would."""
from __future__ import annotations

import copy
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import scipy.io as scipy_io
from PIL import Image

H, W = 6, 8
COCO_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
TRAIN_NAMES = [f"COCO_train2014_{n:012d}.jpg" for n in (1, 2)]
VAL_NAMES = [f"COCO_val2014_{n:012d}.jpg" for n in (3, 4, 5)]


def jpeg(seed: int, height: int = H, width: int = W) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), seed * 40 % 256, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def png(label: np.ndarray, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(label.astype(np.uint8), mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(side: int = 20000) -> bytes:
    """A ~100-byte PNG whose header declares side x side pixels (Pillow's DecompressionBombError)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def coco_instances(names: List[str], first_id: int) -> dict:
    """80 categories; each image one polygon of category 1 (class 1, tested in split 1)."""
    images = [{"id": first_id + k, "file_name": n, "height": H, "width": W} for k, n in enumerate(names)]
    anns = [{"id": 100 + im["id"], "image_id": im["id"], "category_id": 1, "iscrowd": 0, "bbox": [1, 1, 4, 3],
             "area": 12, "segmentation": [[1, 1, 5, 1, 5, 4, 1, 4]]} for im in images]
    return {"images": images, "annotations": anns,
            "categories": [{"id": i, "name": f"cat{i}", "supercategory": "x"} for i in COCO_IDS]}


Edit = Optional[Callable[[dict], object]]


def coco_json_pair(edit: Edit = None) -> Dict[str, dict]:
    """{"train2014": ..., "val2014": ...}; `edit(val)` damages the val2014 file (in place or by returning one)."""
    data = {"train2014": coco_instances(TRAIN_NAMES, 1), "val2014": coco_instances(VAL_NAMES, 3)}
    if edit is not None:
        edited = edit(data["val2014"])
        data["val2014"] = data["val2014"] if edited is None else edited
    return data


def dumps(data) -> str:
    return data if isinstance(data, str) else json.dumps(data)


def write_zip(path: Path, members: Dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def coco_zips(folder: Path, edit: Edit = None, images: Optional[Dict[str, bytes]] = None) -> List[str]:
    """train2014.zip, val2014.zip, annotations zip under `folder`; the CLI arguments of `prepare coco20i`
    (without --out). `images` replaces or adds val2014 image members."""
    folder.mkdir(parents=True, exist_ok=True)
    data = coco_json_pair(edit)
    val = {f"val2014/{n}": jpeg(k) for k, n in enumerate(VAL_NAMES)}
    val.update(images or {})
    paths = (write_zip(folder / "train2014.zip", {f"train2014/{n}": jpeg(k) for k, n in enumerate(TRAIN_NAMES)}),
             write_zip(folder / "val2014.zip", val),
             write_zip(folder / "annotations.zip", {f"annotations/instances_{s}.json": dumps(d)
                                                    for s, d in data.items()}))
    return ["--train-zip", str(paths[0]), "--val-zip", str(paths[1]), "--annotations", str(paths[2])]


def prepare_coco_args(folder: Path, out: Path, edit: Edit = None, **kwargs) -> List[str]:
    return ["prepare", "coco20i", *coco_zips(folder, edit, **kwargs), "--out", str(out), "--quiet"]


def coco_root(root: Path, edit: Edit = None) -> Path:
    """The official layout (images + instances JSON) that `bench run --dataset coco20i` reads."""
    data = coco_json_pair(edit)
    for subset, names in (("train2014", TRAIN_NAMES), ("val2014", VAL_NAMES)):
        (root / subset).mkdir(parents=True, exist_ok=True)
        for k, name in enumerate(names):
            (root / subset / name).write_bytes(jpeg(k))
    (root / "annotations").mkdir(exist_ok=True)
    for subset, d in data.items():
        (root / "annotations" / f"instances_{subset}.json").write_text(dumps(d))
    return root


def run_coco_args(root: Path, out: Path) -> List[str]:
    return ["run", "--methods", "support-copy", "--dataset", "coco20i", "--data-root", str(root), "--splits", "1",
            "--shots", "1", "--seeds", "0", "--episodes", "2", "--input-size", "32", "--out", str(out), "--quiet"]


# ---- PASCAL (VOC tar + SBD tgz) ----

VOC_IDS = ["2007_000032", "2008_000002"]


def sbd_mat(label: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    scipy_io.savemat(buffer, {"GTcls": {"Segmentation": label.astype(np.uint8), "Boundaries": np.zeros(1),
                                        "CategoriesPresent": np.unique(label)}})
    return buffer.getvalue()


def write_tar(path: Path, members: Dict[str, bytes], mode: str) -> Path:
    with tarfile.open(path, mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def pascal_archives(folder: Path, sbd_extra: Optional[Dict[str, bytes]] = None) -> List[str]:
    """VOC tar, SBD tgz and a one-fold list; the arguments of `prepare pascal5i` (without --out)."""
    folder.mkdir(parents=True, exist_ok=True)
    label = np.zeros((H, W), np.uint8)
    label[1:4, 1:4] = 1
    voc = {f"VOCdevkit/VOC2012/JPEGImages/{i}.jpg": jpeg(n) for n, i in enumerate(VOC_IDS)}
    voc["VOCdevkit/VOC2012/SegmentationClass/2007_000032.png"] = png(label)
    sbd = {f"benchmark_RELEASE/dataset/cls/{i}.mat": sbd_mat(label * 15) for i in VOC_IDS}
    sbd.update(sbd_extra or {})
    lists = folder / "lists"
    (lists / "trn").mkdir(parents=True, exist_ok=True)
    (lists / "trn" / "fold0.txt").write_text("2007_000032__01\n2008_000002__15\n")
    return ["--voc", str(write_tar(folder / "voc.tar", voc, "w")),
            "--sbd", str(write_tar(folder / "benchmark.tgz", sbd, "w:gz")), "--lists", str(lists)]


def prepare_pascal_args(folder: Path, out: Path, **kwargs) -> List[str]:
    return ["prepare", "pascal5i", *pascal_archives(folder, **kwargs), "--out", str(out), "--quiet"]


# ---- DeepGlobe ----

def deepglobe_src(folder: Path, side: int = 48) -> Path:
    """Two <id>_sat.jpg / <id>_mask.png pairs: agriculture above the diagonal, forest below, so the 6 diagonal
    tiles of PATNet's 6 x 6 grid are kept, the others dropped."""
    folder.mkdir(parents=True, exist_ok=True)
    ys, xs = np.mgrid[:side, :side]
    rgb = np.where((xs > ys)[..., None], np.array([255, 255, 0], np.uint8), np.array([0, 255, 0], np.uint8))
    for n, stem in enumerate(("100", "101")):
        Image.fromarray(rgb.astype(np.uint8)).save(folder / f"{stem}_mask.png")
        Image.fromarray(np.full((side, side, 3), 90 + n, np.uint8)).save(folder / f"{stem}_sat.jpg")
    return folder


def prepare_deepglobe_args(src: Path, out: Path) -> List[str]:
    return ["prepare", "deepglobe", "--src", str(src), "--out", str(out), "--quiet"]


def copy_tree(source: Path, target: Path) -> Path:
    if not target.exists():
        shutil.copytree(source, target)
    return target


def edited(function: Callable[[dict], None]) -> Callable[[dict], dict]:
    """An edit that works on a deep copy, so that a case never changes another's data."""
    def edit(data: dict) -> dict:
        data = copy.deepcopy(data)
        function(data)
        return data
    return edit


# ---- archives holding a huge, highly compressible member (built without holding it in memory) ----

HUGE = 1536 << 20  # 1.5 GB: the member of the 7 MB .tgz that used to take 3.8 GB


class _Zeros(io.RawIOBase):
    def __init__(self, size: int, byte: bytes = b"\0"):
        self.left, self.byte = size, byte

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = self.byte * n
        self.left -= n
        return n


def add_huge_tar_member(archive: tarfile.TarFile, name: str, size: int = HUGE) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    archive.addfile(info, io.BufferedReader(_Zeros(size), 1 << 20))


def huge_sbd(folder: Path, member: str) -> List[str]:
    """VOC tar and an SBD tgz whose `member` is 1.5 GB of zeros (7 MB compressed) before the real masks."""
    args = pascal_archives(folder)
    sbd = Path(args[args.index("--sbd") + 1])
    members = {}
    with tarfile.open(sbd, "r:gz") as archive:
        for info in archive.getmembers():
            members[info.name] = archive.extractfile(info).read()
    with tarfile.open(sbd, "w:gz", compresslevel=1) as archive:
        add_huge_tar_member(archive, member)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return args


def huge_zip_member(path: Path, name: str, byte: bytes = b"\0", size: int = HUGE) -> None:
    """Add `name`, `size` bytes of `byte` (deflated to a few MB), to the zip at `path`."""
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open(name, "w", force_zip64=True) as handle:
            block = byte * (1 << 20)
            for _ in range(size >> 20):
                handle.write(block)
