"""Procedural firearms, firearm components and ammunition, in 3D with real materials.

Object frame: x = long axis (muzzle towards -x), y = height, z = thickness; mm.
Each generator varies the design (sizes, angles, materials, styles) from its rng, so
no two guns are alike. Assembled firearms and their separate components come from
the same part generators, so a loose slide looks like the slide of a gun.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .shapes import (
    Obj,
    _grid,
    _layers,
    add_coil,
    box,
    cylinder,
    extrude,
    mask_points,
    printed_solid,
)


# ----------------------------------------------------------------- helpers
def _union_mask(add: list, sub: list, pitch: float, margin: float,
                extent: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The union of polygons `add` minus `sub` rasterised at pitch with a margin of air around it:
    (mask, the mm position of its pixel (0, 0)). `extent`: more points the raster must hold (what
    the caller draws into it afterwards)."""
    allp = np.concatenate([np.asarray(p, np.float64) for p in add] + ([np.asarray(extent, np.float64)] if extent else []))
    lo = allp.min(0) - margin
    hi = allp.max(0) + margin
    w = int(np.ceil((hi[0] - lo[0]) / pitch)) + 2
    h = int(np.ceil((hi[1] - lo[1]) / pitch)) + 2
    mask = np.zeros((h, w), np.uint8)
    for p in add:
        cv2.fillPoly(mask, [np.round((np.asarray(p) - lo) / pitch * 8).astype(np.int32)], 1, shift=3)
    for p in sub:
        cv2.fillPoly(mask, [np.round((np.asarray(p) - lo) / pitch * 8).astype(np.int32)], 0, shift=3)
    return mask, lo


def mask_prism(add: list, sub: list, z0: float, z1: float, pitch: float, shell: float | None = None,
               rings: list | None = None, edge_r: float = 0.0) -> tuple[np.ndarray, float]:
    """Prism from a union of polygons minus holes. With shell, keep only a hollow skin
    of that thickness (sheet metal); edge_r rounds the edges between its sides and faces
    (round_edges); returns (points, density scale for mass)."""
    # the raster holds the rings too: one reaching past the polygons' box was clipped (generator <= 5.0.0)
    ring_box = [(cx + s * r_o, cy + s * r_o) for (cx, cy, r_o, _) in rings or [] for s in (-1, 1)]
    mask, lo = _union_mask(add, sub, pitch, pitch, extent=ring_box)
    for (cx, cy, r_o, r_i) in rings or []:
        c = (int(round((cx - lo[0]) / pitch * 8)), int(round((cy - lo[1]) / pitch * 8)))
        cv2.circle(mask, c, int(round(r_o / pitch * 8)), 1, -1, shift=3)
        cv2.circle(mask, c, int(round(r_i / pitch * 8)), 0, -1, shift=3)
    xy = mask_points(mask, lo, pitch)
    zs = _grid(z0, z1, pitch)
    pts = _layers(xy, zs)
    scale = 1.0
    if shell is not None or edge_r > pitch * 0.5:
        dd = np.tile(cv2.distanceTransform(mask, cv2.DIST_L2, 3)[mask > 0] * pitch, len(zs))
        keep = np.ones(len(pts), bool)
        if edge_r > pitch * 0.5:
            keep = _edge_keep(dd, pts[:, 2], z0, z1, pitch, edge_r)
        if shell is not None:
            dz = np.minimum(pts[:, 2] - z0, z1 - pts[:, 2])
            eff = max(shell, pitch)
            if edge_r > pitch * 0.5:  # the skin follows the rounded edge
                rr = min(edge_r, (z1 - z0) / 2)
                a, b = np.maximum(rr - np.maximum(dd - 0.5 * pitch, 0), 0), np.maximum(rr - dz, 0)
                near_round = (a > 0) & (b > 0)
                skin = (dd <= eff) | (dz <= eff) | (near_round & (np.hypot(a, b) >= rr - eff))
            else:
                skin = (dd <= eff) | (dz <= eff)
            keep &= skin
            scale = shell / eff
        pts = pts[keep]
    return pts, scale


def fillet(poly, r: float, n: int = 5, only: set[int] | None = None) -> np.ndarray:
    """The polygon with its corners rounded: each corner (or only those indexed) becomes an arc of
    radius r tangent to both edges, n segments long, the radius shrunk where an edge is too short
    for it (at most 45 % of either edge). Machined and moulded gun parts have no sharp corners:
    grips, trigger guards, muzzles and sights are rounded (generator 4.0.0)."""
    p = np.asarray(poly, np.float64)
    m = len(p)
    out = []
    for i in range(m):
        a, b, c = p[i - 1], p[i], p[(i + 1) % m]
        u, v = a - b, c - b
        lu, lv = float(np.hypot(*u)), float(np.hypot(*v))
        if (only is not None and i not in only) or lu < 1e-9 or lv < 1e-9 or r <= 0:
            out.append(b)
            continue
        u, v = u / lu, v / lv
        ang = math.acos(float(np.clip(u @ v, -1.0, 1.0)))  # the corner's inside angle
        if ang < 1e-3 or ang > math.pi - 1e-3:
            out.append(b)
            continue
        t = min(r / math.tan(ang / 2), 0.45 * lu, 0.45 * lv)  # tangent length
        rr = t * math.tan(ang / 2)
        bis = (u + v) / np.hypot(*(u + v))
        centre = b + bis * (rr / math.sin(ang / 2))
        p1, p2 = b + u * t, b + v * t
        a1 = math.atan2(p1[1] - centre[1], p1[0] - centre[0])
        a2 = math.atan2(p2[1] - centre[1], p2[0] - centre[0])
        turn = (a2 - a1 + math.pi) % (2 * math.pi) - math.pi  # the short way round
        for k in range(n + 1):
            t_ = a1 + turn * k / n
            out.append(centre + rr * np.array([math.cos(t_), math.sin(t_)]))
    return np.array(out)


def round_edges(pts: np.ndarray, add: list, sub: list, z0: float, z1: float, pitch: float, r: float) -> np.ndarray:
    """Which points of a prism (polygons `add` minus `sub`, extruded from z0 to z1) stay when the
    edges where its side walls meet its two faces are rounded with radius r: a boolean mask.
    Seen flat, the areal density then falls off towards the outline as a real gun's does, instead
    of a slab's step; seen edge-on, a slide or grip is a rounded bar, not a rectangle."""
    if r <= pitch * 0.5 or not len(pts):
        return np.ones(len(pts), bool)
    mask, lo = _union_mask(add, sub, pitch, 2 * pitch)
    h, w = mask.shape
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, 3) * pitch
    ix = np.clip(np.round((pts[:, 0] - lo[0]) / pitch).astype(np.int64), 0, w - 1)
    iy = np.clip(np.round((pts[:, 1] - lo[1]) / pitch).astype(np.int64), 0, h - 1)
    return _edge_keep(dist[iy, ix], pts[:, 2], z0, z1, pitch, r)


def _edge_keep(dist: np.ndarray, z: np.ndarray, z0: float, z1: float, pitch: float, r: float) -> np.ndarray:
    """Inside the quarter rounds of radius r, from each point's distance (mm, pixel centre to the
    nearest outside pixel) to the side wall and its z."""
    dd = np.maximum(dist - 0.5 * pitch, 0.0)  # to the side wall
    dz = np.minimum(z - z0, z1 - z)  # to the nearer face
    r = min(r, (z1 - z0) / 2)
    a, b = np.maximum(r - dd, 0.0), np.maximum(r - dz, 0.0)
    return a * a + b * b <= r * r


def _printed_mask_prism(add, sub, z0, z1, pitch, rng, infill, pattern, edge_r: float = 0.0):
    """An FDM print of polygons `add` minus holes `sub`, extruded from z0 to z1; edge_r rounds its
    side-to-face edges (round_edges), as mask_prism's does."""
    pts = np.concatenate([printed_solid(p, z0, z1, pitch, rng, infill, pattern) for p in add])
    for hole in sub:
        pts = pts[~_points_in_poly(pts[:, :2], hole)]
    return pts[round_edges(pts, add, sub, z0, z1, pitch, edge_r)]


def _points_in_poly(xy: np.ndarray, poly) -> np.ndarray:
    poly = np.asarray(poly, np.float64)
    x, y = xy[:, 0], xy[:, 1]
    inside = np.zeros(len(xy), bool)
    n = len(poly)
    j = n - 1
    for i in range(n):
        xi, yi = poly[i]
        xj, yj = poly[j]
        cond = ((yi > y) != (yj > y)) & (x < (xj - xi) * (y - yi) / (yj - yi + 1e-12) + xi)
        inside ^= cond
        j = i
    return inside


def cartridge(rng: np.random.Generator, pitch: float, calibre: str | None = None) -> Obj:
    """One cartridge along x, bullet towards -x."""
    cal = calibre or rng.choice(["9mm", "9mm", ".45", ".22", ".380", "5.56", "7.62x39", ".38", "12ga"])
    o = Obj([], "ammunition", "cartridge", {"calibre": str(cal)})
    dims = {  # case radius, case length, bullet radius, bullet length
        "9mm": (4.9, 19.1, 4.5, 10.5), ".45": (6.0, 22.8, 5.7, 11.0), ".22": (2.9, 15.0, 2.8, 9.0),
        ".380": (4.8, 17.3, 4.5, 9.0), "5.56": (4.8, 44.7, 2.85, 19.0), "7.62x39": (5.6, 38.6, 3.9, 17.0),
        ".38": (4.8, 29.0, 4.5, 12.0),
    }
    if cal == "12ga":
        o.add(cylinder(10.2, 66, pitch, r_in=9.4), "abs", pitch)  # plastic hull
        head = rng.uniform(8, 16)
        o.add(cylinder(10.4, head, pitch, r_in=9.0, centre=(33 - head / 2, 0, 0)), "brass", pitch)
        shot = cylinder(9.2, 22, pitch, centre=(-20, 0, 0))
        o.add(shot, "lead", pitch, density_scale=0.62)  # packed pellets
        o.add(cylinder(9.2, 18, pitch, centre=(5, 0, 0)), "cellulose", pitch, density_scale=0.5)
        return o
    rc, lc, rb, lb = dims[str(cal)]
    wall = 0.5
    eff = max(wall, pitch)
    o.add(cylinder(rc, lc, pitch, r_in=max(rc - eff, 0.3), centre=(lc / 2, 0, 0)), "brass", pitch, wall / eff)
    o.add(cylinder(rc, 1.6, pitch, centre=(lc - 0.8, 0, 0)), "brass", pitch)  # head
    o.add(cylinder(rc - eff, lc - 3, pitch, centre=(lc / 2, 0, 0)), "cellulose", pitch, 0.6)  # powder
    o.add(cylinder(rb, lb, pitch, centre=(-lb / 2 + 3, 0, 0)), "lead", pitch, 0.9)
    o.add(cylinder(rb * 0.6, lb * 0.3, pitch, centre=(-lb + 3, 0, 0)), "copper", pitch)  # jacket tip
    return o


# ----------------------------------------------------------------- pistol family
def pistol_design(rng: np.random.Generator) -> dict:
    size = rng.choice(["pocket", "compact", "full", "full"])
    L = {"pocket": rng.uniform(120, 150), "compact": rng.uniform(150, 180), "full": rng.uniform(180, 215)}[str(size)]
    ws = rng.uniform(19, 27)
    return {
        "L": L,
        "size": str(size),
        "hs": rng.uniform(24, 33),
        "ws": ws,
        "hr": rng.uniform(10, 15),
        "grip_front": L - rng.uniform(55, 72) * (0.85 if size == "pocket" else 1.0),
        "grip_rear": L - rng.uniform(6, 16),
        "grip_h": rng.uniform(70, 100) * (0.75 if size == "pocket" else 1.0),
        "grip_angle": np.radians(rng.uniform(8, 22)),
        "wf": rng.uniform(21, 31),
        "r_barrel": rng.uniform(6.0, 7.6),
        "bore": rng.uniform(4.2, 5.8),
        "style": rng.choice(["block", "tapered", "round"]),
        # generator 4.0.0: rounded edges and corners, grips and guards of real shapes
        "edge_r": rng.uniform(1.5, 4.5),  # slide and frame edges, mm
        "corner_r": rng.uniform(1.5, 5.0),  # slide profile corners
        "muzzle_chamfer": rng.uniform(0, 9),  # the slide's front top bevel (most modern pistols)
        "beavertail": rng.uniform(0, 14),  # how far the frame's tang reaches back over the hand
        "finger_grooves": bool(rng.random() < 0.35),
        "palm_swell": rng.uniform(0, 5),  # the backstrap's bulge, mm
        "guard": rng.choice(["oval", "oval", "square"]),  # trigger guard: round, or a Glock's squared front
        "hammer": bool(rng.random() < 0.35),  # an external hammer (1911, CZ, Beretta) at the slide's rear
    }


def pistol_slide(d: dict, pitch: float, material: str = "steel") -> Obj:
    L, hs, ws = d["L"], d["hs"], d["ws"]
    ch = d["muzzle_chamfer"]
    prof = slide_profile(d)
    pts = extrude(prof, -ws / 2, ws / 2, pitch)
    # the slide's edges are rounded: end-on a bar with round shoulders, not a slab
    pts = pts[round_edges(pts, [prof], [], -ws / 2, ws / 2, pitch, d["edge_r"] * (1.6 if d["style"] == "round" else 1.0))]
    x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
    cavity = (x > 5) & (x < L - 20) & (y > 2.0) & (y < hs - 3.0) & (np.abs(z) < ws / 2 - 2.3)
    port = (x > L * 0.45) & (x < L * 0.68) & (y > hs - 4) & (z > -ws / 2 + 3)
    serr = (x > L - 30) & ((x % 3.0) < 1.1) & (np.abs(z) > ws / 2 - 0.8)
    bore = (x < 5) & ((y - hs * 0.45) ** 2 + z**2 < (d["r_barrel"] + 0.3) ** 2)
    pts = pts[~(cavity | port | serr | bore)]
    o = Obj([], "slide", "pistol_slide", {"material": material})
    o.add(pts, material, pitch)
    o.add(cylinder(1.2, 18, pitch, centre=(L - 12, hs * 0.45, 0)), "steel", pitch)  # firing pin
    o.add(box(6, 5, 7, pitch, centre=(L - 3, hs - 3, 0)), "steel", pitch)  # rear sight
    fx = max(6.0, ch + 3.0) if d["style"] == "block" else 6.0
    o.add(box(4, 3.5, 3, pitch, centre=(fx, hs + 1.5, 0)), "steel", pitch)  # front sight
    return o


def pistol_barrel(d: dict, pitch: float, material: str = "steel", liner: bool = False) -> Obj:
    L, hs, r, bore = d["L"], d["hs"], d["r_barrel"], d["bore"]
    if liner:
        r = bore + 1.2
    length = L - 22
    o = Obj([], "barrel", "pistol_barrel", {"material": material})
    o.add(cylinder(r, length, pitch, r_in=bore, centre=(2 + length / 2, hs * 0.45, 0)), material, pitch)
    if not liner:
        # chamber block with locking lug
        o.add(box(30, 2 * r + 5, 2 * r + 3, pitch, centre=(length - 13, hs * 0.45 + 1.5, 0)), material, pitch)
        o.add(box(8, 8, 8, pitch, centre=(length - 25, hs * 0.45 - r - 3, 0)), material, pitch)
    return o


def pistol_frame(d: dict, pitch: float, material: str, rng: np.random.Generator,
                 printed: bool = False, infill: float = 1.0, pattern: str = "grid") -> tuple[Obj, list]:
    L, hr, wf = d["L"], d["hr"], d["wf"]
    gf, gr = d["grip_front"], d["grip_rear"]
    rail, grip, guard, guard_hole, well = frame_outline(d, rng)
    o = Obj([], "frame", "pistol_frame", {"material": material, "printed": printed})
    er = d["edge_r"] + 1.0  # grips are rounder than slides
    if printed:
        pts = _printed_mask_prism([rail, grip, guard], [guard_hole], -wf / 2, wf / 2, pitch, rng, infill, pattern, edge_r=er)
        # the well is open inside, between the grip's side walls (before 2.0.0 it was cut through
        # them, leaving a printed grip as two thin strips)
        inwell = _points_in_poly(pts[:, :2], well) & (np.abs(pts[:, 2]) < wf / 2 - 2.5)
        o.add(pts[~inwell], material, pitch)
    else:
        shell = 3.0 if material in ("polymer", "abs", "nylon") else None
        pts, sc = mask_prism([rail, grip, guard], [guard_hole], -wf / 2, wf / 2, pitch, shell=shell, edge_r=er)
        # the magazine well is open in a real frame
        inwell = _points_in_poly(pts[:, :2], well) & (np.abs(pts[:, 2]) < wf / 2 - 2.5)
        o.add(pts[~inwell], material, pitch, sc)
    if material in ("polymer", "pla", "abs", "nylon"):
        # steel inserts: rails, locking block, trigger mechanism housing
        for cx in (8, L - 12):
            o.add(box(10, 3, wf - 4, pitch, centre=(cx, -1.5, 0)), "steel", pitch)
        o.add(box(12, 8, 10, pitch, centre=(gf - 8, -hr + 4, 0)), "steel", pitch)
        o.add(box(14, 10, 9, pitch, centre=(gr - 8, -hr + 2, 0)), "steel", pitch)
    # trigger (a curved blade) and trigger bar
    blade = fillet([(gf - 13, -hr - 2), (gf - 8, -hr - 2), (gf - 8.5, -hr - 11), (gf - 11, -hr - 20),
                    (gf - 15, -hr - 19), (gf - 13, -hr - 11)], 2.0, 3)
    o.add(extrude(blade, -2.5, 2.5, pitch), "steel", pitch)
    o.add(box(35, 2, 2, pitch, centre=(gf + 5, -hr + 3, wf / 2 - 3)), "steel", pitch)
    # pins across the frame
    for px, py in ((gf - 6, -hr + 5), (gr - 10, -hr + 4), (gf + 15, -hr + 6)):
        o.add(cylinder(1.2, wf, pitch, axis=2, centre=(px, py, 0)), "steel", pitch)
    return o, well


def frame_outline(d: dict, rng: np.random.Generator) -> tuple:
    """A pistol frame seen from the side, as polygons: (dust cover and rail, grip, trigger guard,
    the guard's opening, magazine well). The frames of real pistols and of toy and airsoft
    replicas alike: a replica is moulded to the same shape, and a model must not learn that
    rounded outlines mean a real gun."""
    L, hr, gh, ga = d["L"], d["hr"], d["grip_h"], d["grip_angle"]
    gf, gr = d["grip_front"], d["grip_rear"]
    dx = gh * np.tan(ga)
    rail = fillet([(3, 0), (L - 3, 0), (L - 3, -hr), (3, -hr)], 2.0)
    grip = _grip_outline(d, rng)
    tg_front = gf - rng.uniform(40, 52)
    guard = [(tg_front, -hr + 1), (gf + 2, -hr + 1), (gf + 2, -hr - 30), (tg_front + 8, -hr - 30), (tg_front, -hr - 22)]
    guard_hole = [(tg_front + 4, -hr - 2), (gf - 1, -hr - 2), (gf - 1, -hr - 26), (tg_front + 9, -hr - 26), (tg_front + 4, -hr - 20)]
    if d["guard"] == "oval":  # a round guard: its front and bottom one curve
        r_g = rng.uniform(10, 15)
        guard, guard_hole = fillet(guard, r_g, 6, only={2, 3, 4}), fillet(guard_hole, r_g - 3.5, 6, only={2, 3, 4})
    else:  # a squared front: small radii only
        guard, guard_hole = fillet(guard, 3.0, 3, only={2, 3, 4}), fillet(guard_hole, 2.0, 3, only={2, 3, 4})
    well = [(gf + 4, -hr + 2), (gr - 5, -hr + 2), (gr + dx - 2, -hr - gh - 1), (gf + dx + 3, -hr - gh - 1)]
    return rail, grip, guard, guard_hole, well


def slide_profile(d: dict) -> np.ndarray:
    """The slide seen from the side (muzzle at x = 0), its corners rounded."""
    L, hs, ch = d["L"], d["hs"], d["muzzle_chamfer"]
    if d["style"] == "tapered":
        prof = [(0, 0), (L, 0), (L, hs), (12, hs), (0, hs * 0.7)]
    elif d["style"] == "round":
        prof = [(0, 0), (L, 0), (L, hs * 0.9), (L - 6, hs), (6, hs), (0, hs * 0.8)]
    elif ch > 1.0:  # a bevelled muzzle: the front top corner cut back
        prof = [(0, 0), (L, 0), (L, hs), (ch, hs), (0, hs - ch * 0.6)]
    else:
        prof = [(0, 0), (L, 0), (L, hs), (0, hs)]
    return fillet(prof, d["corner_r"])


def _grip_outline(d: dict, rng: np.random.Generator) -> np.ndarray:
    """A pistol grip seen from the side: front strap (with finger grooves on some), a rounded
    butt, a backstrap with a palm swell, and the tang or beavertail over the web of the hand."""
    hr, gh, ga = d["hr"], d["grip_h"], d["grip_angle"]
    gf, gr = d["grip_front"], d["grip_rear"]
    dx = gh * np.tan(ga)
    a, b = np.array([gf, -hr + 1.0]), np.array([gf + dx - 2, -hr - gh])  # front strap, top to butt
    front = [a]
    if d["finger_grooves"]:
        n = np.array([-(b - a)[1], (b - a)[0]]) / np.hypot(*(b - a))  # the strap's forward normal
        n = n if n[0] < 0 else -n
        for k, t in enumerate((0.3, 0.4, 0.5, 0.6, 0.7)):
            front.append(a + (b - a) * t + n * (2.5 if k % 2 == 0 else 0.0))
    front.append(b)
    c = np.array([gr + dx + 4, -hr - gh])  # the butt's rear corner
    top_back = np.array([gr, -hr + 1.0])
    mid = (c + top_back) / 2 + np.array([d["palm_swell"], 0.0])
    back = [c, mid, top_back + np.array([1.5, -9.0])]
    bt = d["beavertail"]
    if bt > 2:
        back += [np.array([gr + bt, -hr - 2.5]), np.array([gr + bt * 0.7, -hr + 1.0])]
    else:
        back.append(top_back)
    return fillet(np.array(front + back), rng.uniform(4, 9), 4)


def magazine(rng: np.random.Generator, pitch: float, length: float = 0, rounds: int | None = None,
             kind: str = "pistol", material: str = "steel", printed_infill: float = 0.0) -> Obj:
    """Detachable box magazine along -y (feed lips at y=0): sheet-steel body, spring,
    follower, base plate, and cartridges."""
    if kind == "rifle":
        length = length or rng.uniform(140, 230)
        depth, width, cal = rng.uniform(55, 65), rng.uniform(22, 26), "5.56"
        curve = rng.uniform(0, 0.25)
    else:
        length = length or rng.uniform(95, 125)
        depth, width, cal = rng.uniform(30, 36), rng.uniform(14, 23), rng.choice(["9mm", ".45", ".380"])
        curve = 0.0
    bend = -curve * length  # curved rifle magazines bend forward, towards the muzzle (-x)
    body = fillet([(0, 0), (depth, 0), (depth + bend, -length), (bend, -length)], rng.uniform(1.5, 4.0), 3, only={0, 1})
    o = Obj([], "magazine", f"{kind}_magazine", {"material": material, "printed": printed_infill > 0})
    if printed_infill > 0:
        o.add(printed_solid(body, -width / 2, width / 2, pitch, rng, printed_infill, "grid"), "pla", pitch)
    else:
        pts, sc = mask_prism([body], [], -width / 2, width / 2, pitch, shell=0.9)
        o.add(pts, material, pitch, sc)
        o.add(box(depth + 6, 5, width + 4, pitch, centre=(depth / 2 + bend, -length - 2, 0)), "abs" if rng.random() < 0.5 else "steel", pitch)
    n = rng.integers(0, 16) if rounds is None else rounds
    follower_y = -8 - n * 4.5
    # the spring fills the body from the base plate up to the follower (compressed by the rounds):
    # built along x about the origin, then turned to run along y inside the body
    coil_len = max(6.0, follower_y - 1.5 - (-length + 2.5))
    add_coil(o, min(width, depth) / 2 - 2.5, 0.6, coil_len, rng.uniform(6, 10), "steel", pitch)
    coil = o.parts.pop()
    c = coil.pts.copy()
    y_mid = -length + 2.5 + coil_len / 2
    frac = (y_mid + 0.0) / -length  # how far down the body: where a curved body has moved forward
    c[:, 0], c[:, 1] = coil.pts[:, 1] + depth / 2 + bend * frac, coil.pts[:, 0] + y_mid
    coil.pts = c
    o.parts.append(coil)
    o.add(box(depth - 4, 3, width - 3, pitch, centre=(depth / 2 + bend * (-follower_y / length), follower_y, 0)), "abs", pitch)  # follower
    for i in range(int(n)):
        c = cartridge(rng, pitch, cal)
        zoff = (width / 4) * (1 if i % 2 else -1) if width > 18 else 0
        y = -5 - i * 4.5
        lo, hi = c.bounds()  # centred front to back in the body (a 5.56 round is 57 mm long)
        o.extend(c, offset=(depth / 2 - (lo[0] + hi[0]) / 2 + bend * (-y / length), y, zoff))
    o.meta["rounds"] = int(n)
    return o


def pistol(rng: np.random.Generator, pitch: float, variant: str | None = None) -> Obj:
    """Assembled semi-automatic pistol: one 'gun' object."""
    variant = variant or rng.choice(["polymer", "polymer", "steel", "alloy"])
    d = pistol_design(rng)
    frame_mat = {"polymer": "polymer", "steel": "steel", "alloy": "aluminium"}[variant]
    g = Obj([], "gun", f"pistol_{variant}", {"material": frame_mat, "printed": False})
    frame, well = pistol_frame(d, pitch, frame_mat, rng)
    g.extend(frame).extend(pistol_slide(d, pitch)).extend(pistol_barrel(d, pitch))
    add_coil(g, 4.0, 0.55, d["L"] * 0.5, 14, "steel", pitch, centre=(d["L"] * 0.28, -4.5, 0))
    g.add(cylinder(2.0, d["L"] * 0.5, pitch, centre=(d["L"] * 0.28, -4.5, 0)), "steel" if rng.random() < 0.5 else "polymer", pitch)
    if d["hammer"] and variant != "polymer":
        _add_hammer(g, d, pitch)
    if rng.random() < 0.85:
        _insert_magazine(g, d, rng, pitch)
    return g


def _add_hammer(g: Obj, d: dict, pitch: float) -> None:
    """An external hammer behind the slide, its spur up and back (cocked or down alike, seen flat)."""
    L, hs = d["L"], d["hs"]
    spur = fillet([(L - 4, -2), (L + 3, -2), (L + 8, hs * 0.55), (L + 10, hs * 0.85), (L + 4, hs * 0.95), (L - 2, hs * 0.5)], 2.0, 3)
    g.add(extrude(spur, -3.5, 3.5, pitch), "steel", pitch)


def _insert_magazine(g: Obj, d: dict, rng, pitch):
    hr, gh, ga = d["hr"], d["grip_h"], d["grip_angle"]
    m = magazine(rng, pitch, length=gh + 6)
    # magazine frame: lips at y=0 -> place at top of grip, tilted by the grip angle (about z) so that
    # its base moves rearwards (+x) like the grip's: (0, -length) -> (+sin * length, -cos * length)
    c, s = np.cos(ga), np.sin(ga)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    g.extend(m, offset=(d["grip_front"] + 4, -hr + 1, 0), rot=rot)


def alarm_pistol(rng: np.random.Generator, pitch: float) -> Obj:
    """Converted blank-firing (alarm) pistol: zinc-alloy castings with a steel barrel
    liner pressed in where the blocked barrel was drilled out."""
    d = pistol_design(rng)
    d["r_barrel"] = rng.uniform(6.5, 8.0)
    g = Obj([], "gun", "converted_alarm_pistol", {"material": "zinc_alloy", "printed": False})
    frame, _ = pistol_frame(d, pitch, "zinc_alloy", rng)
    g.extend(frame).extend(pistol_slide(d, pitch, "zinc_alloy"))
    g.extend(pistol_barrel(d, pitch, "steel", liner=True))
    add_coil(g, 3.5, 0.5, d["L"] * 0.45, 12, "steel", pitch, centre=(d["L"] * 0.25, -4.5, 0))
    if rng.random() < 0.7:
        _insert_magazine(g, d, rng, pitch)
    return g


def revolver_parts(rng: np.random.Generator, pitch: float) -> dict[str, Obj]:
    bl = rng.uniform(50, 155)
    rb = rng.uniform(7.5, 9.5)
    rc = rng.uniform(17, 21)
    lc = rng.uniform(36, 42)
    wf = rng.uniform(24, 32)
    barrel = Obj([], "barrel", "revolver_barrel", {"material": "steel"})
    barrel.add(cylinder(rb, bl, pitch, r_in=4.5, centre=(bl / 2, 0, 0)), "steel", pitch)
    underlug = rng.random() < 0.6
    if underlug:
        barrel.add(box(bl * 0.9, rb * 0.9, rb * 1.3, pitch, centre=(bl * 0.48, -rb - rb * 0.4, 0)), "steel", pitch)  # underlug
    barrel.add(box(bl, 3, 6, pitch, centre=(bl / 2, rb + 1, 0)), "steel", pitch)  # rib
    if rng.random() < 0.75:  # ramped front sight
        barrel.add(extrude(fillet([(1, rb), (9, rb), (5, rb + 7), (2, rb + 7)], 1.5, 3), -1.6, 1.6, pitch), "steel", pitch)
    cyl = Obj([], "gun", "revolver_cylinder", {"material": "steel"})
    nch = int(rng.choice([5, 6, 6, 6, 7, 8]))
    drum = cylinder(rc, lc, pitch, centre=(bl + 2 + lc / 2, 0, 0))
    keep = np.ones(len(drum), bool)
    loaded = rng.random() < 0.6
    fluted = rng.random() < 0.6
    for k in range(nch):
        a = 2 * np.pi * k / nch
        cy, cz = rc * 0.58 * np.cos(a), rc * 0.58 * np.sin(a)
        keep &= (drum[:, 1] - cy) ** 2 + (drum[:, 2] - cz) ** 2 > 4.8**2
        if fluted:  # a flute between two chambers, short of the cylinder's rear
            fa = a + np.pi / nch
            fy, fz = (rc + 1.5) * np.cos(fa), (rc + 1.5) * np.sin(fa)
            keep &= ~(((drum[:, 1] - fy) ** 2 + (drum[:, 2] - fz) ** 2 < 4.0**2)
                      & (drum[:, 0] > bl + 6) & (drum[:, 0] < bl + 2 + lc - 9))
        if loaded:
            c = cartridge(rng, pitch, ".38")
            cyl.extend(c, offset=(bl + 4 + 8, cy, cz))
    cyl.add(drum[keep], "steel", pitch)
    x0 = bl + 2 + lc
    gh = rng.uniform(70, 95)
    if not underlug:  # the ejector rod under the barrel (a full underlug shrouds it)
        barrel.add(cylinder(3.0, min(bl, lc + 8), pitch, centre=(bl - min(bl, lc + 8) / 2, -rb - 3, 0)), "steel", pitch)
    frame_poly_top = fillet([(bl - 8, rc + 1), (x0 + 14, rc + 1), (x0 + 14, rc + 8), (bl - 8, rc + 6)], 2.5, 3)
    frame_poly_bot = fillet([(bl - 10, -rc - 1), (x0 + 14, -rc - 1), (x0 + 14, -rc - 10), (bl - 10, -rc - 8)], 2.5, 3)
    shield = fillet([(x0, rc + 8), (x0 + 16, rc + 8), (x0 + 16, -rc - 10), (x0, -rc - 10)], 3.0, 3)
    butt = rng.choice(["round", "square", "birds_head"])
    if butt == "birds_head":  # the butt curls forward under the hand
        grip = [(x0 + 0, -rc - 10), (x0 + 22, -rc - 10), (x0 + 34, -rc - 10 - gh * 0.45), (x0 + 40, -rc - 8 - gh * 0.9),
                (x0 + 30, -rc - 12 - gh), (x0 + 12, -rc - 10 - gh * 0.9), (x0 + 6, -rc - 10 - gh * 0.5)]
        r_b = rng.uniform(8, 14)
    else:
        grip = [(x0 + 0, -rc - 10), (x0 + 22, -rc - 10), (x0 + 33, -rc - 10 - gh * 0.5), (x0 + 48, -rc - 12 - gh),
                (x0 + 16, -rc - 14 - gh), (x0 + 4, -rc - 10 - gh * 0.5)]
        r_b = rng.uniform(8, 14) if butt == "round" else rng.uniform(2, 5)
    grip = fillet(grip, r_b, 5)
    frame = Obj([], "frame", "revolver_frame", {"material": "steel"})
    # the grip frame is a steel strap of the grip's outline between the panels
    gripf = fillet(grip, 3.0, 3)
    pts, _ = mask_prism([frame_poly_top, frame_poly_bot, shield, gripf], [], -wf / 4, wf / 4, pitch,
                        rings=[(x0 - 10, -rc - 22, 16, 12)], edge_r=2.0)
    frame.add(pts, "steel", pitch)
    # trigger in the guard, the hammer's spur up and back
    frame.add(extrude(fillet([(x0 - 12, -rc - 9), (x0 - 6, -rc - 9), (x0 - 7, -rc - 20), (x0 - 11, -rc - 30),
                              (x0 - 15, -rc - 28), (x0 - 12, -rc - 20)], 2.0, 3), -2.5, 2.5, pitch), "steel", pitch)
    gp = extrude(grip, -wf / 2, wf / 2, pitch)
    panels = round_edges(gp, [grip], [], -wf / 2, wf / 2, pitch, rng.uniform(4, 8)) & (np.abs(gp[:, 2]) >= wf / 4)
    frame.add(gp[panels], "wood" if rng.random() < 0.5 else "rubber", pitch)
    hammer = fillet([(x0 + 8, rc + 4), (x0 + 18, rc + 4), (x0 + 24, rc + 12), (x0 + 30, rc + 17), (x0 + 24, rc + 20), (x0 + 15, rc + 15)], 2.0, 3)
    frame.add(extrude(hammer, -3, 3, pitch), "steel", pitch)
    return {"barrel": barrel, "cylinder": cyl, "frame": frame}


def revolver(rng: np.random.Generator, pitch: float) -> Obj:
    g = Obj([], "gun", "revolver", {"material": "steel", "printed": False})
    for p in revolver_parts(rng, pitch).values():
        g.extend(p)
    return g


def carbine_parts(rng: np.random.Generator, pitch: float) -> dict[str, Obj]:
    style = rng.choice(["tube_smg", "ar"])
    parts: dict[str, Obj] = {}
    if style == "tube_smg":
        lr = rng.uniform(200, 300)
        rr = rng.uniform(15, 20)
        rec = Obj([], "frame", "smg_receiver", {"material": "steel"})
        rec.add(cylinder(rr, lr, pitch, r_in=rr - 1.6, centre=(lr / 2, 0, 0)), "steel", pitch)
        rec.add(box(60, 25, 22, pitch, wall=2, centre=(lr * 0.55, -rr - 12, 0)), "steel", pitch)  # trigger group
        rec.add(box(70, 16, 10, pitch, centre=(lr * 0.4, 0, 0)), "steel", pitch)  # bolt
        add_coil(rec, rr - 5, 0.9, lr * 0.4, 18, "steel", pitch, centre=(lr * 0.75, 0, 0))
    else:
        lr = rng.uniform(230, 290)
        rec = Obj([], "frame", "ar_receiver", {"material": "aluminium"})
        upper = [(0, 0), (lr, 0), (lr, 32), (0, 32)]
        lower = [(lr * 0.25, 0), (lr * 0.8, 0), (lr * 0.78, -28), (lr * 0.3, -28)]
        pts, _ = mask_prism([upper, lower], [], -12, 12, pitch)
        inner = (pts[:, 1] > 4) & (pts[:, 1] < 28) & (np.abs(pts[:, 2]) < 9) & (pts[:, 0] > 10)
        rec.add(pts[~inner], "aluminium", pitch)
        rec.add(box(90, 18, 16, pitch, centre=(lr * 0.55, 16, 0)), "steel", pitch)  # bolt carrier
        rec.add(box(40, 10, 8, pitch, centre=(lr * 0.6, -15, 0)), "steel", pitch)  # hammer/trigger
    bl = rng.uniform(120, 400)
    barrel = Obj([], "barrel", "carbine_barrel", {"material": "steel"})
    barrel.add(cylinder(rng.uniform(7, 10), bl, pitch, r_in=rng.uniform(2.8, 4.6), centre=(-bl / 2 + 10, 10 if style == "ar" else 0, 0)), "steel", pitch)
    parts["receiver"] = rec
    parts["barrel"] = barrel
    mag = magazine(rng, pitch, kind="rifle" if style == "ar" else "pistol")
    parts["magazine"] = mag.transformed(np.eye(3), (lr * 0.35, -20 if style == "ar" else -18, 0))
    grip = Obj([], "frame", "grip", {"material": "polymer"})
    gpoly = fillet([(lr * 0.75, -20), (lr * 0.85, -20), (lr * 0.95, -100), (lr * 0.83, -100)], rng.uniform(3, 8), 4)
    gp = extrude(gpoly, -13, 13, pitch)
    grip.add(gp[round_edges(gp, [gpoly], [], -13, 13, pitch, 4.0)], "polymer", pitch, 0.6)
    parts["grip"] = grip
    if rng.random() < 0.5:
        stock = Obj([], "frame", "stock", {"material": "steel"})
        ls = rng.uniform(180, 280)
        for dy in (-10, 10):
            stock.add(cylinder(3.5, ls, pitch, centre=(lr + ls / 2, dy, 0)), "steel", pitch)
        stock.add(box(10, 100, 25, pitch, centre=(lr + ls, -20, 0)), "steel", pitch, 0.5)
        parts["stock"] = stock
    return parts


def carbine(rng: np.random.Generator, pitch: float) -> Obj:
    g = Obj([], "gun", "carbine_smg", {"material": "steel", "printed": False})
    for p in carbine_parts(rng, pitch).values():
        g.extend(p)
    return g


def printed_frame(rng: np.random.Generator, pitch: float, kind: str | None = None) -> Obj:
    """3D-printed component (frame, receiver, grip, slide): PLA/ABS/nylon with an infill
    lattice; metal inserts (pins, nails, springs) are what an X-ray shows best."""
    kind = kind or rng.choice(["frame", "receiver", "grip", "slide"])
    mat = rng.choice(["pla", "pla", "abs", "nylon"])
    infill = float(rng.choice([0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0]))
    pattern = rng.choice(["grid", "triangles", "gyroid", "honeycomb"])
    d = pistol_design(rng)
    d["wf"] = rng.uniform(26, 36)
    o = Obj([], "printed_part", f"printed_{kind}", {"material": str(mat), "printed": True, "infill": infill, "pattern": str(pattern)})
    if kind == "frame":
        f, _ = pistol_frame(d, pitch, str(mat), rng, printed=True, infill=infill, pattern=str(pattern))
        o.extend(f)
    elif kind == "receiver":
        lr = rng.uniform(150, 260)
        body = fillet([(0, 0), (lr, 0), (lr, 40), (0, 40)], rng.uniform(2, 8))
        lower = fillet([(lr * 0.3, 0), (lr * 0.8, 0), (lr * 0.85, -70), (lr * 0.7, -75)], rng.uniform(3, 8))
        o.add(_printed_mask_prism([body, lower], [], -16, 16, pitch, rng, infill, str(pattern)), str(mat), pitch)
        for _k in range(int(rng.integers(2, 6))):
            o.add(cylinder(1.5, 32, pitch, axis=2, centre=(rng.uniform(10, lr - 10), rng.uniform(5, 35), 0)), "steel", pitch)
    elif kind == "grip":
        gh = rng.uniform(80, 110)
        grip = fillet([(0, 0), (35, 0), (44, -gh * 0.5), (55, -gh), (18, -gh), (10, -gh * 0.5)], rng.uniform(4, 10), 4)
        gp = _printed_mask_prism([grip], [], -15, 15, pitch, rng, infill, str(pattern))
        o.add(gp[round_edges(gp, [grip], [], -15, 15, pitch, rng.uniform(2, 6))], str(mat), pitch)
        o.add(cylinder(1.5, 30, pitch, axis=2, centre=(15, -10, 0)), "steel", pitch)
    else:
        sl = fillet([(0, 0), (d["L"], 0), (d["L"], d["hs"] + 4), (0, d["hs"] + 4)], d["corner_r"] + 1.0)
        z = d["ws"] / 2 + 2
        o.add(_printed_mask_prism([sl], [], -z, z, pitch, rng, infill, str(pattern), edge_r=d["edge_r"]), str(mat), pitch)
        o.add(box(40, 14, 12, pitch, centre=(d["L"] - 25, d["hs"] / 2, 0)), "steel", pitch)  # steel breech block insert
    # typical inserts: nails as pins, a spring
    if rng.random() < 0.6:
        add_coil(o, 3, 0.5, rng.uniform(25, 60), 10, "steel", pitch, centre=(d["L"] * 0.5, -5, 0))
    return o


def printed_gun(rng: np.random.Generator, pitch: float) -> Obj:
    """Assembled 3D-printed gun: printed frame (and often slide/upper), steel barrel or
    liner, steel springs, pins and nails, magazine."""
    d = pistol_design(rng)
    d["wf"] = rng.uniform(26, 36)
    d["hs"] = rng.uniform(30, 42)
    mat = str(rng.choice(["pla", "pla", "abs", "nylon"]))
    infill = float(rng.choice([0.15, 0.2, 0.3, 0.4, 0.6, 1.0]))
    pattern = str(rng.choice(["grid", "triangles", "gyroid", "honeycomb"]))
    g = Obj([], "gun", "printed_gun", {"material": mat, "printed": True, "infill": infill, "pattern": pattern})
    f, _ = pistol_frame(d, pitch, mat, rng, printed=True, infill=infill, pattern=pattern)
    g.extend(f)
    L, hs = d["L"], d["hs"]
    upper = fillet([(0, 0), (L, 0), (L, hs), (d["muzzle_chamfer"], hs), (0, hs - d["muzzle_chamfer"] * 0.6)], d["corner_r"] + 1.5)
    g.add(_printed_mask_prism([upper], [], -d["wf"] / 2, d["wf"] / 2, pitch, rng, infill, pattern, edge_r=d["edge_r"] + 1.0), mat, pitch)
    style = rng.choice(["steel_barrel", "liner", "none"], p=[0.55, 0.3, 0.15])
    if style != "none":
        g.extend(pistol_barrel(d, pitch, "steel", liner=style == "liner"))
    g.add(box(45, 14, 14, pitch, centre=(L - 30, hs * 0.45, 0)), "steel", pitch)  # bolt
    add_coil(g, 5, 0.8, L * 0.5, 12, "steel", pitch, centre=(L * 0.6, hs * 0.45, 0))
    for _ in range(int(rng.integers(2, 6))):  # nails and pins
        g.add(cylinder(1.4, d["wf"], pitch, axis=2, centre=(rng.uniform(10, L - 10), rng.uniform(-30, hs), 0)), "steel", pitch)
    if rng.random() < 0.7:
        _insert_magazine(g, d, rng, pitch)
    return g


def ammunition(rng: np.random.Generator, pitch: float) -> Obj:
    """Cartridges: a few loose (one box around the group) or a carton of 20-50."""
    o = Obj([], "ammunition", "ammunition", {"material": "brass"})
    cal = str(rng.choice(["9mm", "9mm", ".45", ".22", ".380", "5.56", "7.62x39", ".38", "12ga"]))
    if rng.random() < 0.5:
        n = int(rng.integers(1, 9))
        spread = rng.uniform(15, 60)
        for _ in range(n):
            c = cartridge(rng, pitch, cal)
            a = rng.uniform(0, 2 * np.pi)
            rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
            o.extend(c, offset=(rng.uniform(-spread, spread), rng.uniform(-spread, spread), rng.uniform(-8, 8)), rot=rot)
        o.kind = "loose_cartridges"
    else:
        c = cartridge(rng, pitch, cal)
        lo, hi = c.bounds()
        dia = hi[1] - lo[1] + 0.6
        nx, ny = int(rng.integers(4, 11)), int(rng.integers(3, 6))
        standing = rng.random() < 0.5
        for i in range(nx):
            for j in range(ny):
                if standing:  # rows of upright cartridges: seen end-on from above
                    rot = np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], float)
                    o.extend(c, offset=(i * dia, j * dia, 0), rot=rot)
                else:
                    o.extend(c, offset=(0, i * dia, j * dia))
        lo, hi = o.bounds()
        size = hi - lo + 6
        o.add(box(size[0], size[1], size[2], pitch * 1.5, wall=1.5, centre=(lo + hi) / 2), "cellulose", pitch * 1.5, 0.5)
        o.kind = "cartridge_box"
    o.meta["calibre"] = cal
    return o


def separate_part(rng: np.random.Generator, pitch: float, cls: str) -> Obj:
    """A loose essential component of class cls, from the same generators as guns."""
    if cls == "barrel":
        r = rng.random()
        if r < 0.55:
            o = pistol_barrel(pistol_design(rng), pitch)
        elif r < 0.75:
            o = revolver_parts(rng, pitch)["barrel"]
        else:
            o = carbine_parts(rng, pitch)["barrel"]
    elif cls == "slide":
        o = pistol_slide(pistol_design(rng), pitch, "steel" if rng.random() < 0.85 else "zinc_alloy")
    elif cls == "frame":
        r = rng.random()
        if r < 0.6:
            mat = str(rng.choice(["polymer", "polymer", "steel", "aluminium"]))
            o, _ = pistol_frame(pistol_design(rng), pitch, mat, rng)
        elif r < 0.8:
            o = revolver_parts(rng, pitch)["frame"]
        else:
            o = carbine_parts(rng, pitch)["receiver"]
    elif cls == "magazine":
        o = magazine(rng, pitch, kind="rifle" if rng.random() < 0.3 else "pistol")
    elif cls == "printed_part":
        o = printed_frame(rng, pitch)
    elif cls == "ammunition":
        o = ammunition(rng, pitch)
    else:
        raise ValueError(cls)
    o.label = cls
    return o


def assembled_gun(rng: np.random.Generator, pitch: float) -> Obj:
    r = rng.random()
    if r < 0.45:
        o = pistol(rng, pitch)
    elif r < 0.62:
        o = revolver(rng, pitch)
    elif r < 0.74:
        o = alarm_pistol(rng, pitch)
    elif r < 0.86:
        o = printed_gun(rng, pitch)
    else:
        o = carbine(rng, pitch)
    o.label = "gun"
    return o


# share of each class among drawn threats; SceneConfig.threat_mix / `xfd synth --threat-mix` reweights it
THREAT_MIX = {"gun": 0.36, "barrel": 0.11, "slide": 0.1, "frame": 0.1, "magazine": 0.11, "printed_part": 0.11, "ammunition": 0.11}


def check_threat_mix(mix: dict[str, float]) -> dict[str, float]:
    """A usable threat mix, or ValueError with the reason (CLI and library alike)."""
    for name, w in mix.items():
        if name not in THREAT_MIX:
            raise ValueError(f"--threat-mix: unknown class '{name}' (classes: {', '.join(THREAT_MIX)})")
        if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ValueError(f"--threat-mix: weight of '{name}' must be a finite number >= 0, got {w}")
    if not mix or sum(mix.values()) <= 0:
        raise ValueError("--threat-mix: give at least one class a weight above 0")
    return mix


def parse_threat_mix(text: str) -> dict[str, float]:
    """'gun=1,frame=2' -> {"gun": 1.0, "frame": 2.0}, refused with a reason when it cannot be used."""
    mix: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = (x.strip() for x in part.partition("="))
        if not sep:
            raise ValueError(f"--threat-mix: '{part}' is not CLASS=WEIGHT")
        if name in mix:
            raise ValueError(f"--threat-mix: '{name}' given twice")
        try:
            mix[name] = float(value)
        except ValueError:
            raise ValueError(f"--threat-mix: weight of '{name}' is not a number: '{value}'") from None
    return check_threat_mix(mix)


def make_threat(rng: np.random.Generator, pitch: float, cls: str | None = None,
                mix: dict[str, float] | None = None) -> Obj:
    """One threat of class `cls`, or drawn with the weights `mix` (default THREAT_MIX)."""
    if cls is None:
        mix = mix or THREAT_MIX
        names = list(THREAT_MIX)
        p = np.array([float(mix.get(n, 0.0)) for n in names])
        cls = names[int(rng.choice(len(names), p=p / p.sum()))]
    o = assembled_gun(rng, pitch) if cls == "gun" else separate_part(rng, pitch, cls)
    return o.centred()
