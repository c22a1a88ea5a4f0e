"""Rendering of dual-energy transmissions into what screeners see.

Shared by the simulator (randomised per scan) and the engine (default palette, for
raw low/high 16-bit pairs from a scanner). Screen colour convention:
orange = organic (Z_eff ~6-10), green = mixed / light inorganic (~10-18), blue =
metal, black = impenetrable; brightness falls with attenuation.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from . import physics


@dataclass(frozen=True)
class Palette:
    hue_organic: float = 28.0  # degrees
    hue_mixed: float = 95.0
    hue_metal: float = 212.0
    gamma: float = 0.55  # brightness = T^gamma
    low_weight: float = 0.35  # share of the low-energy image in displayed brightness
    saturation: float = 1.35
    saturation_power: float = 0.55
    brightness: float = 1.0
    metal_threshold: float = 0.72  # position of the green->blue transition on the Z axis
    organic_threshold: float = 0.30

    @staticmethod
    def random(rng: np.random.Generator) -> Palette:
        return Palette(
            hue_organic=float(rng.uniform(18, 40)),
            hue_mixed=float(rng.uniform(75, 125)),
            hue_metal=float(rng.uniform(195, 235)),
            gamma=float(rng.uniform(0.35, 0.8)),
            low_weight=float(rng.uniform(0.15, 0.6)),
            saturation=float(rng.uniform(0.9, 1.9)),
            saturation_power=float(rng.uniform(0.35, 0.8)),
            brightness=float(rng.uniform(0.92, 1.06)),
            metal_threshold=float(rng.uniform(0.62, 0.8)),
            organic_threshold=float(rng.uniform(0.22, 0.38)),
        )

    def as_dict(self) -> dict:
        return asdict(self)


_ATT_GRID = np.linspace(0.02, 7.0, 48)


@functools.lru_cache(maxsize=64)
def _ratio_curves(spectrum: physics.Spectrum) -> np.ndarray:
    """Step-wedge calibration, as scanner vendors do it: the dual-energy ratio
    R = ln(T_L)/ln(T_H) of organic (PLA), aluminium and steel as a function of the
    high-energy attenuation -ln(T_H). Beam hardening makes R drift with thickness, so
    the material axis is read against these curves, not fixed values. (3, len(grid))"""
    out = np.zeros((3, len(_ATT_GRID)))
    for i, mat in enumerate(("pla", "aluminium", "steel")):
        thick = np.geomspace(0.01, 400.0, 400)
        a = physics.density(mat) * thick / 10.0
        maps = np.asarray(physics.basis_coeffs(mat), np.float32)[:, None] * a[None, :].astype(np.float32)
        tl, th = physics.transmissions(maps, spectrum)
        att_h = -np.log(np.clip(th.astype(np.float64), 1e-12, 1))
        att_l = -np.log(np.clip(tl.astype(np.float64), 1e-12, 1))
        out[i] = np.interp(_ATT_GRID, att_h, att_l / att_h)
    return out


def zeff_axis(t_low: np.ndarray, t_high: np.ndarray, spectrum: physics.Spectrum | None = None) -> np.ndarray:
    """Map each pixel to a 0..1 material axis: 0 organic, 0.5 aluminium, 1 steel."""
    spectrum = spectrum or physics.default_spectrum()
    lut = _zeff_lut(spectrum)
    att_h = -np.log(np.clip(np.asarray(t_high, np.float32), 1e-6, 1.0))
    att_l = -np.log(np.clip(np.asarray(t_low, np.float32), 1e-6, 1.0))
    r = att_l / np.maximum(att_h, np.float32(1e-3))
    # the three curves at this attenuation, from a fine table (4096 steps over the grid)
    g0, g1 = _ATT_GRID[0], _ATT_GRID[-1]
    i = ((np.clip(att_h, g0, g1) - np.float32(g0)) * np.float32((_LUT_N - 1) / (g1 - g0)) + np.float32(0.5)).astype(np.int32)
    r_org, r_al, k_lo, k_hi = lut[0][i], lut[1][i], lut[2][i], lut[3][i]
    z = np.where(r < r_al, (r - r_org) * k_lo, np.float32(0.5) + (r - r_al) * k_hi)
    z = np.clip(z, 0, 1)
    # where almost nothing is in the beam the ratio is noise: lean to organic
    weak = np.clip((att_h - np.float32(0.03)) * np.float32(1 / 0.15), 0, 1)
    return z * weak


_LUT_N = 4096


@functools.lru_cache(maxsize=64)
def _zeff_lut(spectrum: physics.Spectrum) -> np.ndarray:
    """The step-wedge curves tabulated finely for zeff_axis: R_organic, R_aluminium and the two
    scale factors that map R between them to 0..0.5 and between aluminium and steel to 0.5..1."""
    c = _ratio_curves(spectrum)
    a = np.linspace(_ATT_GRID[0], _ATT_GRID[-1], _LUT_N)
    r_org, r_al, r_fe = (np.interp(a, _ATT_GRID, k) for k in c)
    return np.stack([r_org, r_al, 0.5 / np.maximum(r_al - r_org, 1e-3), 0.5 / np.maximum(r_fe - r_al, 1e-3)]).astype(np.float32)


def pseudo_colour(t_low: np.ndarray, t_high: np.ndarray, palette: Palette | None = None,
                  spectrum: physics.Spectrum | None = None) -> np.ndarray:
    """8-bit RGB pseudo-colour image from low/high transmissions (0..1)."""
    p = palette or Palette()
    t_low = np.clip(t_low, 1e-6, 1.0).astype(np.float32)
    t_high = np.clip(t_high, 1e-6, 1.0).astype(np.float32)
    z = zeff_axis(t_low, t_high, spectrum)
    # hue: organic -> mixed -> metal with soft transitions
    zo, zm = p.organic_threshold, p.metal_threshold
    hue_lut = np.interp(
        np.linspace(0.0, 1.0, 1024),
        [0.0, zo - 0.06, zo + 0.06, zm - 0.06, zm + 0.06, 1.0],
        [p.hue_organic, p.hue_organic, p.hue_mixed, p.hue_mixed, p.hue_metal, p.hue_metal],
    ).astype(np.float32)
    hue = hue_lut[(z * np.float32(1023) + np.float32(0.5)).astype(np.int32)]
    t_mix = np.exp((1 - p.low_weight) * np.log(t_high) + p.low_weight * np.log(t_low))
    val = np.clip(p.brightness * t_mix**p.gamma, 0, 1).astype(np.float32)
    sat = np.clip(p.saturation * np.clip((1 - t_mix - 0.04) / 0.6, 0, 1) ** p.saturation_power, 0, 1).astype(np.float32)
    hsv = np.stack([hue, sat, val], axis=-1)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def grayscale(t_low: np.ndarray, t_high: np.ndarray, gamma: float = 0.8, low_weight: float = 0.0) -> np.ndarray:
    """8-bit single-energy style grayscale (bright background, dark objects)."""
    t_high = np.clip(t_high, 1e-6, 1.0)
    t_low = np.clip(t_low, 1e-6, 1.0)
    t = np.exp((1 - low_weight) * np.log(t_high) + low_weight * np.log(t_low))
    return np.clip(t**gamma * 255.0 + 0.5, 0, 255).astype(np.uint8)


def to_raw16(t: np.ndarray) -> np.ndarray:
    """Transmission -> 16-bit detector counts (air = 65535)."""
    return np.clip(np.asarray(t) * 65535.0 + 0.5, 0, 65535).astype(np.uint16)


def from_raw_pair(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """16-bit raw low/high detector images -> transmissions, normalised by the air value
    (the bright belt around the parcel: the 99.5th percentile of each image)."""
    out = []
    for img in (low, high):
        a = np.asarray(img, dtype=np.float32)
        if a.ndim == 3:
            a = a.mean(axis=2)
        air = float(np.percentile(a, 99.5))
        if air <= 0:
            raise ValueError("raw energy image is black: no air reference")
        out.append(np.clip(a / air, 0.0, 1.0))
    return out[0], out[1]


def raw_pair_to_rgb(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Raw dual-energy pair -> the pseudo-colour the model expects (default palette)."""
    if np.asarray(low).shape[:2] != np.asarray(high).shape[:2]:
        raise ValueError(f"low and high energy images differ in size: {np.asarray(low).shape[:2]} vs {np.asarray(high).shape[:2]}")
    tl, th = from_raw_pair(low, high)
    return pseudo_colour(tl, th)


# ----------------------------------------------------------------- vendor display processing
def display_effects(img: np.ndarray, rng: np.random.Generator, keep_out: list[list[int]] | None = None
                    ) -> tuple[np.ndarray, dict]:
    """What a scanner's display software does to the image after the physics, randomised:
    edge enhancement (unsharp masking, which every vendor offers as a "sharpen"/"HI" key and
    some apply by default), a contrast stretch of the grey levels, the negative image key, and
    burnt-in text (date, lane, machine) in a corner. keep_out boxes (x1, y1, x2, y2) are never
    written over, so labels stay true. Returns the new image and what was applied."""
    out = img.astype(np.float32)
    applied: dict = {}
    if rng.random() < 0.6:
        radius = float(rng.uniform(0.8, 3.0))
        amount = float(rng.uniform(0.3, 1.6))
        blur = cv2.GaussianBlur(out, (0, 0), radius)
        out = out + amount * (out - blur)
        applied["unsharp"] = {"radius_px": round(radius, 2), "amount": round(amount, 2)}
    if rng.random() < 0.4:
        lo, hi = float(rng.uniform(0, 40)), float(rng.uniform(215, 255))
        out = (out - lo) * (255.0 / (hi - lo))
        applied["stretch"] = [round(lo, 1), round(hi, 1)]
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if out.ndim == 2 and rng.random() < 0.1:
        out = 255 - out
        applied["negative"] = True
    if rng.random() < 0.35:
        h, w = out.shape[:2]
        text = f"{int(rng.integers(2019, 2027))}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d} " \
               f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}  L{int(rng.integers(1, 9))}"
        scale = float(rng.uniform(0.35, 0.6))
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        corner = int(rng.integers(4))
        x = 6 if corner in (0, 2) else w - tw - 6
        y = th + 6 if corner in (0, 1) else h - base - 6
        box = [x - 2, y - th - 2, x + tw + 2, y + base + 2]
        clear = all(box[2] <= k[0] or k[2] <= box[0] or box[3] <= k[1] or k[3] <= box[1] for k in keep_out or [])
        if clear and x > 0 and y - th > 0:
            colour = (0, 0, 0) if rng.random() < 0.7 else (255, 255, 255)
            cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour if out.ndim == 3 else colour[0], 1, cv2.LINE_AA)
            applied["text"] = box
    return out, applied


# ----------------------------------------------------------------- display operations
# shared by the simulator's display jitter and training.robustness, which alters held-out scans the
# same ways: what one trains on is what the other measures
def turn_hue(rgb: np.ndarray, deg: float) -> np.ndarray:
    """Every hue of an RGB image turned by deg degrees (256-step hue circle)."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(round(deg / 360 * 256))) % 256).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)


def luma_grey(rgb: np.ndarray) -> np.ndarray:
    """An RGB image shown in grey (luma), still 3 channels."""
    return cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def gamma_curve(img: np.ndarray, g: float) -> np.ndarray:
    """Display curve v -> v^g on 8-bit values (g > 1 darker mid-tones)."""
    lut = np.clip(((np.arange(256) / 255.0) ** g) * 255 + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(img, lut)


def unsharp(img: np.ndarray, radius: float, amount: float) -> np.ndarray:
    """Unsharp-mask edge enhancement on 8-bit values."""
    f = img.astype(np.float32)
    return np.clip(f + amount * (f - cv2.GaussianBlur(f, (0, 0), radius)) + 0.5, 0, 255).astype(np.uint8)


def display_jitter(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """How much scanners' displays differ from one another, randomised wider than the palette
    does (xfd robustness found the model loses 4-9 points of Pd to each of these): a hue turn
    of the whole palette, a grey (luma) rendering of a colour scan, a display curve (gamma
    0.5-2), detector or display blur, edge enhancement, and the negative key (for colour scans
    too; display_effects inverts only grey ones). Each applied with its own probability;
    labels do not change. Returns the image (same shape and dtype) and what was applied."""
    out = img
    applied: dict = {}
    colour = out.ndim == 3
    if colour and rng.random() < 0.5:
        deg = float(rng.uniform(-35, 35))
        out = turn_hue(out, deg)
        applied["hue_deg"] = round(deg, 1)
    if colour and rng.random() < 0.15:
        out = luma_grey(out)
        applied["luma"] = True
    if rng.random() < 0.6:
        g = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        out = gamma_curve(out, g)
        applied["gamma"] = round(g, 3)
    if rng.random() < 0.3:
        sigma = float(rng.uniform(0.6, 2.5))
        out = cv2.GaussianBlur(out, (0, 0), sigma)
        applied["blur_sigma"] = round(sigma, 2)
    if rng.random() < 0.3:
        radius, amount = float(rng.uniform(1.0, 3.0)), float(rng.uniform(0.3, 2.0))
        out = unsharp(out, radius, amount)
        applied["unsharp"] = {"radius_px": round(radius, 2), "amount": round(amount, 2)}
    if rng.random() < 0.05:
        out = 255 - out
        applied["negative"] = True
    return np.ascontiguousarray(out), applied
