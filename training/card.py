"""Model card: what a model was trained on, how it scores, where it fails, its licence.
Built from model.json, the training run and the evaluation reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from detector import machine
from detector.engine import grey_network_dir
from training.evaluate import simulated_by


def _f(x) -> str:
    """A rate to three places, or n/a where the set cannot give it (Pfa of a set without clean scans)."""
    return "n/a" if x is None else f"{x:.3f}"


def _row(name: str, r: dict) -> str:
    gun = (r.get("per_class", {}).get("gun") or {}).get("ap50")
    return (f"| {name} | {r.get('backend', '?')} | {r['scans']} ({r['threat_scans']} threat) | {_f(r['map50'])}{_ci(r.get('map50_ci95'))} | "
            f"{_f(r['map50_95'])} | {_f(gun)} | "
            f"{_f(r['pd'])}{_ci(r.get('pd_ci95'))} | {_f(r['pfa'])}{_ci(r.get('pfa_ci95'))} | {_f(r.get('pd_at_pfa_0.05'))} |")


def _ci(iv) -> str:
    return "" if not iv else f" [{iv[0]:.2f}, {iv[1]:.2f}]"


def _files_desc(meta: dict) -> str:
    desc = {"torch": "`model.pt` (PyTorch)", "onnx": "`model.onnx` (ONNX)", "openvino": "`openvino/` (OpenVINO IR, FP32 graph)",
            "openvino-int8": "`openvino-int8/` (OpenVINO INT8, calibrated on our own simulated calibration scans)"}
    return ", ".join(desc.get(k, f"`{v}`") for k, v in meta.get("files", {}).items())


def _calibration_desc(c: dict) -> str:
    if not c:
        return "the validation split"
    n = f"{c['scans']} scans, {c['clean_scans']} clean" if "scans" in c else "scans"
    if c.get("per") == "parcel":
        n = f"{c['parcels']} parcels in {c['scans']} views, {c['clean_parcels']} clean; Pfa per parcel over its views"
    bound = (f"; the {c['pfa_confidence']:.0%} Clopper-Pearson upper bound of Pfa, not the point estimate, meets the target "
             f"(Pfa there {c['pfa']:.3f}, Pd {c['pd']:.3f})" if c.get("pfa_confidence") else "")
    if c.get("min_gain"):
        bound += f"; a class's threshold was lowered only where that caught at least {c['min_gain']} more threat scans"
    made = f"generator {c['generator']}, seed {c.get('seed', '?')}; " if c.get("generator") else ""
    return f"the '{c.get('split', 'val')}' split of {Path(c.get('data', '?')).parent.name} ({made}{n}{bound})"


def pooled_stratum(reports: dict[str, dict], key: str) -> tuple[int, int, int, int]:
    """One stratum of the reports' strata (xfd eval) pooled over the reports given, in scan counts:
    (threat scans detected, threat scans, clean scans alarmed, clean scans)."""
    hit = n = fa = clean = 0
    for r in reports.values():
        st = (r.get("strata") or {}).get(key) or {}
        t = int(st.get("threat_scans") or 0)
        c = int(st.get("scans") or 0) - t
        if t and st.get("pd") is not None:
            n += t
            hit += round(st["pd"] * t)
        if c > 0 and st.get("pfa") is not None:
            clean += c
            fa += round(st["pfa"] * c)
    return hit, n, fa, clean


def fullness_note(reports: dict[str, dict], least: int = 20) -> str | None:
    """A known limit from the reports' clutter strata (xfd eval): Pd on threat scans with 25 or
    more items of clutter against those with under 10, pooled over the reports given (each set
    once), when both have at least `least` threat scans."""
    (h0, n0, _, _), (h1, n1, _, _) = pooled_stratum(reports, "clutter=0-9"), pooled_stratum(reports, "clutter=25+")
    if n0 < least or n1 < least:
        return None
    worse = "detected less often" if h1 / n1 < h0 / n0 else "detected as often"
    return (f"Packed parcels are {worse}: pooled over the sets above, Pd {h1 / n1:.2f} ({h1} of {n1} threat scans) "
            f"with 25 or more items of clutter against {h0 / n0:.2f} ({h0} of {n0}) with under 10: see the clutter strata.")


def rendering_note(reports: dict[str, dict], least: int = 20) -> str | None:
    """A known limit from the reports' render strata (xfd eval): Pd and Pfa of grey single-energy
    scans against colour ones, pooled over the reports given (each set once), with 95% intervals,
    when both have at least `least` threat scans. One set's strata hold a few dozen grey scans,
    too few to tell the two apart (synth-test of generator 6.0.0: 36 grey threat scans)."""
    from scipy.stats import fisher_exact

    from training.metrics import rate_interval

    g, c = pooled_stratum(reports, "render=grayscale"), pooled_stratum(reports, "render=colour")
    if g[1] < least or c[1] < least:
        return None

    def rate(k, n):
        iv = rate_interval(k, n)
        return f"{k / n:.2f} ({k} of {n}; {iv[0]:.2f}-{iv[1]:.2f})"

    def pfa(k, n):
        return f" at Pfa {k / n:.3f} ({k} of {n} clean)" if n else ""

    p = fisher_exact([[g[0], g[1] - g[0]], [c[0], c[1] - c[0]]]).pvalue  # two-sided
    if p >= 0.05:
        verdict = "Grey (single-energy) and colour scans are detected about as often"
    else:
        verdict = f"Grey (single-energy) scans are detected {'less' if g[0] / g[1] < c[0] / c[1] else 'more'} often than colour ones"
    return (f"{verdict}: pooled over the sets above (each once, dual-view sets left out), Pd {rate(g[0], g[1])}{pfa(g[2], g[3])} "
            f"in grey against {rate(c[0], c[1])}{pfa(c[2], c[3])} in colour (Fisher's exact test on Pd, p = {p:.2g}; "
            "the strata table above is one set's alone).")


def parcel_lines(reps: dict[str, dict]) -> list[str]:
    """The card's dual-view section: for each report on views of parcels (xfd eval's `parcels`),
    the parcel's Pd and Pfa over all views against each view alone, at the same thresholds."""
    from training.evaluate import caught_in_one_view, parcel_rows

    out = []
    for name, r in reps.items():
        pc = r.get("parcels")
        if not pc:
            continue
        if not out:
            out += ["", "Dual-view parcels (a parcel alarms when any view alarms, and is detected when an alarm in any view "
                    "lies on a labelled threat; two views are two chances to false-alarm):", "",
                    "| test set | views | parcels | Pd | Pfa | Pd@Pfa5% |", "|---|---|---|---|---|---|"]
        for label, x in parcel_rows(pc):
            out.append(f"| {name} | {label} | {pc['parcels']} ({pc['threat_parcels']} threat) | {x['pd']:.3f}{_ci(x.get('pd_ci95'))} | "
                       f"{x['pfa']:.3f}{_ci(x.get('pfa_ci95'))} | {x['pd_at_pfa_0.05']:.3f} |")
        if only := caught_in_one_view(pc):
            out.append(f"| {name} | threat parcels caught in one view only | {only} | | | |")
    return out


def write_card(model_dir: str | Path, reps: dict[str, dict], training: dict, targets_note: str,
               limits: list[str], cues: dict | None = None) -> str:
    """The card from the reports (name -> xfd eval's report.json, first one: per-class table)."""
    model_dir = Path(model_dir)
    meta = json.loads((model_dir / "model.json").read_text())
    lines = [
        f"# Model card: {meta['name']} {meta['version']}", "",
        "Detects firearms and firearm components in parcel X-ray scans (pseudo-colour dual-energy and grayscale).",
        "", "## Model", "",
        f"- Architecture: {training.get('architecture', 'yolo26n')} (ultralytics {training.get('ultralytics', '8.4.190')}), "
        f"input {meta['imgsz']}x{meta['imgsz']}, trained from scratch (no pretrained weights, no downloads).",
        f"- Classes: {', '.join(meta['names'])}.",
        f"- Files: {_files_desc(meta)}; hashes in `SHA256SUMS`. sha256 of model.pt: `{meta['sha256']}`.",
        f"- Operating point: per-class thresholds {json.dumps({k: round(v, 2) for k, v in meta['thresholds'].items()})}, "
        f"calibrated for scan-level Pfa <= {meta.get('calibration', {}).get('target_pfa', 0.05)} on "
        f"{_calibration_desc(meta.get('calibration', {}))} (never on a test set).",
        *([f"- INT8 operating point: its own thresholds "
           f"{json.dumps({k: round(v, 2) for k, v in meta['backend_thresholds']['openvino-int8'].items()})} for the same target, "
           f"calibrated on {_calibration_desc(meta.get('backend_calibration', {}).get('openvino-int8', {}))} (INT8 scores run "
           "lower than FP32's; the test-int8 row is measured there)."]
          if meta.get("backend_thresholds", {}).get("openvino-int8") else []),
        *([f"- Readings: each scan is read {flips} times (as sent{', mirrored left-right' if flips >= 2 else ''}"
           f"{', top-bottom and both' if flips == 4 else ''}); boxes of a class that overlap across the readings are one "
           "object whose score is its mean over the readings (a reading that missed it counts 0). The thresholds were "
           f"calibrated so, the results below measured so, and the service reads so unless XFD_FLIPS says otherwise "
           f"({flips} times the model's time per scan)."] if (flips := int(meta.get("calibration", {}).get("flips", 1))) > 1 else []),
        f"- Served path: `{meta.get('default_backend', 'openvino')}` (model.json `default_backend`). " + (
            f"Scores are computed in {prec} on every CPU (XFD_OV_PRECISION; OpenVINO's own default is bfloat16 on CPUs with "
            f"AVX512-BF16 or AMX and f32 elsewhere, which moved this model's scores by up to 0.045): the thresholds were "
            f"calibrated and the metrics below measured in {prec}."
            if (prec := meta.get("calibration", {}).get("precision")) else
            "OpenVINO runs the FP32 IR at its default inference precision, which is bfloat16 on CPUs with AVX512-BF16 or AMX "
            "(the machine this model was calibrated on has it): the metrics below were measured that way.")
        + (" " + int8_check_line(meta["int8_check"]) if meta.get("int8_check") else ""),
        *([grey_line(meta, g)] if (g := grey_meta(model_dir)) else []),
        "", "## Training data", "",
        f"- {training.get('data_desc', 'simulated scans')}",
        f"- Training: {training.get('desc', '')}",
        "", "## Results", "",
        "Pd = share of threat scans with an alarming detection on a labelled threat (IoU >= 0.5); Pfa = share of clean "
        "scans that alarm; at the calibrated operating point, with 95% Clopper-Pearson intervals in brackets (a few "
        "hundred scans pin a rate down to several points, no better). 'Pd@Pfa5%' = best Pd with one threshold for all "
        "classes at Pfa <= 5%." + "".join(sorted({f" Measured on {machine.summary(r['machine'])}." for r in reps.values()
                                                  if r.get("machine")})), "",
        "| test set | backend | scans | mAP50 | mAP50-95 | gun AP50 | Pd | Pfa | Pd@Pfa5% |", "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(k, r) for k, r in reps.items()]
    lines += parcel_lines(reps)
    made = [f"{k} {g}" for k, r in reps.items() if (g := _generator_of(r))]
    if made:
        lines += ["", "Generator of each test set (from its manifest): " + "; ".join(made) + "."]
    main = next(iter(reps.values()))
    lines += ["", f"Per class on {next(iter(reps))}:", "", "| class | AP50 | precision | recall | instances |", "|---|---|---|---|---|"]
    for c, v in main["per_class"].items():
        ap = "n/a" if v["ap50"] is None else f"{v['ap50']:.3f}"
        lines.append(f"| {c} | {ap} | {v['precision']:.3f} | {v['recall']:.3f} | {v['instances']} |")
    if main.get("strata"):
        lines += ["", "Strata (scan level):", "", "| stratum | scans | Pd | Pfa |", "|---|---|---|---|"]
        for k, s in main["strata"].items():
            lines.append(f"| {k} | {s['scans']} | {s['pd'] if s['pd'] is not None else 'n/a'} | {s['pfa'] if s['pfa'] is not None else 'n/a'} |")
    found = main.get("threats_found_by") or {}
    if found.get("kind"):
        lines += ["", f"Threats found on {next(iter(reps))}, by kind (object level, at the operating point; an alarming box "
                  "of any class on the object counts):", "", "| class | kind | found / objects |", "|---|---|---|"]
        lines += [f"| {x['class']} | {x['kind']} | {x['found']} / {x['objects']} |" for x in found["kind"]]
    guns = [x for x in found.get("orientation", []) if x["class"] == "gun"]
    if guns:
        lines += ["", "Whole guns by orientation to the beam: "
                  + ", ".join(f"{x['orientation']} {x['found']} / {x['objects']}" for x in guns) + "."]
    if cues:
        from training import cues as cues_mod

        lines += ["", "## Simulator-only cues", "",
                  "The simulator draws threats from finer voxels than clutter and wraps only threats in foil or cloth; no "
                  "real scan does either. Does this model score an object higher for it (`xfd cues`)? "
                  + cues_mod.how(cues), "", *cues_mod.table(cues)]
    lines += ["", "## Targets", "", targets_note, "", "## Known limits", ""] + [f"- {x}" for x in limits]
    lines += ["", "## Licence", "",
              "AGPL-3.0-or-later (the model is trained with ultralytics, AGPL-3.0). Trained only on data simulated by this "
              "project: no third-party images are inside.", ""]
    text = "\n".join(lines)
    (model_dir / "card.md").write_text(text)
    return text


def grey_line(meta: dict, g: dict) -> str:
    """The card's bullet on the grey network."""
    cal = g.get("calibration") or {}
    return (f"- **Grey network** (`{meta['grey_network']['dir']}/`, {_files_desc(g)}; sha256 of the weights it was exported "
            f"from: `{g['sha256']}`): {meta['grey_network']['rule']}. Its weights are this model's, fine-tuned on grey scans "
            "only (models/HISTORY.md, session 24; `make grey-network`). Its thresholds "
            f"{json.dumps({k: round(v, 2) for k, v in g['thresholds'].items()})} were calibrated for scan-level Pfa <= "
            f"{cal.get('target_pfa', 0.05)} on {_calibration_desc(cal)}, {cal.get('flips', 1)} readings a scan in "
            f"{cal.get('precision', 'f32')}; the main network's thresholds above were calibrated with it reading every scan "
            "(grey ones too), as before there was a grey network. Every result below is of the two together, as served "
            "(each report says how many grey scans the grey network read); grey and grey-shifted are all-grey sets.")


def _generator_of(report: dict) -> str | None:
    """'3.1.0 (seed 2)' for a report on a simulated set whose manifest is on this machine."""
    made = simulated_by(report["data"]) if "data" in report else None
    return f"{made[0]} (seed {'?' if made[1] is None else made[1]})" if made else None


INT8_RULE = ("INT8 is served only when, paired on the same scans and pooled over every test set measured on both "
             "paths (each at its own thresholds), it is ahead of FP32 beyond noise in one of Pd and Pfa (the 95 % "
             "interval of the difference clear of 0) and behind in neither, with mean mAP50 within 1 point, "
             "and not behind beyond noise on synth-test and synth-cal altered as other scanners alter them (xfd "
             "robustness: Pd not lower, Pfa not higher); otherwise FP32, the graph the model was trained as")


def altered_reports(robustness_dirs: list) -> list[str]:
    """The eval reports under `xfd robustness` output directories, one per alteration (the unaltered
    'none' left out: it is a test set the first stage already compares)."""
    out = []
    for d in map(Path, robustness_dirs):
        if not (d / "robustness.json").is_file():
            raise SystemExit(f"{d}: not an `xfd robustness` report directory (no robustness.json)")
        rows = json.loads((d / "robustness.json").read_text())["rows"]
        out += [str(d / r["perturbation"].replace(":", "_")) for r in rows if r["perturbation"] != "none"]
    return out


def choose_backend(model_dir: str | Path, fp32_reports: list, int8_reports: list, map_margin: float = 0.01,
                   altered_fp32: list | None = None, altered_int8: list | None = None) -> str:
    """The served path, from `xfd eval` reports of both paths on the same test sets (a report
    directory each, synth-test's first): INT8_RULE. Recorded in model.json with
    the evidence, and the served path's numbers on the first set (synth-test) as the model's test
    metrics.

    A tie goes to FP32. A rule that took INT8 whenever it lost no Pd on synth-test flipped on a
    single scan (2026.11.30.18 on generator 5.0.0's synth-test: 47 threat scans at 5 false alarms
    against 46 at 4). INT8's ranges are fitted to simulated calibration scans, and on scans altered
    as other scanners alter them (xfd robustness) .18's INT8 path caught fewer threat scans than
    FP32 at its own thresholds; speed does not break the tie either: four FP32 readings of a scan
    take about 80 ms here, and a belt sends well under one scan a second.

    So INT8 ahead on the test sets is served only once it is not behind on altered scans either
    (altered_fp32 / altered_int8: `xfd robustness` eval reports of both paths, paired alteration by
    alteration, altered_reports()): behind beyond noise in Pd there, or ahead in Pfa, gives FP32.
    Without them an INT8 choice is recorded as provisional (int8_check.altered "not measured"), which
    `make eval` then measures."""
    from training import pool as P

    try:
        f = [P.load(x) for x in fp32_reports]
        q = [P.load(x) for x in int8_reports]
        c = P.paired(q, f)
    except P.PoolError as e:
        raise SystemExit(f"cannot choose the served path: {e}") from None
    pd, pfa = c["rows"]["pd"], c["rows"].get("pfa")
    map_f = sum(r["map50"] for r in f) / len(f)
    map_q = sum(r["map50"] for r in q) / len(q)
    pd_up, pd_down = pd["diff_ci95"][0] > 0, pd["diff_ci95"][1] < 0
    fa_down = bool(pfa) and pfa["diff_ci95"][1] < 0
    fa_up = bool(pfa) and pfa["diff_ci95"][0] > 0
    ok = map_q >= map_f - map_margin and ((pd_up and not fa_up) or (fa_down and not pd_down))
    altered = None
    if ok and altered_fp32:
        try:
            c2 = P.paired([P.load(x) for x in altered_int8 or []], [P.load(x) for x in altered_fp32])
        except P.PoolError as e:
            raise SystemExit(f"cannot compare the paths on altered scans: {e}") from None
        pd2, pfa2 = c2["rows"]["pd"], c2["rows"].get("pfa")
        behind = pd2["diff_ci95"][1] < 0 or (bool(pfa2) and pfa2["diff_ci95"][0] > 0)
        altered = {"reports": len(altered_fp32), "threat_scans": c2["threat_scans"], "clean_scans": c2["clean_scans"],
                   "pd_diff": round(pd2["diff"], 4), "pd_diff_ci95": [round(v, 4) for v in pd2["diff_ci95"]],
                   "pfa_diff": round(pfa2["diff"], 4) if pfa2 else None,
                   "pfa_diff_ci95": [round(v, 4) for v in pfa2["diff_ci95"]] if pfa2 else None, "int8_behind": behind}
        ok = not behind
    elif ok:
        altered = "not measured"
    choice = "openvino-int8" if ok else "openvino"
    mj = Path(model_dir) / "model.json"
    meta = json.loads(mj.read_text())
    meta["default_backend"] = choice
    sets = [Path(r["data"]).parent.name + ("" if r["split"] == "test" else f" ({r['split']})") for r in q]
    meta["int8_check"] = {
        "rule": INT8_RULE, "sets": sets, "threat_scans": c["threat_scans"], "clean_scans": c["clean_scans"],
        "map50_fp32": round(map_f, 4), "map50_int8": round(map_q, 4),
        "pd_fp32": round(pd["old"], 4), "pd_int8": round(pd["new"], 4), "pd_diff": round(pd["diff"], 4),
        "pd_diff_ci95": [round(v, 4) for v in pd["diff_ci95"]],
        "pfa_fp32": round(pfa["old"], 4) if pfa else None, "pfa_int8": round(pfa["new"], 4) if pfa else None,
        "pfa_diff": round(pfa["diff"], 4) if pfa else None,
        "pfa_diff_ci95": [round(v, 4) for v in pfa["diff_ci95"]] if pfa else None,
        "threat_scans_only_int8_detects": c["threat_scans_only_new_detects"],
        "threat_scans_only_fp32_detects": c["threat_scans_only_old_detects"],
        "clean_scans_only_int8_alarms": c["clean_scans_only_new_alarms"],
        "clean_scans_only_fp32_alarms": c["clean_scans_only_old_alarms"],
        "int8_accepted": ok,
        "int8_thresholds": "own" if meta.get("backend_thresholds", {}).get("openvino-int8") else "fp32"}
    if altered is not None:
        meta["int8_check"]["altered"] = altered
    served = (q if ok else f)[0]  # what the service answers with: its test numbers go where integrators read them
    meta["metrics"] = {"test": {**{k: served[k] for k in ("map50", "map50_95", "pd", "pfa", "pd_at_pfa_0.05")}, "backend": choice}}
    mj.write_text(json.dumps(meta, indent=1))
    return choice


def card_rows(reports: dict[str, str], choice: str) -> tuple[dict[str, str], str]:
    """The card's rows from reports of both paths (NAME: FP32, NAME-int8: INT8): each set once, on
    the served path, under its own name; synth-test on both (test, test-int8), to show what the
    other path costs there. Also the row the targets are judged on: the served path's synth-test."""
    int8 = choice == "openvino-int8"
    rows = {}
    for k, v in reports.items():
        if k.endswith("-int8") and k != "test-int8" and k[: -len("-int8")] in reports:
            continue  # shown under its own name when served, else not at all
        rows[k] = reports[f"{k}-int8"] if int8 and k != "test" and f"{k}-int8" in reports else v
    return rows, ("test-int8" if int8 and "test-int8" in reports else next(iter(reports)))


def int8_check_line(chk: dict) -> str:
    """One sentence on the evidence for the served path (model.json int8_check), for the card."""
    if "pd_diff_ci95" not in chk:  # chosen by the rule before 2026-11-30 (synth-test alone)
        return (f"INT8 against FP32 on synth-test: mAP50 {chk['map50_int8']:.3f} vs {chk['map50_fp32']:.3f}, Pd "
                f"{chk['pd_int8']:.3f} vs {chk['pd_fp32']:.3f}, Pfa {chk['pfa_int8']:.3f} vs {chk['pfa_fp32']:.3f}.")
    lo, hi = chk["pd_diff_ci95"]
    s = (f"Chosen so: {INT8_RULE}. Over {', '.join(chk['sets'])} ({chk['threat_scans']} threat and {chk['clean_scans']} "
         f"clean scans), INT8 minus FP32: Pd {chk['pd_diff']:+.3f} ({lo:+.3f} to {hi:+.3f})")
    if chk.get("pfa_diff_ci95"):
        lo, hi = chk["pfa_diff_ci95"]
        s += f", Pfa {chk['pfa_diff']:+.3f} ({lo:+.3f} to {hi:+.3f})"
    s += f", mean mAP50 {chk['map50_int8'] - chk['map50_fp32']:+.3f}"
    alt = chk.get("altered")
    if isinstance(alt, dict):  # INT8 was ahead on the test sets: the altered scans decided
        lo, hi = alt["pd_diff_ci95"]
        s += (f"; on altered scans ({alt['reports']} xfd robustness reports, {alt['threat_scans']} threat scans), Pd "
              f"{alt['pd_diff']:+.3f} ({lo:+.3f} to {hi:+.3f})")
        if alt.get("pfa_diff_ci95"):
            lo, hi = alt["pfa_diff_ci95"]
            s += f", Pfa {alt['pfa_diff']:+.3f} ({lo:+.3f} to {hi:+.3f})"
    return s + "."


def _version(text: str | None) -> tuple[int, ...]:
    """"6.0.0" -> (6, 0, 0); unknown or malformed -> () (older than every version)."""
    try:
        return tuple(int(x) for x in str(text).split("."))
    except ValueError:
        return ()


WRAPPED_CLUTTER = "wrapped clutter"  # how a data line names --wrap-clutter (cues_note looks for it)


def _layer_opts(cfg: dict, always: bool = False, generator: str | None = None) -> list[str]:
    """The simulator's opt-in layers a dataset config switched on (display effects and soft
    contents listed even at 0 with always=True, as the GPU stage's summaries always were), and
    settings away from their generator's defaults."""
    opts = [f"{name} {cfg.get(k, 0)}" for k, name in (("p_display", "display effects"), ("p_soft", "soft contents"))
            if always or cfg.get(k)]
    if cfg.get("palette_jitter"):
        opts.append("wide ranges (xfd synth --wide)")
    opts += [f"{name} {cfg[k]}" for k, name in (("p_fan", "fan beam"), ("p_tools", "gun-shaped tools")) if cfg.get(k)]
    # ranges set apart from the configuration's own (xfd synth --mm-per-px / --clutter / --palette-shift)
    from detector.synth.scene import SceneConfig

    base = SceneConfig.wide() if cfg.get("palette_jitter") else SceneConfig()
    for k, name, unit in (("mm_per_px", "pitch", " mm/px"), ("clutter", "clutter", " items")):
        if k in cfg and tuple(cfg[k]) != tuple(getattr(base, k)):
            lo, hi = cfg[k]
            opts.append(f"{name} {lo:g}-{hi:g}{unit}" if lo != hi else f"{name} {lo:g}{unit}")
    if cfg.get("palette_shift"):
        opts.append(f"palette shift {cfg['palette_shift']:g} degrees")
    # fitted contents: opt-in from generator 3.3.0, the default from 6.0.0
    fit_default = _version(generator) >= (6,)
    if cfg.get("fit_contents") and not fit_default:
        opts.append("contents fitted to their parcels")
    elif cfg.get("fit_contents") is False and fit_default:
        opts.append("contents not fitted to their parcels (xfd synth --no-fit-contents)")
    if cfg.get("p_display_jitter"):  # generator >= 3.4.0, `xfd synth --display-jitter`
        opts.append(f"display jitter {cfg['p_display_jitter']:g}")
    if "p_gray" in cfg and cfg["p_gray"] != base.p_gray:  # `xfd synth --gray`
        opts.append(f"grey scans {cfg['p_gray']:g}")
    if cfg.get("p_belt_stretch"):  # generator >= 3.6.0, `xfd synth --belt-stretch`
        opts.append(f"belt stretch {cfg['p_belt_stretch']:g}")
    if cfg.get("side_view"):  # generator >= 3.5.0, `xfd synth --side-view`
        opts.append("each parcel also in a dual-view side view")
    if cfg.get("p_wrap_clutter"):  # generator >= 6.1.0, `xfd synth --wrap-clutter`
        opts.append(f"{WRAPPED_CLUTTER} {cfg['p_wrap_clutter']:g}")
    if cfg.get("threat_mix"):  # generator >= 3.2.0, `xfd synth --threat-mix`
        opts.append("threat mix " + ", ".join(f"{k} {v:g}" for k, v in cfg["threat_mix"].items()))
    return opts


def _manifest_desc(man: dict) -> str:
    counts, cfg = man.get("counts", {}), man.get("config", {})
    opts = _layer_opts(cfg, generator=man.get("generator"))
    return (f"{man.get('n', '?')} scans simulated by generator {man.get('generator', '?')} (seed {man.get('seed', '?')}"
            + (f"; {', '.join(opts)}" if opts else "") + f"): {counts.get('scans', {})}, objects {counts.get('objects', {})}, "
            f"{counts.get('clean_scans', '?')} clean")


def _data_desc(run: Path, cfg: dict) -> str:
    """One line on a stage's training data: the dataset's manifest where it is on this machine, else the
    data_summary.json a run made elsewhere (training/gpu_recipe.sh) left in its run directory."""
    data = Path(cfg.get("data", "data/synth-train/data.yaml")).parent
    if (data / "manifest.json").exists():
        return _manifest_desc(json.loads((data / "manifest.json").read_text())) + "."
    if (data / "mix.json").exists():  # xfd mix: the sources' own manifests
        mix = json.loads((data / "mix.json").read_text())
        parts = []
        for src, c in mix.get("sources", {}).items():
            m = Path(src).parent / "manifest.json"
            desc = _manifest_desc(json.loads(m.read_text())) if m.exists() else f"{src} (no manifest here)"
            parts.append(f"{desc}, weight {c.get('weight', 1)}")
        return (f"a mix of {len(parts)} sets ({mix.get('train_images')} training, {mix.get('val_images')} validation images): "
                + "; ".join(parts) + ".")
    if (run / "data_summary.json").exists():
        d = json.loads((run / "data_summary.json").read_text())
        ch = d.get("chunks", [])
        seeds = ", ".join(str(c["seed"]) for c in sorted(ch, key=lambda c: c["seed"]))
        gens = sorted({c["generator"] for c in ch})
        opts = sorted({", ".join(_layer_opts(c["config"], always=True, generator=c.get("generator"))) for c in ch})
        return (f"{d['train_scans'] + d['val_scans']} scans simulated by generator {', '.join(gens)} (seeds {seeds}; {'; '.join(opts)}): "
                f"{{'train': {d['train_scans']}, 'val': {d['val_scans']}}}, objects {d['objects']}, {d['clean_scans']} clean.")
    return f"{data} (no manifest here)"


def prior_training(model_dir: Path) -> dict:
    """The training stages and data of a model directory: model.json's "training" (written
    with the card since 2026.11.28.8), else read back from the card.md cards before it wrote."""
    meta = json.loads((model_dir / "model.json").read_text())
    if isinstance(meta.get("training"), dict) and meta["training"].get("stages"):
        return meta["training"]
    card = (model_dir / "card.md").read_text() if (model_dir / "card.md").exists() else ""
    data = [ln.split(": ", 1)[1] for ln in card.splitlines() if ln.startswith("- Data ") and ": " in ln]
    train = next((ln[len("- Training: "):] for ln in card.splitlines() if ln.startswith("- Training: ")), "")
    body, _, repro = train.partition(". Reproduce: ")
    if not data or not body:
        raise SystemExit(f"{model_dir} records no training stages (no model.json 'training', no card lines)")
    return {"stages": body.split("; then "), "data": data, "reproduce": repro.rstrip(".")}


def robustness_note(model_dir: str | Path, dirs: list[str]) -> str | None:
    """A known limit from `xfd robustness` reports of this very model at its present thresholds
    (others are ignored, with a warning: a card must not quote another operating point): the
    alterations that cost the most Pd, and those that cost little."""
    meta = json.loads((Path(model_dir) / "model.json").read_text())
    parts = []
    for d in dirs:
        f = Path(d) / "robustness.json"
        if not f.exists():
            print(f"card: no {f}: robustness left out", file=sys.stderr)
            continue
        r = json.loads(f.read_text())
        if not _of_this_operating_point(r, meta, f, model_dir):
            continue
        rows = {x["perturbation"]: x for x in r["rows"]}
        base = rows.pop("none")
        worst = sorted(rows.values(), key=lambda x: x["d_pd"])
        name = Path(r["data"]).parent.name
        cost = ", ".join(f"{x['perturbation']} {x['pd']:.3f}" for x in worst[:4])
        mild = ", ".join(f"{x['perturbation']} {x['pd']:.3f}" for x in worst[::-1][:4])
        parts.append(f"on {name} (Pd {base['pd']:.3f} as simulated) the largest losses were {cost}; the smallest {mild}")
    if not parts:
        return None
    return ("Scans altered as other scanners alter them (xfd robustness, at this operating point): " + "; ".join(parts)
            + ". The display (blur, display curve, grey rendering of colour, edge enhancement, palette) matters more "
              "than pixel size, JPEG or noise, and so do pixels stretched along the belt (stretch): a site whose display "
              "differs should calibrate on its own clean scans, and one whose pixels are not square should declare "
              "them (pixel_mm, or XFD_PIXEL_MM), which has the scans analysed resampled to square pixels.")


def cues_report(model_dir: str | Path, d: str | None) -> dict | None:
    """`xfd cues`' report of this very model at its present thresholds (another model's, or one measured at
    other thresholds, is left out with a warning)."""
    if not d:
        return None
    f = Path(d) / "cues.json"
    if not f.exists():
        print(f"card: no {f}: simulator-only cues left out", file=sys.stderr)
        return None
    meta = json.loads((Path(model_dir) / "model.json").read_text())
    r = json.loads(f.read_text())
    return r if _of_this_operating_point(r, meta, f, model_dir) else None


def grey_meta(model_dir: str | Path) -> dict | None:
    """The model.json of the model's grey network (model.json grey_network), or None (also where a copy of
    model.json was taken without the grey network's directory)."""
    d = grey_network_dir(Path(model_dir), json.loads((Path(model_dir) / "model.json").read_text()))
    return json.loads((d / "model.json").read_text()) if d and (d / "model.json").exists() else None


def _of_this_operating_point(r: dict, meta: dict, f: Path, model_dir: str | Path) -> bool:
    """Whether report r (file f) measured this very model at its served thresholds; if not, say why on
    stderr: a card must not quote another model or another operating point."""
    if r["model"].get("sha256") != meta["sha256"] or r["model"].get("version") != meta["version"]:
        print(f"card: {f} is of another model ({r['model'].get('version')}): left out", file=sys.stderr)
        return False
    if any(abs(r["thresholds"].get(k, -1) - v) > 1e-9 for k, v in _served_thresholds(meta).items()):
        print(f"card: {f} was measured at other thresholds: left out", file=sys.stderr)
        return False
    if "grey_network" in r:  # a report that says which network read grey scans: at the grey network's present thresholds
        if (grey_meta(model_dir) or {}).get("thresholds") != (r["grey_network"] or {}).get("thresholds"):
            print(f"card: {f} was measured with another grey network (or with none): left out", file=sys.stderr)
            return False
    return True


def cues_note(rep: dict | None, data: list[str] | None = None) -> str | None:
    """A known limit for each simulator-only cue the model was found to use, with what would take it away
    (`data`: the card's training data lines, which say whether clutter was already wrapped in training)."""
    used = [n for n, c in (rep or {}).get("cues", {}).items() if c["used"]]
    if not used:
        return None
    note = (f"This model reads what only the simulator draws round threats as a sign of a threat ({', '.join(used)}; "
            "Simulator-only cues, above): real scans never carry it, so expect threats without it to be missed more "
            "often and real things that carry it to alarm.")
    if any("wrap" in n for n in used):
        if any(WRAPPED_CLUTTER in d for d in data or []):
            note += (" Its training already drew clutter wrapped as often as threats (wrapped clutter, under Training "
                     "data): more of it, or real scans, is what is left.")
        else:
            note += " The next training run should draw wraps on clutter too (xfd synth --wrap-clutter, generator 6.1.0)."
    if "voxel pitch" in used:
        note += (" Threats are built from finer voxels than clutter (scene.voxel_pitches); the simulator has no option "
                 "yet to draw them alike.")
    return note


def _served_thresholds(meta: dict) -> dict:
    own = (meta.get("backend_thresholds") or {}).get(meta.get("default_backend", ""))
    return own or meta["thresholds"]


def main(argv: list[str] | None = None) -> int:
    """python -m training.card MODEL_DIR --report NAME=DIR ... --run RUN_DIR"""
    import argparse
    import csv

    p = argparse.ArgumentParser(prog="python -m training.card")
    p.add_argument("model_dir")
    p.add_argument("--report", action="append", required=True, help="NAME=REPORT_DIR (first one: per-class table)")
    p.add_argument("--run", action="append", default=None,
                   help="training run directory, once per stage in order (default runs/train/default)")
    p.add_argument("--from-model", default=None, metavar="DIR",
                   help="the model directory these runs fine-tuned: its stages and data come first (from its model.json, "
                        "or its card)")
    p.add_argument("--reproduce", default=None, help="the card's 'Reproduce:' sentence (default: the make targets of the stages)")
    p.add_argument("--robustness", action="append", default=[], metavar="DIR",
                   help="an `xfd robustness` report directory of this model at its thresholds (repeatable): its largest "
                        "losses become a known limit")
    p.add_argument("--cues", default=None, metavar="DIR", help="xfd cues' report directory of this model (cues.json)")
    p.add_argument("--altered", action="append", default=[], metavar="FP32_DIR=INT8_DIR",
                   help="with --backend-only: `xfd robustness` directories of the same sets on both paths (repeatable); "
                        "INT8 ahead on the test sets is served only if not behind on these altered scans")
    p.add_argument("--backend-only", action="store_true",
                   help="only choose the served path from the reports of both paths, NAME=DIR (FP32) and NAME-int8=DIR, "
                        "test and test-int8 first (recorded in model.json, printed), so that the other test sets can be "
                        "measured on it; no card")
    a = p.parse_args(argv)
    reports = dict(item.split("=", 1) for item in a.report)
    # the sets measured on both paths: NAME (FP32) and NAME-int8, synth-test's pair first
    pairs = sorted((k for k in reports if not k.endswith("-int8") and f"{k}-int8" in reports), key=lambda k: k != "test")
    if a.backend_only:
        if "test" not in pairs:
            p.error("--backend-only needs --report test=DIR and --report test-int8=DIR (and other sets' pairs: "
                    "NAME=DIR NAME-int8=DIR)")
        alt = [item.split("=", 1) for item in a.altered]
        if any(len(x) != 2 for x in alt):
            p.error("--altered takes FP32_DIR=INT8_DIR")
        print(choose_backend(a.model_dir, [reports[k] for k in pairs], [reports[f"{k}-int8"] for k in pairs],
                             altered_fp32=altered_reports([f for f, _ in alt]) or None,
                             altered_int8=altered_reports([q for _, q in alt]) or None))
        return 0
    stages, datas, gpu_stage, prior_repro = [], [], False, None
    if a.from_model:
        prior = prior_training(Path(a.from_model))
        stages, datas, prior_repro = list(prior["stages"]), list(prior["data"]), prior.get("reproduce")
    runs, cfg = a.run, {}
    if runs is None:  # nothing named: the default stage-1 run if it is here, else say the card cannot tell
        runs = ["runs/train/default"] if Path("runs/train/default/results.csv").exists() and not a.from_model else []
        if not runs and not a.from_model:
            datas, stages = ["not recorded: the training runs are not on this machine (name them with --run or "
                             "--from-model)"], ["not recorded here"]
    for run in map(Path, runs):
        cfg = json.loads((run / "xfd_config.json").read_text()) if (run / "xfd_config.json").exists() else {}
        rows = list(csv.DictReader((run / "results.csv").open())) if (run / "results.csv").exists() else []
        secs = float(rows[-1]["time"]) if rows else 0.0
        src = cfg.get("source", "")
        hw = cfg.get("hardware") or ("a 2-core CPU" if cfg.get("device", "cpu") == "cpu" else f"device {cfg.get('device')}")
        desc = _data_desc(run, cfg)
        gpu_stage |= str(cfg.get("device", "cpu")) != "cpu"
        if desc not in datas:
            datas.append(desc)
        if not rows and not cfg:
            raise SystemExit(f"training run {run} not found (no results.csv, no xfd_config.json): name the runs "
                             "behind this model with --run, or the model it fine-tuned with --from-model")
        # best.pt is the epoch with the highest validation mAP50-95 (ultralytics' fitness)
        fit = [float(r["metrics/mAP50-95(B)"] or 0) for r in rows] if rows and "metrics/mAP50-95(B)" in rows[0] else []
        kept = fit.index(max(fit)) + 1 if fit else 0
        stages.append(f"{len(rows)} epochs{f' (epoch {kept} kept: best validation mAP50-95)' if 0 < kept < len(rows) else ''} "
                      f"at {cfg.get('imgsz')} px, batch {cfg.get('batch')}, {cfg.get('optimizer')} "
                      f"lr0 {cfg.get('lr0')}, {secs / 3600:.2f} h on {hw}, data {datas.index(desc) + 1}"
                      + (f" ({'fine-tuned from the previous stage' if src.startswith('fine-tune') else 'from scratch'})" if src else ""))
    repro = a.reproduce or prior_repro or ("`make synth train`" + (
        " (the CPU stages), then `make train-gpu` (the GPU stage, training/gpu_recipe.sh; needs a CUDA GPU)" if gpu_stage else ""))
    training = {
        "architecture": cfg.get("architecture", "yolo26n"),
        "data_desc": "\n- ".join(f"Data {i + 1}: {d}" for i, d in enumerate(datas)),
        "desc": "; then ".join(stages) + f". Reproduce: {repro.rstrip('.')}.",
    }
    mj = Path(a.model_dir) / "model.json"
    meta = json.loads(mj.read_text())
    meta["training"] = {"stages": stages, "data": datas, "reproduce": repro.rstrip(".")}  # what a later fine-tune's card starts from
    mj.write_text(json.dumps(meta, indent=1))
    served_key = next(iter(reports))
    if "test" in pairs:
        choice = choose_backend(a.model_dir, [reports[k] for k in pairs], [reports[f"{k}-int8"] for k in pairs])
        reports, served_key = card_rows(reports, choice)
    reps = {k: json.loads((Path(v) / "report.json").read_text()) for k, v in reports.items()}
    first = reps[served_key]
    gun_ap = (first.get("per_class", {}).get("gun") or {}).get("ap50")
    met = None not in (first["map50"], first["pd"], first["pfa"]) and first["map50"] >= 0.9 and first["pd"] >= 0.97 and first["pfa"] <= 0.05
    tgt = (f"Targets on the synthetic test set, served path ({first.get('backend', '?')}): mAP50 >= 0.90 (got {_f(first['map50'])}), gun AP50 >= 0.95 "
           f"(got {_f(gun_ap)}), Pd >= 0.97 at Pfa <= 0.05 (got Pd {_f(first['pd'])} at Pfa {_f(first['pfa'])}). "
           + ("Met." if met else
              "Not met: this model is the best honest result of the training time this project has had (the stages "
              "above). What would close the gap: a longer GPU run on many more simulated scans (each GPU stage here "
              "was still improving when its time ran out), and fine-tuning on real confirmed scans."))
    limits = [
        "Trained only on simulated scans: real scanners' palettes, artefacts and clutter differ (see the README's comparison); "
        "expect lower performance on real scans until fine-tuned on them.",
        "Small objects (loose cartridges, pins) and thin or end-on parts are the hardest; printed parts without metal are faint.",
        "Concealed threats (inside electronics, under dense items, wrapped in foil) are detected less often: see the strata.",
        "An alarm is a request for secondary inspection, not proof; a 'clear' verdict is not a clearance of the parcel.",
    ]
    other_test = "test" if served_key == "test-int8" else "test-int8"  # the same scans on the path not served
    # each parcel once: a dual-view set's strata count its side views as scans too
    pooled = {k: r for k, r in reps.items() if k != other_test and not r.get("parcels")}
    packed = fullness_note(pooled)
    if packed:
        limits.insert(3, packed)
    grey = rendering_note(pooled)
    if grey:
        limits.insert(3, grey)
    robust = robustness_note(a.model_dir, a.robustness)
    if robust:
        limits.insert(-1, robust)
    cues = cues_report(a.model_dir, a.cues)
    cue_limit = cues_note(cues, datas)
    if cue_limit:
        limits.insert(0, cue_limit)
    write_card(a.model_dir, reps, training, tgt, limits, cues)
    from training.export import write_sha256sums

    write_sha256sums(Path(a.model_dir))  # model.json and card.md changed
    print((Path(a.model_dir) / "card.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
