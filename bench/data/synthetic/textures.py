"""Object appearance: colour palettes with per-instance jitter, textures in the object frame, shading.

A texture is a mixing field t(u, v) in [0, 1] between the palette's two colours, computed on the
object's own (deformed) coordinates, so it rotates, scales and bends with the object. Thresholded
patterns are softened by their per-pixel frequency so that small objects do not alias.
"""
from __future__ import annotations

import colorsys

import numpy as np

from bench.data.synthetic.classes import PALETTES

TAU = 2.0 * np.pi


def jitter_colour(rgb, rng: np.random.Generator, hue=0.035, sat=0.15, val=0.15) -> np.ndarray:
    h, s, v = colorsys.rgb_to_hsv(*rgb)
    h = (h + rng.uniform(-hue, hue)) % 1.0
    s = float(np.clip(s * np.exp(rng.uniform(-sat, sat)), 0.0, 1.0))
    v = float(np.clip(v * np.exp(rng.uniform(-val, val)), 0.0, 1.0))
    return np.array(colorsys.hsv_to_rgb(h, s, v))


def sample_palette(palette: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The instance's two colours, each jittered in hue, saturation and value."""
    c1, c2 = PALETTES[palette]
    return jitter_colour(c1, rng), jitter_colour(c2, rng)


def _soft(s: np.ndarray, width: float) -> np.ndarray:
    """Anti-aliased step of a field s in [-1, 1]: 0 below -width, 1 above +width."""
    return np.clip(0.5 + s / (2.0 * width), 0.0, 1.0)


def sample_texture_params(texture: str, rng: np.random.Generator, radius_px: float) -> dict:
    # Frequencies are in cycles per unit object radius; the cap keeps >= ~4.5 px per period.
    cap = max(radius_px / 4.5, 0.8)
    p = {"angle": float(rng.normal(0.0, 0.25)), "phase": float(rng.uniform(0, TAU))}
    if texture == "solid":
        p.update(grad_dir=float(rng.uniform(0, TAU)), grad_amount=float(rng.uniform(0.15, 0.45)))
    elif texture == "stripes":
        p.update(freq=min(float(rng.uniform(1.6, 2.8)), cap), duty=float(rng.uniform(-0.35, 0.35)))
    elif texture == "checker":
        p.update(freq=min(float(rng.uniform(1.3, 2.2)), cap), phase2=float(rng.uniform(0, TAU)))
    elif texture == "dots":
        p.update(freq=min(float(rng.uniform(1.6, 2.6)), cap), dot=float(rng.uniform(0.22, 0.34)),
                 offset=(float(rng.uniform(0, 1)), float(rng.uniform(0, 1))))
    elif texture == "rings":
        p.update(freq=min(float(rng.uniform(1.8, 2.8)), cap),
                 centre=(float(rng.normal(0, 0.15)), float(rng.normal(0, 0.15))))
    elif texture == "mottled":
        n = 5
        freq = rng.uniform(1.2, 2.6, n)
        ang = rng.uniform(0, TAU, n)
        p.update(kx=(freq * np.cos(ang)).tolist(), ky=(freq * np.sin(ang)).tolist(),
                 phases=rng.uniform(0, TAU, n).tolist(), bias=float(rng.uniform(-0.25, 0.25)))
    else:
        raise ValueError(f"unknown texture {texture!r}")
    return p


def texture_field(texture: str, p: dict, u: np.ndarray, v: np.ndarray, radius_px: float) -> np.ndarray:
    """Mixing weight of the secondary colour, in [0, 1]."""
    c, s = np.cos(p["angle"]), np.sin(p["angle"])
    a, b = c * u + s * v, -s * u + c * v        # texture axes: close to the object's own axes
    px = 1.0 / max(radius_px, 1.0)             # one pixel in normalised units
    if texture == "solid":
        g = (np.cos(p["grad_dir"]) * u + np.sin(p["grad_dir"]) * v + 1.0) * 0.5
        return np.clip(g, 0.0, 1.0) * p["grad_amount"]
    if texture == "stripes":
        f = p["freq"]
        return _soft(np.sin(TAU * f * a + p["phase"]) + p["duty"], max(TAU * f * px, 0.15))
    if texture == "checker":
        f = p["freq"]
        field = np.sin(np.pi * f * a * 2 + p["phase"]) * np.sin(np.pi * f * b * 2 + p["phase2"])
        return _soft(field, max(TAU * f * px, 0.2))
    if texture == "dots":
        f = p["freq"]
        ga, gb = a * f + p["offset"][0], b * f + p["offset"][1]
        da, db = ga - np.floor(ga) - 0.5, gb - np.floor(gb) - 0.5
        d = np.hypot(da, db)
        return np.clip(0.5 + (p["dot"] - d) / (f * px + 0.02), 0.0, 1.0)
    if texture == "rings":
        f = p["freq"]
        r = np.hypot(u - p["centre"][0], v - p["centre"][1])
        return _soft(np.sin(TAU * f * r + p["phase"]), max(TAU * f * px, 0.15))
    if texture == "mottled":
        field = np.zeros_like(u)
        for kx, ky, ph in zip(p["kx"], p["ky"], p["phases"]):
            field += np.cos(TAU * (kx * u + ky * v) + ph)
        field = field / np.sqrt(len(p["kx"]) / 2.0) + p["bias"]
        return np.clip(0.5 + 0.5 * np.tanh(1.6 * field), 0.0, 1.0)
    raise ValueError(f"unknown texture {texture!r}")


def shading(u: np.ndarray, v: np.ndarray, light_angle: float, strength: float, dome: float) -> np.ndarray:
    """Directional lighting gradient plus a dome term (objects look slightly rounded)."""
    lit = np.cos(light_angle) * u + np.sin(light_angle) * v
    r2 = np.minimum(u * u + v * v, 1.5)
    return 1.0 + strength * lit - dome * r2 + 0.5 * dome


def render_object_colour(texture: str, tex_params: dict, c1: np.ndarray, c2: np.ndarray,
                         u: np.ndarray, v: np.ndarray, radius_px: float,
                         light: tuple[float, float, float]) -> np.ndarray:
    """RGB colour (h, w, 3) of the object surface over its footprint."""
    t = texture_field(texture, tex_params, u, v, radius_px)[..., None]
    col = c1 * (1.0 - t) + c2 * t
    return col * shading(u, v, *light)[..., None]
