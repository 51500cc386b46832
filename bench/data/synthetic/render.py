"""Compose one image: scene, clutter, 1-3 labelled objects in z-order, ignore band, camera effects."""
from __future__ import annotations

import numpy as np

from bench.data.base import IGNORE
from bench.data.synthetic.classes import CLASSES, SCENES, ClassDef, confusers, scene_distribution
from bench.data.synthetic.scenes import class_clutter, render_background, sample_clutter
from bench.data.synthetic.shapes import rasterize, sample_pose, sample_shape_params
from bench.data.synthetic.textures import render_object_colour, sample_palette, sample_texture_params

MIN_PIXELS = 24                       # a (image, class) pair is listed only with this many visible px
N_OBJECTS_P = (0.45, 0.35, 0.20)      # P(1, 2, 3 labelled objects)
P_CONFUSER = 0.40                     # distractor shares the anchor's shape or palette
P_SAME_CLASS = 0.08                   # distractor is a second instance of the anchor class
P_FOREGROUND_CLUTTER = 0.25           # an unlabelled occluder in front of the objects
P_NEAR_ANCHOR = 0.40                  # distractor placed overlapping/next to the anchor


def image_rng(seed: int, pool_id: int, index: int) -> np.random.Generator:
    return np.random.default_rng([0, seed, pool_id, index])


def scene_affinity(table: tuple[ClassDef, ...]) -> np.ndarray:
    """[class, scene] = P(scene | anchor class): draws scenes and scene-driven distractors."""
    return np.stack([scene_distribution(c) for c in table])


def choose_classes(rng: np.random.Generator, anchor: int, scene: int, table: tuple[ClassDef, ...] = CLASSES) -> list[int]:
    n = 1 + int(rng.choice(3, p=N_OBJECTS_P))
    out = [anchor]
    affinity = scene_affinity(table)[:, scene].copy()
    affinity[anchor - 1] = 0.0
    affinity /= affinity.sum()
    for _ in range(n - 1):
        r = rng.random()
        if r < P_CONFUSER:
            pool = confusers(anchor, table)
            out.append(int(pool[rng.integers(len(pool))]))
        elif r < P_CONFUSER + P_SAME_CLASS:
            out.append(anchor)
        else:
            out.append(1 + int(rng.choice(len(table), p=affinity)))
    return out


def ignore_band(owner: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """~1 px band on every instance boundary: of two 4-adjacent pixels owned by different instances
    (or an instance and the background), the less certain one (lower coverage) is marked."""
    band = np.zeros(owner.shape, dtype=bool)
    for axis in (0, 1):
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        diff = owner[a] != owner[b]
        first = conf[a] <= conf[b]
        band[a] |= diff & first
        band[b] |= diff & ~first
    return band


def camera(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Global photometric variation, vignetting, occasional defocus, sensor noise."""
    h, w, _ = img.shape
    img = img.astype(np.float32)
    mean = img.mean()
    img = (img - mean) * rng.uniform(0.8, 1.2) + mean + rng.uniform(-0.08, 0.08)
    img = img * np.exp(rng.normal(0.0, 0.04, 3))
    yy, xx = np.ogrid[:h, :w]
    r2 = ((yy - h / 2) / h) ** 2 + ((xx - w / 2) / w) ** 2
    img = img * (1.0 - rng.uniform(0.0, 0.5) * r2)[..., None]
    if rng.random() < 0.3:
        from scipy.ndimage import gaussian_filter  # here: the dataset cards (`bench --help`) need no scipy

        s = rng.uniform(0.3, 0.7)
        img = gaussian_filter(img, (s, s, 0))
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(0.004, 0.025)
    return np.clip(np.rint(np.clip(img, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)


def render_image(seed: int, pool_id: int, index: int, anchor: int, min_size: int, max_size: int,
                 table: tuple[ClassDef, ...] = CLASSES, context: float | None = None):
    """Returns (rgb uint8 (H, W, 3), label uint8 (H, W), meta dict); labels index into `table`.

    `context` (a level in [0, 1], or None for the default benchmark): how strongly the background
    follows the anchor class: the scene distribution (`scene_distribution`) and the fraction of
    clutter items drawn from the anchor's own clutter table instead of the scene's.
    """
    rng = image_rng(seed, pool_id, index)
    h, w = (int(x) for x in rng.integers(min_size, max_size + 1, 2))
    scene = int(rng.choice(len(SCENES), p=scene_distribution(table[anchor - 1], context)))
    classes = choose_classes(rng, anchor, scene, table)
    order = rng.permutation(len(classes))
    light_angle = rng.uniform(0, 2 * np.pi)  # one light per image, in image coordinates (y up)

    img, clutter = render_background(SCENES[scene], rng, h, w)
    drawn = []                           # per clutter item: from the anchor's own table?

    def clutter_table():
        # no draw at all without a context level, so that the default benchmark stays byte-identical
        own = context is not None and rng.random() < context
        drawn.append(own)
        return class_clutter(anchor) if own else clutter

    for _ in range(int(rng.integers(2, 9))):
        item = sample_clutter(rng, clutter_table(), h, w)
        if item is not None:
            colour, fp = item
            box = img[fp.y0:fp.y1, fp.x0:fp.x1]
            shade = 1.0 + 0.12 * (fp.u * np.cos(light_angle) + fp.v * np.sin(light_angle))
            box += (colour * shade[..., None] - box) * fp.alpha[..., None]

    weights = [np.ones((h, w))]          # weights[0] = background ownership
    owner_class = [0]
    own_px, truncation = [], []          # per drawn instance: unoccluded area, touches the border
    poses = []
    for k, cls in enumerate(classes):
        near = poses[0] if k > 0 and rng.random() < P_NEAR_ANCHOR else None
        poses.append(sample_pose(table[cls - 1].shape, rng, h, w, anchor=k == 0, near=near))
    for k in order:
        c = table[classes[k] - 1]
        pose = poses[k]
        params = sample_shape_params(c.shape, rng)
        tex = sample_texture_params(c.texture, rng, pose.radius)
        c1, c2 = sample_palette(c.palette, rng)
        light = (light_angle + pose.theta, rng.uniform(0.08, 0.25), rng.uniform(0.05, 0.2))
        fp = rasterize(c.shape, params, pose, h, w)
        if fp is None:
            continue
        sl = (slice(fp.y0, fp.y1), slice(fp.x0, fp.x1))
        a = fp.alpha
        # soft contact shadow on what lies beneath, offset away from the light
        dx, dy = int(round(-np.cos(light_angle) * 2)), int(round(np.sin(light_angle) * 2))
        shadow = np.zeros((h + 4, w + 4))
        shadow[fp.y0 + 2 + dy:fp.y1 + 2 + dy, fp.x0 + 2 + dx:fp.x1 + 2 + dx] = a
        img *= (1.0 - 0.25 * shadow[2:h + 2, 2:w + 2])[..., None]
        colour = render_object_colour(c.texture, tex, c1, c2, fp.u, fp.v, pose.radius, light)
        img[sl] += (colour - img[sl]) * a[..., None]
        for wgt in weights:
            wgt[sl] *= 1.0 - a
        new = np.zeros((h, w))
        new[sl] = a
        weights.append(new)
        owner_class.append(c.index)
        solid = a > 0.5
        truncated = bool((fp.y0 == 0 and solid[0].any()) or (fp.y1 == h and solid[-1].any())
                         or (fp.x0 == 0 and solid[:, 0].any()) or (fp.x1 == w and solid[:, -1].any()))
        own_px.append(int(solid.sum()))
        truncation.append(truncated)

    if rng.random() < P_FOREGROUND_CLUTTER:
        item = sample_clutter(rng, clutter_table(), h, w, foreground=True)
        if item is not None:
            colour, fp = item
            sl = (slice(fp.y0, fp.y1), slice(fp.x0, fp.x1))
            img[sl] += (colour - img[sl]) * fp.alpha[..., None]
            for wgt in weights:
                wgt[sl] *= 1.0 - fp.alpha
            weights[0][sl] += fp.alpha

    stack = np.stack(weights)
    owner = stack.argmax(axis=0)
    conf = stack.max(axis=0)
    label = np.asarray(owner_class, dtype=np.uint8)[owner]
    label[ignore_band(owner, conf)] = IGNORE
    rgb = camera(rng, img)
    counts = np.bincount(label.ravel(), minlength=256)[1:len(table) + 1]
    shown = np.bincount(owner.ravel(), minlength=len(owner_class))[1:]
    occluded = [bool(v < 0.9 * a) for v, a in zip(shown.tolist(), own_px)]
    meta = {
        "scene": SCENES[scene], "anchor": anchor, "classes": classes, "n_objects": len(classes),
        "visible": {int(i + 1): int(n) for i, n in enumerate(counts) if n > 0},
        "size": (h, w), "truncated": truncation, "occluded": occluded,
        "clutter": len(drawn), "class_clutter": int(sum(drawn)),
    }
    return rgb, label, meta
