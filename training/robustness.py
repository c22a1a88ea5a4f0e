"""`xfd robustness`: the same held-out scans, altered the ways real scanners differ from the
simulator, evaluated at the model's own operating point.

Each perturbation models one thing a site's scanner may do differently: coarser or finer
pixels (objects smaller or larger in pixels), heavy JPEG compression, detector blur and
noise, another display curve or palette, a black-and-white or negative display, a vendor's
edge enhancement, a black frame around the scan (a screen grab). The thresholds are not re-chosen: the table says what a site gets when it
installs the model unchanged, and which differences cost the most (where to point the next
training run's randomisation, or what to ask of a site's export settings).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from detector import imaging
from detector.xray import render
from training.metrics import fmt_rate

# name -> (default parameter, what it models)
PERTURBATIONS: dict[str, tuple[float | None, str]] = {
    "scale": (0.5, "the scan S times as many pixels each way (S < 1: a coarser detector pitch, objects smaller in "
                   "pixels; S > 1: a finer one; the boxes follow)"),
    "stretch": (1.25, "along the belt only (image x) F times as many pixels: a belt speed or line rate that makes "
                      "non-square pixels (F > 1 stretches, < 1 squashes; the boxes follow)"),
    "jpeg": (25, "re-encoded as JPEG at quality Q (exports, screenshots, video grabbers)"),
    "blur": (2.0, "Gaussian detector unsharpness of sigma px"),
    "noise": (12.0, "Gaussian noise of sigma grey levels (a low-dose or noisy detector)"),
    "gamma": (1.6, "display curve: each channel v -> v^G (G > 1 darker mid-tones, < 1 brighter)"),
    "hue": (30.0, "every hue turned by D degrees (another vendor's material palette)"),
    "gray": (None, "colour scans shown in grey (luma): a dual-energy scanner's black-and-white mode"),
    "invert": (None, "negative display (dark air, bright metal)"),
    "sharpen": (1.5, "unsharp-mask edge enhancement of amount A (vendors' 'edge' display mode)"),
    "frame": (0.1, "a black frame F times the scan's shorter side wide on every side (a screen grab, a letterboxed "
                   "export; the boxes move with the scan)"),
}
DEFAULT_SET = ("scale:0.5", "scale:0.75", "scale:1.5", "stretch:0.8", "stretch:1.25", "jpeg:25", "blur:2", "noise:12", "gamma:0.6", "gamma:1.6",
               "hue:30", "gray", "invert", "sharpen:1.5", "frame:0.1")


class PerturbError(ValueError):
    pass


def parse(spec: str) -> tuple[str, float | None]:
    name, _, arg = spec.strip().partition(":")
    if name not in PERTURBATIONS:
        raise PerturbError(f"unknown perturbation {name!r}; choose from {', '.join(PERTURBATIONS)}")
    default = PERTURBATIONS[name][0]
    if not arg:
        return name, default
    if default is None:
        raise PerturbError(f"perturbation {name!r} takes no parameter")
    try:
        v = float(arg)
    except ValueError:
        raise PerturbError(f"perturbation {spec!r}: parameter {arg!r} is not a number") from None
    limits = {"scale": (0.1, 4.0), "stretch": (0.25, 4.0), "jpeg": (1, 100), "blur": (0.1, 20), "noise": (0.1, 128), "gamma": (0.1, 10),
              "hue": (-180, 180), "sharpen": (0.1, 10), "frame": (0.01, 1.0)}[name]
    if not limits[0] <= v <= limits[1]:
        raise PerturbError(f"perturbation {spec!r}: {name} must be in [{limits[0]}, {limits[1]}]")
    return name, v


def declared_pixels(spec: str | None, meta: dict) -> tuple[float, float] | None:
    """The pixel size (mm between rows, mm between columns) a scanner would declare for a scan whose
    manifest records its pixel size (mm_per_px, and mm_per_px_along_belt for non-square ones), once
    altered by `spec` (scale and stretch change it; the rest do not). None when the manifest does not say."""
    mm = meta.get("mm_per_px")
    if not mm:
        return None
    row, col = float(mm), float(meta.get("mm_per_px_along_belt") or mm)
    if spec:
        name, v = parse(spec)
        if name == "scale":
            row, col = row / v, col / v
        elif name == "stretch":
            col = col / v
    return row, col


def frame_width(h: int, w: int, f: float) -> int:
    """The black frame's width in pixels for the `frame:F` alteration of an h x w scan."""
    return max(1, int(round(f * min(h, w))))


def make(spec: str) -> Callable[[np.ndarray, int], np.ndarray]:
    """A function (rgb uint8, scan index) -> altered rgb uint8; the index seeds any noise, so a
    perturbed set is the same on every run. An alteration that moves the scan inside its image
    (frame) has `shift(h, w) -> (dx, dy)`, by which the labelled boxes move (evaluate.predict); one
    that resizes it scales them."""
    name, v = parse(spec)

    def f(rgb: np.ndarray, index: int) -> np.ndarray:
        if name in ("scale", "stretch"):  # stretch: along the belt (x) only
            h, w = rgb.shape[:2]
            return imaging.resample(rgb, max(8, int(round(w * v))), h if name == "stretch" else max(8, int(round(h * v))))
        if name == "jpeg":
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(v)])
            return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        if name == "blur":
            return cv2.GaussianBlur(rgb, (0, 0), v)
        if name == "noise":
            rng = np.random.default_rng([7, index])
            return np.clip(rgb + rng.normal(0, v, rgb.shape), 0, 255).astype(np.uint8)
        if name == "gamma":
            return render.gamma_curve(rgb, v)
        if name == "hue":
            return render.turn_hue(rgb, v)
        if name == "gray":
            return render.luma_grey(rgb)
        if name == "invert":
            return 255 - rgb
        if name == "frame":
            p = frame_width(*rgb.shape[:2], v)
            return cv2.copyMakeBorder(rgb, p, p, p, p, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        # sharpen: 8-bit blur and saturating sum, as the README's table was measured (render.unsharp's
        # float arithmetic differs in the last grey level, which moved one synth-test scan)
        return cv2.addWeighted(rgb, 1 + v, cv2.GaussianBlur(rgb, (0, 0), 2.0), -v, 0)

    if name == "frame":
        f.shift = lambda h, w: (frame_width(h, w, v),) * 2
    return f


def robustness(engine, data: str, split: str, out: str | Path, specs=DEFAULT_SET, tile: str = "auto",
               declare_pixels: bool = False) -> dict:
    """Evaluate clean and each perturbation at the model's thresholds; robustness.json / .md.
    declare_pixels: tell the engine each scan's (altered) pixel size, as a scanner declaring it would."""
    from training.evaluate import evaluate

    for s in specs:
        parse(s)  # every spec checked before the first minutes of evaluation
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in ("none", *specs):
        t0 = time.time()
        r = evaluate(engine, data, split, out / spec.replace(":", "_"), tile=tile, perturb=None if spec == "none" else spec,
                     plots_too=False, declare_pixels=declare_pixels)
        pc = r["per_class"].get("gun", {})
        rows.append({"perturbation": spec, "what": "the scans as simulated" if spec == "none" else PERTURBATIONS[parse(spec)[0]][1],
                     "map50": r["map50"], "gun_ap50": pc.get("ap50"), "pd": r["pd"], "pfa": r["pfa"],
                     "pd_ci95": r.get("pd_ci95"), "pfa_ci95": r.get("pfa_ci95"),
                     "pd_at_pfa_0.05": r["pd_at_pfa_0.05"], "seconds": round(time.time() - t0, 1)})
        print(f"robustness {spec}: mAP50 {r['map50']:.3f}  Pd {fmt_rate(r['pd'])}  Pfa {fmt_rate(r['pfa'])}", flush=True)
    base = rows[0]
    for row in rows:
        for k in ("map50", "pd", "pfa", "pd_at_pfa_0.05"):
            row[f"d_{k}"] = None if row[k] is None or base[k] is None else round(row[k] - base[k], 4)
    rep = {"model": engine.info.public(), "backend": engine.backend, "data": str(Path(data).resolve()), "split": split,
           "declared_pixels": declare_pixels,
           "scans": r["scans"], "threat_scans": r["threat_scans"], "clean_scans": r["clean_scans"],
           "thresholds": r["thresholds"], "grey_network": r.get("grey_network"), "rows": rows}
    (out / "robustness.json").write_text(json.dumps(rep, indent=1))
    (out / "robustness.md").write_text(markdown(rep))
    return rep


def markdown(rep: dict) -> str:
    m = rep["model"]
    lines = [f"# Robustness of {m['name']} {m['version']} ({rep['backend']})", "",
             f"{rep['scans']} scans of `{rep['data']}` ({rep['split']}; {rep['threat_scans']} with threats, "
             f"{rep['clean_scans']} clean), each altered as named, at the model's own thresholds (not re-chosen)"
             + ("; each scan's pixel size declared to the engine, as altered." if rep.get("declared_pixels") else "."),
             "Pd and Pfa are per scan; Pd at Pfa<=5% is from the single-threshold curve.", "",
             "| perturbation | mAP50 | gun AP50 | Pd | Pfa | Pd at Pfa<=5% | what it models |", "|---|---|---|---|---|---|---|"]
    def cell(r: dict, k: str) -> str:
        return fmt_rate(r[k]) + (f" ({r['d_' + k]:+.3f})" if r["perturbation"] != "none" and r["d_" + k] is not None else "")

    for r in rep["rows"]:
        gun = "-" if r["gun_ap50"] is None else f"{r['gun_ap50']:.3f}"
        lines.append(f"| {r['perturbation']} | {cell(r, 'map50')} | {gun} | {cell(r, 'pd')} | {cell(r, 'pfa')} | "
                     f"{cell(r, 'pd_at_pfa_0.05')} | {r['what']} |")
    lines += ["", "Differences in brackets are against the unaltered scans. With a few hundred scans, Pd and Pfa "
              "differences under about 0.05 are within noise (see each report's 95% intervals)."]
    return "\n".join(lines) + "\n"


def robustness_cli(a) -> int:
    from detector.engine import Engine

    specs = tuple(s for s in (a.perturbations.split(",") if a.perturbations else DEFAULT_SET) if s.strip())
    engine = Engine(a.model, backend=a.backend, flips=a.flips)
    robustness(engine, a.data, a.split, a.out, specs, a.tile, getattr(a, "declare_pixels", False))
    print(f"report: {Path(a.out) / 'robustness.md'}")
    return 0
