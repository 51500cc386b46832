"""Shape families as implicit functions, plus per-instance pose and smooth deformation.

Every family is an implicit function f(u, v) of normalised object coordinates (the shape roughly fills
the unit disk, v points up, f < 0 inside). An object instance maps image pixels into that frame
(translation, rotation, anisotropic scale, low-frequency coordinate warp, radial perturbation, taper),
evaluates f only inside its bounding box and turns it into an anti-aliased coverage (alpha) by
dividing f by its numerical pixel gradient, i.e. a signed-distance-like function in pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.data.synthetic.classes import UPRIGHT_SHAPES

TAU = 2.0 * np.pi


def _polygon(u, v, n: int, phase: float) -> np.ndarray:
    """Regular convex n-gon with circumradius 1: max over edges of the signed edge distance."""
    apothem = np.cos(np.pi / n)
    f = None
    for k in range(n):
        ang = phase + TAU * k / n
        d = u * np.cos(ang) + v * np.sin(ang) - apothem
        f = d if f is None else np.maximum(f, d)
    return f


def _star(u, v, inner: float) -> np.ndarray:
    """5-pointed star, tips at radius 1 (one pointing up), inner vertices at radius `inner`."""
    rad = np.hypot(u, v)
    ang = np.arctan2(u, v)  # 0 = up
    sector = TAU / 5
    a = np.abs(np.mod(ang + sector / 2, sector) - sector / 2)
    px, py = rad * np.cos(a), rad * np.sin(a)
    bx, by = inner * np.cos(sector / 2), inner * np.sin(sector / 2)
    ex, ey = bx - 1.0, by
    nx, ny = ey, -ex  # outward normal of the edge from the tip (1, 0) to the inner vertex
    norm = np.hypot(nx, ny)
    return ((px - 1.0) * nx + py * ny) / norm


def _heart(u, v) -> np.ndarray:
    """Inigo Quilez's exact heart SDF, rescaled to fit the unit disk."""
    px = np.abs(u) * 0.62
    py = v * 0.62 + 0.55
    top = np.hypot(px - 0.25, py - 0.75) - np.sqrt(2.0) / 4.0
    m = 0.5 * np.maximum(px + py, 0.0)
    low = np.sqrt(np.minimum(px ** 2 + (py - 1.0) ** 2, (px - m) ** 2 + (py - m) ** 2))
    low = low * np.sign(px - py)
    return np.where(py + px > 1.0, top, low) / 0.62


def _box(u, v, a: float, b: float) -> np.ndarray:
    return np.maximum(np.abs(u) - a, np.abs(v) - b)


def shape_field(shape: str, u: np.ndarray, v: np.ndarray, p: dict) -> np.ndarray:
    if shape == "ellipse":
        return np.hypot(u, v) - 1.0
    if shape == "triangle":
        return _polygon(u, v, 3, -np.pi / 2)      # flat base, apex up
    if shape == "square":
        return _polygon(u, v, 4, np.pi / 4)       # axis-aligned at rotation 0
    if shape == "hexagon":
        return _polygon(u, v, 6, 0.0)
    if shape == "star":
        return _star(u, v, p["inner"])
    if shape == "cross":
        w = p["arm"]
        return np.minimum(_box(u, v, 0.95, w), _box(u, v, w, 0.95))
    if shape == "ring":
        ri = p["inner"]
        return np.abs(np.hypot(u, v) - (1.0 + ri) / 2) - (1.0 - ri) / 2
    if shape == "crescent":
        return np.maximum(np.hypot(u, v) - 1.0, p["bite_r"] - np.hypot(u - p["bite_d"], v - 0.1))
    if shape == "blob":
        ang = np.arctan2(v, u)
        rad = np.ones_like(u) * p["base"]
        for k, a, ph in zip(p["k"], p["amp"], p["phase"]):
            rad = rad + a * np.cos(k * ang + ph)
        return np.hypot(u, v) - rad
    if shape == "heart":
        return _heart(u, v)
    raise ValueError(f"unknown shape {shape!r}")


def sample_shape_params(shape: str, rng: np.random.Generator) -> dict:
    """Per-instance family parameters (the family stays recognisable)."""
    if shape == "star":
        return {"inner": float(rng.uniform(0.38, 0.52))}
    if shape == "cross":
        return {"arm": float(rng.uniform(0.24, 0.36))}
    if shape == "ring":
        return {"inner": float(rng.uniform(0.40, 0.62))}
    if shape == "crescent":
        return {"bite_d": float(rng.uniform(0.38, 0.58)), "bite_r": float(rng.uniform(0.72, 0.88))}
    if shape == "blob":
        ks = [2, 3, 4, 5]
        amp = [float(rng.uniform(0.05, 0.22) / np.sqrt(k - 1)) for k in ks]
        return {"k": ks, "amp": amp, "phase": [float(x) for x in rng.uniform(0, TAU, len(ks))],
                "base": float(1.0 - 0.5 * sum(amp))}
    return {}


@dataclass
class Pose:
    cx: float        # centre, pixels (may lie slightly outside the image: truncation)
    cy: float
    radius: float    # pixels
    theta: float     # rotation, radians
    aspect: float    # x/y stretch of the normalised frame
    warp: tuple      # (w1, k1, p1, w2, k2, p2) low-frequency coordinate warp
    radial: tuple    # (b2, psi2, b3, psi3) radial perturbation
    taper: float     # u scale varies linearly with v


def sample_pose(shape: str, rng: np.random.Generator, h: int, w: int, anchor: bool,
                near: Pose | None = None) -> Pose:
    """Anchor: larger, centred in the inner 64% of the image. Distractor: smaller; placed next to
    `near` (overlapping it: occlusion) if given, else anywhere, 30% of the time near/over the edge."""
    short = min(h, w)
    if anchor:   # the image's subject: larger on average, like PASCAL's main objects
        radius = short * float(rng.uniform(0.15, 0.42))
        cx, cy = rng.uniform(0.18, 0.82) * w, rng.uniform(0.18, 0.82) * h
    else:
        radius = short * float(np.exp(rng.uniform(np.log(0.10), np.log(0.36))))
        if near is not None:
            ang, dist = rng.uniform(0, TAU), (near.radius + radius) * rng.uniform(0.45, 1.05)
            cx, cy = near.cx + dist * np.cos(ang), near.cy + dist * np.sin(ang)
        else:
            lo, hi = (0.1, 0.9) if rng.random() < 0.7 else (-0.05, 1.05)
            cx, cy = rng.uniform(lo, hi) * w, rng.uniform(lo, hi) * h
    limit = UPRIGHT_SHAPES.get(shape)
    theta = rng.uniform(-limit, limit) if limit is not None else rng.uniform(-np.pi, np.pi)
    aspect = float(np.exp(rng.uniform(-0.35, 0.35)))
    warp = (rng.uniform(0, 0.12), rng.uniform(1.5, 3.5), rng.uniform(0, TAU),
            rng.uniform(0, 0.12), rng.uniform(1.5, 3.5), rng.uniform(0, TAU))
    radial = (rng.uniform(0, 0.07), rng.uniform(0, TAU), rng.uniform(0, 0.05), rng.uniform(0, TAU))
    taper = rng.uniform(-0.18, 0.18)
    return Pose(float(cx), float(cy), float(radius), float(theta), aspect,
                tuple(map(float, warp)), tuple(map(float, radial)), float(taper))


@dataclass
class Footprint:
    """An object's coverage inside its (clipped) bounding box, plus its normalised coordinates."""
    y0: int
    y1: int
    x0: int
    x1: int
    alpha: np.ndarray   # (y1-y0, x1-x0) coverage in [0, 1]
    u: np.ndarray       # normalised object-frame coordinates (texture/shading are computed on them)
    v: np.ndarray


def rasterize(shape: str, params: dict, pose: Pose, h: int, w: int, deform: bool = True) -> Footprint | None:
    ax, ay = np.sqrt(pose.aspect), 1.0 / np.sqrt(pose.aspect)
    half = pose.radius * max(ax, ay) * 1.45 + 2.0
    x0, x1 = max(int(np.floor(pose.cx - half)), 0), min(int(np.ceil(pose.cx + half)) + 1, w)
    y0, y1 = max(int(np.floor(pose.cy - half)), 0), min(int(np.ceil(pose.cy + half)) + 1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    xs = np.arange(x0, x1, dtype=np.float64) + 0.5 - pose.cx
    ys = np.arange(y0, y1, dtype=np.float64) + 0.5 - pose.cy
    dx, dy = np.meshgrid(xs, ys)
    c, s = np.cos(pose.theta), np.sin(pose.theta)
    u = (c * dx + s * dy) / (pose.radius * ax)
    v = (s * dx - c * dy) / (pose.radius * ay)   # v points up in the image at theta = 0
    if deform:
        w1, k1, p1, w2, k2, p2 = pose.warp
        u, v = u + w1 * np.sin(k1 * v + p1), v + w2 * np.sin(k2 * u + p2)
        u = u * (1.0 + pose.taper * v)
        b2, q2, b3, q3 = pose.radial
        ang = np.arctan2(v, u)
        scale = 1.0 + b2 * np.cos(2 * ang + q2) + b3 * np.cos(3 * ang + q3)
        u, v = u / scale, v / scale
    f = shape_field(shape, u, v, params)
    gy, gx = np.gradient(f)
    dist = f / np.maximum(np.hypot(gx, gy), 1e-6)  # ~ signed distance in pixels
    alpha = np.clip(0.5 - dist, 0.0, 1.0)
    if not alpha.any():
        return None
    return Footprint(y0, y1, x0, x1, alpha, u, v)
