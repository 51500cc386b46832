"""The dataset interface shared by PASCAL-5i, FSS-1000 and the synthetic benchmark."""
from __future__ import annotations

import contextlib
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from bench.core.errors import BenchError
from bench.core.fileio import sha256_bytes

Pair = Tuple[str, int]  # (image id, 1-based class id)
IGNORE = 255
INDEX_MODES = ("P", "L", "I", "I;16")


@contextlib.contextmanager
def open_image(source, name, kind: str = "image") -> Iterator[Image.Image]:
    """Image.open of a path or file object (`name` in messages), decoded inside the block: a missing,
    corrupt or decompression-bomb file (Pillow refuses one declaring over twice Image.MAX_IMAGE_PIXELS)
    is one BenchError naming it. Every image and mask the harness reads is opened here."""
    try:
        with Image.open(source) as image:
            yield image
    except FileNotFoundError:
        raise BenchError(f"{kind} file is missing: {name}") from None
    except Image.DecompressionBombError as exc:
        raise BenchError(f"{kind} file {name} is refused: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, BenchError):
            raise
        raise BenchError(f"corrupt {kind} file: {name} ({exc})") from None


def load_rgb(path: Path) -> np.ndarray:
    """Decode an image file to uint8 [H, W, 3]; a corrupt file is a BenchError naming it."""
    with open_image(path, path) as img:
        return np.asarray(img.convert("RGB"))


def load_index_png(path: Path) -> np.ndarray:
    """Decode a label PNG holding class indices (palette or grayscale) to an integer [H, W] array."""
    with open_image(path, path, "mask") as img:
        if img.mode not in INDEX_MODES:
            raise BenchError(f"mask {path} has mode {img.mode}; expected a palette or grayscale PNG of class indices")
        return np.asarray(img).astype(np.int32)


def load_grey(path: Path) -> np.ndarray:
    """Decode a mask file as 8-bit grey levels [H, W] (any mode, converted)."""
    with open_image(path, path, "mask") as img:
        return np.asarray(img.convert("L")).astype(np.int32)


def foreground(levels: np.ndarray) -> np.ndarray:
    """Foreground of a binary mask's grey levels: >= 128 (masks stored as 0/255, as the datasets ship them),
    or == 1 in a mask holding only 0 and 1 (as some re-distributions and conversion scripts store them;
    read at 128, such a mask would be silently empty)."""
    return levels >= (1 if levels.size and int(levels.max()) == 1 else 128)


def is_plain_name(name: str) -> bool:
    """An id or class name that names one file or folder: no separators, no whitespace, not '.' or '..'."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0") and \
        not any(c.isspace() for c in name)


def check_label_values(label: np.ndarray, path: Path, num_classes: int, ignore: int | None) -> np.ndarray:
    """Refuse a label map holding values that are neither a class (0..num_classes) nor the void label."""
    if label.size == 0 or (int(label.min()) >= 0 and int(label.max()) <= num_classes):
        return label
    valid = (label >= 0) & (label <= num_classes)
    if ignore is not None:
        valid |= label == ignore
    if not valid.all():
        bad = np.unique(label[~valid])
        shown = ", ".join(str(v) for v in bad[:6]) + (f" and {len(bad) - 6} more" if len(bad) > 6 else "")
        allowed = f"0..{num_classes}" + (f" and {ignore} (void)" if ignore is not None else "")
        raise BenchError(f"mask {path} holds unexpected values {shown} ({int((~valid).sum())} pixels); "
                         f"its dataset's labels are {allowed}")
    return label


def pairs_fingerprint(dataset: "FSSDataset", header: str, splits: Sequence[int], parts: Sequence[str],
                      part_key) -> str:
    """sha256 of `header`, then per (split, part) `part_key(part)` (an annotation hash), the pairs and the
    names and sizes of their images (-1: missing; contents are not re-read)."""
    digest = hashlib.sha256(f"{header}\n".encode())
    for split in splits:
        for part in parts:
            digest.update(f"{split}:{part}:{part_key(part)}\n".encode())
            pairs = dataset.pairs(split, part)
            digest.update("".join(f"{i},{c}\n" for i, c in pairs).encode())
            for image_id in sorted({i for i, _ in pairs}):
                path = dataset.image_path(image_id)
                digest.update(f"{image_id}\0{path.stat().st_size if path.is_file() else -1}\n".encode())
    return sha256_bytes(digest.hexdigest().encode())


def missing_files_error(kind: str, missing: Sequence[Path], where: str) -> BenchError:
    shown = ", ".join(str(p) for p in missing[:3])
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    return BenchError(f"{len(missing)} {kind} listed in {where} are missing: {shown}{more}")


class FSSDataset:
    """Base class. Subclasses define the class list, the (image, class) pair lists and file access."""

    name: str = "?"
    num_splits: int = 4
    #: input side length of the dataset's default evaluation profile
    default_input_size: int = 321
    #: label value meaning "ignore" in this dataset's label maps (None: no ignore label)
    ignore_label: int | None = IGNORE

    def class_names(self) -> Dict[int, str]:
        raise NotImplementedError

    def test_classes(self, split: int) -> List[int]:
        raise NotImplementedError

    def pairs(self, split: int, part: str) -> List[Pair]:
        """(image id, class id) pairs of a split; part 'test' (queries and supports) or 'train'."""
        raise NotImplementedError

    def image_path(self, image_id: str) -> Path:
        raise NotImplementedError

    def label_path(self, image_id: str) -> Path:
        raise NotImplementedError

    def read_label(self, image_id: str) -> np.ndarray:
        raise NotImplementedError

    def fingerprint(self, splits: Sequence[int], parts: Sequence[str] = ("test",)) -> str:
        """Content hash of the lists and files that the given splits use."""
        raise NotImplementedError

    # Shared behaviour -------------------------------------------------------------------------

    def check_split(self, split: int) -> None:
        if not 1 <= split <= self.num_splits:
            valid = "1" if self.num_splits == 1 else f"1..{self.num_splits}"
            raise BenchError(f"split {split} is outside {valid} for dataset {self.name}")

    def read_image(self, image_id: str) -> np.ndarray:
        return load_rgb(self.image_path(image_id))

    def read_sample(self, image_id: str) -> Tuple[np.ndarray, np.ndarray]:
        """Image and label map of one id, checked to have the same size."""
        image, label = self.read_image(image_id), self.read_label(image_id)
        if image.shape[:2] != label.shape:
            raise BenchError(
                f"image and mask sizes differ for {image_id}: {self.image_path(image_id)} is "
                f"{image.shape[1]}x{image.shape[0]}, {self.label_path(image_id)} is {label.shape[1]}x{label.shape[0]}"
            )
        return image, label

    def binary_mask(self, label: np.ndarray, class_id: int) -> np.ndarray:
        """uint8 mask of one class: 1 = class, 0 = background (other classes too), 255 = ignore."""
        mask = (label == class_id).astype(np.uint8)
        if self.ignore_label is not None:
            mask[label == self.ignore_label] = IGNORE
        return mask

    def check_files(self, split: int, part: str) -> None:
        """Raise one BenchError if images or masks of a list are missing (names a few and the count)."""
        ids = sorted({image_id for image_id, _ in self.pairs(split, part)})
        where = f"the {part} list of split {split}"
        for kind, path_of in (("images", self.image_path), ("masks", self.label_path)):
            missing = [p for p in map(path_of, ids) if not p.is_file()]
            if missing:
                raise missing_files_error(kind, missing, where)

    @lru_cache(maxsize=None)
    def class_pixel_count(self, image_id: str, class_id: int) -> int:
        """Number of pixels of `class_id` in the label of `image_id` (for the min-size filter)."""
        return int((self.read_label(image_id) == class_id).sum())
