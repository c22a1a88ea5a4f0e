"""One simulated parcel scan: container, packing, clutter and threats placed in 3D,
projected with polychromatic dual-energy Beer-Lambert physics, passed through a
randomised detector and rendered as a screener's pseudo-colour or grayscale image.

Everything random comes from one numpy Generator seeded by (seed, index), so the
same seed and generator version give byte-identical images.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

from .. import taxonomy
from ..xray import physics, render
from . import clutter as clutter_mod
from . import organic
from . import threats as threat_mod
from .shapes import (
    ORIENTATIONS,
    Obj,
    Solid,
    col_max,
    col_min,
    orientation_rotation,
    rot_z,
    smooth_noise,
    solid_extent,
    solid_pixels,
    splat_window,
)

# 1.1.0 = 1.0.0 + opt-in display effects and soft contents (both off: 1.0.0 images)
# 1.2.0 = 1.1.0 + the opt-in wide ranges (SceneConfig.wide(); the default ranges give 1.1.0's images)
# 1.3.0 = 1.2.0 + the opt-in fan beam (p_fan; wide() turns it on for 70% of scans; 0 gives 1.2.0's images)
# 2.0.0 = 1.3.0 with geometry fixes that change every version's images: magazine springs inside
#         their magazines (they floated ~6 cm outside, inside the gun's box), magazines tilted with
#         the grip (they were tilted the other way), curved rifle magazines bending forward, printed
#         grips keeping their side walls around the magazine well, and magnified objects keeping
#         their line integrals (areal density was divided by m^2)
# 2.1.0 = 2.0.0 + the opt-in gun-shaped tools (p_tools; wide() 0.5; 0 gives 2.0.0's images)
# 3.0.0 = 2.1.0 with bulky homogeneous clutter as analytic solids (books, bottles and their liquids,
#         cans, jars, shoes, folded cloth, sheets, tubes, housings: shapes.Solid), projected as exact
#         chords instead of voxels: true thin walls (a can's 0.1 mm) with bright grazing rims, no
#         voxel noise in liquids, and 2-4x fewer points per scan. Every configuration's images change
#         (the voxel jitter no longer draws from the scan's stream for those parts).
# 3.1.0 = 3.0.0 + 14 more kinds of parcel contents, most of them confusers (clutter.py: vacuum flasks,
#         torches, shock absorbers, tripods; lipsticks, fishing sinkers, spark plugs; dumbbells,
#         cookware, padlocks, vapes, boxes of nails, cameras, hammers): 45 kinds in all
# 3.1.1 = 3.1.0 + each threat's `visibility` in the manifest (images and labels byte-identical):
#         the share of its footprint where it changes what a screener sees by >= 4 grey levels
# 3.2.0 = 3.1.1 + the opt-in threat_mix (`xfd synth --threat-mix`): weights of the threat classes
#         drawn, e.g. more loose components than whole guns. None keeps 3.1.1's images and labels.
# 3.3.0 = 3.2.0 + the opt-in fit_contents (`xfd synth --fit-contents`): clutter that does not fit in
#         its parcel is turned to lie along it, laid flat, or left out, threats are turned or laid
#         flat to fit, everything is placed wholly inside, and a parcel is packed to at most FIT_FILL
#         of its volume. Off (the default) keeps 3.2.0's images and labels.
# 3.4.0 = 3.3.0 + the opt-in display jitter (`xfd synth --display-jitter P`, render.display_jitter):
#         palette hue turns, grey renderings of colour scans, display curves, blur, edge enhancement
#         and negatives of colour scans, on a share of scans, from their own random stream (labels
#         unchanged). 0 (the default) keeps 3.3.0's images.
# 3.5.0 = 3.4.0 + the opt-in side view (`xfd synth --side-view`): a dual-view scanner's second,
#         horizontal beam through the same parcel, with the same objects in the same 3D poses, as a
#         second labelled image. Off (the default) keeps 3.4.0's images and labels.
# 3.6.0 = 3.5.0 + the opt-in belt stretch (`xfd synth --belt-stretch P`): non-square pixels, a belt
#         speed or line rate off the vendor's setting. Off keeps 3.5.0's images. The last version of
#         straight-edged guns: the test sets of xfd-default 2026.11.30.18 and before.
# 4.0.0 = 3.6.0 with guns and gun parts of real shapes, which changes every configuration's images:
#         rounded corners and edges (threats.fillet, round_edges: seen flat, a part's areal density
#         falls off towards its outline as a real gun's does; edge-on a slide is a rounded bar),
#         bevelled muzzles, grips with a rounded butt, palm swell, finger grooves and beavertail,
#         oval or squared trigger guards with curved triggers, external hammers, pocket to full-size
#         pistols, revolvers with round, square or bird's-head butts, fluted cylinders, ejector
#         rods, sights and a trigger, rounded printed parts, magazines and carbine grips; and the
#         confusers moulded to match (toy and airsoft guns on a real pistol's outline with its
#         guard, rounded glue and spray guns), so that rounded never means real. It was judged by
#         `xfd gallery`, whose sheet showed the guns of 3.6.0 as straight-edged prisms.
# 5.0.0 = 4.0.0 with the hand tools and hard-cased confusers rounded as the guns were: wrenches (one
#         outline of jaw, shank and ring), pliers (and their dipped grips), cordless drills (rounded
#         housing, grip and battery pack), hair-dryer handles, claw hammers (oval handles, a tapered
#         claw), staple guns, caulking-gun grips, padlocks. Under 4.0.0 only guns, replicas and the
#         glue and spray guns were rounded, so a rounded outline or a soft edge told a threat from a
#         tool: a cue no real scan offers. And the projection's sub-voxel jitter draws from its own
#         stream ([seed, index, 0x717E]) instead of the scan's, where it drew as many numbers as an
#         object had voxels: under 4.0.0 a change to one object's shape moved the placement, noise
#         and palette of everything drawn after it. From 5.0.0 on, a change of shape changes that
#         object's pixels and nothing else (tested); no new random draws for the shapes.
# 6.0.0 = 5.0.0 with contents fitted to their parcels by default (fit_contents, 3.3.0's opt-in; `xfd
#         synth --no-fit-contents` draws 5.0.0's loose parcels): under 5.0.0 about 30 % of clutter
#         items stuck out through their parcel's walls and packed parcels held more than their
#         volume, a scene no scanner sees. An item that fits no way is put back and another drawn
#         (FIT_TRIES), so that small parcels hold small things instead of going through empty; the
#         threats are drawn before the parcel, which is made large enough to hold each of them (13 %
#         stuck out otherwise, the only things that still did). A wrench's ring eye is drawn by
#         mask_prism(rings=) (a true circle) instead of 32-gons, a workaround for the ring clipping
#         mended after 5.0.0. Every default scene changes: the test sets were regenerated (same seeds).
# 6.1.0 = 6.0.0 + the opt-in wrapped clutter (`xfd synth --wrap-clutter P`): each item of clutter wrapped
#         with probability P in foil or cloth round its outline, as 15 % of threats are, from its own
#         random stream. Only threats were ever wrapped, and `xfd cues` found the shipped model alarming
#         on foil-wrapped tools that it passed bare. 0 (the default) keeps 6.0.0's images and labels.
GENERATOR_VERSION = "6.1.0"

# fit_contents: inner clearance of a container (walls, padding) across and along it, and under its lid
FIT_CLEARANCE_MM = (10.0, 10.0, 5.0)
# ... and how full it may be packed: the sum of the contents' own bounding boxes (which over-state an
# irregular object's volume) at most this share of the container's volume
FIT_FILL = 0.9
# outer length, width and height ranges of each kind of parcel (a threat may make one larger: fit_contents)
CONTAINER_MM = {"box": ((200, 600), (150, 450), (80, 350)), "envelope": ((220, 400), (160, 300), (10, 40)),
                "bag": ((300, 560), (220, 400), (100, 300)), "suitcase": ((450, 720), (300, 460), (180, 300))}
# ... and how many items are drawn for one place in a parcel before it is left empty (too big every time)
FIT_TRIES = 8
_FIT_TURNS = np.radians([d * s for d in range(5, 181, 5) for s in (1, -1)][:-1])  # nearest turn first

# visibility of a labelled threat: a display model of the whole chain (dark floor, gamma, 8 bits)
# applied to the effective high-energy attenuation with and without the threat. A threat under
# a steel block is in the labels (the parcel holds it) but nothing on the screen shows it.
VISIBLE_GREY_LEVELS = 4.0
_VIS_DARK, _VIS_GAMMA = 0.005, 0.7


def _display_value(att: np.ndarray) -> np.ndarray:
    return 255.0 * (_VIS_DARK + (1 - _VIS_DARK) * np.exp(-att)) ** _VIS_GAMMA


def visibility(own: np.ndarray, under: np.ndarray) -> float:
    """Share of a threat's footprint (its own attenuation `own`, everything else `under`, per
    pixel) where it darkens the displayed value by at least VISIBLE_GREY_LEVELS."""
    if own.size == 0:
        return 0.0
    return float(np.mean(_display_value(under) - _display_value(under + own) >= VISIBLE_GREY_LEVELS))


@dataclass
class SceneConfig:
    """Ranges for domain randomisation. Shifted configs make out-of-distribution tests."""

    mm_per_px: tuple[float, float] = (0.8, 1.35)
    clutter: tuple[int, int] = (5, 30)
    p_threat: float = 0.6
    p_gray: float = 0.2
    p_jpeg: float = 0.5
    max_side: int = 1100
    palette_shift: float = 0.0  # degrees added to every hue anchor (test-time shift)
    threat_orientation_p: tuple[float, float, float, float] = (0.55, 0.25, 0.12, 0.08)
    container_p: tuple[float, float, float, float] = (0.5, 0.2, 0.15, 0.15)  # box, envelope, bag, suitcase
    # share of scans that get a vendor's display processing (sharpening, stretch, negative, burnt-in
    # text; render.display_effects). 0 keeps generator 1.0.0's images byte for byte. It draws from
    # its own random stream, so objects, labels and physics are the same with or without it.
    p_display: float = 0.0
    # share of scans whose display is jittered wider than the palette varies (render.display_jitter:
    # hue turns, grey renderings of colour scans, gamma 0.5-2, blur, edge enhancement, negatives of
    # colour scans), the display differences `xfd robustness` found costly. Own random stream:
    # 0 keeps 3.3.0's images; labels never change.
    p_display_jitter: float = 0.0
    # share of scans that also get soft, irregular contents (clothing with folds, food bags, paper and
    # bubble-wrap packing) and small metal confusers (pens with springs, underwires, buckles, hair
    # pins): organic.py. 0 keeps 1.0.0's images; its own random stream leaves labels unchanged.
    p_soft: float = 0.0
    # per-scan hue offset of all three anchors, uniform in +-palette_jitter degrees (0 draws nothing,
    # which keeps the default stream and images)
    palette_jitter: float = 0.0
    # share of scans projected through a line scanner's fan beam (FanBeam): rows scale with each
    # point's height above the belt, seen from the source, so tall things look tapered and box
    # walls broaden into bands away from the central ray. 0: the parallel projection (in 1.3.0,
    # 1.2.0's images); the geometry and heights come from their own random stream.
    p_fan: float = 0.0
    # put parcel contents only where they fit (fit_rotation): clutter longer or taller than its
    # container is turned about the vertical to fit, else laid flat along it, else left out, and
    # packing stops at FIT_FILL of the container's volume. False draws 5.0.0's parcels (the default
    # up to 5.0.0), in which about a third of the items drawn stuck out of their container and a
    # third of parcels held more than their volume (crowding the middle of packed parcels into
    # black). Threats are drawn first and the parcel made to hold each of them; they are turned, laid
    # flat and placed the same way but never left out, and do not count towards the fill. On by
    # default since 6.0.0.
    fit_contents: bool = True
    # share of scans that also hold 1-2 hand tools with a pistol grip and trigger (glue, caulking,
    # staple and paint spray guns: clutter.GUN_SHAPED_TOOLS), never labelled: the outlines that make
    # screeners look twice. Own random stream; 0 adds nothing.
    p_tools: float = 0.0
    # share of clutter items wrapped in foil or cloth round their outline (wrap_round), as 15 % of
    # threats are: with it 0 a wrap always meant a threat, a cue no real parcel offers (`xfd cues`).
    # Own random stream; 0 keeps 6.0.0's images.
    p_wrap_clutter: float = 0.0
    # weights of the threat classes drawn (threats.THREAT_MIX's names; missing ones weigh 0),
    # e.g. more frames, magazines and printed parts than whole guns for a component-heavy training
    # set. None: THREAT_MIX. The draw consumes the same random numbers, so only the classes change.
    threat_mix: dict[str, float] | None = None
    # also render the parcel as a dual-view scanner's second view sees it: a horizontal beam across
    # the belt (side_view.py). The same objects in the same 3D poses, each at a height in its
    # parcel, the container and soft goods seen from the side, the same spectrum, detector and
    # palette; a second labelled image (Scan.side). Own random stream: the top view is unchanged.
    side_view: bool = False
    # share of scans whose pixels are not square: a line scanner samples along the belt at its line
    # rate and across it at the detector pitch, so a belt speed or line rate off the vendor's setting
    # stretches or squashes everything along the belt (image x) by a factor drawn log-uniformly in
    # belt_stretch (>1: more pixels along the belt). `xfd robustness` (stretch:F) found the shipped
    # model losing Pd to it. Own random stream: 0 keeps 3.5.0's images; boxes follow the stretch.
    p_belt_stretch: float = 0.0
    belt_stretch: tuple[float, float] = (0.75, 1.33)
    blur_sigma: tuple[float, float] = (0.3, 1.1)  # detector blur (px)
    log10_i0: tuple[float, float] = (3.8, 5.0)  # photons per pixel at high energy: the noise level

    @staticmethod
    def shifted() -> SceneConfig:
        """Off-distribution settings: other resolution, denser clutter, other palette."""
        return SceneConfig(mm_per_px=(1.3, 1.7), clutter=(25, 55), palette_shift=12.0, p_gray=0.3)

    @staticmethod
    def wide() -> SceneConfig:
        """Wider domain randomisation for training, so that scans from scanners we have not seen
        fall inside the training distribution: coarser and finer pixels, emptier and fuller
        parcels, hue anchors moved per scan, sharper and blurrier, cleaner and noisier detectors.
        The shifted test set's settings (1.3-1.7 mm/px, 25-55 items, hue +12) lie inside these
        ranges, so a model trained on wide scans is no longer blind to them: say so when
        reporting on synth-shifted."""
        return SceneConfig(mm_per_px=(0.6, 1.8), clutter=(3, 50), p_gray=0.25, palette_jitter=15.0,
                           blur_sigma=(0.2, 1.6), log10_i0=(3.5, 5.2), p_fan=0.7, p_tools=0.5)


@dataclass
class Scan:
    image: np.ndarray  # uint8 HxWx3 RGB or HxW gray
    boxes: list[dict]  # {"class_id", "label", "box": [x1,y1,x2,y2], ...metadata}
    meta: dict
    t_low: np.ndarray | None = None
    t_high: np.ndarray | None = None
    extras: dict = field(default_factory=dict)
    side: Scan | None = None  # the side view of the same parcel (SceneConfig.side_view)


# effective high-energy attenuation per basis coefficient, for label visibility
def _att_row(spectrum: physics.Spectrum) -> np.ndarray:
    w = np.asarray(spectrum.w_high)
    return (physics.basis() * w[:, None]).sum(0).astype(np.float32)


@dataclass
class FanBeam:
    """Line-scan geometry. The belt carries the parcel past a fan of rays from a point source
    below it onto a detector line: along the belt (image columns) the projection is parallel,
    across it (image rows) it is central. A point at height z above the belt lands on row
    yc + (y - yc) * mag(z), with mag(z) = (s0 + z_ref) / (s0 + z): things near the source (low
    in the parcel) look bigger, tall things taper, vertical walls away from the central ray yc
    spread into bands. Pixel size (mm_per_px) refers to the plane z_ref."""

    yc_mm: float  # image row (mm) of the central ray
    s0_mm: float  # source to belt surface
    z_ref_mm: float  # height at which mag = 1
    room_mm: float  # inner height of the parcel: how high things can lie
    rng: np.random.Generator  # heights come from this stream, not the scan's

    @staticmethod
    def random(seed: int, index: int, tunnel_mm: float, room_mm: float) -> FanBeam:
        rng = np.random.default_rng([int(seed), int(index), 0xFA4])
        # sources sit below the belt, from one side of the tunnel to its middle; 400-800 mm below
        # the belt puts the magnification of a parcel's top at 55-80% of its bottom (300 mm tall)
        yc = float(rng.uniform(-0.1, 0.6) * tunnel_mm)
        if rng.random() < 0.5:
            yc = tunnel_mm - yc  # source on the other side
        return FanBeam(yc, float(rng.uniform(400, 800)), float(rng.uniform(0, 120)), float(room_mm), rng)

    def mag(self, z_mm):
        return (self.s0_mm + self.z_ref_mm) / (self.s0_mm + z_mm)

    def base_height(self, thickness_mm: float) -> float:
        """Where an object of this vertical extent rests: mostly low (on the floor, on a layer)."""
        return float(max(0.0, self.room_mm - thickness_mm) * self.rng.random() ** 1.5)

    def warp_rows(self, areal: np.ndarray, y0: int, z_mm: float, mm_per_px: float) -> tuple[np.ndarray, int]:
        """A flat layer at height z, placed with its top row at y0: its rows as the fan shows
        them, and the new top row. Areal density along a ray is kept (a thin layer seen at these
        angles)."""
        m = float(self.mag(z_mm))
        yc = self.yc_mm / mm_per_px
        h, w = areal.shape
        top = int(np.floor(yc + (y0 - yc) * m)) - 1
        hh = int(np.ceil(h * m)) + 3
        c = yc + (top - yc) / m - y0  # source row (local) of output row 0
        M = np.array([[1.0, 0.0, 0.0], [0.0, 1.0 / m, c]], np.float64)
        out = cv2.warpAffine(areal, M, (w, hh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return out, top


@functools.cache
def _coeffs32(material: str) -> np.ndarray:
    """A material's basis coefficients as float32, once per process (read-only: shared)."""
    a = np.asarray(physics.basis_coeffs(material), np.float32)
    a.flags.writeable = False
    return a


def _scene_solids(obj: Obj, rot: np.ndarray, px_mm: float) -> list[tuple]:
    """An object's solids turned by rot: (solid, its axes in the scene, its centre there, its half
    extent). A solid thinner than a pixel (a sheet, a wire) is drawn a pixel thick and a wall
    thinner than a quarter pixel a quarter pixel thick, at a density that keeps its mass: what a
    detector pixel averages anyway, and never lost between pixel centres."""
    r = np.asarray(rot, np.float64)
    out = []
    for s in obj.solids:
        if s.inner is None and s.half.min() < px_mm / 2:
            t = Solid(s.shape, np.maximum(s.half, px_mm / 2), s.axes, s.centre, s.material, 0.0)
            t.density = s.density * s.volume_cm3() / t.volume_cm3()
            s = t
        elif s.inner is not None and (s.half - s.inner).min() < px_mm / 4:
            t = Solid(s.shape, s.half, s.axes, s.centre, s.material, 0.0, np.minimum(s.inner, s.half - px_mm / 4))
            t.density = s.density * s.volume_cm3() / t.volume_cm3()
            s = t
        axes = r @ s.axes
        out.append((s, axes, r @ s.centre, solid_extent(s.shape, s.half, axes)))
    return out


def _volume_factor(sol: Solid, seen_mm3: float) -> np.float32:
    """Scale that makes a solid's drawn chords sum to its exact volume: sampling a sharp edge at
    pixel centres gains or loses up to a row of pixels (1% for a 15 cm box at 1 mm/px)."""
    if seen_mm3 <= 0:
        return np.float32(1.0)
    return np.float32(np.clip(sol.volume_cm3() * 1000.0 / seen_mm3, 0.67, 1.5))


def _add_part(own: np.ndarray, material: str, areal: np.ndarray, r0: int, c0: int) -> None:
    """Add one part's areal-density window (g/cm^2) at (r0, c0) to an object's basis maps: only
    the part's own rectangle (outside it a full-grid splat adds exact zeros, so sums are unchanged)."""
    c = _coeffs32(material)
    own[:, r0 : r0 + areal.shape[0], c0 : c0 + areal.shape[1]] += c[:, None, None] * areal[None]


class Canvas:
    """Accumulates the basis areal maps (g/cm^2 weighted) of a scan."""

    def __init__(self, h: int, w: int, mm_per_px: float, rng: np.random.Generator, att_row: np.ndarray,
                 fan: FanBeam | None = None):
        self.h, self.w, self.mmpp, self.rng = h, w, mm_per_px, rng
        self.maps = np.zeros((physics.N_BASIS, h, w), np.float32)
        self.att_row = att_row
        self.px_area_cm2 = (mm_per_px / 10.0) ** 2
        self.fan = fan
        self.record: list | None = None  # project()'s arguments, kept for a second view when a list

    def last_record(self) -> int | None:
        """Index of the last projection recorded (None when not recording)."""
        return None if self.record is None else len(self.record) - 1

    def add_layer(self, material: str, areal: np.ndarray, heights_mm=(0.0,), y0: int = 0, x0: int = 0) -> None:
        """A flat layer (or a wall cut into slices) at the given heights, its areal density shared
        between them. Without a fan beam the heights do not matter: one add_areal, as before."""
        if self.fan is None:
            self.add_areal(material, areal, y0, x0)
            return
        part = areal / np.float32(len(heights_mm))
        for z in heights_mm:
            warped, top = self.fan.warp_rows(part, y0, float(z), self.mmpp)
            self.add_areal(material, warped, top, x0)

    def add_wall(self, material: str, areal: np.ndarray, height_mm: float, y0: int = 0) -> None:
        """Vertical walls drawn edge-on (areal = their full-height areal density, canvas-sized).
        Through a fan beam a wall of height H at row y covers rows y*mag(0) .. y*mag(H) (about
        the central ray): it is cut into as many slices as that band has pixels, each splatted
        at its own height, so the band is continuous."""
        if self.fan is None:
            self.add_areal(material, areal, y0)
            return
        fan = self.fan
        ys, xs = np.nonzero(areal > 0)
        if not len(ys):
            return
        vals = areal[ys, xs].astype(np.float64)
        ys = ys + y0
        yc = fan.yc_mm / self.mmpp
        spread = float(np.abs(ys - yc).max()) * abs(float(fan.mag(0.0) - fan.mag(height_mm)))
        n = int(np.clip(np.ceil(spread / 0.75) + 1, 2, 160))
        zs = (np.arange(n) + 0.5) * height_mm / n
        v = (yc + (ys[None, :] - yc) * fan.mag(zs)[:, None]).ravel()
        u = np.broadcast_to(xs, (n, len(xs))).ravel().astype(np.float64)
        win = splat_window(u, v, np.broadcast_to(vals / n, (n, len(xs))).ravel(), (self.h, self.w))
        if win is not None:
            self.add_areal(material, win[0], win[1], win[2])

    def add_areal(self, material: str, areal: np.ndarray, y0: int = 0, x0: int = 0) -> None:
        """Add an areal-density map (g/cm^2) of one material at (y0, x0)."""
        h, w = areal.shape
        ys, xs = slice(max(y0, 0), min(y0 + h, self.h)), slice(max(x0, 0), min(x0 + w, self.w))
        if ys.start >= ys.stop or xs.start >= xs.stop:
            return  # wholly off the canvas (a wrap's padding past an edge): a negative stop below would wrap round
        sub = areal[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
        # only the rectangle holding non-zero values (a staple, a rail or a parcel's footprint on a
        # canvas-sized map): adding exact zeros elsewhere changes nothing
        rows = np.flatnonzero(sub.any(axis=1))
        if not len(rows):
            return
        cols = np.flatnonzero(sub.any(axis=0))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        c = _coeffs32(material)
        self.maps[:, ys.start + r0 : ys.start + r1, xs.start + c0 : xs.start + c1] += c[:, None, None] * sub[None, r0:r1, c0:c1]

    def project(self, obj: Obj, cx_mm: float, cy_mm: float, rot: np.ndarray, magnification: float = 1.0,
                pitch: float = 1.0, base_mm: float | None = None) -> tuple[np.ndarray, int, int]:
        """Project an object; returns its own high-energy attenuation map and its (y0, x0).
        Through a fan beam the object's lowest point rests at base_mm above the belt (default: a
        height drawn by the fan) and `magnification` is not used: each point's height sets it."""
        if self.record is not None:
            self.record.append((obj, cx_mm, cy_mm, rot, magnification, pitch))
        if self.fan is not None:
            return self._project_fan(obj, cx_mm, cy_mm, rot, pitch, base_mm)
        rt = np.ascontiguousarray(rot[:2].astype(np.float32).T)  # contiguous: same products, faster sgemm
        allpts = [np.ascontiguousarray(p.pts) @ rt for p in obj.parts]
        sols = _scene_solids(obj, rot, self.mmpp)
        lo = np.min([col_min(a) for a in allpts] + [(c - e)[:2].astype(np.float32) for _, _, c, e in sols], axis=0)
        hi = np.max([col_max(a) for a in allpts] + [(c + e)[:2].astype(np.float32) for _, _, c, e in sols], axis=0)
        x0, y0 = int(np.floor((cx_mm + lo[0]) / self.mmpp)) - 2, int(np.floor((cy_mm + magnification * lo[1]) / self.mmpp)) - 2
        w = int(np.ceil((cx_mm + hi[0]) / self.mmpp)) - x0 + 3
        h = int(np.ceil((cy_mm + magnification * hi[1]) / self.mmpp)) - y0 + 3
        own = np.zeros((physics.N_BASIS, h, w), np.float32)
        jitter = pitch / self.mmpp
        for part, pts in zip(obj.parts, allpts, strict=True):
            n = len(pts)
            jit = self.rng.random((n, 2), dtype=np.float32) - np.float32(0.5)
            u = (cx_mm + pts[:, 0]) / self.mmpp - x0 + jit[:, 0] * jitter
            v = (cy_mm + magnification * pts[:, 1]) / self.mmpp - y0 + jit[:, 1] * jitter
            win = splat_window(u, v, part.mass, (h, w))
            if win is None:
                continue
            areal, r0, c0 = win
            # rows stretched m-fold spread a point's mass over m times the pixels: areal density (mass
            # per ray-tube cross-section) is mass * m / pixel area (before 2.0.0 this divided by m)
            _add_part(own, part.material, areal * np.float32(magnification / self.px_area_cm2), r0, c0)
        px_y = self.mmpp / magnification
        for sol, axes, c, e in sols:
            # pixel (row i, col j) of the window sees the ray at x = (j + x0) px - cx, y = ((i + y0) px - cy) / m
            j0, j1 = self._span((cx_mm + c[0] - e[0]) / self.mmpp - x0, (cx_mm + c[0] + e[0]) / self.mmpp - x0, w)
            i0, i1 = self._span((cy_mm + magnification * (c[1] - e[1])) / self.mmpp - y0,
                                (cy_mm + magnification * (c[1] + e[1])) / self.mmpp - y0, h)
            if j1 <= j0 or i1 <= i0:
                continue
            xs = (np.arange(j0, j1) + x0) * self.mmpp - cx_mm
            ys = ((np.arange(i0, i1) + y0) * self.mmpp - cy_mm) / magnification
            chord = solid_pixels(sol, axes, c, xs, ys, self.mmpp, px_y)
            chord *= _volume_factor(sol, float(chord.sum()) * self.mmpp * px_y)
            _add_part(own, sol.material, chord * np.float32(sol.density / 10.0), i0, j0)  # g/cm^3 x mm -> g/cm^2
        return self._settle(own, y0, x0, jitter)

    @staticmethod
    def _span(a: float, b: float, n: int) -> tuple[int, int]:
        """Pixel indices whose centres may lie in [a, b], clipped to 0..n."""
        return max(0, int(np.floor(a))), min(n, int(np.ceil(b)) + 1)

    def _settle(self, own: np.ndarray, y0: int, x0: int, jitter: float) -> tuple[np.ndarray, int, int]:
        """An object's own basis maps, placed at (y0, x0): smooth the voxel sampling noise (one
        voxel's worth, so a solid looks solid), add them to the scan, return their attenuation."""
        sig = 0.45 * jitter
        if sig > 0.3:
            for k in range(physics.N_BASIS):
                own[k] = cv2.GaussianBlur(own[k], (0, 0), sig)
        h, w = own.shape[1:]
        ys, xs = slice(max(y0, 0), min(y0 + h, self.h)), slice(max(x0, 0), min(x0 + w, self.w))
        if ys.stop > ys.start and xs.stop > xs.start:
            self.maps[:, ys, xs] += own[:, ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
        att = np.tensordot(self.att_row, own, axes=1)
        return att, y0, x0

    def _project_fan(self, obj: Obj, cx_mm: float, cy_mm: float, rot: np.ndarray, pitch: float, base_mm: float | None):
        """project() through the fan beam: each point's row scales with its own height. A point's
        mass lands on m times fewer rows' worth of object area than a parallel beam would give it,
        so its areal density (mass per ray tube cross-section) is mass * m / pixel area."""
        fan = self.fan
        rt = np.ascontiguousarray(rot.astype(np.float32).T)
        allpts = [np.ascontiguousarray(p.pts) @ rt for p in obj.parts]
        sols = _scene_solids(obj, rot, self.mmpp)
        zmin = float(np.min([col_min(a)[2] for a in allpts] + [c[2] - e[2] for _, _, c, e in sols]))
        zmax = float(np.max([col_max(a)[2] for a in allpts] + [c[2] + e[2] for _, _, c, e in sols]))
        base = fan.base_height(zmax - zmin) if base_mm is None else float(base_mm)
        jitter = pitch / self.mmpp
        uv = []
        for pts in allpts:
            m = fan.mag(base + (pts[:, 2] - zmin)).astype(np.float32)
            u = (cx_mm + pts[:, 0]) / self.mmpp
            v = (fan.yc_mm + (cy_mm + pts[:, 1] - fan.yc_mm) * m) / self.mmpp
            uv.append((u, v, m))
        corners = []  # each solid's box, at its lowest and highest magnification
        for _, _, c, e in sols:
            m = fan.mag(base + np.array([c[2] - e[2], c[2] + e[2]]) - zmin)
            yy = np.array([c[1] - e[1], c[1] + e[1]])
            v = (fan.yc_mm + (cy_mm + yy[:, None] - fan.yc_mm) * m[None, :]).ravel() / self.mmpp
            corners.append((np.array([cx_mm + c[0] - e[0], cx_mm + c[0] + e[0]]) / self.mmpp, v, None))
        x0 = int(np.floor(min(float(u.min()) for u, _, _ in uv + corners))) - 2
        y0 = int(np.floor(min(float(v.min()) for _, v, _ in uv + corners))) - 2
        w = int(np.ceil(max(float(u.max()) for u, _, _ in uv + corners))) - x0 + 3
        h = int(np.ceil(max(float(v.max()) for _, v, _ in uv + corners))) - y0 + 3
        own = np.zeros((physics.N_BASIS, h, w), np.float32)
        for part, (u, v, m) in zip(obj.parts, uv, strict=True):
            # the same draws as the parallel projection, so a scan with and without the fan holds the same things
            jit = self.rng.random((len(u), 2), dtype=np.float32) - np.float32(0.5)
            win = splat_window(u - x0 + jit[:, 0] * jitter, v - y0 + jit[:, 1] * jitter * m,
                               part.mass * m, (h, w))
            if win is None:
                continue
            areal, r0, c0 = win
            _add_part(own, part.material, areal / self.px_area_cm2, r0, c0)
        yc = fan.yc_mm
        for sol, axes, c, e in sols:
            # cut into height slices, each seen at its own magnification (as add_wall does): a ray at
            # output row i meets a slice at y = ((i + y0) px - yc) / m + yc - cy; columns are parallel
            z_lo, z_hi = c[2] - e[2], c[2] + e[2]
            m_lo, m_hi = (float(fan.mag(base + z - zmin)) for z in (z_lo, z_hi))
            far = max(abs(cy_mm + c[1] - e[1] - yc), abs(cy_mm + c[1] + e[1] - yc))
            n = int(np.clip(np.ceil(far * abs(m_lo - m_hi) / self.mmpp / 0.75) + 1, 1, 64))
            j0, j1 = self._span((cx_mm + c[0] - e[0]) / self.mmpp - x0, (cx_mm + c[0] + e[0]) / self.mmpp - x0, w)
            if j1 <= j0:
                continue
            xs = (np.arange(j0, j1) + x0) * self.mmpp - cx_mm
            acc = np.zeros((h, j1 - j0), np.float32)
            total = 0.0  # volume seen, mm^3: a pixel sees mmpp x mmpp/m of the slice
            for k in range(n):
                za, zb = z_lo + (z_hi - z_lo) * k / n, z_lo + (z_hi - z_lo) * (k + 1) / n
                m = float(fan.mag(base + (za + zb) / 2 - zmin))
                ends = [(yc + (cy_mm + y - yc) * m) / self.mmpp - y0 for y in (c[1] - e[1], c[1] + e[1])]
                i0, i1 = self._span(min(ends), max(ends), h)
                if i1 <= i0:
                    continue
                ys = ((np.arange(i0, i1) + y0) * self.mmpp - yc) / m + yc - cy_mm
                chord = solid_pixels(sol, axes, c, xs, ys, self.mmpp, self.mmpp / m, (za, zb))
                acc[i0:i1] += chord
                total += float(chord.sum()) * self.mmpp * self.mmpp / m
            acc *= _volume_factor(sol, total)
            _add_part(own, sol.material, acc * np.float32(sol.density / 10.0), 0, j0)
        return self._settle(own, y0, x0, jitter)

    def attenuation(self) -> np.ndarray:
        return np.tensordot(self.att_row, self.maps, axes=1)


# ----------------------------------------------------------------- containers
def _rot_rect(cx, cy, w, h, ang):
    c, s = np.cos(ang), np.sin(ang)
    pts = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    return pts @ np.array([[c, -s], [s, c]]).T + [cx, cy]


def _fill(shape, poly_px, value=1.0):
    m = np.zeros(shape, np.float32)
    cv2.fillPoly(m, [np.round(poly_px * 8).astype(np.int32)], value, shift=3)
    return m


def draw_container(cv: Canvas, kind: str, cx, cy, L, W, H, ang, rng, view: str = "top") -> dict:
    """Container walls and packing as areal maps. Returns its footprint polygon (px).
    L x W is the container as the beam sees it and H its depth along the beam: a side view
    (view="side") passes its length, height and width, and a suitcase's trolley rails and wheels,
    in its bottom panel, then lie on one another along the bottom. Through a fan beam the lid
    shrinks towards the central ray and brings in parts of the parcel that lie outside the image
    rows: the maps get `pad` extra rows above and below."""
    pad = 0
    if cv.fan is not None:
        pad = int(np.ceil(cv.h * (1.0 / min(1.0, float(cv.fan.mag(H))) - 1.0))) + 2
    shape = (cv.h + 2 * pad, cv.w)
    p = cv.mmpp
    cy = cy + pad * p

    def noise(scale_px: float) -> np.ndarray:  # drawn at the image's size: the same draws with or without pad
        n = smooth_noise(rng, (cv.h, cv.w), scale_px)
        return np.pad(n, ((pad, pad), (0, 0)), mode="reflect") if pad else n

    poly = _rot_rect(cx / p, cy / p, L / p, W / p, ang)
    inside = _fill(shape, poly)
    edge_px = max(1.0, 4.0 / p)
    inner = _fill(shape, _rot_rect(cx / p, cy / p, L / p - 2 * edge_px, W / p - 2 * edge_px, ang))
    rim = np.clip(inside - inner, 0, 1)
    if kind == "box":
        rho = rng.uniform(0.12, 0.22)  # corrugated board
        t = rng.uniform(3, 7)
        fl = (np.sin(np.arange(cv.w) * p / rng.uniform(3, 5) * 2 * np.pi)[None, :] * 0.15 + 1).astype(np.float32)
        cv.add_layer("cellulose", inside * fl * 2 * rho * t / 10, (0.0, H), y0=-pad)
        cv.add_wall("cellulose", rim * rho * H / 10 * rng.uniform(0.6, 1.0), H, y0=-pad)
        # flaps meeting in the middle, tape strip
        band = _fill(shape, _rot_rect(cx / p, cy / p, L / p, rng.uniform(20, 60) / p, ang))
        cv.add_layer("cellulose", band * inside * rho * t / 10, (H,), y0=-pad)
        cv.add_layer("pla", band * inside * 0.005 * rng.uniform(1, 3), (H,), y0=-pad)
        if rng.random() < 0.3:  # staples
            for k in range(int(rng.integers(2, 8))):
                st = np.zeros(shape, np.float32)
                x = cx / p + (k - 4) * 15 / p
                cv2.line(st, (int(x), int(cy / p - 6 / p)), (int(x), int(cy / p + 6 / p)), 1.0, 1)
                cv.add_layer("steel", st * 7.87 * 0.06, (H,), y0=-pad)
    elif kind == "envelope":
        cv.add_layer("cellulose", inside * 0.8 * 0.2 * 2 / 10 * 2, (0.0, H), y0=-pad)
        if rng.random() < 0.6:  # bubble lining
            bub = np.zeros(shape, np.float32)
            step = max(3, int(10 / p))
            for yy in range(0, shape[0], step):
                for xx in range((yy // step % 2) * step // 2, shape[1], step):
                    cv2.circle(bub, (xx, yy), max(1, step // 2 - 1), 1.0, 1)
            cv.add_layer("pla", bub * inside * 0.92 * 0.03 / 10 * 2 * 5, (0.0, H), y0=-pad)
        else:
            cv.add_layer("cellulose", inside * np.clip(1 + 0.3 * noise(20 / p), 0.3, 2) * 0.3 * 0.6 / 10 * 2, (0.0, H), y0=-pad)
        cv.add_wall("cellulose", rim * 0.8 * 10 / 10, H, y0=-pad)
    elif kind == "bag":
        cv.add_layer("textile", inside * np.clip(1 + 0.2 * noise(30 / p), 0.5, 1.5) * 1.3 * 0.15, (0.0, H), y0=-pad)
        cv.add_wall("textile", rim * 1.3 * 1.0, H, y0=-pad)
        zp = np.zeros(shape, np.float32)  # zipper along one long side
        a, b = poly[0], poly[1]
        for t in np.linspace(0.05, 0.95, int(L / 3)):
            x, y = a + (b - a) * t
            cv2.circle(zp, (int(x), int(y + 8 / p)), max(1, int(1.2 / p)), 1.0, -1)
        cv.add_layer(str(rng.choice(["brass", "zinc_alloy", "pla"])), zp * 0.25, (H,), y0=-pad)
    else:  # suitcase
        cv.add_layer("abs", inside * 1.05 * 0.25 * 2, (0.0, H), y0=-pad)
        cv.add_wall("abs", rim * 1.05 * H / 10 * 0.3, H, y0=-pad)
        # trolley rails: two aluminium tubes along the length, wheels at corners
        for off in ((-0.3, 0.3) if view == "top" else (0.42, 0.42)):
            rail = np.zeros(shape, np.float32)
            a = poly[0] + (poly[3] - poly[0]) * (0.5 + off)
            b = poly[1] + (poly[2] - poly[1]) * (0.5 + off)
            cv2.line(rail, tuple(int(v) for v in a), tuple(int(v) for v in b), 1.0, max(1, int(12 / p)))
            cv.add_layer("aluminium", rail * 2.7 * 0.25, (0.0,), y0=-pad)
        for c in (poly if view == "top" else (poly[2], poly[3], poly[2], poly[3])):
            wh = np.zeros(shape, np.float32)
            cv2.circle(wh, (int(c[0]), int(c[1])), max(2, int(25 / p)), 1.0, -1)
            cv.add_layer("rubber", wh * 1.2 * 3.0, (0.0,), y0=-pad)
            wh2 = np.zeros(shape, np.float32)
            cv2.circle(wh2, (int(c[0]), int(c[1])), max(1, int(4 / p)), 1.0, -1)
            cv.add_layer("steel", wh2 * 7.87 * 4.0, (0.0,), y0=-pad)
    # packing fill: crumpled paper / foam / air pillows, as unresolved organic texture
    if kind in ("box", "suitcase") and rng.random() < 0.7:
        tex = np.clip(noise(rng.uniform(8, 30) / p), 0, None)
        cv.add_layer(str(rng.choice(["cellulose", "pla"])), inner * tex * rng.uniform(0.05, 0.4), (0.2 * H, 0.5 * H, 0.8 * H), y0=-pad)
    return {"poly": poly - np.array([0.0, pad]), "kind": kind}


# ----------------------------------------------------------------- the scan
def _choose(rng, probs, items):
    p = np.asarray(probs, float)
    return items[int(rng.choice(len(items), p=p / p.sum()))]


def _add_soft_contents(cv: Canvas, cfg: SceneConfig, seed: int, index: int, ckind: str,
                       cx: float, cy: float, L: float, W: float, ang: float, side=None) -> list[str] | None:
    """Soft goods and small metal confusers (organic.py), from their own random stream. With
    `side` (side_view.py), the same soft goods go to side(material, areal, x_mm, y_mm) instead
    and the confusers are left to the projections the side view replays."""
    if cfg.p_soft <= 0:
        return None
    frng = np.random.default_rng([int(seed), int(index), 0x50F7])
    if frng.random() >= cfg.p_soft:
        return []
    p = cv.mmpp
    inside = _fill((cv.h, cv.w), _rot_rect(cx / p, cy / p, L / p, W / p, ang))
    names = list(organic.SOFT_KINDS)
    w = np.array([organic.SOFT_KINDS[k][3] for k in names])
    n_soft = int(frng.integers(1, 4 if ckind in ("box", "envelope") else 7))
    added = []

    def spot(ext: float = 20.0) -> tuple[float, float]:
        hx, hy = max(2.0, L / 2 - ext / 2 - 5), max(2.0, W / 2 - ext / 2 - 5)
        lx, ly = frng.uniform(-hx, hx), frng.uniform(-hy, hy)
        c, s_ = np.cos(ang), np.sin(ang)
        return cx + c * lx - s_ * ly, cy + s_ * lx + c * ly

    for _ in range(n_soft):
        kind = names[int(frng.choice(len(names), p=w / w.sum()))]
        material, areal = organic.soft_item(frng, p, kind)
        x, y = spot()
        if side is not None:
            side(material, areal, x, y)
            added.append(kind)
            continue
        y0, x0 = int(y / p) - areal.shape[0] // 2, int(x / p) - areal.shape[1] // 2
        ys, xs = slice(max(y0, 0), min(y0 + areal.shape[0], cv.h)), slice(max(x0, 0), min(x0 + areal.shape[1], cv.w))
        if ys.stop <= ys.start or xs.stop <= xs.start:
            continue
        clip = areal[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] * inside[ys, xs]
        cv.add_layer(material, clip, (cv.fan.base_height(30.0),) if cv.fan else (0.0,), ys.start, xs.start)
        added.append(kind)
    if side is not None:
        return added
    main_rng, cv.rng = cv.rng, frng  # projection jitter from this stream too
    try:
        for _ in range(int(frng.integers(0, 4))):
            kind = str(frng.choice(list(organic.CONFUSERS)))
            o = organic.CONFUSERS[kind](frng, voxel_pitches(p)[0]).centred()
            rot = orientation_rotation(frng, "flat" if frng.random() < 0.8 else "tilted")
            lo, hi = o.bounds()
            ext = np.abs(rot[:2, :]) @ (hi - lo)
            if ext.max() > min(L, W) - 10:  # a long belt in a small parcel lies coiled: skip it
                continue
            x, y = spot(float(ext.max()))
            cv.project(o, x, y, rot, float(frng.uniform(1.0, 1.15)), voxel_pitches(p)[0])
            added.append(kind)
    finally:
        cv.rng = main_rng
    return added


def _add_tools(cv: Canvas, cfg: SceneConfig, seed: int, index: int, cx: float, cy: float, L: float, W: float,
               ang: float) -> list[str] | None:
    """Gun-shaped hand tools (clutter.GUN_SHAPED_TOOLS) inside the parcel, from their own stream."""
    if cfg.p_tools <= 0:
        return None
    trng = np.random.default_rng([int(seed), int(index), 0x7001])
    if trng.random() >= cfg.p_tools:
        return []
    added = []
    names = list(clutter_mod.GUN_SHAPED_TOOLS)
    pitch = voxel_pitches(cv.mmpp)[1]
    main_rng, cv.rng = cv.rng, trng  # projection jitter from this stream too
    try:
        for _ in range(int(trng.integers(1, 3))):
            kind = names[int(trng.integers(len(names)))]
            o = clutter_mod.GUN_SHAPED_TOOLS[kind](trng, pitch).centred()
            mode = _choose(trng, (0.6, 0.25, 0.1, 0.05), ORIENTATIONS)
            rot = orientation_rotation(trng, mode)
            lo, hi = o.bounds()
            ext = np.abs(rot[:2, :]) @ (hi - lo)
            if ext.max() > max(L, W) - 10:  # does not fit this parcel
                continue
            hx, hy = max(2.0, (L - ext[0]) / 2 - 5), max(2.0, (W - ext[1]) / 2 - 5)
            lx, ly = trng.uniform(-hx, hx), trng.uniform(-hy, hy)
            c, s_ = np.cos(ang), np.sin(ang)
            cv.project(o, cx + c * lx - s_ * ly, cy + s_ * lx + c * ly, rot, float(trng.uniform(1.0, 1.15)), pitch)
            added.append(kind)
    finally:
        cv.rng = main_rng
    return added


def fit_rotation(rot: np.ndarray, size: np.ndarray, dims: tuple[float, float, float], ang: float) -> np.ndarray | None:
    """A rotation under which an object with own-frame extent `size` (x long axis, z thickness)
    fits inside a container of inner size dims = (L, W, H) turned by `ang` about the vertical:
    `rot` itself, else `rot` turned about the vertical (the nearest turn first), else lying flat
    at any turn in the container; None when it fits no way."""
    room = np.asarray(dims, np.float64) - FIT_CLEARANCE_MM
    to_box = rot_z(-ang)
    size = np.asarray(size, np.float64)

    def fits(r):
        return bool(np.all(np.abs(to_box @ r) @ size <= room))

    if fits(rot):
        return rot
    for t in _FIT_TURNS:
        r = rot_z(t) @ rot
        if fits(r):
            return r
    for t in np.concatenate([[0.0], _FIT_TURNS]):
        r = rot_z(ang + t)
        if fits(r):
            return r
    return None


def wrap_mask(att: np.ndarray, pad: int) -> np.ndarray:
    """Where a wrapping (foil, cloth) `pad` pixels round a threat's own attenuation map lies:
    a soft-edged mask 2 * pad larger than the map each way."""
    hh, ww = att.shape
    wrap = np.zeros((hh + 2 * pad, ww + 2 * pad), np.float32)
    m = (att > 0.02).astype(np.uint8)
    m = cv2.dilate(m, np.ones((3, 3), np.uint8), iterations=max(1, pad // 2))
    wrap[pad:pad + hh, pad:pad + ww] = m
    return cv2.GaussianBlur(cv2.dilate(wrap, np.ones((5, 5), np.uint8), iterations=max(1, pad // 3)), (0, 0), 2)


def voxel_pitches(mmpp: float) -> tuple[float, float]:
    """The voxel pitch (mm) objects are built from at a detector pitch of mmpp: threats and small metal
    confusers fine (thin walls, springs), clutter coarser. No real scan knows the difference: `xfd
    cues` checks that a model does not read it."""
    return max(0.6, mmpp * 0.7), max(0.8, mmpp * 1.0)


def wrap_round(cv: Canvas, att: np.ndarray, y0: int, x0: int, rng: np.random.Generator, mmpp: float,
               material: str | None = None) -> tuple[str, tuple, float]:
    """Wrap the object just projected (its own attenuation map `att` at y0, x0) as a sender wraps a
    gun: a soft-edged layer 5-25 mm beyond its outline of aluminium foil (2-12 layers of 2-20 um) or
    cloth, added to the canvas; `material` ("aluminium" or "textile") forces the kind, else drawn half
    and half. Returns (material, its factors, the margin in mm), what the side view replays."""
    pad = int(rng.uniform(5, 25) / mmpp)
    if material is None:
        material = "aluminium" if rng.random() < 0.5 else "textile"
    if material == "aluminium":
        factors = (2.7, rng.uniform(0.002, 0.02), rng.integers(2, 12))
    elif material == "textile":
        factors = (1.4, rng.uniform(0.2, 1.2))
    else:
        raise ValueError(f"a wrap is aluminium or textile, not {material!r}")
    add_wrap(cv, att, y0, x0, material, factors, pad)
    return material, factors, pad * mmpp


def add_wrap(cv: Canvas, att: np.ndarray, y0: int, x0: int, material: str, factors: tuple, pad: int) -> None:
    """A wrap `pad` pixels round the object whose attenuation map `att` lies at (y0, x0): its areal
    density the factors' product (density, thickness, layers) over wrap_mask. The side view replays
    the top view's wraps with it."""
    amount = wrap_mask(att, pad)
    for f in factors:  # multiplied one at a time, in this order, as before 3.5.0 (same float32 bytes)
        amount = amount * f
    cv.add_areal(material, amount, y0 - pad, x0 - pad)


def belt_stretch(seed: int, index: int, cfg: SceneConfig) -> float | None:
    """The factor by which this scan's line rate stretches it along the belt (None: square pixels),
    from its own random stream (both views of a parcel pass the belt together: one factor)."""
    if cfg.p_belt_stretch <= 0:
        return None
    brng = np.random.default_rng([int(seed), int(index), 0xBE17])
    if brng.random() >= cfg.p_belt_stretch:
        return None
    lo, hi = cfg.belt_stretch
    return float(np.exp(brng.uniform(np.log(lo), np.log(hi))))


def along_belt(a: np.ndarray, f: float) -> np.ndarray:
    """A map sampled f times as densely along the belt (image x): the detector reads each line's
    mean transmission, so squashing averages (area) and stretching interpolates."""
    h, w = a.shape[:2]
    return cv2.resize(a, (max(1, int(round(w * f))), h), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)


def stretch_boxes(boxes: list[dict], f: float, width: int) -> None:
    """Labels drawn on square pixels moved onto the stretched image, in place (a box's pixel edges
    x1 and x2 map to x1 * f and x2 * f)."""
    for b in boxes:
        x1, y1, x2, y2 = b["box"]
        b["box"] = [int(np.floor(x1 * f)), y1, min(width, int(np.ceil(x2 * f))), y2]


def detector_response(t: np.ndarray, i0: float, el: float, rng: np.random.Generator) -> np.ndarray:
    """One energy channel's transmission as the detector reports it: photon and electronic noise
    (i0 photons per pixel, el the electronic floor), on 30% of scans per-element gains (rows) and
    per-line flicker (columns), a dark floor and a gain error, clipped to 0..1."""
    t = t + rng.standard_normal(t.shape, dtype=np.float32) * np.sqrt(np.clip(t, 0, None) / i0 + el * el)
    if rng.random() < 0.3:  # per detector element gain (rows) and per line flicker (columns)
        t = t * (1 + rng.normal(0, rng.uniform(0.001, 0.005), (t.shape[0], 1))).astype(np.float32)
        t = t * (1 + rng.normal(0, rng.uniform(0.0, 0.003), (1, t.shape[1]))).astype(np.float32)
    dark = float(rng.uniform(0.001, 0.01))
    t = dark + (1 - dark) * t * float(rng.uniform(1.0, 1.06))
    return np.clip(t, 0, 1).astype(np.float32)


def label_threats(objects: list[tuple], total_att: np.ndarray, wpx: int, hpx: int, n_clutter: int
                  ) -> tuple[list[dict], list[tuple]]:
    """Labels of one view: a tight box on each threat's visible projection (objects: (obj, its
    orientation to the beam, its concealment, its own attenuation map, y0, x0)) with the metadata
    the evaluation is stratified by; and the maps of the threats labelled."""
    boxes, labelled_maps = [], []
    for o, mode, conceal, att, y0, x0 in objects:
        vis = att > 0.03
        ys, xs = np.nonzero(vis)
        if len(xs) == 0:
            continue
        gx, gy = xs + x0, ys + y0
        ok = (gx >= 0) & (gx < wpx) & (gy >= 0) & (gy < hpx)
        if ok.sum() < 0.5 * len(xs) or ok.sum() < 12:
            continue
        gx, gy = gx[ok], gy[ok]
        bg = total_att[gy, gx] - att[ys[ok], xs[ok]]
        occlusion = float(np.mean(bg > 2.5))
        visible = visibility(att[ys[ok], xs[ok]], bg)
        x1, y1, x2, y2 = int(gx.min()), int(gy.min()), int(gx.max()) + 1, int(gy.max()) + 1
        printed = bool(o.meta.get("printed", False))
        if conceal != "none" or occlusion > 0.5:
            difficulty = "concealed"
        elif mode in ("edge", "end") or occlusion > 0.2 or n_clutter > 25 or printed:
            difficulty = "hard"
        else:
            difficulty = "easy"
        labelled_maps.append((att, y0, x0))
        boxes.append({
            "class_id": taxonomy.class_id(o.label), "label": o.label, "box": [x1, y1, x2, y2],
            "kind": o.kind, "material": o.meta.get("material"), "printed": printed, "orientation": mode,
            "concealment": conceal, "occlusion": round(occlusion, 3), "visibility": round(visible, 3),
            "difficulty": difficulty,
        })
    return boxes, labelled_maps


def _draw_threats(rng, cfg: SceneConfig, pitch: float) -> list:
    """The threats of one scan (none in about 40 % of scans): how many, then each object."""
    n = int(_choose(rng, (0.75, 0.2, 0.05), [1, 2, 3])) if rng.random() < cfg.p_threat else 0
    return [threat_mod.make_threat(rng, pitch, mix=cfg.threat_mix) for _ in range(n)]


def simulate(seed: int, index: int, cfg: SceneConfig | None = None, keep_raw: bool = False) -> Scan:
    cfg = cfg or SceneConfig()
    rng = np.random.default_rng([int(seed), int(index)])
    mmpp = float(rng.uniform(*cfg.mm_per_px))
    pitch, cpitch = voxel_pitches(mmpp)  # threats fine (thin walls, springs), clutter coarser
    spectrum = physics.Spectrum.random(rng)
    att_row = _att_row(spectrum)

    ckind = _choose(rng, cfg.container_p, ["box", "envelope", "bag", "suitcase"])
    L, W, H = (float(rng.uniform(*r)) for r in CONTAINER_MM[ckind])
    drawn_threats = None
    if cfg.fit_contents:
        # a sender picks a parcel that holds what is sent (6.0.0): the threats are drawn first and
        # the parcel made large enough for each to lie flat in it (an envelope too small or thin
        # for one becomes a box). Drawn after the parcel, 13 % of threats fitted it no way (most
        # carbines, pistols in thin envelopes) and stuck out through its walls, the only things
        # that did once clutter fitted: a cue for "threat" no real scan offers.
        drawn_threats = _draw_threats(rng, cfg, pitch)
        need = np.zeros(3)
        for o in drawn_threats:
            lo, hi = o.bounds()
            sx, sy, sz = (float(v) for v in hi - lo)
            need = np.maximum(need, [max(sx, sy), min(sx, sy), sz])
        need += np.asarray(FIT_CLEARANCE_MM) + 1.0
        if ckind == "envelope" and np.any(need > [hi for _, hi in CONTAINER_MM["envelope"]]):
            ckind = "box"
            L, W, H = (float(rng.uniform(*r)) for r in CONTAINER_MM["box"])
        L, W, H = max(L, need[0]), max(W, need[1]), max(H, need[2])
    margin_x = rng.uniform(30, 200)
    tunnel = max(W + 2 * rng.uniform(20, 60), rng.uniform(400, 750))
    wpx = int(min(cfg.max_side, (L + 2 * margin_x) / mmpp))
    hpx = int(min(cfg.max_side, tunnel / mmpp))
    if wpx * mmpp < L + 20:  # parcel longer than the image allows: coarser pixels
        mmpp = (L + 2 * margin_x) / cfg.max_side
        wpx, hpx = int((L + 2 * margin_x) / mmpp), int(min(cfg.max_side, tunnel / mmpp))
    fan = None
    if cfg.p_fan > 0 and np.random.default_rng([int(seed), int(index), 0xFA5]).random() < cfg.p_fan:
        fan = FanBeam.random(seed, index, hpx * mmpp, max(5.0, H - 8.0))
    # projection jitter from its own stream (5.0.0): an object's voxel count no longer moves the
    # placement, noise and palette of everything drawn after it
    cv = Canvas(hpx, wpx, mmpp, np.random.default_rng([int(seed), int(index), 0x717E]), att_row, fan)
    if cfg.side_view:
        cv.record = []
    cx, cy = wpx * mmpp / 2 + rng.uniform(-20, 20), hpx * mmpp / 2 + rng.uniform(-30, 30)
    ang = float(np.radians(rng.normal(0, 6)) if rng.random() < 0.7 else rng.uniform(-np.pi / 6, np.pi / 6))
    if L > W * 1.1 and rng.random() < 0.15:
        ang += np.pi / 2
    draw_container(cv, ckind, cx, cy, L, W, H, ang, rng)
    # the belt is in the air calibration (I0) of real scanners: it is not drawn

    def room(extent_mm: np.ndarray) -> tuple[float, float]:
        # how far from the parcel's centre, in its rotated frame, an extent stays within the walls' clearance
        return (max(0.0, (L - FIT_CLEARANCE_MM[0] - extent_mm[0]) / 2),
                max(0.0, (W - FIT_CLEARANCE_MM[1] - extent_mm[1]) / 2))

    def place(extent_mm: np.ndarray, inside: bool = False) -> tuple[float, float]:
        # uniform inside the container footprint, in its rotated frame; inside=True (fit_contents)
        # keeps the whole extent within the walls' clearance, not only most of it
        if inside:
            hx, hy = room(extent_mm)
        else:
            hx = max(5.0, (L - min(extent_mm[0], L * 0.8)) / 2 - 8)
            hy = max(5.0, (W - min(extent_mm[1], W * 0.8)) / 2 - 8)
        lx, ly = rng.uniform(-hx, hx), rng.uniform(-hy, hy)
        c, s = np.cos(ang), np.sin(ang)
        return cx + c * lx - s * ly, cy + s * lx + c * ly

    def keep_inside(x: float, y: float, extent_mm: np.ndarray) -> tuple[float, float]:
        # the nearest position to (x, y) at which the extent lies within the walls' clearance
        c, s = np.cos(ang), np.sin(ang)
        lx, ly = c * (x - cx) + s * (y - cy), -s * (x - cx) + c * (y - cy)
        hx, hy = room(extent_mm)
        lx, ly = float(np.clip(lx, -hx, hx)), float(np.clip(ly, -hy, hy))
        return cx + c * lx - s * ly, cy + s * lx + c * ly

    def fit(rot: np.ndarray, mode: str, size: np.ndarray) -> tuple[np.ndarray, str, np.ndarray] | None:
        # fit_contents: the rotation and orientation under which an object fits this parcel and its
        # extent in the container's frame (what place(inside=True) keeps inside); None: it fits no way
        fitted = fit_rotation(rot, size, (L, W, H), ang)
        if fitted is None:
            return None
        if fitted is not rot and not np.allclose(fitted[2], rot[2]):
            mode = "flat"  # laid down to fit under the lid
        return fitted, mode, np.abs(rot_z(-ang) @ fitted)[:2, :] @ size

    area_scale = (L * W) / (400 * 300)
    # clutter count skewed low: most parcels hold a few items, some are packed full
    lo_c, hi_c = cfg.clutter
    n_clutter = lo_c + int((hi_c - lo_c) * rng.random() ** 1.7)
    n_clutter = int(np.clip(n_clutter * min(1.0, 0.35 + 0.65 * area_scale), 2, 80))
    if ckind == "envelope":
        n_clutter = int(rng.integers(1, 6))
    clutter_meta = []
    placed: list[tuple[str, float, float, np.ndarray]] = []
    # wrapped clutter (p_wrap_clutter): its own stream, so that with it off nothing else is drawn
    wrng = np.random.default_rng([int(seed), int(index), 0x3A9F]) if cfg.p_wrap_clutter > 0 else None
    clutter_wraps: list[tuple[int | None, tuple]] = []  # (its projection's record, wrap_round's answer), for the side view
    left_out = {"too_big": 0, "parcel_full": 0}
    packed_cm3, room_cm3 = 0.0, FIT_FILL * L * W * H / 1000.0
    for _ in range(n_clutter):
        # fit_contents: an item that fits the parcel no way is put back and another drawn, up to
        # FIT_TRIES times (a sender packs what fits: under 5.0.0's opt-in, without retries, 42 % of
        # padded envelopes went through empty)
        for _try in range(FIT_TRIES if cfg.fit_contents else 1):
            o = clutter_mod.make_clutter(rng, cpitch)
            mode = _choose(rng, (0.6, 0.25, 0.1, 0.05), ORIENTATIONS)
            rot = orientation_rotation(rng, mode)
            lo, hi = o.bounds()
            pose = fit(rot, mode, hi - lo) if cfg.fit_contents else None
            if pose is not None or not cfg.fit_contents:
                break
        if cfg.fit_contents:
            vol = float(np.prod(hi - lo)) / 1000.0
            if pose is None or packed_cm3 + vol > room_cm3:
                left_out["too_big" if pose is None else "parcel_full"] += 1
                continue
            (rot, mode, ext), packed_cm3 = pose, packed_cm3 + vol
        else:
            ext = np.abs(rot[:2, :]) @ (hi - lo)
        x, y = place(ext, inside=cfg.fit_contents)
        mag = float(rng.uniform(1.0, 1.15))
        c_att, c_y0, c_x0 = cv.project(o, x, y, rot, mag, cpitch)
        placed.append((o.kind, x, y, ext, cv.last_record()))
        clutter_meta.append({"kind": o.kind, "orientation": mode})
        if wrng is not None and wrng.random() < cfg.p_wrap_clutter:  # wrapped as a threat is (wrap_round)
            wrapped = wrap_round(cv, c_att, c_y0, c_x0, wrng, mmpp)
            clutter_meta[-1]["wrapped"] = wrapped[0]
            clutter_wraps.append((cv.last_record(), wrapped))

    # threats
    objects = []
    side_links = []  # per threat, for the side view: its record, its concealer's record, its wrap
    if drawn_threats is None:  # loose parcels (--no-fit-contents): threats drawn after the clutter, as up to 5.0.0
        drawn_threats = _draw_threats(rng, cfg, pitch)
    for o in drawn_threats:
        mode = _choose(rng, cfg.threat_orientation_p, ORIENTATIONS)
        rot = orientation_rotation(rng, mode)
        lo, hi = o.bounds()
        pose = fit(rot, mode, hi - lo) if cfg.fit_contents else None
        if pose is not None:
            rot, mode, ext = pose
        else:  # not fitting, or a threat too big for its parcel any way (a carbine in a shoebox): as drawn
            ext = np.abs(rot[:2, :]) @ (hi - lo)
        conceal = _choose(rng, (0.55, 0.15, 0.15, 0.15), ["none", "under_dense", "inside", "wrapped"])
        concealers = [pl for pl in placed if pl[0] in clutter_mod.CONCEALERS or pl[0] in ("laptop", "electronics")]
        link = {"concealer": None, "wrap": None}
        if conceal == "inside" and concealers:
            k = concealers[int(rng.integers(len(concealers)))]
            x, y = k[1] + rng.normal(0, 15), k[2] + rng.normal(0, 15)
            if pose is not None:  # a fitted threat stays inside the parcel's walls, in its concealer or not
                x, y = keep_inside(x, y, ext)
            link["concealer"] = k[4]
        else:
            if conceal == "inside":
                conceal = "none"
            x, y = place(ext, inside=pose is not None)
        mag = float(rng.uniform(1.0, 1.15))
        att, y0, x0 = cv.project(o, x, y, rot, mag, pitch)
        link["record"] = cv.last_record()
        if conceal == "under_dense":
            d = clutter_mod.make_clutter(rng, cpitch, str(rng.choice(["laptop", "book", "electronics", "power_bank", "drill", "hardware"])))
            cv.project(d, x + rng.normal(0, 20), y + rng.normal(0, 20), orientation_rotation(rng, "flat"), 1.0, cpitch)
            link["above"] = cv.last_record()
        elif conceal == "wrapped":
            link["wrap"] = wrap_round(cv, att, y0, x0, rng, mmpp)
        objects.append((o, mode, conceal, att, y0, x0))
        side_links.append(link)

    soft_meta = _add_soft_contents(cv, cfg, seed, index, ckind, cx, cy, L, W, ang)
    tools_meta = _add_tools(cv, cfg, seed, index, cx, cy, L, W, ang)

    # physics: polychromatic dual-energy transmission
    t_low, t_high = physics.transmissions(cv.maps, spectrum)
    total_att = cv.attenuation()
    # detector: blur, photon noise, gains, dark floor, saturation
    sigma = float(rng.uniform(*cfg.blur_sigma))
    t_low = cv2.GaussianBlur(t_low, (0, 0), sigma)
    t_high = cv2.GaussianBlur(t_high, (0, 0), sigma)
    i0_high = float(10 ** rng.uniform(*cfg.log10_i0))
    i0_low = i0_high * float(rng.uniform(0.3, 0.7))
    el = float(rng.uniform(0, 0.003))
    pair = ((t_low, i0_low), (t_high, i0_high))
    stretch = belt_stretch(seed, index, cfg)
    if stretch is None:
        t_low, t_high = (detector_response(t, i0, el, rng) for t, i0 in pair)
    else:
        # resampled after the blur (a property of the detector, in mm) and read with noise per pixel, a
        # shorter line along the belt counting fewer photons. The square-pixel reading is still drawn
        # from the scan's stream and dropped, so the palette, grey mode and JPEG drawn after it stay
        # the same scan's: the stretch is the only difference.
        for t, i0 in pair:
            detector_response(t, i0, el, rng)
        nrng = np.random.default_rng([int(seed), int(index), 0xBE18])
        t_low, t_high = (detector_response(along_belt(t, stretch), i0 / stretch, el, nrng) for t, i0 in pair)

    gray = rng.random() < cfg.p_gray
    if gray:
        pal = {"mode": "gray", "gamma": float(rng.uniform(0.5, 1.1)), "low_weight": float(rng.uniform(0, 0.4))}
        img = render.grayscale(t_low, t_high, pal["gamma"], pal["low_weight"])
    else:
        palette = render.Palette.random(rng)
        shift = cfg.palette_shift + (float(rng.uniform(-cfg.palette_jitter, cfg.palette_jitter)) if cfg.palette_jitter else 0.0)
        if shift:
            d = palette.as_dict()
            for k in ("hue_organic", "hue_mixed", "hue_metal"):
                d[k] += shift
            palette = render.Palette(**d)
        img = render.pseudo_colour(t_low, t_high, palette, spectrum)
        pal = {"mode": "colour", **palette.as_dict()}

    # labels: tight boxes on each threat's visible projection
    boxes, labelled_maps = label_threats(objects, total_att, wpx, hpx, len(clutter_meta))
    if stretch is not None:
        stretch_boxes(boxes, stretch, t_high.shape[1])

    display = None
    if cfg.p_display > 0:
        drng = np.random.default_rng([int(seed), int(index), 0xD15])
        if drng.random() < cfg.p_display:
            img, display = render.display_effects(img, drng, [b["box"] for b in boxes])
    jitter = None
    if cfg.p_display_jitter > 0:
        jrng = np.random.default_rng([int(seed), int(index), 0xD17])
        if jrng.random() < cfg.p_display_jitter:
            img, jitter = render.display_jitter(img, jrng)
    # the scanner exports what its display shows, often as JPEG (labels never depend on pixels,
    # and no random draw happens between the palette and here, so this order keeps 1.0.0's bytes)
    jpeg_q = None
    if rng.random() < cfg.p_jpeg:
        jpeg_q = int(rng.integers(60, 96))
        ok, buf = cv2.imencode(".jpg", img if gray else img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_q])
        dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        img = dec if gray else dec[..., ::-1].copy()

    rank = {"easy": 0, "hard": 1, "concealed": 2}
    difficulty = max((b["difficulty"] for b in boxes), key=lambda d: rank[d], default="clean")
    meta = {
        "seed": int(seed), "index": int(index), "generator": GENERATOR_VERSION,
        "width": int(t_high.shape[1]), "height": int(hpx), "mm_per_px": round(mmpp, 4), "container": ckind,
        "render": pal, "jpeg_quality": jpeg_q, "kvp": round(spectrum.kvp, 1),
        "effective_kev": [round(e, 1) for e in spectrum.effective_energies()],
        "noise_i0": round(i0_high, 1), "blur_sigma": round(sigma, 3), "n_clutter": len(clutter_meta),
        "clutter": clutter_meta, "n_threats": len(boxes), "difficulty": difficulty,
        "grayscale": bool(gray), "printed": any(b["printed"] for b in boxes),
    }
    if cfg.p_display > 0:
        meta["display"] = display
    if cfg.p_display_jitter > 0:
        meta["display_jitter"] = jitter
    if cfg.p_belt_stretch > 0:
        meta["belt_stretch"] = None if stretch is None else round(stretch, 4)
        meta["mm_per_px_along_belt"] = round(mmpp / (stretch or 1.0), 4)
    if cfg.p_soft > 0:
        meta["soft"] = soft_meta
    if cfg.p_tools > 0:
        meta["tools"] = tools_meta
    if cfg.p_wrap_clutter > 0:
        meta["wrapped_clutter"] = len(clutter_wraps)
    if cfg.fit_contents:
        meta["fit"] = {"clutter_drawn": n_clutter, **{f"left_out_{k}": v for k, v in left_out.items()},
                       "packed_share": round(packed_cm3 / (L * W * H / 1000.0), 3)}
    if cfg.p_fan > 0:
        meta["fan_beam"] = None if fan is None else {"central_ray_mm": round(fan.yc_mm, 1), "source_below_belt_mm": round(fan.s0_mm, 1),
                                                     "unit_mag_height_mm": round(fan.z_ref_mm, 1)}
    extras = {}
    if keep_raw:  # per-threat attenuation maps, for tests of label tightness
        extras["threat_maps"] = labelled_maps
    side = None
    if cfg.side_view:
        from .side_view import render_side

        meta["view"] = "top"
        side = render_side({
            "seed": seed, "index": index, "cfg": cfg, "mmpp": mmpp, "wpx": wpx, "spectrum": spectrum,
            "att_row": att_row, "container": (ckind, cx, cy, L, W, H, ang), "records": cv.record,
            "threats": [(ob[0], ob[2], link) for ob, link in zip(objects, side_links, strict=True)],
            "clutter_wraps": clutter_wraps,
            "detector": (sigma, i0_low, i0_high, el), "stretch": stretch, "render": pal, "jpeg_q": jpeg_q,
            "n_clutter": len(clutter_meta), "meta": meta, "keep_raw": keep_raw,
        })
    return Scan(img, boxes, meta, t_low if keep_raw else None, t_high if keep_raw else None, extras, side)
