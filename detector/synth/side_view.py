"""The second view of a dual-view scanner: a horizontal beam across the belt through the parcel
the top view (scene.simulate) has just drawn.

Dual-view parcel scanners show two images of one parcel, one from below and one from the side,
because a thing seen end-on, edge-on or behind something dense in one view is usually plain in
the other. The side view here holds the same objects in the same 3D poses as the top view: every
projection the top view made is replayed with the scene turned so that the beam runs across the
belt (scene y) instead of up through it (scene z). What the top view cannot say, it fills in:

- heights: an object rests at a height in its parcel that grows with the magnification the top
  view gave it (the top view's stand-in for height), a threat concealed under a dense item lies
  under it, and one hidden inside an appliance lies at the appliance's height;
- the container is drawn from the side (its length by its height, its width deep along the beam);
- soft goods (clothing, food, packing) are the same items, each squashed to a layer a few
  centimetres thick near the bottom of the parcel, with its mass kept column by column;
- the same spectrum, detector noise level, blur and palette, with new noise (scan.side.meta);
  no vendor display processing and no display jitter; the same JPEG quality.

Its labels come from the threats' own side-view projections, their orientation is taken against
the side beam, and a concealment by a dense item above does not hold in this view.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..xray import physics, render
from .scene import (
    Canvas,
    Scan,
    _add_soft_contents,
    _scene_solids,
    add_wrap,
    along_belt,
    detector_response,
    draw_container,
    label_threats,
    stretch_boxes,
)
from .shapes import smooth_noise

# scene (x, y, z) -> side view (x along the belt, -z: rows go down as height falls, y: the beam)
TO_SIDE = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
# largest magnification the top view draws for a loose object (scene.simulate: 1.0-1.15)
_TOP_MAG_RANGE = 0.15


def beam_orientation(rot: np.ndarray, axis: int) -> str:
    """An object's pose against a beam along scene axis `axis` (2: the top view's, 1: the side
    view's), named as shapes.ORIENTATIONS names the top view's: flat (the beam along the object's
    thickness, its profile shown), edge (along its profile height), end (along its long axis),
    else tilted."""
    b = np.abs(np.asarray(rot, np.float64)[axis, :])  # the beam's direction in the object's frame
    if b[2] >= 0.85:
        return "flat"
    if b[0] >= 0.85:
        return "end"
    if b[1] >= 0.85:
        return "edge"
    return "tilted"


def height_range(obj, rot: np.ndarray, px_mm: float) -> tuple[float, float]:
    """Lowest and highest scene z (mm) of an object turned by rot, about its origin."""
    r = np.asarray(rot, np.float32)[2]
    lo, hi = np.inf, -np.inf
    for p in obj.parts:
        if len(p.pts):
            z = p.pts @ r
            lo, hi = min(lo, float(z.min())), max(hi, float(z.max()))
    for _, _, c, e in _scene_solids(obj, rot, px_mm):
        lo, hi = min(lo, float(c[2] - e[2])), max(hi, float(c[2] + e[2]))
    if not np.isfinite(lo):
        return 0.0, 0.0
    return lo, hi


def render_side(st: dict) -> Scan:
    """The side view of the parcel whose top view scene.simulate described in `st` (its keys are
    set there: seed, index, cfg, mmpp, wpx, spectrum, att_row, container (kind, cx, cy, L, W, H,
    ang), records (every projection's arguments, in order), threats (obj, concealment, link),
    detector (blur sigma, i0_low, i0_high, el), render (the top view's `render` metadata), jpeg_q,
    n_clutter, meta; keep_raw: keep the labelled threats' own maps in extras)."""
    seed, index, cfg, mmpp, wpx = st["seed"], st["index"], st["cfg"], st["mmpp"], st["wpx"]
    rng = np.random.default_rng([int(seed), int(index), 0x51DE])
    ckind, cx, cy, L, W, H, ang = st["container"]
    records = st["records"]
    zr = [height_range(o, rot, mmpp) for o, _, _, rot, _, _ in records]
    ext = [hi - lo for lo, hi in zr]
    # a parcel holds what it holds: one whose contents stand taller than it (a pistol on its edge in
    # a padded envelope, unfitted clutter) bulges to their height in this view
    H = min(700.0, max([H] + [e + 4.0 for e in ext]))
    # the side detector column spans the tunnel's height; the parcel stands on the belt near its foot
    tunnel = max(H + float(rng.uniform(40, 120)), float(rng.uniform(380, 700)))
    hpx = int(min(cfg.max_side, tunnel / mmpp))
    belt = hpx * mmpp - float(rng.uniform(15, 50))  # image row (mm) of the belt's surface
    cv = Canvas(hpx, wpx, mmpp, rng, st["att_row"])
    c, s = abs(np.cos(ang)), abs(np.sin(ang))
    length, depth = L * c + W * s, L * s + W * c  # the parcel's extent along the belt and along the beam
    draw_container(cv, ckind, cx, belt - H / 2, length, H, depth, 0.0, rng, view="side")
    x_lo, x_hi = (cx - length / 2) / mmpp, (cx + length / 2) / mmpp

    def soft(material: str, areal: np.ndarray, x_mm: float, _y_mm: float) -> None:
        # the same item lying in a layer near the bottom: each column's mass kept, spread over its
        # thickness (areal density over bulk density) with a rounded, lumpy profile
        cols = areal.sum(axis=0)
        if not cols.any():
            return
        thick = float(np.clip(float(areal[areal > 0].mean()) * 10.0 / rng.uniform(0.15, 0.45), 8.0, max(8.0, H - 4.0)))
        n = max(2, int(round(thick / mmpp)))
        u = (np.arange(n, dtype=np.float32) + 0.5) / n * 2 - 1
        layer = np.sqrt(1 - u * u)[:, None] * np.clip(1 + 0.35 * smooth_noise(rng, (n, len(cols)), max(2.0, n / 2)), 0.2, None)
        layer *= (cols / np.maximum(layer.sum(axis=0), 1e-6))[None, :]
        z0 = float(rng.random() ** 2) * max(0.0, H - thick)
        y0 = int(round((belt - z0 - thick) / mmpp))
        x0 = int(x_mm / mmpp) - areal.shape[1] // 2
        xs = np.arange(len(cols)) + x0
        keep = ((xs >= x_lo) & (xs < x_hi)).astype(np.float32)
        cv.add_areal(material, (layer * keep[None, :]).astype(np.float32), y0, x0)

    soft_meta = _add_soft_contents(cv, cfg, seed, index, ckind, cx, cy, L, W, ang, side=soft)

    base = [float(np.clip((mag - 1.0) / _TOP_MAG_RANGE, 0.0, 1.0)) * max(0.0, H - e)
            for (_, _, _, _, mag, _), e in zip(records, ext, strict=True)]
    for _, _, link in st["threats"]:
        i = link["record"]
        if link.get("above") is not None:  # under a dense item: on the bottom, the item on top of it
            base[i], base[link["above"]] = 0.0, ext[i]
        elif link["concealer"] is not None:  # inside an appliance: at its height
            k = link["concealer"]
            base[i] = max(0.0, base[k] + ext[k] / 2 - ext[i] / 2)
    own = {}
    for i, (o, x, _y, rot, _, pitch) in enumerate(records):  # depth along the beam: no matter
        own[i] = cv.project(o, x, belt - base[i] + zr[i][0], TO_SIDE @ rot, 1.0, pitch)

    for i, (material, factors, pad_mm) in st.get("clutter_wraps", []):  # wrapped clutter, as in the top view
        add_wrap(cv, *own[i], material, factors, max(1, int(pad_mm / mmpp)))
    objects = []
    for o, conceal, link in st["threats"]:
        att, y0, x0 = own[link["record"]]
        if link["wrap"] is not None:
            material, factors, pad_mm = link["wrap"]
            add_wrap(cv, att, y0, x0, material, factors, max(1, int(pad_mm / mmpp)))
        rot = records[link["record"]][3]
        objects.append((o, beam_orientation(rot, 1), "none" if conceal == "under_dense" else conceal, att, y0, x0))

    t_low, t_high = physics.transmissions(cv.maps, st["spectrum"])
    sigma, i0_low, i0_high, el = st["detector"]
    stretch = st.get("stretch")  # the same belt and line rate as the top view's
    dwell = 1.0 if stretch is None else 1.0 / stretch

    def read(t: np.ndarray, i0: float) -> np.ndarray:
        t = cv2.GaussianBlur(t, (0, 0), sigma)
        return detector_response(t if stretch is None else along_belt(t, stretch), i0 * dwell, el, rng)

    t_low, t_high = read(t_low, i0_low), read(t_high, i0_high)
    pal = st["render"]
    if pal["mode"] == "gray":
        img = render.grayscale(t_low, t_high, pal["gamma"], pal["low_weight"])
    else:
        img = render.pseudo_colour(t_low, t_high, render.Palette(**{k: v for k, v in pal.items() if k != "mode"}),
                                   st["spectrum"])
    if st["jpeg_q"] is not None:
        gray = img.ndim == 2
        ok, buf = cv2.imencode(".jpg", img if gray else img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, st["jpeg_q"]])
        dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        img = dec if gray else dec[..., ::-1].copy()

    boxes, labelled_maps = label_threats(objects, cv.attenuation(), wpx, hpx, st["n_clutter"])
    if stretch is not None:
        stretch_boxes(boxes, stretch, t_high.shape[1])
    rank = {"easy": 0, "hard": 1, "concealed": 2}
    meta = dict(st["meta"])
    for k in ("display", "display_jitter", "fan_beam"):
        meta.pop(k, None)
    meta.update({
        "view": "side", "height": int(hpx), "n_threats": len(boxes), "tunnel_height_mm": round(tunnel, 1),
        "parcel_height_mm": round(H, 1),
        "belt_row_mm": round(belt, 1), "difficulty": max((b["difficulty"] for b in boxes), key=lambda d: rank[d], default="clean"),
        "printed": any(b["printed"] for b in boxes),
    })
    if cfg.p_soft > 0:
        meta["soft"] = soft_meta
    extras = {"threat_maps": labelled_maps} if st.get("keep_raw") else {}
    return Scan(img, boxes, meta, extras=extras)
