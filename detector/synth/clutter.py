"""Benign parcel contents, including the confusers that cause false alarms in
screening (toy and replica guns, hand tools, tubes and pipes, bicycle parts,
electronics). Object frame and units as in threats.py."""

from __future__ import annotations

import numpy as np

from .shapes import (
    Obj,
    add_coil,
    add_wire,
    box,
    cylinder,
    ellipsoid,
    extrude,
    sheet,
)
from .threats import mask_prism, pistol_design


def toy_gun(rng, p):
    """Plastic toy/replica gun: a gun silhouette in thin ABS with a few steel screws
    and, for airsoft replicas, a thin brass inner barrel and a spring."""
    d = pistol_design(rng)
    L, hs, hr, gh = d["L"], d["hs"], d["hr"], d["grip_h"]
    dx = gh * np.tan(d["grip_angle"])
    body = [(0, 0), (L, 0), (L, hs), (0, hs)]
    rail = [(3, 0), (L - 3, 0), (L - 3, -hr), (3, -hr)]
    grip = [(d["grip_front"], -hr), (d["grip_rear"], -hr), (d["grip_rear"] + dx, -hr - gh), (d["grip_front"] + dx, -hr - gh)]
    pts, sc = mask_prism([body, rail, grip], [], -d["wf"] / 2, d["wf"] / 2, p, shell=rng.uniform(1.5, 2.5))
    o = Obj([], None, "toy_gun").add(pts, "abs", p, sc)
    for _ in range(int(rng.integers(3, 8))):
        o.add(cylinder(1.3, 8, p, axis=2, centre=(rng.uniform(5, L), rng.uniform(-hr - gh * 0.8, hs), 0)), "steel", p)
    if rng.random() < 0.5:  # airsoft replica
        o.kind = "airsoft_replica"
        o.add(cylinder(4.0, L * 0.8, p, r_in=3.2, centre=(L * 0.4, hs * 0.5, 0)), "brass", p)
        add_coil(o, 5, 0.6, L * 0.3, 14, "steel", p, centre=(L * 0.7, hs * 0.5, 0))
        if rng.random() < 0.5:
            o.add(box(28, gh * 0.8, 18, p, wall=1.0, centre=(d["grip_front"] + dx / 2 + 14, -hr - gh / 2, 0)), "zinc_alloy", p)
    return o


def wrench(rng, p):
    L = rng.uniform(120, 300)
    w = L * rng.uniform(0.08, 0.12)
    t = rng.uniform(4, 8)
    head = w * 2.2
    o = Obj([], None, "wrench")
    o.add(extrude([(0, -w / 2), (L, -w / 2), (L, w / 2), (0, w / 2)], -t / 2, t / 2, p), "steel", p)
    jaw = extrude([(-head * 0.6, -head / 2), (head * 0.3, -head / 2), (head * 0.3, head / 2), (-head * 0.6, head / 2)], -t / 2, t / 2, p)
    jaw = jaw[~((jaw[:, 0] < -head * 0.1) & (np.abs(jaw[:, 1]) < head * 0.22))]
    o.add(jaw, "steel", p)
    o.add(cylinder(head * 0.45, t, p, r_in=head * 0.25, axis=2, centre=(L, 0, 0)), "steel", p)
    return o


def pliers(rng, p):
    L = rng.uniform(140, 250)
    o = Obj([], None, "pliers")
    spread = rng.uniform(5, 30)
    for s in (-1, 1):
        o.add(extrude([(0, 0), (L * 0.35, s * 3), (L, s * spread), (L, s * (spread + 12)), (L * 0.35, s * 12), (0, s * 6)], -4, 4, p), "steel", p)
        o.add(extrude([(L * 0.45, s * (spread * 0.4 + 10)), (L, s * (spread + 13)), (L, s * (spread + 16)), (L * 0.45, s * (spread * 0.4 + 15))], -7, 7, p), "pvc", p)
    o.add(cylinder(5, 10, p, axis=2, centre=(L * 0.3, 0, 0)), "steel", p)
    return o


def screwdriver(rng, p):
    ls, lh = rng.uniform(60, 200), rng.uniform(80, 110)
    o = Obj([], None, "screwdriver")
    o.add(cylinder(rng.uniform(2.5, 4), ls, p, centre=(ls / 2, 0, 0)), "steel", p)
    o.add(cylinder(rng.uniform(12, 17), lh, p, centre=(ls + lh / 2, 0, 0)), "abs", p)
    return o


def drill(rng, p):
    o = Obj([], None, "cordless_drill")
    o.add(box(180, 60, 70, p, wall=3, centre=(0, 0, 0)), "abs", p)
    o.add(box(60, 140, 50, p, wall=3, centre=(40, -95, 0)), "abs", p)
    o.add(cylinder(18, 50, p, r_in=8, centre=(20, 0, 0)), "steel", p)  # motor can
    o.add(cylinder(14, 40, p, r_in=9, centre=(20, 0, 0)), "copper", p, 0.6)  # windings
    o.add(cylinder(12, 55, p, centre=(-110, 0, 0)), "steel", p)  # chuck
    for k in range(int(rng.integers(3, 6))):  # battery cells
        o.add(cylinder(9, 65, p, r_in=8.6, axis=1, centre=(40 + (k % 2) * 20 - 10, -170 - (k // 2) * 8, 0)), "steel", p)
        o.add(cylinder(8.6, 65, p, axis=1, centre=(40 + (k % 2) * 20 - 10, -170 - (k // 2) * 8, 0)), "battery", p)
    return o


def pipe(rng, p):
    """Metal tube: the classic barrel confuser."""
    mat = str(rng.choice(["steel", "steel", "aluminium", "copper", "brass"]))
    r = rng.uniform(5, 20)
    o = Obj([], None, f"{mat}_tube", {"material": mat})
    o.add(cylinder(r, rng.uniform(80, 400), p, r_in=r - rng.uniform(0.8, 3.0)), mat, p)
    return o


def bike_parts(rng, p):
    o = Obj([], None, "bicycle_parts")
    kind = rng.choice(["chain", "sprocket", "hub"])
    if kind == "chain":
        n = int(rng.integers(20, 60))
        t = np.linspace(0, rng.uniform(1, 4) * np.pi, n)
        rad = rng.uniform(40, 120)
        for i in range(n):
            o.add(box(12.7, 8, 8, p, wall=1.0, centre=(rad * np.cos(t[i]), rad * np.sin(t[i]) * 0.6, 0)), "steel", p)
    elif kind == "sprocket":
        r = rng.uniform(40, 100)
        teeth = int(r / 3)
        poly = [((r + 4 * (k % 2)) * np.cos(a), (r + 4 * (k % 2)) * np.sin(a)) for k, a in enumerate(np.linspace(0, 2 * np.pi, teeth * 2, endpoint=False))]
        pts = extrude(poly, -1.5, 1.5, p)
        pts = pts[(pts[:, 0] ** 2 + pts[:, 1] ** 2 > (r * 0.35) ** 2) | (pts[:, 0] ** 2 + pts[:, 1] ** 2 < (r * 0.2) ** 2)]
        o.add(pts, "steel", p)
    else:
        o.add(cylinder(20, 100, p, r_in=6), "aluminium", p)
        o.add(cylinder(4.5, 140, p), "steel", p)
    return o


def hair_dryer(rng, p):
    o = Obj([], None, "hair_dryer")
    o.add(cylinder(35, 170, p, r_in=32.5), "abs", p)
    o.add(box(45, 110, 35, p, wall=2.5, centre=(40, -85, 0)), "abs", p)
    add_coil(o, 20, 0.35, 90, 25, "steel", p, centre=(-20, 0, 0))  # nichrome
    o.add(cylinder(14, 30, p, r_in=6, centre=(60, 0, 0)), "copper", p, 0.6)
    add_wire(o, np.array([[40, -140, 0], [60, -220, 5], [20, -300, 0]]), 2.5, "copper", p)
    return o


def umbrella(rng, p):
    L = rng.uniform(250, 600)
    o = Obj([], None, "umbrella")
    o.add(cylinder(4.5, L, p, r_in=3.5), "steel", p)
    for k in range(8):
        a = k * np.pi / 4
        o.add(cylinder(1.0, L * 0.85, p, centre=(L * 0.05, 6 * np.cos(a), 6 * np.sin(a))), "steel", p)
    o.add(sheet([(-L / 2, -25), (L / 2, -25), (L / 2, 25), (-L / 2, 25)], 0, p), "nylon", p, thickness_mm=rng.uniform(2, 6))
    return o


def keys(rng, p):
    o = Obj([], None, "keys")
    add_wire(o, np.array([[15 * np.cos(a), 15 * np.sin(a), 0] for a in np.linspace(0, 2 * np.pi, 24)]), 0.9, "steel", p)
    for k in range(int(rng.integers(1, 6))):
        a = rng.uniform(0, 2 * np.pi)
        L = rng.uniform(40, 65)
        poly = [(0, -11), (20, -11), (20, -4), (L, -4), (L, 4), (20, 4), (20, 11), (0, 11)]
        pts = extrude(poly, -1.2, 1.2, p)
        c, s = np.cos(a), np.sin(a)
        pts = pts @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float32).T + np.array([15 * c, 15 * s, k * 2.5], np.float32)
        o.add(pts, str(rng.choice(["brass", "steel", "brass"])), p)
    return o


def coins(rng, p):
    o = Obj([], None, "coins")
    for _ in range(int(rng.integers(1, 12))):
        r = rng.uniform(8, 14)
        o.add(cylinder(r, rng.uniform(1.5, 2.3), p, axis=2, centre=(rng.uniform(-30, 30), rng.uniform(-30, 30), rng.uniform(-5, 5))),
              str(rng.choice(["copper", "brass", "steel", "zinc_alloy"])), p)
    return o


def laptop(rng, p):
    w, d = rng.uniform(280, 360), rng.uniform(190, 250)
    q = p
    o = Obj([], None, "laptop")
    shell = str(rng.choice(["aluminium", "abs"]))
    rect = [(-w / 2, -d / 2), (w / 2, -d / 2), (w / 2, d / 2), (-w / 2, d / 2)]
    for z in (-9, 9):
        o.add(sheet(rect, z, q), shell, q, thickness_mm=1.5 if shell == "aluminium" else 2.0)
    o.add(sheet(rect, 6, q), "glass", q, thickness_mm=1.0)  # display
    o.add(sheet([(-w * 0.45, 0), (w * 0.2, 0), (w * 0.2, d * 0.45), (-w * 0.45, d * 0.45)], 0, q), "pcb", q, thickness_mm=1.6)
    for k in range(int(rng.integers(2, 5))):
        o.add(box(70, 50, 6, q, centre=(-w * 0.3 + k * 75, -d * 0.25, 0)), "battery", q)
    o.add(cylinder(30, 6, q, r_in=12, axis=2, centre=(w * 0.3, d * 0.25, 0)), "abs", q)
    for sx in (-1, 1):
        o.add(box(25, 10, 8, q, centre=(sx * w * 0.35, d / 2 - 5, 0)), "steel", q)  # hinges
    o.add(box(w * 0.9, 2, 2, q, centre=(0, d * 0.1, 2)), "copper", q)  # heat pipe
    return o


def phone(rng, p):
    w, h = rng.uniform(65, 80), rng.uniform(135, 165)
    o = Obj([], None, "phone")
    rect = [(-h / 2, -w / 2), (h / 2, -w / 2), (h / 2, w / 2), (-h / 2, w / 2)]
    o.add(sheet(rect, 4, p), "glass", p, thickness_mm=1.5)
    o.add(sheet(rect, -4, p), "glass", p, thickness_mm=1.0)
    pts, sc = mask_prism([rect], [], -4, 4, p, shell=1.0)
    o.add(pts[(np.abs(pts[:, 2]) < 3.5)], "aluminium", p, sc)
    o.add(box(h * 0.55, w * 0.85, 4, p, centre=(-h * 0.12, 0, 0)), "battery", p)
    o.add(sheet([(h * 0.18, -w / 2 + 4), (h / 2 - 4, -w / 2 + 4), (h / 2 - 4, w / 2 - 4), (h * 0.18, w / 2 - 4)], 0, p), "pcb", p, thickness_mm=2.5)
    return o


def power_bank(rng, p):
    o = Obj([], None, "power_bank")
    n = int(rng.integers(1, 5))
    for k in range(n):
        o.add(cylinder(9.2, 65, p, r_in=8.9, centre=(0, k * 18.6, 0)), "steel", p)
        o.add(cylinder(8.9, 65, p, centre=(0, k * 18.6, 0)), "battery", p)
    o.add(box(80, n * 19 + 6, 24, p, wall=1.8, centre=(5, (n - 1) * 9.3, 0)), "abs", p)
    o.add(sheet([(35, -5), (42, -5), (42, n * 18), (35, n * 18)], 0, p), "pcb", p, thickness_mm=1.6)
    return o


def cable(rng, p):
    o = Obj([], None, "cable")
    n = 12
    pts = np.cumsum(rng.normal(0, 30, (n, 3)) * np.array([1, 1, 0.2]), axis=0)
    add_wire(o, pts, 1.2, "copper", p)
    add_wire(o, pts, 2.6, "pvc", p)
    if rng.random() < 0.5:  # charger brick
        o.add(box(45, 45, 28, p, wall=2, centre=pts[-1]), "abs", p)
        o.add(box(20, 20, 15, p, centre=pts[-1]), "steel", p, 0.8)  # transformer core
        o.add(box(16, 16, 10, p, centre=pts[-1]), "copper", p, 0.5)
    return o


def bottle(rng, p):
    mat = str(rng.choice(["glass", "pet", "pet"]))
    r, L = rng.uniform(30, 45), rng.uniform(180, 300)
    o = Obj([], None, f"bottle_{mat}")
    wall = 3.0 if mat == "glass" else 0.4
    eff = max(wall, p)
    o.add(cylinder(r, L, p, r_in=r - eff, closed_ends=eff), "glass" if mat == "glass" else "pla", p, wall / eff)
    fill = rng.uniform(0.3, 1.0)
    o.add(cylinder(r - eff, L * fill, p, centre=(-L * (1 - fill) / 2, 0, 0)), str(rng.choice(["water", "water", "sugar"])), p)
    return o


def can(rng, p):
    o = Obj([], None, "can")
    r, L = rng.uniform(26, 34), rng.uniform(90, 170)
    eff = max(0.15, p)
    o.add(cylinder(r, L, p, r_in=r - eff, closed_ends=eff), "aluminium" if rng.random() < 0.7 else "steel", p, 0.15 / eff * 2)
    o.add(cylinder(r - eff, L - 2, p), "water", p)
    return o


def spray_can(rng, p):
    o = Obj([], None, "spray_can")
    r, L = rng.uniform(22, 33), rng.uniform(120, 230)
    eff = max(0.4, p)
    o.add(cylinder(r, L, p, r_in=r - eff, closed_ends=eff), "steel" if rng.random() < 0.5 else "aluminium", p, 0.4 / eff)
    o.add(cylinder(r - eff, L * 0.7, p, centre=(L * 0.15, 0, 0)), "water", p, 0.9)
    o.add(cylinder(1.5, L * 0.9, p), "pla", p)  # dip tube
    return o


def shoes(rng, p):
    o = Obj([], None, "shoes")
    for s in (-1, 1):
        L = rng.uniform(240, 310)
        o.add(ellipsoid(L / 2, 45, 12, p, centre=(0, s * 55, -35)), "rubber", p)
        o.add(ellipsoid(L / 2 - 10, 42, 45, p, shell=3, centre=(0, s * 55, 10)), "textile", p, 0.6)
        o.add(box(90, 10, 2, p, centre=(20, s * 55, -30)), "steel", p)  # shank
        for k in range(6):
            o.add(cylinder(2.5, 2, p, r_in=1.5, axis=2, centre=(-40 + k * 12, s * 55 + 12, 30)), "brass", p)
    return o


def clothing(rng, p):
    """Folded garment: stacked textile layers with folds and seams, zip or buttons."""
    q = p
    w, h = rng.uniform(150, 400), rng.uniform(120, 350)
    o = Obj([], None, "clothing")
    layers = int(rng.integers(2, 10))
    for k in range(layers):
        dx, dy = rng.normal(0, 8, 2)
        o.add(sheet([(-w / 2 + dx, -h / 2 + dy), (w / 2 + dx, -h / 2 + dy), (w / 2 + dx, h / 2 + dy), (-w / 2 + dx, h / 2 + dy)], k * 4, q),
              "textile", q, density_scale=0.35, thickness_mm=rng.uniform(1.0, 4.0))
    if rng.random() < 0.4:
        xs = np.linspace(-h / 2, h / 2, 60)
        zig = np.stack([np.full_like(xs, rng.uniform(-w / 3, w / 3)), xs, np.zeros_like(xs)], 1)
        add_wire(o, zig, 1.6, str(rng.choice(["brass", "zinc_alloy", "pla"])), p)
    elif rng.random() < 0.5:
        for k in range(5):
            o.add(cylinder(6, 2, p, axis=2, centre=(0, -h / 2 + 20 + k * 40, 0)), "pla", p)
    return o


def book(rng, p):
    q = p
    w, h, t = rng.uniform(120, 240), rng.uniform(170, 300), rng.uniform(8, 50)
    o = Obj([], None, "book")
    o.add(box(w, h, t, q), "cellulose", q, rng.uniform(0.5, 0.65))
    return o


def batteries(rng, p):
    o = Obj([], None, "batteries")
    for k in range(int(rng.integers(1, 9))):
        o.add(cylinder(7.2, 50, p, r_in=6.8, centre=(0, k * 15, 0)), "steel", p)
        o.add(cylinder(6.8, 48, p, centre=(0, k * 15, 0)), "battery", p, 0.9)
        o.add(cylinder(2, 45, p, centre=(0, k * 15, 0)), "cellulose", p)  # carbon rod
    return o


def knife_or_cutlery(rng, p):
    o = Obj([], None, "cutlery")
    for _ in range(int(rng.integers(1, 6))):
        L = rng.uniform(140, 240)
        kind = rng.choice(["knife", "fork", "spoon"])
        if kind == "knife":
            poly = [(0, 0), (L * 0.55, 0), (L * 0.55, 18), (L * 0.1, 12)]
        elif kind == "fork":
            poly = [(0, -10), (L * 0.2, -10), (L, -4), (L, 4), (L * 0.2, 10), (0, 10)]
        else:
            poly = [(0, -18), (L * 0.3, -12), (L, -4), (L, 4), (L * 0.3, 12), (0, 18)]
        pts = extrude(poly, -1.2, 1.2, p)
        o.extend(Obj([]).add(pts, "steel", p), offset=(rng.uniform(-20, 20), rng.uniform(-40, 40), 0))
        if kind == "knife":
            o.add(box(L * 0.45, 20, 14, p, centre=(L * 0.78, 8, 0)), "wood" if rng.random() < 0.5 else "abs", p)
    return o


def scissors(rng, p):
    L = rng.uniform(130, 220)
    o = Obj([], None, "scissors")
    for s in (-1, 1):
        o.add(extrude([(0, 0), (L * 0.55, s * 2), (L * 0.55, s * 9), (0, s * 3)], -1.5, 1.5, p), "steel", p)
        o.add(cylinder(16, 6, p, r_in=11, axis=2, centre=(L * 0.7, s * 18, 0)), "abs", p)
    return o


def headphones(rng, p):
    o = Obj([], None, "headphones")
    arc = np.array([[80 * np.cos(a), 80 * np.sin(a), 0] for a in np.linspace(0.1, np.pi - 0.1, 20)])
    add_wire(o, arc, 4, "abs", p)
    add_wire(o, arc, 1.0, "steel", p)
    for s in (-1, 1):
        o.add(cylinder(38, 30, p, r_in=35, axis=2, centre=(s * 80, -10, 0)), "abs", p)
        o.add(cylinder(12, 5, p, axis=2, centre=(s * 80, -10, 0)), "magnet", p)
        o.add(cylinder(18, 2, p, axis=2, centre=(s * 80, -10, 4)), "steel", p)
    return o


def jar(rng, p):
    o = Obj([], None, "jar")
    r = rng.uniform(35, 50)
    L = rng.uniform(80, 140)
    o.add(cylinder(r, L, p, r_in=r - 3, closed_ends=4), "glass", p)
    o.add(cylinder(r - 3, L * 0.9, p), str(rng.choice(["sugar", "water"])), p, 0.9)
    o.add(cylinder(r + 1, 10, p, r_in=r - 4, closed_ends=0.6, centre=(L / 2 + 5, 0, 0)), "steel", p, 0.4)
    return o


def soap_or_food(rng, p):
    o = Obj([], None, "food_block")
    o.add(box(rng.uniform(60, 200), rng.uniform(40, 120), rng.uniform(15, 50), p), str(rng.choice(["sugar", "wood", "water"])), p, rng.uniform(0.6, 1.0))
    if rng.random() < 0.3:  # foil wrap
        o.parts.append(o.parts[0].__class__(o.parts[0].pts.copy(), "aluminium", o.parts[0].mass * 0.02))
    return o


def watch_jewellery(rng, p):
    o = Obj([], None, "watch")
    o.add(cylinder(20, 10, p, r_in=16, closed_ends=1.0, axis=2), "steel", p)
    o.add(cylinder(12, 4, p, axis=2), "brass", p)
    add_wire(o, np.array([[0, 20, 0], [0, 60, 0], [5, 100, 2]]), 2, "steel" if rng.random() < 0.5 else "rubber", p)
    return o


def metal_toy(rng, p):
    """Die-cast toy car / model: zinc alloy body, steel axles, rubber tyres."""
    o = Obj([], None, "diecast_toy")
    L = rng.uniform(60, 150)
    o.add(box(L, L * 0.35, L * 0.4, p, wall=1.8), "zinc_alloy", p)
    for sx in (-1, 1):
        o.add(cylinder(1.2, L * 0.45, p, axis=2, centre=(sx * L * 0.32, -L * 0.18, 0)), "steel", p)
        for sz in (-1, 1):
            o.add(cylinder(L * 0.1, 6, p, axis=2, centre=(sx * L * 0.32, -L * 0.18, sz * L * 0.2)), "rubber", p)
    return o


def hardware(rng, p):
    """Brackets, hinges, bolts and nuts: steel hardware in a bag."""
    o = Obj([], None, "hardware")
    for _ in range(int(rng.integers(2, 10))):
        c = np.array([rng.uniform(-40, 40), rng.uniform(-40, 40), rng.uniform(-10, 10)])
        k = rng.random()
        if k < 0.4:
            L = rng.uniform(20, 80)
            o.add(cylinder(rng.uniform(2, 5), L, p, centre=c), "steel", p)
        elif k < 0.7:
            o.add(cylinder(rng.uniform(4, 9), rng.uniform(3, 7), p, r_in=rng.uniform(2, 3.5), axis=2, centre=c), "steel", p)
        else:
            pts = box(rng.uniform(30, 90), rng.uniform(15, 30), 2, p, centre=c)
            o.add(pts, "steel", p)
    return o


def electronics_box(rng, p):
    """Router / console / small appliance: plastic housing, PCB, transformer, heatsink."""
    w, h, t = rng.uniform(120, 300), rng.uniform(90, 220), rng.uniform(25, 70)
    o = Obj([], None, "electronics")
    o.add(box(w, h, t, p, wall=2.0), "abs", p)
    o.add(sheet([(-w * 0.45, -h * 0.45), (w * 0.45, -h * 0.45), (w * 0.45, h * 0.45), (-w * 0.45, h * 0.45)], 0, p), "pcb", p, thickness_mm=1.6)
    for _ in range(int(rng.integers(3, 15))):
        o.add(box(rng.uniform(5, 25), rng.uniform(5, 25), rng.uniform(2, 8), p, centre=(rng.uniform(-w * 0.4, w * 0.4), rng.uniform(-h * 0.4, h * 0.4), 4)),
              str(rng.choice(["ceramic", "abs", "steel", "copper"])), p)
    if rng.random() < 0.5:
        o.add(box(40, 40, 20, p, centre=(w * 0.2, 0, 0)), "aluminium", p, 0.5)  # heatsink
    return o


CLUTTER = {
    "toy_gun": (toy_gun, 0.06), "wrench": (wrench, 0.05), "pliers": (pliers, 0.04), "screwdriver": (screwdriver, 0.05),
    "drill": (drill, 0.02), "pipe": (pipe, 0.06), "bike_parts": (bike_parts, 0.03), "hair_dryer": (hair_dryer, 0.03),
    "umbrella": (umbrella, 0.03), "keys": (keys, 0.04), "coins": (coins, 0.04), "laptop": (laptop, 0.03),
    "phone": (phone, 0.05), "power_bank": (power_bank, 0.04), "cable": (cable, 0.06), "bottle": (bottle, 0.05),
    "can": (can, 0.04), "spray_can": (spray_can, 0.03), "shoes": (shoes, 0.03), "clothing": (clothing, 0.09),
    "book": (book, 0.05), "batteries": (batteries, 0.03), "cutlery": (knife_or_cutlery, 0.04), "scissors": (scissors, 0.03),
    "headphones": (headphones, 0.02), "jar": (jar, 0.03), "food": (soap_or_food, 0.04), "watch": (watch_jewellery, 0.03),
    "diecast_toy": (metal_toy, 0.02), "hardware": (hardware, 0.04), "electronics": (electronics_box, 0.04),
}
# items a threat can be hidden inside or under
CONCEALERS = ("laptop", "electronics", "hair_dryer", "drill", "shoes", "clothing", "book", "toy_gun")


def make_clutter(rng: np.random.Generator, pitch: float, kind: str | None = None) -> Obj:
    if kind is None:
        names = list(CLUTTER)
        w = np.array([CLUTTER[n][1] for n in names])
        kind = names[int(rng.choice(len(names), p=w / w.sum()))]
    o = CLUTTER[kind][0](rng, pitch)
    o.meta["clutter_kind"] = kind
    return o.centred()


# ----------------------------------------------------------------- gun-shaped tools (opt-in layer)
# Hand tools with a pistol grip and a trigger: the shapes that make real screeners look twice.
# Drawn only when SceneConfig.p_tools > 0, from their own random stream (scene._add_tools).
def glue_gun(rng, p):
    """Hot-glue gun: moulded ABS/nylon body and grip, steel heater block and nozzle, a thin
    heating wire, a trigger with a spring; no barrel, no magazine, no slide."""
    L = rng.uniform(140, 200)
    hb, gh = rng.uniform(32, 42), rng.uniform(75, 100)
    ga = np.radians(rng.uniform(5, 18))
    dx = gh * np.tan(ga)
    body = [(0, 0), (L, 0), (L, hb), (L * 0.15, hb), (0, hb * 0.6)]
    grip = [(L * 0.55, 0), (L * 0.85, 0), (L * 0.85 + dx, -gh), (L * 0.55 + dx, -gh)]
    mat = str(rng.choice(["abs", "nylon"]))
    pts, sc = mask_prism([body, grip], [], -17, 17, p, shell=rng.uniform(1.8, 2.8))
    o = Obj([], None, "glue_gun", {"material": mat}).add(pts, mat, p, sc)
    o.add(box(40, 18, 18, p, centre=(30, hb * 0.45, 0)), "aluminium", p)  # heater block
    o.add(cylinder(3.0, 22, p, r_in=1.2, centre=(-8, hb * 0.45, 0)), "brass", p)  # nozzle
    add_wire(o, np.array([[30, hb * 0.45, 8], [L * 0.6, hb * 0.5, 8], [L * 0.7, -gh * 0.8, 6], [L * 0.9, -gh, 6]]), 0.6, "copper", p)
    o.add(extrude([(L * 0.4, -2), (L * 0.5, -2), (L * 0.48, -30), (L * 0.42, -28)], -3, 3, p), str(rng.choice(["abs", "steel"])), p)
    add_coil(o, 2.5, 0.4, 18, 8, "steel", p, centre=(L * 0.45, 4, 0))
    return o


def caulking_gun(rng, p):
    """Caulking (sealant) gun: open sheet-steel cradle, a long steel push rod with a plunger,
    a pistol grip and trigger, often with a plastic cartridge of sealant in the cradle."""
    lc = rng.uniform(200, 240)
    o = Obj([], None, "caulking_gun", {"material": "steel"})
    o.add(box(lc, 3, 50, p, centre=(lc / 2, -24, 0)), "steel", p, 0.5)  # cradle floor (folded sheet)
    for z in (-24, 24):
        o.add(box(lc, 30, 1.2, p, centre=(lc / 2, -10, z)), "steel", p)
    o.add(box(6, 52, 52, p, centre=(0, 0, 0)), "steel", p)  # front plate
    rod = rng.uniform(250, 320)
    o.add(cylinder(3.5, rod, p, centre=(lc + rod / 2 - 60, 0, 0)), "steel", p)
    o.add(cylinder(20, 4, p, centre=(lc - rng.uniform(10, 150), 0, 0)), "steel", p)  # plunger disc
    gh = rng.uniform(90, 110)
    o.add(extrude([(lc, 10), (lc + 35, 10), (lc + 50, -gh), (lc + 20, -gh)], -12, 12, p), "steel", p, 0.35)  # stamped grip
    o.add(extrude([(lc - 30, -5), (lc - 5, -5), (lc - 12, -gh * 0.9), (lc - 30, -gh * 0.85)], -8, 8, p), "steel", p, 0.35)  # trigger
    add_coil(o, 6, 0.8, 30, 7, "steel", p, centre=(lc + 20, 0, 0))
    if rng.random() < 0.6:  # a sealant cartridge in the cradle
        o.add(cylinder(24, lc - 20, p, r_in=23, centre=(lc / 2, 0, 0)), "abs", p)
        o.add(cylinder(22.5, lc - 30, p, centre=(lc / 2, 0, 0)), str(rng.choice(["rubber", "pvc"])), p, 0.9)
    return o


def staple_gun(rng, p):
    """Hand staple gun: steel body and lever on top of a staple magazine channel, a strong
    flat spring, a row of staples; a handle lever instead of a pistol grip."""
    L = rng.uniform(160, 210)
    o = Obj([], None, "staple_gun", {"material": "steel"})
    o.add(box(L, 40, 30, p, wall=1.5, centre=(L / 2, 20, 0)), "steel", p)
    o.add(box(L * 0.9, 8, 14, p, wall=1.0, centre=(L * 0.45, 4, 0)), "steel", p)  # magazine channel
    o.add(box(L * 0.8, 6, 12, p, centre=(L * 0.45, 4, 0)), "steel", p, 0.35)  # staple strip
    ang = np.radians(rng.uniform(8, 25))
    hl = L * 0.85
    o.add(extrude([(L * 0.1, 42), (L * 0.1 + hl * np.cos(ang), 42 + hl * np.sin(ang)),
                   (L * 0.1 + hl * np.cos(ang), 56 + hl * np.sin(ang)), (L * 0.1, 56)], -10, 10, p),
          str(rng.choice(["steel", "abs"])), p, 0.5)  # squeeze handle
    add_coil(o, 5, 0.9, 25, 5, "steel", p, centre=(L * 0.2, 30, 0))
    return o


def spray_gun(rng, p):
    """Paint spray gun (HVLP): cast aluminium body with a pistol grip and trigger, brass
    air cap and needle, a plastic cup on top; the gun-like outline without gun parts."""
    L = rng.uniform(140, 190)
    gh = rng.uniform(90, 120)
    o = Obj([], None, "paint_spray_gun", {"material": "aluminium"})
    body = [(0, 0), (L, 0), (L, 35), (0, 35)]
    grip = [(L * 0.55, 0), (L * 0.85, 0), (L * 0.95, -gh), (L * 0.7, -gh)]
    pts, sc = mask_prism([body, grip], [], -13, 13, p, shell=rng.uniform(2.5, 4.0))
    o.add(pts, "aluminium", p, sc)
    o.add(cylinder(12, 14, p, r_in=3, centre=(-6, 18, 0)), "brass", p)  # air cap
    o.add(cylinder(1.5, L * 0.9, p, centre=(L * 0.45, 18, 0)), "steel", p)  # needle
    o.add(extrude([(L * 0.3, -2), (L * 0.5, -2), (L * 0.45, -gh * 0.7), (L * 0.3, -gh * 0.65)], -4, 4, p), "steel", p, 0.6)
    o.add(cylinder(8, 30, p, r_in=6, axis=1, centre=(L * 0.5, 50, 0)), "brass", p)  # cup connector
    if rng.random() < 0.7:
        o.add(cylinder(40, 90, p, r_in=38.8, axis=1, centre=(L * 0.5, 110, 0)), "abs", p)  # paint cup
    return o


GUN_SHAPED_TOOLS = {"glue_gun": glue_gun, "caulking_gun": caulking_gun, "staple_gun": staple_gun, "spray_gun": spray_gun}
