"""Benign parcel contents, including the confusers that cause false alarms in
screening (toy and replica guns, hand tools, tubes and pipes, bicycle parts,
electronics). Object frame and units as in threats.py."""

from __future__ import annotations

import numpy as np

from .shapes import (
    Obj,
    add_coil,
    add_wire,
    extrude,
    random_rotation,
    solid_box,
    solid_coil,
    solid_cylinder,
    solid_ellipsoid,
    solid_sheet,
    solid_wire,
)
from .threats import fillet, frame_outline, mask_prism, pistol_design, slide_profile


def toy_gun(rng, p):
    """Plastic toy/replica gun: a gun silhouette in thin ABS with a few steel screws
    and, for airsoft replicas, a thin brass inner barrel and a spring."""
    d = pistol_design(rng)
    L, hs, hr, gh = d["L"], d["hs"], d["hr"], d["grip_h"]
    dx = gh * np.tan(d["grip_angle"])
    # moulded to a real pistol's outline (generator 4.0.0: rounded grip, guard, slide), or the
    # model would learn that a rounded outline means a real gun
    rail, grip, guard, hole, _ = frame_outline(d, rng)
    pts, sc = mask_prism([slide_profile(d), rail, grip, guard], [hole], -d["wf"] / 2, d["wf"] / 2, p,
                         shell=rng.uniform(1.5, 2.5), edge_r=d["edge_r"] + 1.0)
    o = Obj([], None, "toy_gun").add(pts, "abs", p, sc)
    for _ in range(int(rng.integers(3, 8))):
        solid_cylinder(o, 1.3, 8, "steel", axis=2, centre=(rng.uniform(5, L), rng.uniform(-hr - gh * 0.8, hs), 0))
    if rng.random() < 0.5:  # airsoft replica
        o.kind = "airsoft_replica"
        solid_cylinder(o, 4.0, L * 0.8, "brass", r_in=3.2, centre=(L * 0.4, hs * 0.5, 0))
        add_coil(o, 5, 0.6, L * 0.3, 14, "steel", p, centre=(L * 0.7, hs * 0.5, 0))
        if rng.random() < 0.5:
            solid_box(o, 28, gh * 0.8, 18, "zinc_alloy", wall=1.0, centre=(d["grip_front"] + dx / 2 + 14, -hr - gh / 2, 0))
    return o


def wrench(rng, p):
    """Combination wrench, forged steel: an open jaw at one end, a ring at the other, on a shank
    narrower than either head; every corner and edge rounded (generator 5.0.0), the ring drawn as
    a true circle (6.0.0)."""
    L = rng.uniform(120, 300)
    w = L * rng.uniform(0.08, 0.12)
    t = rng.uniform(4, 8)
    head = w * 2.2
    neck = head * 0.3 + w
    outline = fillet([(-head * 0.6, -head / 2), (head * 0.3, -head / 2), (neck, -w / 2), (L - head * 0.4, -w / 2),
                      (L - head * 0.4, w / 2), (neck, w / 2), (head * 0.3, head / 2), (-head * 0.6, head / 2)],
                     head * 0.15, 4)
    slot = fillet([(-head * 0.7, -head * 0.22), (-head * 0.1, -head * 0.22), (-head * 0.1, head * 0.22),
                   (-head * 0.7, head * 0.22)], head * 0.1, 3, only={1, 2})
    # the ring and its eye as true circles (generator 6.0.0; 5.0.0 drew 32-gons)
    pts, _ = mask_prism([outline], [slot], -t / 2, t / 2, p, rings=[(L, 0.0, head * 0.45, head * 0.25)],
                        edge_r=min(t * 0.35, 2.5))
    return Obj([], None, "wrench").add(pts, "steel", p)


def pliers(rng, p):
    """Pliers: two forged steel halves on a pivot, the handles in dipped PVC grips; rounded
    (generator 5.0.0)."""
    L = rng.uniform(140, 250)
    o = Obj([], None, "pliers")
    spread = rng.uniform(5, 30)
    for s in (-1, 1):
        half = fillet([(0, 0), (L * 0.35, s * 3), (L, s * spread), (L, s * (spread + 12)), (L * 0.35, s * 12), (0, s * 6)], 3.0, 3)
        o.add(mask_prism([half], [], -4, 4, p, edge_r=1.5)[0], "steel", p)
        grip = fillet([(L * 0.45, s * (spread * 0.4 + 10)), (L, s * (spread + 13)), (L, s * (spread + 16)),
                       (L * 0.45, s * (spread * 0.4 + 15))], 4.0, 3)
        o.add(mask_prism([grip], [], -7, 7, p, edge_r=4.0)[0], "pvc", p)
    solid_cylinder(o, 5, 10, "steel", axis=2, centre=(L * 0.3, 0, 0))
    return o


def screwdriver(rng, p):
    ls, lh = rng.uniform(60, 200), rng.uniform(80, 110)
    o = Obj([], None, "screwdriver")
    solid_cylinder(o, rng.uniform(2.5, 4), ls, "steel", centre=(ls / 2, 0, 0))
    solid_cylinder(o, rng.uniform(12, 17), lh, "abs", centre=(ls + lh / 2, 0, 0))
    return o


def drill(rng, p):
    """Cordless drill: moulded ABS housing (body, pistol grip, battery pack: rounded shells,
    generator 5.0.0), steel chuck and gearbox, copper motor windings, Li-ion cells in the pack."""
    o = Obj([], None, "cordless_drill")
    body = fillet([(-90, -30), (90, -30), (90, 30), (-90, 30)], 22, 5)
    pts, sc = mask_prism([body], [], -35, 35, p, shell=3, edge_r=14)
    o.add(pts, "abs", p, sc)
    grip = fillet([(10, -30), (70, -30), (70, -165), (10, -165)], 8, 4, only={2, 3})
    pts, sc = mask_prism([grip], [], -25, 25, p, shell=3, edge_r=10)
    o.add(pts, "abs", p, sc)
    pack = fillet([(-10, -222), (90, -222), (90, -165), (-10, -165)], 10, 4)
    pts, sc = mask_prism([pack], [], -38, 38, p, shell=2.5, edge_r=8)
    o.add(pts, "abs", p, sc)
    solid_cylinder(o, 18, 50, "steel", r_in=8, centre=(20, 0, 0))
    solid_cylinder(o, 14, 40, "copper", 0.6, r_in=9, centre=(20, 0, 0))
    solid_cylinder(o, 12, 55, "steel", centre=(-110, 0, 0))
    for k in range(int(rng.integers(3, 6))):  # battery cells
        solid_cylinder(o, 9, 65, "steel", r_in=8.6, axis=1, centre=(40 + k % 2 * 20 - 10, -170 - k // 2 * 8, 0))
        solid_cylinder(o, 8.6, 65, "battery", axis=1, centre=(40 + k % 2 * 20 - 10, -170 - k // 2 * 8, 0))
    return o


def pipe(rng, p):
    """Metal tube: the classic barrel confuser."""
    mat = str(rng.choice(["steel", "steel", "aluminium", "copper", "brass"]))
    r = rng.uniform(5, 20)
    o = Obj([], None, f"{mat}_tube", {"material": mat})
    solid_cylinder(o, r, rng.uniform(80, 400), mat, r_in=r - rng.uniform(0.8, 3.0))
    return o


def bike_parts(rng, p):
    o = Obj([], None, "bicycle_parts")
    kind = rng.choice(["chain", "sprocket", "hub"])
    if kind == "chain":
        n = int(rng.integers(20, 60))
        t = np.linspace(0, rng.uniform(1, 4) * np.pi, n)
        rad = rng.uniform(40, 120)
        for i in range(n):
            solid_box(o, 12.7, 8, 8, "steel", wall=1.0, centre=(rad * np.cos(t[i]), rad * np.sin(t[i]) * 0.6, 0))
    elif kind == "sprocket":
        r = rng.uniform(40, 100)
        teeth = int(r / 3)
        poly = [((r + 4 * (k % 2)) * np.cos(a), (r + 4 * (k % 2)) * np.sin(a)) for k, a in enumerate(np.linspace(0, 2 * np.pi, teeth * 2, endpoint=False))]
        pts = extrude(poly, -1.5, 1.5, p)
        pts = pts[(pts[:, 0] ** 2 + pts[:, 1] ** 2 > (r * 0.35) ** 2) | (pts[:, 0] ** 2 + pts[:, 1] ** 2 < (r * 0.2) ** 2)]
        o.add(pts, "steel", p)
    else:
        solid_cylinder(o, 20, 100, "aluminium", r_in=6)
        solid_cylinder(o, 4.5, 140, "steel")
    return o


def hair_dryer(rng, p):
    o = Obj([], None, "hair_dryer")
    solid_cylinder(o, 35, 170, "abs", r_in=32.5)
    handle = fillet([(17.5, -28), (62.5, -28), (62.5, -140), (17.5, -140)], 10, 4, only={2, 3})
    pts, sc = mask_prism([handle], [], -17.5, 17.5, p, shell=2.5, edge_r=9)  # rounded (generator 5.0.0)
    o.add(pts, "abs", p, sc)
    add_coil(o, 20, 0.35, 90, 25, "steel", p, centre=(-20, 0, 0))  # nichrome
    solid_cylinder(o, 14, 30, "copper", 0.6, r_in=6, centre=(60, 0, 0))
    add_wire(o, np.array([[40, -140, 0], [60, -220, 5], [20, -300, 0]]), 2.5, "copper", p)
    return o


def umbrella(rng, p):
    L = rng.uniform(250, 600)
    o = Obj([], None, "umbrella")
    solid_cylinder(o, 4.5, L, "steel", r_in=3.5)
    for k in range(8):
        a = k * np.pi / 4
        solid_cylinder(o, 1.0, L * 0.85, "steel", centre=(L * 0.05, 6 * np.cos(a), 6 * np.sin(a)))
    solid_sheet(o, -L / 2, -25, L / 2, 25, 0, rng.uniform(2, 6), "nylon")
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
        solid_cylinder(o, r, rng.uniform(1.5, 2.3), str(rng.choice(["copper", "brass", "steel", "zinc_alloy"])), axis=2, centre=(rng.uniform(-30, 30), rng.uniform(-30, 30), rng.uniform(-5, 5)))
    return o


def laptop(rng, p):
    w, d = rng.uniform(280, 360), rng.uniform(190, 250)
    o = Obj([], None, "laptop")
    shell = str(rng.choice(["aluminium", "abs"]))
    for z in (-9, 9):
        solid_sheet(o, -w / 2, -d / 2, w / 2, d / 2, z, 1.5 if shell == "aluminium" else 2.0, shell)
    solid_sheet(o, -w / 2, -d / 2, w / 2, d / 2, 6, 1.0, "glass")  # display
    solid_sheet(o, -w * 0.45, 0, w * 0.2, d * 0.45, 0, 1.6, "pcb")
    for k in range(int(rng.integers(2, 5))):
        solid_box(o, 70, 50, 6, "battery", centre=(-w * 0.3 + k * 75, -d * 0.25, 0))
    solid_cylinder(o, 30, 6, "abs", r_in=12, axis=2, centre=(w * 0.3, d * 0.25, 0))
    for sx in (-1, 1):
        solid_box(o, 25, 10, 8, "steel", centre=(sx * w * 0.35, d / 2 - 5, 0))
    solid_box(o, w * 0.9, 2, 2, "copper", centre=(0, d * 0.1, 2))
    return o


def phone(rng, p):
    w, h = rng.uniform(65, 80), rng.uniform(135, 165)
    o = Obj([], None, "phone")
    rect = [(-h / 2, -w / 2), (h / 2, -w / 2), (h / 2, w / 2), (-h / 2, w / 2)]
    solid_sheet(o, -h / 2, -w / 2, h / 2, w / 2, 4, 1.5, "glass")
    solid_sheet(o, -h / 2, -w / 2, h / 2, w / 2, -4, 1.0, "glass")
    pts, sc = mask_prism([rect], [], -4, 4, p, shell=1.0)
    o.add(pts[(np.abs(pts[:, 2]) < 3.5)], "aluminium", p, sc)
    solid_box(o, h * 0.55, w * 0.85, 4, "battery", centre=(-h * 0.12, 0, 0))
    solid_sheet(o, h * 0.18, -w / 2 + 4, h / 2 - 4, w / 2 - 4, 0, 2.5, "pcb")
    return o


def power_bank(rng, p):
    o = Obj([], None, "power_bank")
    n = int(rng.integers(1, 5))
    for k in range(n):
        solid_cylinder(o, 9.2, 65, "steel", r_in=8.9, centre=(0, k * 18.6, 0))
        solid_cylinder(o, 8.9, 65, "battery", centre=(0, k * 18.6, 0))
    solid_box(o, 80, n * 19 + 6, 24, "abs", wall=1.8, centre=(5, (n - 1) * 9.3, 0))
    solid_sheet(o, 35, -5, 42, n * 18, 0, 1.6, "pcb")
    return o


def cable(rng, p):
    o = Obj([], None, "cable")
    n = 12
    pts = np.cumsum(rng.normal(0, 30, (n, 3)) * np.array([1, 1, 0.2]), axis=0)
    add_wire(o, pts, 1.2, "copper", p)
    add_wire(o, pts, 2.6, "pvc", p)
    if rng.random() < 0.5:  # charger brick
        solid_box(o, 45, 45, 28, "abs", wall=2, centre=pts[-1])
        solid_box(o, 20, 20, 15, "steel", 0.8, centre=pts[-1])
        solid_box(o, 16, 16, 10, "copper", 0.5, centre=pts[-1])
    return o


def bottle(rng, p):
    mat = str(rng.choice(["glass", "pet", "pet"]))
    r, L = rng.uniform(30, 45), rng.uniform(180, 300)
    o = Obj([], None, f"bottle_{mat}")
    wall = 3.0 if mat == "glass" else 0.4
    solid_cylinder(o, r, L, "glass" if mat == "glass" else "pla", r_in=r - wall, closed_ends=wall)
    fill = rng.uniform(0.3, 1.0)  # the contents fill the bottle from its -x end
    solid_cylinder(o, r - wall, (L - 2 * wall) * fill, str(rng.choice(["water", "water", "sugar"])),
                   centre=(-(L - 2 * wall) * (1 - fill) / 2, 0, 0))
    return o


def can(rng, p):
    o = Obj([], None, "can")
    r, L = rng.uniform(26, 34), rng.uniform(90, 170)
    # drawn 0.1 mm side wall, 0.3 mm ends: tangent rays through the side wall give the bright rims
    # real scans show (the voxel version smeared the wall over a voxel)
    solid_cylinder(o, r, L, "aluminium" if rng.random() < 0.7 else "steel", r_in=r - 0.1, closed_ends=0.3)
    solid_cylinder(o, r - 0.1, L - 2, "water")
    return o


def spray_can(rng, p):
    o = Obj([], None, "spray_can")
    r, L = rng.uniform(22, 33), rng.uniform(120, 230)
    solid_cylinder(o, r, L, "steel" if rng.random() < 0.5 else "aluminium", r_in=r - 0.4, closed_ends=0.4)
    solid_cylinder(o, r - 0.4, L * 0.7, "water", 0.9, centre=(L * 0.15, 0, 0))
    solid_cylinder(o, 1.5, L * 0.9, "pla")
    return o


def shoes(rng, p):
    o = Obj([], None, "shoes")
    for s in (-1, 1):
        L = rng.uniform(240, 310)
        solid_ellipsoid(o, L / 2, 45, 12, "rubber", centre=(0, s * 55, -35))
        solid_ellipsoid(o, L / 2 - 10, 42, 45, "textile", 0.6, shell=3, centre=(0, s * 55, 10))
        solid_box(o, 90, 10, 2, "steel", centre=(20, s * 55, -30))
        for k in range(6):
            solid_cylinder(o, 2.5, 2, "brass", r_in=1.5, axis=2, centre=(-40 + k * 12, s * 55 + 12, 30))
    return o


def clothing(rng, p):
    """Folded garment: stacked textile layers with folds and seams, zip or buttons."""
    w, h = rng.uniform(150, 400), rng.uniform(120, 350)
    o = Obj([], None, "clothing")
    layers = int(rng.integers(2, 10))
    for k in range(layers):
        dx, dy = rng.normal(0, 8, 2)
        solid_sheet(o, -w / 2 + dx, -h / 2 + dy, w / 2 + dx, h / 2 + dy, k * 4, rng.uniform(1.0, 4.0), "textile", 0.35)
    if rng.random() < 0.4:
        xs = np.linspace(-h / 2, h / 2, 60)
        zig = np.stack([np.full_like(xs, rng.uniform(-w / 3, w / 3)), xs, np.zeros_like(xs)], 1)
        add_wire(o, zig, 1.6, str(rng.choice(["brass", "zinc_alloy", "pla"])), p)
    elif rng.random() < 0.5:
        for k in range(5):
            solid_cylinder(o, 6, 2, "pla", axis=2, centre=(0, -h / 2 + 20 + k * 40, 0))
    return o


def book(rng, p):
    w, h, t = rng.uniform(120, 240), rng.uniform(170, 300), rng.uniform(8, 50)
    o = Obj([], None, "book")
    solid_box(o, w, h, t, "cellulose", rng.uniform(0.5, 0.65))
    return o


def batteries(rng, p):
    o = Obj([], None, "batteries")
    for k in range(int(rng.integers(1, 9))):
        solid_cylinder(o, 7.2, 50, "steel", r_in=6.8, centre=(0, k * 15, 0))
        solid_cylinder(o, 6.8, 48, "battery", 0.9, centre=(0, k * 15, 0))
        solid_cylinder(o, 2, 45, "cellulose", centre=(0, k * 15, 0))
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
            solid_box(o, L * 0.45, 20, 14, "wood" if rng.random() < 0.5 else "abs", centre=(L * 0.78, 8, 0))
    return o


def scissors(rng, p):
    L = rng.uniform(130, 220)
    o = Obj([], None, "scissors")
    for s in (-1, 1):
        o.add(extrude([(0, 0), (L * 0.55, s * 2), (L * 0.55, s * 9), (0, s * 3)], -1.5, 1.5, p), "steel", p)
        solid_cylinder(o, 16, 6, "abs", r_in=11, axis=2, centre=(L * 0.7, s * 18, 0))
    return o


def headphones(rng, p):
    o = Obj([], None, "headphones")
    arc = np.array([[80 * np.cos(a), 80 * np.sin(a), 0] for a in np.linspace(0.1, np.pi - 0.1, 20)])
    add_wire(o, arc, 4, "abs", p)
    add_wire(o, arc, 1.0, "steel", p)
    for s in (-1, 1):
        solid_cylinder(o, 38, 30, "abs", r_in=35, axis=2, centre=(s * 80, -10, 0))
        solid_cylinder(o, 12, 5, "magnet", axis=2, centre=(s * 80, -10, 0))
        solid_cylinder(o, 18, 2, "steel", axis=2, centre=(s * 80, -10, 4))
    return o


def jar(rng, p):
    o = Obj([], None, "jar")
    r = rng.uniform(35, 50)
    L = rng.uniform(80, 140)
    solid_cylinder(o, r, L, "glass", r_in=r - 3, closed_ends=4)
    solid_cylinder(o, r - 3, L * 0.9, str(rng.choice(["sugar", "water"])), 0.9)
    solid_cylinder(o, r + 1, 10, "steel", 0.4, r_in=r - 4, closed_ends=0.6, centre=(L / 2 + 5, 0, 0))
    return o


def soap_or_food(rng, p):
    o = Obj([], None, "food_block")
    size = (rng.uniform(60, 200), rng.uniform(40, 120), rng.uniform(15, 50))
    solid_box(o, *size, str(rng.choice(["sugar", "wood", "water"])), rng.uniform(0.6, 1.0))
    if rng.random() < 0.3:  # foil wrap: a 0.02 mm aluminium skin, bright where rays run along it
        solid_box(o, *(x + 0.04 for x in size), "aluminium", wall=0.02)
    return o


def watch_jewellery(rng, p):
    o = Obj([], None, "watch")
    solid_cylinder(o, 20, 10, "steel", r_in=16, closed_ends=1.0, axis=2)
    solid_cylinder(o, 12, 4, "brass", axis=2)
    add_wire(o, np.array([[0, 20, 0], [0, 60, 0], [5, 100, 2]]), 2, "steel" if rng.random() < 0.5 else "rubber", p)
    return o


def metal_toy(rng, p):
    """Die-cast toy car / model: zinc alloy body, steel axles, rubber tyres."""
    o = Obj([], None, "diecast_toy")
    L = rng.uniform(60, 150)
    solid_box(o, L, L * 0.35, L * 0.4, "zinc_alloy", wall=1.8)
    for sx in (-1, 1):
        solid_cylinder(o, 1.2, L * 0.45, "steel", axis=2, centre=(sx * L * 0.32, -L * 0.18, 0))
        for sz in (-1, 1):
            solid_cylinder(o, L * 0.1, 6, "rubber", axis=2, centre=(sx * L * 0.32, -L * 0.18, sz * L * 0.2))
    return o


def hardware(rng, p):
    """Brackets, hinges, bolts and nuts: steel hardware in a bag."""
    o = Obj([], None, "hardware")
    for _ in range(int(rng.integers(2, 10))):
        c = np.array([rng.uniform(-40, 40), rng.uniform(-40, 40), rng.uniform(-10, 10)])
        k = rng.random()
        if k < 0.4:
            L = rng.uniform(20, 80)
            solid_cylinder(o, rng.uniform(2, 5), L, "steel", centre=c)
        elif k < 0.7:
            solid_cylinder(o, rng.uniform(4, 9), rng.uniform(3, 7), "steel", r_in=rng.uniform(2, 3.5), axis=2, centre=c)
        else:
            solid_box(o, rng.uniform(30, 90), rng.uniform(15, 30), 2, "steel", centre=c)
    return o


def electronics_box(rng, p):
    """Router / console / small appliance: plastic housing, PCB, transformer, heatsink."""
    w, h, t = rng.uniform(120, 300), rng.uniform(90, 220), rng.uniform(25, 70)
    o = Obj([], None, "electronics")
    solid_box(o, w, h, t, "abs", wall=2.0)
    solid_sheet(o, -w * 0.45, -h * 0.45, w * 0.45, h * 0.45, 0, 1.6, "pcb")
    for _ in range(int(rng.integers(3, 15))):
        solid_box(o, rng.uniform(5, 25), rng.uniform(5, 25), rng.uniform(2, 8), str(rng.choice(["ceramic", "abs", "steel", "copper"])), centre=(rng.uniform(-w * 0.4, w * 0.4), rng.uniform(-h * 0.4, h * 0.4), 4))
    if rng.random() < 0.5:
        solid_box(o, 40, 40, 20, "aluminium", 0.5, centre=(w * 0.2, 0, 0))
    return o


# ---------------------------------------------------------------- more parcel contents (generator 3.1.0)
# Common in post and courier parcels, and each a known confuser: tubes that read as barrels
# (vacuum flasks, torches, shock absorbers, tripod legs), small brass or lead cylinders that read as
# cartridges (lipsticks, fishing sinkers, spark plugs), dense blocks that black out what lies
# under them (dumbbells, cast iron), springs and coils (vapes, torches).
def vacuum_flask(rng, p):
    """Double-walled steel flask: two thin tubes, a plastic cup, sometimes a drink inside."""
    o = Obj([], None, "vacuum_flask")
    r, L = rng.uniform(32, 45), rng.uniform(180, 320)
    solid_cylinder(o, r, L, "steel", r_in=r - 0.5, closed_ends=0.8)
    solid_cylinder(o, r - 4, L - 24, "steel", r_in=r - 4.4, closed_ends=0.5, centre=(-4, 0, 0))
    solid_cylinder(o, r + 1, 45, "abs", r_in=r - 1, closed_ends=2.0, centre=(L / 2 + 20, 0, 0))
    if rng.random() < 0.5:
        fill = rng.uniform(0.2, 0.9)
        inner = L - 26
        solid_cylinder(o, r - 4.4, inner * fill, "water", centre=(-4 - inner * (1 - fill) / 2, 0, 0))
    return o


def flashlight(rng, p):
    """Flashlight: aluminium tube, cells in series, a tail spring, reflector head and lens."""
    o = Obj([], None, "flashlight")
    r = rng.uniform(11, 19)
    n = int(rng.integers(1, 4))
    cell = 65.0 if r > 12 else 50.0
    L = n * cell + rng.uniform(20, 50)
    solid_cylinder(o, r, L, "aluminium", r_in=r - rng.uniform(1.2, 2.5), closed_ends=3.0)
    cr = min(r - 3.0, 9.0)
    for k in range(n):
        c = (-L / 2 + 10 + cell * (k + 0.5), 0, 0)
        solid_cylinder(o, cr, cell - 1, "steel", r_in=cr - 0.3, closed_ends=0.4, centre=c)
        solid_cylinder(o, cr - 0.3, cell - 2, "battery", centre=c)
    add_coil(o, cr * 0.6, 0.5, 10, 4, "steel", p, centre=(-L / 2 + 6, 0, 0))
    hr = r * rng.uniform(1.2, 1.8)
    solid_cylinder(o, hr, 30, "aluminium", r_in=hr - 2.0, centre=(L / 2 + 15, 0, 0))
    solid_cylinder(o, hr - 2, 2.5, "glass", axis=0, centre=(L / 2 + 29, 0, 0))
    return o


def shock_absorber(rng, p):
    """Car or bicycle damper: steel body tube with oil, piston rod, sometimes a coil spring round it."""
    o = Obj([], None, "shock_absorber")
    r, L = rng.uniform(14, 26), rng.uniform(180, 360)
    solid_cylinder(o, r, L, "steel", r_in=r - 2.0, closed_ends=4.0)
    solid_cylinder(o, r - 2.0, L * 0.7, "rubber", 0.75, centre=(-L * 0.15 + 2, 0, 0))  # oil
    rod = L * rng.uniform(0.5, 0.9)
    solid_cylinder(o, r * 0.3, rod, "steel", centre=(L / 2 + rod / 2 - 30, 0, 0))
    for x in (-L / 2 - 12, L / 2 + rod - 18):
        solid_cylinder(o, 12, 18, "steel", r_in=6, axis=2, centre=(x, 0, 0))  # eyes
    if rng.random() < 0.5:
        solid_coil(o, r + 14, rng.uniform(3.5, 6.0), L * 0.8, rng.uniform(5, 9), "steel", centre=(L * 0.1, 0, 0))
    return o


def dumbbell(rng, p):
    """Dumbbell or weight plates: centimetres of cast iron, black on any scanner."""
    o = Obj([], None, "dumbbell")
    grip = rng.uniform(110, 150)
    solid_cylinder(o, rng.uniform(12, 15), grip + 120, "steel")
    for sx in (-1, 1):
        x = sx * grip / 2
        for _ in range(int(rng.integers(1, 3))):
            t = rng.uniform(12, 25)
            solid_cylinder(o, rng.uniform(40, 80), t, "steel", centre=(x + sx * t / 2, 0, 0))
            x += sx * (t + 1)
    return o


def cookware(rng, p):
    """Frying pan or pot: an aluminium or steel dish with a rim and a handle."""
    o = Obj([], None, "cookware")
    mat = str(rng.choice(["aluminium", "aluminium", "steel"]))
    r = rng.uniform(90, 150)
    t = rng.uniform(2.5, 5.0) if mat == "aluminium" else rng.uniform(1.0, 2.0)
    h = rng.uniform(35, 60) if rng.random() < 0.6 else rng.uniform(90, 160)
    solid_cylinder(o, r, t, mat, axis=2, centre=(0, 0, -h / 2))
    solid_cylinder(o, r, h, mat, r_in=r - t * 0.8, axis=2)
    solid_box(o, rng.uniform(150, 200), 28, 14, "steel", wall=1.2, centre=(r + 90, 0, h / 2 - 10))
    return o


def padlock(rng, p):
    """Padlock: solid brass or steel body (corners and edges rounded, generator 5.0.0),
    hardened steel shackle."""
    o = Obj([], None, "padlock")
    w, h, t = rng.uniform(30, 60), rng.uniform(28, 50), rng.uniform(14, 26)
    body = fillet([(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)], min(w, h) * 0.15, 4)
    o.add(mask_prism([body], [], -t / 2, t / 2, p, edge_r=t * 0.2)[0], str(rng.choice(["brass", "steel", "zinc_alloy"])), p)
    sr, sw = rng.uniform(2.5, 5.0), w * 0.6
    arc = [[-sw / 2, h / 2 - 5, 0], [-sw / 2, h / 2 + 15, 0]]
    arc += [[sw / 2 * np.cos(a), h / 2 + 15 + sw / 2 * np.sin(a), 0] for a in np.linspace(np.pi, 0, 9)]
    arc += [[sw / 2, h / 2 + 15, 0], [sw / 2, h / 2 - 5, 0]]
    solid_wire(o, np.array(arc), sr, "steel")
    return o


def vape(rng, p):
    """E-cigarette: metal tube or box mod with an 18650 cell, a heating coil and a liquid pod."""
    o = Obj([], None, "vape")
    if rng.random() < 0.5:
        solid_cylinder(o, 11.5, rng.uniform(80, 110), "steel", r_in=10.8, closed_ends=1.0)
    else:
        solid_box(o, rng.uniform(45, 60), rng.uniform(80, 95), rng.uniform(24, 30), "zinc_alloy", wall=1.5)
    solid_cylinder(o, 9.2, 65, "steel", r_in=8.9, closed_ends=0.4, centre=(-8, 0, 0))
    solid_cylinder(o, 8.9, 64, "battery", centre=(-8, 0, 0))
    solid_cylinder(o, 8, 30, "pla", r_in=6.5, closed_ends=1.0, centre=(48, 0, 0))  # pod
    solid_cylinder(o, 6.5, 18, "water", 1.05, centre=(46, 0, 0))  # e-liquid
    add_coil(o, 1.5, 0.2, 5, 6, "steel", p, centre=(56, 0, 0))
    return o


def cosmetics(rng, p):
    """Lipsticks, lip balms and mascara: cartridge-sized metal tubes around a wax core."""
    o = Obj([], None, "cosmetics")
    for k in range(int(rng.integers(1, 6))):
        r, L = rng.uniform(6.5, 11), rng.uniform(45, 80)
        c = (rng.uniform(-30, 30), k * 25.0 + rng.uniform(-3, 3), rng.uniform(-5, 5))
        solid_cylinder(o, r, L, str(rng.choice(["brass", "aluminium", "aluminium", "abs"])), r_in=r - 0.5, closed_ends=1.0, centre=c)
        solid_cylinder(o, r - 2.5, L * 0.6, "rubber", 0.8, centre=(c[0] + L * 0.15, c[1], c[2]))  # wax
    return o


def fishing_tackle(rng, p):
    """Tackle box contents: lead sinkers (bullet-sized and -dense), hooks, a reel."""
    o = Obj([], None, "fishing_tackle")
    for _ in range(int(rng.integers(2, 12))):
        c = (rng.uniform(-50, 50), rng.uniform(-30, 30), rng.uniform(-8, 8))
        r = rng.uniform(3, 9)
        solid_ellipsoid(o, r * rng.uniform(1.0, 2.2), r, r, "lead", centre=c)
    for _ in range(int(rng.integers(0, 6))):
        x, y = rng.uniform(-50, 50), rng.uniform(-30, 30)
        add_wire(o, np.array([[x, y, 0], [x + 25, y, 0], [x + 30, y + 5, 0], [x + 26, y + 9, 0]]), 0.5, "steel", p)
    if rng.random() < 0.5:
        solid_cylinder(o, 30, 25, "aluminium", r_in=26, axis=2, centre=(80, 0, 0))
        solid_cylinder(o, 3, 40, "steel", axis=2, centre=(80, 0, 0))
    return o


def fasteners(rng, p):
    """A box of nails or screws: dozens of small steel rods at every angle."""
    o = Obj([], None, "fasteners")
    w, h = rng.uniform(60, 120), rng.uniform(40, 90)
    solid_box(o, w, h, 30, "cellulose", 0.45, wall=1.0)
    r, L = rng.uniform(1.2, 2.5), rng.uniform(25, 75)
    for _ in range(int(rng.integers(15, 80))):
        rot = random_rotation(rng)
        o.add_solid("cylinder", (r, r, L / 2), "steel", centre=(rng.uniform(-w, w) * 0.35, rng.uniform(-h, h) * 0.35, 0), axes=rot)
    return o


def camera(rng, p):
    """Camera: plastic or magnesium body, a lens of glass elements in an aluminium barrel, battery, PCB."""
    o = Obj([], None, "camera")
    w, h, t = rng.uniform(100, 140), rng.uniform(65, 95), rng.uniform(35, 60)
    solid_box(o, w, h, t, str(rng.choice(["abs", "aluminium"])), wall=2.0)
    L = rng.uniform(30, 120)
    lr = rng.uniform(25, 38)
    solid_cylinder(o, lr, L, "aluminium", r_in=lr - 2.0, axis=2, centre=(0, 0, t / 2 + L / 2))
    for k in range(int(rng.integers(3, 7))):
        solid_cylinder(o, lr - 3, rng.uniform(3, 8), "glass", axis=2, centre=(0, 0, t / 2 + (k + 0.5) * L / 7))
    solid_box(o, 38, 14, 55, "battery", centre=(w * 0.3, 0, 0))
    solid_sheet(o, -w * 0.4, -h * 0.4, w * 0.1, h * 0.4, -t / 2 + 6, 1.6, "pcb")
    return o


def hammer(rng, p):
    """Claw hammer: forged steel head (a round striking face, a tapering claw; edges rounded,
    generator 5.0.0) on a wooden or fibreglass handle of oval section, or a steel tube."""
    o = Obj([], None, "hammer")
    L = rng.uniform(250, 350)
    hw = rng.uniform(85, 130)
    x0 = L / 2
    head = fillet([(x0 - 13, -hw / 2), (x0 + 13, -hw / 2), (x0 + 13, hw * 0.1), (x0 + 6, hw / 2),
                   (x0 - 6, hw / 2), (x0 - 13, hw * 0.1)], 4, 3)
    o.add(mask_prism([head], [], -13, 13, p, edge_r=3)[0], "steel", p)
    handle = str(rng.choice(["wood", "pvc", "steel"]))
    if handle == "steel":
        solid_cylinder(o, 12, L, "steel", r_in=10.5, centre=(0, 0, 0))
        solid_cylinder(o, 15, L * 0.4, "rubber", r_in=12, centre=(-L * 0.3, 0, 0))
    else:
        shaft = fillet([(-L / 2, -15), (L / 2, -12), (L / 2, 12), (-L / 2, 15)], 10, 4, only={0, 3})
        o.add(mask_prism([shaft], [], -11, 11, p, edge_r=9)[0], handle, p, 1.0 if handle == "wood" else 1.3)
    return o


def spark_plugs(rng, p):
    """Spark plugs: steel shell and thread, white ceramic insulator, central electrode."""
    o = Obj([], None, "spark_plugs")
    for k in range(int(rng.integers(1, 5))):
        y = k * 24.0
        solid_cylinder(o, 8, 19, "steel", r_in=4.5, centre=(0, y, 0))
        solid_cylinder(o, 7, 12, "steel", r_in=4.5, centre=(-15, y, 0))
        solid_cylinder(o, 5, 55, "ceramic", r_in=1.4, centre=(12, y, 0))
        solid_cylinder(o, 1.4, 70, "steel", centre=(6, y, 0))
    return o


def tripod(rng, p):
    """Camera tripod or telescopic pole: nested thin aluminium tubes and a cast head."""
    o = Obj([], None, "tripod")
    L = rng.uniform(300, 500)
    legs = 3 if rng.random() < 0.7 else 1
    for k in range(legs):
        z = (k - (legs - 1) / 2) * 24.0
        r = rng.uniform(9, 13)
        for j in range(3):
            rr = r - j * 2.5
            solid_cylinder(o, rr, L * (1 - 0.2 * j), "aluminium", r_in=rr - 0.9, centre=(L * 0.1 * j, 0, z))
    solid_box(o, 50, 60, 60, "zinc_alloy", 0.6, wall=4.0, centre=(-L / 2 - 25, 0, 0))
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
    "vacuum_flask": (vacuum_flask, 0.03), "flashlight": (flashlight, 0.03), "shock_absorber": (shock_absorber, 0.02),
    "dumbbell": (dumbbell, 0.015), "cookware": (cookware, 0.02), "padlock": (padlock, 0.02), "vape": (vape, 0.03),
    "cosmetics": (cosmetics, 0.03), "fishing_tackle": (fishing_tackle, 0.02), "fasteners": (fasteners, 0.02),
    "camera": (camera, 0.02), "hammer": (hammer, 0.02), "spark_plugs": (spark_plugs, 0.015), "tripod": (tripod, 0.015),
}
# items a threat can be hidden inside or under
CONCEALERS = ("laptop", "electronics", "hair_dryer", "drill", "shoes", "clothing", "book", "toy_gun", "camera", "cookware")


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
    body = fillet([(0, 0), (L, 0), (L, hb), (L * 0.15, hb), (0, hb * 0.6)], rng.uniform(3, 10), 4)
    grip = fillet([(L * 0.55, 0), (L * 0.85, 0), (L * 0.85 + dx, -gh), (L * 0.55 + dx, -gh)], rng.uniform(4, 10), 4)
    mat = str(rng.choice(["abs", "nylon"]))
    pts, sc = mask_prism([body, grip], [], -17, 17, p, shell=rng.uniform(1.8, 2.8), edge_r=rng.uniform(3, 8))
    o = Obj([], None, "glue_gun", {"material": mat}).add(pts, mat, p, sc)
    solid_box(o, 40, 18, 18, "aluminium", centre=(30, hb * 0.45, 0))
    solid_cylinder(o, 3.0, 22, "brass", r_in=1.2, centre=(-8, hb * 0.45, 0))
    add_wire(o, np.array([[30, hb * 0.45, 8], [L * 0.6, hb * 0.5, 8], [L * 0.7, -gh * 0.8, 6], [L * 0.9, -gh, 6]]), 0.6, "copper", p)
    o.add(extrude([(L * 0.4, -2), (L * 0.5, -2), (L * 0.48, -30), (L * 0.42, -28)], -3, 3, p), str(rng.choice(["abs", "steel"])), p)
    add_coil(o, 2.5, 0.4, 18, 8, "steel", p, centre=(L * 0.45, 4, 0))
    return o


def caulking_gun(rng, p):
    """Caulking (sealant) gun: open sheet-steel cradle, a long steel push rod with a plunger,
    a pistol grip and trigger, often with a plastic cartridge of sealant in the cradle."""
    lc = rng.uniform(200, 240)
    o = Obj([], None, "caulking_gun", {"material": "steel"})
    solid_box(o, lc, 3, 50, "steel", 0.5, centre=(lc / 2, -24, 0))
    for z in (-24, 24):
        solid_box(o, lc, 30, 1.2, "steel", centre=(lc / 2, -10, z))
    solid_box(o, 6, 52, 52, "steel", centre=(0, 0, 0))
    rod = rng.uniform(250, 320)
    solid_cylinder(o, 3.5, rod, "steel", centre=(lc + rod / 2 - 60, 0, 0))
    solid_cylinder(o, 20, 4, "steel", centre=(lc - rng.uniform(10, 150), 0, 0))
    gh = rng.uniform(90, 110)
    grip = fillet([(lc, 10), (lc + 35, 10), (lc + 50, -gh), (lc + 20, -gh)], 8, 4)
    o.add(extrude(grip, -12, 12, p), "steel", p, 0.35)  # stamped grip (corners rounded, generator 5.0.0)
    trig = fillet([(lc - 30, -5), (lc - 5, -5), (lc - 12, -gh * 0.9), (lc - 30, -gh * 0.85)], 6, 4)
    o.add(extrude(trig, -8, 8, p), "steel", p, 0.35)  # trigger
    add_coil(o, 6, 0.8, 30, 7, "steel", p, centre=(lc + 20, 0, 0))
    if rng.random() < 0.6:  # a sealant cartridge in the cradle
        solid_cylinder(o, 24, lc - 20, "abs", r_in=23, centre=(lc / 2, 0, 0))
        solid_cylinder(o, 22.5, lc - 30, str(rng.choice(["rubber", "pvc"])), 0.9, centre=(lc / 2, 0, 0))
    return o


def staple_gun(rng, p):
    """Hand staple gun: steel body and lever on top of a staple magazine channel, a strong
    flat spring, a row of staples; a handle lever instead of a pistol grip."""
    L = rng.uniform(160, 210)
    o = Obj([], None, "staple_gun", {"material": "steel"})
    body = fillet([(0, 0), (L, 0), (L, 40), (0, 40)], 10, 4)  # pressed steel, rounded (generator 5.0.0)
    pts, sc = mask_prism([body], [], -15, 15, p, shell=1.5, edge_r=5)
    o.add(pts, "steel", p, sc)
    solid_box(o, L * 0.9, 8, 14, "steel", wall=1.0, centre=(L * 0.45, 4, 0))
    solid_box(o, L * 0.8, 6, 12, "steel", 0.35, centre=(L * 0.45, 4, 0))
    ang = np.radians(rng.uniform(8, 25))
    hl = L * 0.85
    o.add(extrude(fillet([(L * 0.1, 42), (L * 0.1 + hl * np.cos(ang), 42 + hl * np.sin(ang)),
                          (L * 0.1 + hl * np.cos(ang), 56 + hl * np.sin(ang)), (L * 0.1, 56)], 5, 3), -10, 10, p),
          str(rng.choice(["steel", "abs"])), p, 0.5)  # squeeze handle
    add_coil(o, 5, 0.9, 25, 5, "steel", p, centre=(L * 0.2, 30, 0))
    return o


def spray_gun(rng, p):
    """Paint spray gun (HVLP): cast aluminium body with a pistol grip and trigger, brass
    air cap and needle, a plastic cup on top; the gun-like outline without gun parts."""
    L = rng.uniform(140, 190)
    gh = rng.uniform(90, 120)
    o = Obj([], None, "paint_spray_gun", {"material": "aluminium"})
    body = fillet([(0, 0), (L, 0), (L, 35), (0, 35)], rng.uniform(3, 8), 4)
    grip = fillet([(L * 0.55, 0), (L * 0.85, 0), (L * 0.95, -gh), (L * 0.7, -gh)], rng.uniform(4, 10), 4)
    pts, sc = mask_prism([body, grip], [], -13, 13, p, shell=rng.uniform(2.5, 4.0), edge_r=rng.uniform(2, 5))
    o.add(pts, "aluminium", p, sc)
    solid_cylinder(o, 12, 14, "brass", r_in=3, centre=(-6, 18, 0))
    solid_cylinder(o, 1.5, L * 0.9, "steel", centre=(L * 0.45, 18, 0))
    o.add(extrude([(L * 0.3, -2), (L * 0.5, -2), (L * 0.45, -gh * 0.7), (L * 0.3, -gh * 0.65)], -4, 4, p), "steel", p, 0.6)
    solid_cylinder(o, 8, 30, "brass", r_in=6, axis=1, centre=(L * 0.5, 50, 0))
    if rng.random() < 0.7:
        solid_cylinder(o, 40, 90, "abs", r_in=38.8, axis=1, centre=(L * 0.5, 110, 0))
    return o


GUN_SHAPED_TOOLS = {"glue_gun": glue_gun, "caulking_gun": caulking_gun, "staple_gun": staple_gun, "spray_gun": spray_gun}
