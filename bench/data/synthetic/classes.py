"""The 20 synthetic object classes: each is a conjunction (shape, texture, palette) plus a scene preference.

The table is designed so that no single attribute identifies a class:
  * every shape family is used by exactly 2 classes, and the two always sit in different folds and
    differ in texture and palette (a novel class has a same-shape twin among the base classes);
  * every texture and every palette is used by 3 or 4 classes, and each test fold contains at least one
    pair sharing a texture and one pair sharing a palette;
  * no two classes share the same (texture, palette);
  * classes sharing a shape or a palette have different primary scenes.
`check_class_table()` asserts all of this (the tests call it).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

SHAPES = ("ellipse", "triangle", "square", "hexagon", "star", "cross", "ring", "crescent", "blob", "heart")
TEXTURES = ("solid", "stripes", "checker", "dots", "rings", "mottled")
TEXTURE_ADJECTIVES = {
    "solid": "plain", "stripes": "striped", "checker": "checkered",
    "dots": "dotted", "rings": "ringed", "mottled": "mottled",
}
SCENES = ("meadow", "sky", "water", "sand", "wood", "brick")

# Palette = two base colours (RGB in [0, 1]); instances jitter hue/saturation/value around them.
PALETTES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "crimson": ((0.78, 0.10, 0.14), (0.96, 0.78, 0.22)),  # deep red + gold
    "azure": ((0.13, 0.36, 0.86), (0.90, 0.94, 0.99)),    # blue + near white
    "lime": ((0.36, 0.74, 0.14), (0.96, 0.92, 0.30)),     # green + yellow
    "violet": ((0.48, 0.20, 0.70), (0.96, 0.56, 0.80)),   # purple + pink
    "amber": ((0.96, 0.56, 0.10), (0.38, 0.21, 0.09)),    # orange + dark brown
    "slate": ((0.17, 0.19, 0.23), (0.93, 0.91, 0.83)),    # charcoal + ivory
}
PALETTE_NAMES = tuple(PALETTES)

# Upright families only rotate a little (like people/bottles in photos); the rest rotate freely.
UPRIGHT_SHAPES = {"triangle": 0.45, "heart": 0.45}  # max |rotation| in radians


@dataclass(frozen=True)
class ClassDef:
    index: int           # 1-based label value
    shape: str
    texture: str
    palette: str
    primary_scene: str
    secondary_scene: str

    @property
    def name(self) -> str:
        return f"{self.palette}_{TEXTURE_ADJECTIVES[self.texture]}_{self.shape}"

    def attributes(self) -> dict:
        return {
            "index": self.index, "name": self.name, "shape": self.shape, "texture": self.texture,
            "palette": self.palette, "primary_scene": self.primary_scene,
            "secondary_scene": self.secondary_scene,
            "scene_probabilities": dict(zip(SCENES, map(float, scene_distribution(self)))),
        }


# (shape, texture, palette, primary scene, secondary scene); row i is class i+1.
# Fold f (0-based) tests classes 5f+1..5f+5.
_TABLE = (
    # fold 0
    ("hexagon", "stripes", "violet", "wood", "sky"),
    ("triangle", "dots", "slate", "brick", "meadow"),
    ("star", "checker", "azure", "meadow", "wood"),
    ("ellipse", "dots", "amber", "sky", "brick"),
    ("square", "stripes", "slate", "sand", "water"),
    # fold 1
    ("cross", "checker", "crimson", "meadow", "wood"),
    ("ring", "solid", "slate", "sky", "water"),
    ("crescent", "checker", "lime", "brick", "sand"),
    ("heart", "rings", "violet", "meadow", "water"),
    ("star", "stripes", "lime", "wood", "meadow"),
    # fold 2
    ("cross", "mottled", "lime", "sky", "brick"),
    ("crescent", "mottled", "crimson", "sky", "sand"),
    ("ring", "mottled", "azure", "sand", "sky"),
    ("triangle", "stripes", "amber", "meadow", "sky"),
    ("blob", "solid", "crimson", "water", "wood"),
    # fold 3
    ("heart", "solid", "azure", "brick", "sky"),
    ("ellipse", "solid", "violet", "water", "sand"),
    ("blob", "dots", "azure", "wood", "meadow"),
    ("square", "rings", "amber", "water", "brick"),
    ("hexagon", "rings", "crimson", "sand", "meadow"),
)

CLASSES: tuple[ClassDef, ...] = tuple(ClassDef(i + 1, *row) for i, row in enumerate(_TABLE))
CLASS_NAMES: list[str] = [c.name for c in CLASSES]
N_CLASSES = len(CLASSES)

# Class-scene co-occurrence: 50% primary, 25% secondary, 25% spread evenly over the other scenes.
P_PRIMARY_SCENE = 0.50
P_SECONDARY_SCENE = 0.25


def scene_distribution(c: ClassDef, context: float | None = None) -> np.ndarray:
    """P(scene | anchor class `c`): the default benchmark's (context None), or at a context level in [0, 1]
    the mixture that moves from uniform (0: scenes independent of the class) through the default's
    (0.5) to the primary scene only (1), linearly on each half."""
    others = len(SCENES) - 2
    p = np.full(len(SCENES), (1.0 - P_PRIMARY_SCENE - P_SECONDARY_SCENE) / others)
    p[SCENES.index(c.primary_scene)] = P_PRIMARY_SCENE
    p[SCENES.index(c.secondary_scene)] = P_SECONDARY_SCENE
    if context is None:
        return p
    if context <= 0.5:
        start, end, t = np.full(len(SCENES), 1.0 / len(SCENES)), p, 2.0 * context
    else:
        start, end, t = p, np.eye(len(SCENES))[SCENES.index(c.primary_scene)], 2.0 * context - 1.0
    return (1.0 - t) * start + t * end




def confusers(class_index: int, table: tuple[ClassDef, ...] = CLASSES) -> list[int]:
    """1-based classes that share the shape or the palette of `class_index` (excluding itself)."""
    me = table[class_index - 1]
    return [c.index for c in table
            if c.index != class_index and (c.shape == me.shape or c.palette == me.palette)]


def _pretraining_table(n: int = 40, seed: int = 2024) -> tuple[ClassDef, ...]:
    """Classes for pretraining the synthetic benchmark's backbone (the ImageNet stand-in).

    Shape, texture and palette primitives are shared with the benchmark (as ImageNet shares edges,
    textures and colours with PASCAL), but no pretraining class has the (texture, palette) of any
    benchmark class, so no benchmark class, test or train, is ever seen in pretraining.
    """
    used = {(c.texture, c.palette) for c in CLASSES}
    combos = [(s, t, p) for s in SHAPES for t in TEXTURES for p in PALETTE_NAMES if (t, p) not in used]
    rng = np.random.default_rng(seed)
    rows = []
    for k in rng.choice(len(combos), size=n, replace=False):
        primary, secondary = rng.choice(len(SCENES), size=2, replace=False)
        rows.append((*combos[k], SCENES[primary], SCENES[secondary]))
    return tuple(ClassDef(i + 1, *row) for i, row in enumerate(rows))


PRETRAIN_CLASSES: tuple[ClassDef, ...] = _pretraining_table()


def fold_classes(fold: int) -> list[int]:
    """1-based test classes of fold `fold` (0-based): 5f+1 .. 5f+5."""
    return list(range(5 * fold + 1, 5 * fold + 6))


def check_class_table() -> None:
    """Assert the design constraints that make the benchmark a genuine few-shot problem."""
    shapes = Counter(c.shape for c in CLASSES)
    textures = Counter(c.texture for c in CLASSES)
    palettes = Counter(c.palette for c in CLASSES)
    assert N_CLASSES == 20 and len(set(CLASS_NAMES)) == 20
    assert set(shapes) == set(SHAPES) and all(n == 2 for n in shapes.values()), shapes
    assert set(textures) == set(TEXTURES) and all(3 <= n <= 4 for n in textures.values()), textures
    assert set(palettes) == set(PALETTES) and all(3 <= n <= 4 for n in palettes.values()), palettes
    assert len({(c.texture, c.palette) for c in CLASSES}) == 20
    for a in CLASSES:
        assert a.primary_scene != a.secondary_scene
        for b in CLASSES:
            if a.index >= b.index:
                continue
            if a.shape == b.shape:
                assert (a.index - 1) // 5 != (b.index - 1) // 5, (a.name, b.name)
                assert a.texture != b.texture and a.palette != b.palette, (a.name, b.name)
            if a.shape == b.shape or a.palette == b.palette:
                assert a.primary_scene != b.primary_scene, (a.name, b.name)
    for fold in range(4):
        members = [CLASSES[i - 1] for i in fold_classes(fold)]
        assert len({c.texture for c in members}) < 5, fold
        assert len({c.palette for c in members}) < 5, fold
