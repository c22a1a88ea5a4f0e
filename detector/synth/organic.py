"""Soft, irregular parcel contents and small metal confusers (generator 1.1.0, opt-in).

Generator 1.0.0 builds its clutter from boxes, cylinders and extrusions; real parcels are
mostly soft goods: crumpled and folded clothing, food in bags, paper and bubble-wrap
packing, whose outlines are irregular and whose thickness varies smoothly with folds and
creases. And the small metal items in them (the spring and refill of a ballpoint pen, the
underwire of a bra, a belt buckle, hair pins) are what a detector of springs, pins and
barrels must learn to ignore.

Everything here draws from its own random stream (see scene.simulate), so switching it on
changes pixels but not the placement, physics or labels of the 1.0.0 content.
"""

from __future__ import annotations

import cv2
import numpy as np

from .shapes import Obj, add_coil, add_wire, box, cylinder, smooth_noise

# (material, density g/cm^3 range, thickness mm range, weight)
SOFT_KINDS = {
    "garment": ("textile", (0.12, 0.35), (8, 60), 0.45),       # folded or crumpled clothing
    "knit": ("textile", (0.08, 0.2), (20, 90), 0.15),          # jumpers, towels: thick and light
    "food_bag": ("sugar", (0.4, 0.9), (10, 45), 0.12),         # pasta, coffee, sweets
    "paper_fill": ("cellulose", (0.03, 0.08), (20, 120), 0.13),  # crumpled paper packing
    "bubble_wrap": ("pla", (0.01, 0.03), (4, 12), 0.15),       # PE film with air cells
}


def _noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float, octaves: int = 3) -> np.ndarray:
    """shapes.smooth_noise scaled to about [-1, 1] (divided by the sum of octave amplitudes)."""
    return smooth_noise(rng, shape, scale_px, octaves) / sum(0.5**o for o in range(octaves))


def soft_item(rng: np.random.Generator, mmpp: float, kind: str) -> tuple[str, np.ndarray]:
    """One soft item as an areal-density map (g/cm^2) in pixels: irregular outline, thickness
    varying with folds and creases. Returns (material, map)."""
    material, rho_r, t_r, _ = SOFT_KINDS[kind]
    size = rng.uniform(90, 420) / mmpp
    aspect = rng.uniform(0.5, 1.0)
    h, w = max(8, int(size * aspect)), max(8, int(size))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    outline = (1.0 - r2) + 0.55 * _noise(rng, (h, w), size / 3)  # lumpy, never a rectangle
    mask = cv2.GaussianBlur((outline > 0).astype(np.float32), (0, 0), max(1.0, 1.5 / mmpp))
    t0 = rng.uniform(*t_r)
    thick = t0 * (1.0 + 0.45 * _noise(rng, (h, w), size / 4))
    if kind in ("garment", "knit"):  # folds: ridges along a few random directions
        for _ in range(int(rng.integers(1, 5))):
            a = rng.uniform(0, np.pi)
            period = rng.uniform(25, 90) / mmpp
            phase = rng.uniform(0, 2 * np.pi)
            ridge = np.abs(np.sin((xx * np.cos(a) + yy * np.sin(a)) / period * np.pi + phase)) ** 6
            local = np.clip(_noise(rng, (h, w), size / 2, 2) * 2.0, 0, 1)  # a fold runs out somewhere
            thick += t0 * rng.uniform(0.3, 1.0) * ridge * local
    if kind == "bubble_wrap":  # air cells: a hexagonal-ish lattice of thicker rings
        cell = rng.uniform(6, 12) / mmpp
        thick *= 1.0 + 1.5 * (np.sin(xx / cell * np.pi) * np.sin(yy / cell * np.pi)) ** 2
    if kind == "paper_fill":  # crumpled: high-frequency thickness
        thick *= 1.0 + 0.8 * _noise(rng, (h, w), max(3.0, 15 / mmpp), 2)
    rho = rng.uniform(*rho_r)
    areal = np.clip(thick, 0, None) / 10.0 * rho * mask
    return material, areal.astype(np.float32)


# ----------------------------------------------------------------- small metal confusers
def pen(rng, p):
    """Ballpoint pen: plastic barrel, ink refill, steel spring and tip (a spring + tube)."""
    o = Obj([], None, "pen")
    L = rng.uniform(125, 150)
    o.add(cylinder(4.5, L, p, r_in=3.6), "abs", p)
    o.add(cylinder(1.5, L * 0.75, p, centre=(-L * 0.05, 0, 0)), "pla", p)
    o.add(cylinder(1.0, 6, p, centre=(-L * 0.45, 0, 0)), "brass", p)
    add_coil(o, 2.2, 0.25, rng.uniform(12, 22), rng.uniform(8, 14), "steel", p, centre=(-L * 0.36, 0, 0))
    if rng.random() < 0.4:  # metal clip / body
        o.add(box(40, 3, 0.6, p, centre=(L * 0.3, 4.5, 0)), "steel", p)
    return o


def underwire(rng, p):
    """Bra underwires: two thin steel arcs (a classic false alarm on thin metal parts)."""
    o = Obj([], None, "underwire")
    rx, ry = rng.uniform(55, 75), rng.uniform(40, 60)
    t = np.linspace(0.15 * np.pi, 0.95 * np.pi, 40)
    for s in (-1, 1):
        path = np.stack([s * (rx * 1.1) + rx * np.cos(t) * s, ry * np.sin(t), np.zeros_like(t)], 1)
        add_wire(o, path, rng.uniform(0.6, 1.0), "steel", p)
    return o


def belt(rng, p):
    """Leather belt, coiled or straight, with a steel or zinc buckle."""
    o = Obj([], None, "belt")
    L = rng.uniform(300, 700)
    o.add(box(L, 35, 4, p), "rubber", p, 0.9)
    bw = rng.uniform(40, 60)
    frame = box(bw, 45, 4, p, wall=None, centre=(L / 2 + bw / 2, 0, 0))
    inner = (np.abs(frame[:, 0] - (L / 2 + bw / 2)) < bw / 2 - 5) & (np.abs(frame[:, 1]) < 17)
    o.add(frame[~inner], str(rng.choice(["steel", "zinc_alloy"])), p)
    o.add(box(bw * 0.8, 3, 3, p, centre=(L / 2 + bw / 2, 0, 2)), "steel", p)  # prong
    return o


def hair_pins(rng, p):
    o = Obj([], None, "hair_pins")
    for k in range(int(rng.integers(2, 9))):
        y = k * rng.uniform(6, 14)
        path = np.array([[0, y, 0], [50, y, 0], [55, y + 2, 0], [50, y + 4, 0], [5, y + 4, 0]], np.float32)
        add_wire(o, path, 0.4, "steel", p)
    return o


CONFUSERS = {"pen": pen, "underwire": underwire, "belt": belt, "hair_pins": hair_pins}
