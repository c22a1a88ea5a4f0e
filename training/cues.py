"""`xfd cues`: does a model read what only the simulator draws round threats?

The simulator draws a few things differently for threats than for everything else, for reasons of
its own: threats are built from finer voxels than clutter (0.7 against 1.0 times the pixel, so that
thin walls and springs survive), and 15 % of threats are wrapped in foil or cloth that follows their
outline, while no clutter ever is. No real scan carries either difference. A model trained on these
scans could learn them as signs of a threat ("fine-grained texture", "something wrapped"), and would
then miss real threats that lack them and alarm on real wrapped tools: it would look good on every
simulated test set and fail on real scans, where no simulated test set can show it.

The probe measures it directly. Each threat class and each gun-like confuser of the gallery
(`xfd gallery`: pistols, revolvers, converted alarm pistols, printed guns, carbines, each loose
component class; toy guns, drills, hair dryers, tools, the gun-shaped tools), several instances in
the gallery's poses, each alone on the belt, is drawn four ways from the same instance and the same
detector noise: from threat voxels and from clutter voxels, and (at its own pitch) wrapped in foil and
wrapped in cloth. The model's best score on each drawing (any class, one reading or as many as it
serves) gives paired differences: fine minus coarse, wrapped minus bare, their means with 95 %
bootstrap intervals, over the threats and over the confusers apart. A cue is **used** when, for
threats or for confusers, the interval lies wholly above zero and the mean shift is at least
MIN_SHIFT: the model scores an object higher for carrying it. Then the next training run should draw
that feature on clutter too (or on no threat) before the model ships.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from detector.synth import gallery
from detector.synth.scene import voxel_pitches
from detector.synth.shapes import ORIENTATIONS, orientation_rotation

MIN_SHIFT = 0.02  # a tenth of the shipped thresholds (0.17-0.29): below it a cue moves no alarm that matters
MIN_OBJECTS = 50  # fewer objects in a group tell nothing (2 of each kind: an interval off zero by chance, seen)
# objects that alarm only with the cue against only without it, two-sided exact binomial test: 0.01 is
# about 0.05 shared by the six tests (three cues, threats and confusers)
ALARM_P = 0.01
RESAMPLES = 2000
# name -> (the two drawings compared: (pitch or None for the object's own, wrap or None), what it asks)
CUES: dict[str, tuple[tuple, tuple, str]] = {
    "voxel pitch": (("fine", None), ("coarse", None),
                    "threats are drawn from voxels 0.7 x the pixel, clutter from 1.0 x: does the finer grain score higher?"),
    "foil wrap": (("own", "aluminium"), ("own", None),
                  "foil wrapped round the outline is drawn only round threats: does it score higher than bare?"),
    "cloth wrap": (("own", "textile"), ("own", None),
                   "cloth wrapped round the outline is drawn only round threats: does it score higher than bare?"),
}


class CueError(ValueError):
    pass


def _drawing(kind: str, wrap: str | None, is_threat: bool) -> str:
    """The key of a drawing: its voxel pitch ('own' resolved: fine for a threat, coarse for clutter)
    and its wrap."""
    if kind == "own":
        kind = "fine" if is_threat else "coarse"
    return f"{kind}/{wrap or 'bare'}"


def shift_summary(deltas: np.ndarray, seed: int = 0) -> dict:
    """Mean paired difference, its 95 % bootstrap interval and the share of objects it is positive for."""
    d = np.asarray(deltas, np.float64)
    if len(d) == 0:
        return {"objects": 0, "mean": None, "ci95": None, "higher_in": None}
    g = np.random.default_rng(seed)
    boots = d[g.integers(0, len(d), (RESAMPLES, len(d)))].mean(1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"objects": len(d), "mean": round(float(d.mean()), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "higher_in": round(float((d > 0).mean()), 3)}


def alarm_flips(with_cue: list[bool], without: list[bool]) -> dict:
    """Objects alarming only with the cue and only without it, and the two-sided exact binomial p of
    that split (no effect: either way equally likely)."""
    up = sum(a and not b for a, b in zip(with_cue, without, strict=True))
    down = sum(b and not a for a, b in zip(with_cue, without, strict=True))
    if up + down == 0:
        return {"only_with": 0, "only_without": 0, "p": 1.0}
    from scipy.stats import binomtest

    return {"only_with": up, "only_without": down, "p": round(float(binomtest(up, up + down, 0.5).pvalue), 5)}


def used(summary: dict, min_shift: float = MIN_SHIFT, min_objects: int = MIN_OBJECTS, alarm_p: float = ALARM_P) -> bool | None:
    """A cue is used by a group when the model scores it higher beyond noise and by a shift that matters,
    or when it makes objects alarm that would not without it, beyond chance (a small mean shift can still
    tip many objects near the thresholds over them); None: too few objects to tell."""
    if summary.get("objects", 0) < min_objects or not summary.get("ci95"):
        return None
    shifted = summary["ci95"][0] > 0 and summary["mean"] >= min_shift
    fl = summary.get("alarm_flips") or {}
    tipped = fl.get("only_with", 0) > fl.get("only_without", 0) and fl.get("p", 1.0) < alarm_p
    return bool(shifted or tipped)


def check_args(per_row: int, mm_per_px: float) -> None:
    if not 1 <= per_row <= 50:
        raise CueError(f"--per-row must be 1 to 50, got {per_row}")
    if not 0.5 <= mm_per_px <= 2.0:
        raise CueError(f"--mm-per-px must be 0.5 to 2 mm, got {mm_per_px}")


def probe(engine, per_row: int = 10, seed: int = 0, mm_per_px: float = 1.0, progress: bool = True,
          rows: list | None = None) -> dict:
    """rows: the gallery's rows to draw (default every threat and confuser row)."""
    check_args(per_row, mm_per_px)
    rows = rows if rows is not None else gallery.THREAT_ROWS + gallery.CONFUSER_ROWS
    fine, coarse = voxel_pitches(mm_per_px)  # as the scenes build threats and clutter
    objects, t0 = [], time.perf_counter()
    for k, (title, label, make) in enumerate(rows):
        threat = label is not None
        keys = sorted({_drawing(kind, wrap, threat) for a, b, _ in CUES.values() for kind, wrap in (a, b)})
        for j in range(per_row):
            rot = orientation_rotation(np.random.default_rng([seed, k, j, 1]), ORIENTATIONS[(0, 0, 1, 2, 3)[j % 5]])
            rec = {"row": title, "class": label, "instance": j, "scores": {}, "alarms": {}}
            built = {}
            for key in keys:
                kind, wrap = key.split("/")
                pitch = fine if kind == "fine" else coarse
                # the same instance at either pitch (its shape is drawn before its voxels), the same noise
                if pitch not in built:
                    built[pitch] = make(np.random.default_rng([seed, k, j]), pitch).centred()
                obj = built[pitch]
                img = gallery.alone_on_belt(obj, rot, mm_per_px, np.random.default_rng([seed, k, j, 2]), pitch=pitch,
                                            margin_mm=80.0, size=320, wrap=None if wrap == "bare" else wrap,
                                            wrap_rng=np.random.default_rng([seed, k, j, 3]))
                res = engine.detect(img, tile="off", conf=0.01)
                rec["scores"][key] = round(max((d.confidence for d in res.detections), default=0.0), 4)
                rec["alarms"][key] = res.verdict == "alarm"
            rec["kind"] = obj.kind or obj.meta.get("clutter_kind")
            objects.append(rec)
        if progress:
            print(f"cues {k + 1}/{len(rows)} rows  {time.perf_counter() - t0:.0f} s", flush=True)
    cues = {}
    for name, ((ka, wa), (kb, wb), question) in CUES.items():
        entry = {"question": question, "compared": [f"{ka}/{wa or 'bare'}", f"{kb}/{wb or 'bare'}"]}  # own: each object's pitch
        for group, is_threat in (("threats", True), ("confusers", False)):
            sel = [o for o in objects if (o["class"] is not None) == is_threat]
            a, b = _drawing(ka, wa, is_threat), _drawing(kb, wb, is_threat)
            d = np.array([o["scores"][a] - o["scores"][b] for o in sel])
            entry[group] = {**shift_summary(d, seed), "alarms": [sum(o["alarms"][a] for o in sel), sum(o["alarms"][b] for o in sel)],
                            "alarm_flips": alarm_flips([o["alarms"][a] for o in sel], [o["alarms"][b] for o in sel])}
            entry[group]["used"] = used(entry[group])
        verdicts = (entry["threats"]["used"], entry["confusers"]["used"])
        entry["used"] = True if True in verdicts else None if None in verdicts else False
        cues[name] = entry
    return {"model": engine.info.public(), "backend": engine.backend, "flips": engine.flips, "precision": engine.precision,
            "thresholds": engine.info.thresholds, "per_row": per_row, "seed": seed, "mm_per_px": mm_per_px,
            "min_shift": MIN_SHIFT, "min_objects": MIN_OBJECTS, "alarm_p": ALARM_P, "objects": len(objects), "cues": cues,
            "any_used": any(c["used"] for c in cues.values()),
            "per_object": objects}


def table(rep: dict) -> list[str]:
    """The report's table in Markdown (cues.md and the model card)."""
    lines = ["| cue | compared | threats: shift [95 %] | alarms | confusers: shift [95 %] | alarms | used |",
             "|---|---|---|---|---|---|---|"]
    for name, c in rep["cues"].items():
        cell = [f"{c[g]['mean']:+.3f} [{c[g]['ci95'][0]:+.3f}, {c[g]['ci95'][1]:+.3f}] of {c[g]['objects']}"
                if c[g]["mean"] is not None else "n/a" for g in ("threats", "confusers")]
        al = [f"{c[g]['alarms'][0]} / {c[g]['alarms'][1]}" + (
            f" ({c[g]['alarm_flips']['only_with']} vs {c[g]['alarm_flips']['only_without']}, p {c[g]['alarm_flips']['p']:.2g})"
            if c[g].get("alarm_flips") else "") for g in ("threats", "confusers")]
        lines.append(f"| {name} | {' vs '.join(c['compared'])} | {cell[0]} | {al[0]} | {cell[1]} | {al[1]} | "
                     f"{'**yes**' if c['used'] else 'too few to tell' if c['used'] is None else 'no'} |")
    return lines


def how(rep: dict) -> str:
    """One paragraph: what was drawn and how the table reads."""
    return (f"{rep['objects']} objects ({rep['per_row']} of each threat and confuser kind of the gallery, seed {rep['seed']}, "
            f"{rep['mm_per_px']} mm/px), each alone on the belt and drawn each way from the same instance and noise; "
            f"{rep['backend']}, {rep['flips']} reading(s) a scan. Shift: the model's best score on the first drawing minus "
            "on the second (own: each object's own voxels, fine for threats, coarse for clutter), with its 95 % bootstrap "
            f"interval. Alarms: objects alarming at the served thresholds, first / second drawing (in brackets: alarming "
            "only in the first against only in the second, and the exact binomial p of that split). Used: the interval "
            f"above 0 and the mean at least {rep['min_shift']}, or more objects alarming only with the cue than only without "
            f"it at p < {rep.get('alarm_p', ALARM_P)} (with {rep['min_objects']} objects or more; fewer: too few to tell).")


def markdown(rep: dict) -> str:
    m = rep["model"]
    return "\n".join([f"# Simulator-only cues: {m['name']} {m['version']}", "", how(rep), "", *table(rep), "",
                      "What each asks: " + " ".join(f"{n}: {c['question']}" for n, c in rep["cues"].items()), ""])


def cues_cli(a) -> int:
    from detector.engine import Engine

    per_row = 10 if a.per_row is None else a.per_row
    check_args(per_row, a.mm_per_px)  # before the model loads
    engine = Engine(a.model, backend=a.backend, flips=a.flips, concurrency=1)
    rep = probe(engine, per_row=per_row, seed=a.seed, mm_per_px=a.mm_per_px)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cues.json").write_text(json.dumps(rep, indent=1, allow_nan=False))
    (out / "cues.md").write_text(markdown(rep))
    print(json.dumps({k: {"used": c["used"], "threats": c["threats"]["mean"], "confusers": c["confusers"]["mean"]}
                      for k, c in rep["cues"].items()}, indent=1))
    print(f"report: {out / 'cues.md'}")
    return 0
