"""Background scenes (meadow, sky, water, sand, wood floor, brick wall) and unlabelled clutter.

Each scene is a procedural texture with its own colour and frequency statistics, jittered per image,
plus small "stuff" patches (flowers, birds, lily pads, pebbles, knots, moss...) that belong to no class
and stay label 0. Some clutter borrows class palette colours so that colour alone is never enough.
"""
from __future__ import annotations

import colorsys

import numpy as np

from bench.data.synthetic.classes import PALETTES, SCENES
from bench.data.synthetic.shapes import Pose, rasterize, sample_shape_params
from bench.data.synthetic.textures import jitter_colour

TAU = 2.0 * np.pi


def _smooth_index(coord: np.ndarray):
    i = np.floor(coord).astype(np.intp)
    f = coord - i
    return i, f * f * (3 - 2 * f)


def _separable(grid: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    iy, fy = _smooth_index(ys)
    ix, fx = _smooth_index(xs)
    rows = grid[iy] * (1 - fy)[:, None] + grid[iy + 1] * fy[:, None]
    return rows[:, ix] * (1 - fx) + rows[:, ix + 1] * fx


def noise2d(rng: np.random.Generator, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Smooth value noise in [0, 1] at real-valued lattice coordinates (y, x) (arrays of equal shape)."""
    y = y - y.min()
    x = x - x.min()
    grid = rng.random((int(np.floor(y.max())) + 2, int(np.floor(x.max())) + 2))
    if (y == y[:, :1]).all() and (x == x[:1]).all():        # axis-aligned: separable fast path
        return _separable(grid, y[:, 0], x[0])
    if (y == y[:1]).all() and (x == x[:, :1]).all():        # axis-aligned, transposed
        return _separable(grid, y[0], x[:, 0]).T
    iy, fy = _smooth_index(y)
    ix, fx = _smooth_index(x)
    top = grid[iy, ix] * (1 - fx) + grid[iy, ix + 1] * fx
    bot = grid[iy + 1, ix] * (1 - fx) + grid[iy + 1, ix + 1] * fx
    return top * (1 - fy) + bot * fy


def fractal(rng, yy, xx, cell: float, octaves: int = 3, gain: float = 0.5) -> np.ndarray:
    """Sum of noise octaves, normalised to [0, 1]; `cell` = size of the coarsest lattice cell in px."""
    out = np.zeros_like(yy)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        out += amp * noise2d(rng, yy / cell, xx / cell)
        total += amp
        amp *= gain
        cell /= 2.0
    return out / total


def _mix(a, b, t):
    return a * (1 - t[..., None]) + b * t[..., None]


def _meadow(rng, yy, xx, h, w):
    base, light, dark = (jitter_colour(c, rng, 0.03, 0.15, 0.12) for c in
                         ((0.30, 0.52, 0.18), (0.60, 0.66, 0.26), (0.10, 0.27, 0.08)))
    img = _mix(base, light, fractal(rng, yy, xx, rng.uniform(30, 60), 3) ** 1.5)
    slant = rng.uniform(-0.4, 0.4)
    blades = noise2d(rng, yy / rng.uniform(5, 10), (xx + slant * yy) / rng.uniform(1.0, 1.8))
    img = _mix(img, dark, np.clip((blades - 0.45) * 1.2, 0, 1))
    clutter = [((0.97, 0.97, 0.93), "blob"), ((0.98, 0.88, 0.25), "blob"), ((0.93, 0.55, 0.75), "blob"),
               ((0.16, 0.36, 0.10), "stick"), ((0.45, 0.30, 0.15), "stick")]
    return img, clutter


def _sky(rng, yy, xx, h, w):
    top = jitter_colour((0.28, 0.50, 0.88), rng, 0.03, 0.15, 0.1)
    bottom = jitter_colour((0.74, 0.85, 0.97) if rng.random() < 0.75 else (0.96, 0.74, 0.55), rng, 0.03, 0.1, 0.05)
    img = _mix(top, bottom, (yy / h) ** rng.uniform(0.7, 1.5))
    cloud = fractal(rng, yy * rng.uniform(1.5, 2.5), xx, rng.uniform(30, 60), 4)
    thr = rng.uniform(0.45, 0.65)
    cover = np.clip((cloud - thr) / 0.18, 0, 1)
    white = jitter_colour((0.96, 0.96, 0.98), rng, 0.0, 0.0, 0.03)
    img = _mix(img, white * (0.85 + 0.15 * cloud[..., None]), cover)
    clutter = [((0.10, 0.10, 0.12), "stick"), ((0.20, 0.18, 0.20), "stick"), ((0.95, 0.95, 0.97), "blob"),
               ((0.85, 0.25, 0.20), "blob"), ((0.25, 0.25, 0.30), "blob")]
    return img, clutter


def _water(rng, yy, xx, h, w):
    deep = jitter_colour((0.04, 0.26, 0.40), rng, 0.04, 0.15, 0.12)
    shallow = jitter_colour((0.14, 0.48, 0.56), rng, 0.04, 0.15, 0.12)
    img = _mix(shallow, deep, np.clip(yy / h * rng.uniform(0.6, 1.2), 0, 1))
    img = img * (0.85 + 0.3 * fractal(rng, yy, xx, rng.uniform(30, 60), 2))[..., None]
    wob = fractal(rng, yy, xx * 0.5, rng.uniform(10, 20), 2)
    ripple = np.sin(TAU * (yy / rng.uniform(3.0, 6.0) + 2.0 * wob))
    img = img * (1.0 + 0.10 * ripple[..., None])
    glint = np.clip(ripple, 0, 1) ** 8 * np.clip((noise2d(rng, yy / 6, xx / 14) - 0.55) * 4, 0, 1)
    img = _mix(img, np.array([0.90, 0.96, 1.0]), 0.6 * glint)
    clutter = [((0.22, 0.50, 0.16), "blob"), ((0.30, 0.58, 0.20), "blob"), ((0.93, 0.96, 0.98), "blob"),
               ((0.55, 0.35, 0.15), "stick")]
    return img, clutter


def _sand(rng, yy, xx, h, w):
    base = jitter_colour((0.86, 0.76, 0.55), rng, 0.02, 0.15, 0.08)
    shade = jitter_colour((0.70, 0.58, 0.38), rng, 0.02, 0.15, 0.08)
    ang = rng.uniform(0, np.pi)
    along = xx * np.cos(ang) + yy * np.sin(ang)
    dune = np.sin(TAU * along / rng.uniform(5, 10) + 4.0 * fractal(rng, yy, xx, 30.0, 2))
    t = np.clip(0.35 * fractal(rng, yy, xx, 50.0, 2) + 0.12 * dune + 0.1, 0, 1)
    img = _mix(base, shade, t)
    img = img * (1.0 + 0.05 * rng.standard_normal((h, w, 1)))
    clutter = [((0.55, 0.53, 0.50), "blob"), ((0.40, 0.36, 0.32), "blob"), ((0.97, 0.90, 0.85), "blob"),
               ((0.25, 0.35, 0.15), "stick")]
    return img, clutter


def _wood(rng, yy, xx, h, w):
    if rng.random() < 0.5:
        yy, xx = xx, yy
    width = rng.uniform(9, 20)
    plank = np.floor((yy + rng.uniform(0, width)) / width).astype(np.intp)
    n = int(plank.max()) + 2
    base = jitter_colour((0.58, 0.38, 0.20), rng, 0.02, 0.2, 0.15)
    tone = np.exp(rng.normal(0, 0.12, n))[plank]
    grain = np.sin(TAU * (yy / rng.uniform(2.5, 4.5) + 2.0 * noise2d(rng, yy / 4, xx / 35) + plank * 0.37))
    img = base * (tone * (1.0 + 0.09 * grain))[..., None]
    across = np.mod(yy + rng.uniform(0, width), width)
    seam = (across < 1.0) | (across > width - 0.5)
    joints = rng.uniform(0, 200, n)[plank]
    seam |= np.abs(np.mod(xx - joints, 150) - 75) < 0.6
    img[seam] *= 0.55
    clutter = [((0.30, 0.18, 0.08), "blob"), ((0.25, 0.16, 0.10), "stick"), ((0.82, 0.72, 0.52), "stick")]
    return img, clutter


def _brick(rng, yy, xx, h, w):
    bh = rng.uniform(6, 11)
    bw = bh * rng.uniform(2.0, 2.6)
    oy = rng.uniform(0, bh)
    row = np.floor((yy + oy) / bh).astype(np.intp)
    shift = (row % 2) * 0.5 * bw
    col = np.floor((xx + shift) / bw).astype(np.intp)
    base = jitter_colour((0.62, 0.27, 0.18), rng, 0.025, 0.15, 0.12)
    table = np.exp(rng.normal(0, 0.13, (int(row.max()) + 1, int(col.max()) + 1, 3)))
    img = base * table[row, col]
    in_y = np.mod(yy + oy, bh)
    in_x = np.mod(xx + shift, bw)
    mortar = (in_y < 1.2) | (in_x < 1.2)
    img[mortar] = jitter_colour((0.72, 0.70, 0.66), rng, 0.0, 0.1, 0.08)
    grime = fractal(rng, yy, xx, 40.0, 3)
    img = img * (1.15 - 0.35 * grime[..., None]) * (1.0 + 0.04 * rng.standard_normal((h, w, 1)))
    clutter = [((0.25, 0.42, 0.15), "blob"), ((0.20, 0.20, 0.20), "blob"), ((0.85, 0.85, 0.80), "stick")]
    return img, clutter


_RENDERERS = {"meadow": _meadow, "sky": _sky, "water": _water, "sand": _sand, "wood": _wood, "brick": _brick}
assert tuple(_RENDERERS) == SCENES

_PALETTE_COLOURS = [c for pair in PALETTES.values() for c in pair]
_GOLDEN = (5 ** 0.5 - 1) / 2


def class_clutter(index: int) -> list:
    """The clutter colour table of class `index` in the context variants: its own hue (spread over the
    classes by the golden ratio), as a bright blob and a darker stick."""
    hue = (index * _GOLDEN) % 1.0
    return [(colorsys.hsv_to_rgb(hue, 0.75, 0.9), "blob"), (colorsys.hsv_to_rgb(hue, 0.6, 0.5), "stick")]


def render_background(scene: str, rng: np.random.Generator, h: int, w: int):
    """(h, w, 3) float image of the scene and its clutter colour table."""
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    img, clutter = _RENDERERS[scene](rng, yy, xx, h, w)
    return np.clip(img, 0.0, 1.0), clutter


def sample_clutter(rng: np.random.Generator, clutter: list, h: int, w: int, foreground: bool = False):
    """One unlabelled patch: (colour (3,), footprint) or None if it falls outside the image.

    Clutter is smaller than any object (radius <= 6-8% of the short side vs >= 10%), irregular or
    stick-like, and single-coloured; 30% of it takes a class palette colour (a colour-only distractor).
    """
    short = min(h, w)
    colour, kind = clutter[rng.integers(len(clutter))]
    if rng.random() < 0.3:
        colour = _PALETTE_COLOURS[rng.integers(len(_PALETTE_COLOURS))]
    colour = jitter_colour(colour, rng, 0.03, 0.15, 0.15)
    hi = 0.08 if foreground else 0.06
    radius = max(short * rng.uniform(0.025, hi), 2.0)
    aspect = rng.uniform(2.5, 5.0) if kind == "stick" else np.exp(rng.uniform(-0.5, 0.5))
    params = sample_shape_params("blob", rng)
    if kind == "stick":
        shape, params = "ellipse", {}
    else:
        shape = "blob"
        params["amp"] = [a * 1.8 for a in params["amp"]]
    pose = Pose(rng.uniform(0, w), rng.uniform(0, h), radius, rng.uniform(-np.pi, np.pi), aspect,
                (0.0, 1.0, 0.0, 0.0, 1.0, 0.0), (0.0, 0.0, 0.0, 0.0), 0.0)
    fp = rasterize(shape, params, pose, h, w, deform=False)
    return (None if fp is None else (np.asarray(colour), fp))
