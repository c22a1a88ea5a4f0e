"""A catalogue of what the simulator draws: each threat class and each gun-like confuser alone,
in several instances and orientations, through the same physics and display as a scan.

What a researcher looks at before trusting the simulated data (does a revolver look like a
revolver? does a frame alone look like one in a parcel?) and what a realism change is judged
by, side by side with the catalogue of the version before it. `xfd gallery` writes the sheet
(PNG or JPEG) and what is on it (JSON: each tile's kind, class, orientation, material, size).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..xray import physics, render
from . import clutter, threats
from .scene import Canvas, _att_row, detector_response, voxel_pitches, wrap_round
from .shapes import ORIENTATIONS, orientation_rotation

# rows: (title, class label or None for a confuser, generator(rng, pitch) -> Obj)
THREAT_ROWS = [
    ("gun: pistol", "gun", lambda r, p: threats.pistol(r, p)),
    ("gun: revolver", "gun", threats.revolver),
    ("gun: converted alarm pistol", "gun", threats.alarm_pistol),
    ("gun: 3D-printed", "gun", threats.printed_gun),
    ("gun: carbine / SMG", "gun", threats.carbine),
] + [(cls, cls, (lambda c: lambda r, p: threats.separate_part(r, p, c))(cls))
     for cls in ("barrel", "slide", "frame", "magazine", "printed_part", "ammunition")]
CONFUSER_ROWS = [(k, None, (lambda kind: lambda r, p: clutter.make_clutter(r, p, kind))(k))
                 for k in ("toy_gun", "drill", "hair_dryer", "wrench", "pliers", "flashlight", "vacuum_flask",
                           "shock_absorber", "padlock", "hammer", "spark_plugs", "cosmetics")] + \
                [(k, None, f) for k, f in clutter.GUN_SHAPED_TOOLS.items()]
ROWS = {"threats": THREAT_ROWS, "confusers": CONFUSER_ROWS, "all": THREAT_ROWS + CONFUSER_ROWS}


class GalleryError(ValueError):
    pass


def alone_on_belt(obj, rot: np.ndarray, mm_per_px: float, rng: np.random.Generator, gray: bool = False,
                  pitch: float | None = None, margin_mm: float = 20.0, size: int = 0,
                  wrap: str | None = None, wrap_rng: np.random.Generator | None = None) -> np.ndarray:
    """One object alone on the belt, projected and displayed as a scan of its own (a fixed 140 kVp
    spectrum, the default palette) at mm_per_px, at least `size` px square and `margin_mm` wider than
    the object each way. pitch: its voxel pitch in mm (default a threat's, 0.7 x the pixel); wrap:
    "aluminium" or "textile" wrapped round it as the scenes wrap a threat (scene.wrap_round, drawn from
    wrap_rng, so that the noise drawn from rng is the same wrapped or not)."""
    spectrum = physics.Spectrum.make(140.0)
    lo, hi = obj.bounds()
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]) @ rot.T
    extent = float((corners.max(0) - corners.min(0))[:2].max())  # on the belt, after turning
    side_px = max(size, int(np.ceil((extent + margin_mm) / mm_per_px)))
    side = side_px * mm_per_px
    cv = Canvas(side_px, side_px, mm_per_px, rng, _att_row(spectrum))
    att, y0, x0 = cv.project(obj, side / 2, side / 2, rot, 1.0, pitch or voxel_pitches(mm_per_px)[0])
    if wrap:
        wrap_round(cv, att, y0, x0, wrap_rng if wrap_rng is not None else np.random.default_rng(0), mm_per_px, wrap)
    t_low, t_high = physics.transmissions(cv.maps, spectrum)
    t_low, t_high = (detector_response(t, 10**4.5, 0.004, rng) for t in (t_low, t_high))
    img = render.grayscale(t_low, t_high) if gray else render.pseudo_colour(t_low, t_high, None, spectrum)
    img = np.asarray(img)
    return np.ascontiguousarray(np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img)


def _tile(obj, rot: np.ndarray, mm_per_px: float, size: int, rng: np.random.Generator, gray: bool) -> tuple[np.ndarray, float]:
    """The object alone on the belt in a size x size tile: an object too long for the tile (a
    carbine) is drawn whole and shrunk to fit; returns the tile and that shrink factor (1: none)."""
    img = alone_on_belt(obj, rot, mm_per_px, rng, gray, size=size)
    side_px = img.shape[0]
    if side_px > size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return img, size / side_px


def gallery(out: str | Path, what: str = "all", per_row: int = 6, seed: int = 0, mm_per_px: float = 1.0,
            tile: int = 280, gray: bool = False) -> dict:
    """Write the sheet to `out` (PNG) and its index beside it (same name, .json); return the index.
    Row k, column j: an instance drawn from seed (seed, k, j), in ORIENTATIONS[j % 4] (flat first)."""
    if what not in ROWS:
        raise GalleryError(f"what must be one of {', '.join(ROWS)}, got {what!r}")
    if not 1 <= per_row <= 12:
        raise GalleryError(f"per_row must be 1 to 12, got {per_row}")
    if not 0.4 <= mm_per_px <= 2.5:
        raise GalleryError(f"mm_per_px must be 0.4 to 2.5 mm, got {mm_per_px}")
    if not 96 <= tile <= 640:
        raise GalleryError(f"tile must be 96 to 640 px, got {tile}")
    out = Path(out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise GalleryError(f"the sheet is an image: give a .png or .jpg path, got {out.name!r}")
    rows, index = [], []
    for k, (title, label, make) in enumerate(ROWS[what]):
        row = []
        for j in range(per_row):
            rng = np.random.default_rng([seed, k, j])
            obj = make(rng, voxel_pitches(mm_per_px)[0]).centred()
            mode = ORIENTATIONS[(0, 0, 1, 2, 3)[j % 5] if per_row > 4 else j % 4]
            img, shrink = _tile(obj, orientation_rotation(rng, mode), mm_per_px, tile, rng, gray)
            lo, hi = obj.bounds()
            text = f"{obj.kind or obj.meta.get('clutter_kind', title)} / {mode}" + (f" (x{shrink:.2f})" if shrink < 1 else "")
            cv2.putText(img, text, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            cv2.rectangle(img, (0, 0), (tile - 1, tile - 1), (200, 200, 200), 1)
            row.append(img)
            index.append({"row": k, "column": j, "title": title, "class": label, "kind": obj.kind or obj.meta.get("clutter_kind"),
                          "orientation": mode, "material": obj.meta.get("material"), "shrunk": round(shrink, 3),
                          "size_mm": [round(float(v), 1) for v in (hi - lo)]})
        rows.append(np.concatenate(row, 1))
    sheet = np.concatenate(rows, 0)
    out.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 88] if out.suffix.lower() != ".png" else []
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), params):
        raise GalleryError(f"cannot write {out}")
    meta = {"what": what, "seed": seed, "mm_per_px": mm_per_px, "tile_px": tile, "gray": gray,
            "size_px": [int(sheet.shape[1]), int(sheet.shape[0])], "tiles": index}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return meta
