"""How each lane screens: its alarm rate against the false-alarm rate the model was calibrated for.

On a real belt nearly every parcel is clean, so the share of parcels that alarm and are not confirmed
as threats is, within its interval, the lane's false-alarm rate: measurable without labels. The model's
thresholds were calibrated on simulated scans for a target (5 %); a lane whose rate is significantly
above it runs on images the model was not calibrated for (another scanner, palette, pixel size or
display), the first sign of a domain gap that no simulated test set shows. `GET /v1/lanes` and
`xfd lanes` report it; the operators' reviews say how many alarms were threats and how many were not,
and a clear scan an operator confirmed is a threat the model missed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from training.metrics import rate_interval

MIN_SCANS = 100  # a lane is judged from this many scans (a day of a belt is thousands)


def _rate(k: int, n: int) -> dict:
    iv = rate_interval(k, n)
    return {"count": k, "rate": round(k / n, 4) if n else None, "ci95": [round(x, 4) for x in iv] if iv else None}


def lane_report(rows: list[dict], version: str | None, calibration: dict | None, min_scans: int = MIN_SCANS) -> list[dict]:
    """Each store row (Store.lane_counts) with its rates, and for the given model version a verdict
    against its calibration: 'above' (the lower 95 % bound of the unconfirmed-alarm rate is over the
    calibrated target), 'consistent', or 'too_few_scans' to tell (under min_scans, or the interval spans
    from under half the target to over twice it)."""
    target = (calibration or {}).get("target_pfa")
    out = []
    for r in rows:
        n = r["scans"]
        unconfirmed = r["alarms"] - r["alarms_confirmed"]
        rec = {**r, "alarm_rate": _rate(r["alarms"], n), "unconfirmed_alarm_rate": _rate(unconfirmed, n),
               "alarms_pending": r["alarms"] - r["alarms_confirmed"] - r["alarms_false"]}
        if target and r["model_version"] == version and n:
            lo, hi = rec["unconfirmed_alarm_rate"]["ci95"]
            rec["calibrated"] = {"target_pfa": target, "pfa_on_calibration_set": calibration.get("pfa"),
                                 "calibration_set": calibration.get("data")}
            if n < min_scans:
                rec["against_calibration"] = "too_few_scans"
            elif lo > target:
                rec["against_calibration"] = "above"
                rec["advice"] = (f"{unconfirmed} of {n} scans alarmed without a confirmed threat ({lo:.1%} to {hi:.1%}), "
                                 f"above the {target:.0%} the model was calibrated for on simulated scans: this lane's images "
                                 "likely differ from them (pixel size, palette, display, clutter). Check the scanner's "
                                 "settings (XFD_PIXEL_MM, the display sent), look at its false alarms (GET /v1/scans?lane=..."
                                 "&review=false_alarm) and retrain on its reviewed scans (xfd import reviews)")
            elif lo < target / 2 and hi > target * 2:
                rec["against_calibration"] = "too_few_scans"
            else:
                rec["against_calibration"] = "consistent"
        out.append(rec)
    return out


def markdown(report: list[dict]) -> str:
    lines = ["| lane | model | scans | alarms | not confirmed (95% CI) | confirmed | false | pending | clear, found by hand | "
             "against calibration |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report:
        u = r["unconfirmed_alarm_rate"]
        ci = f"{u['rate']:.1%} ({u['ci95'][0]:.1%}-{u['ci95'][1]:.1%})" if u["ci95"] else "n/a"
        lines.append(f"| {r['lane'] or '(none)'} | {r['model_version'] or '?'} | {r['scans']} | {r['alarms']} | {ci} | "
                     f"{r['alarms_confirmed']} | {r['alarms_false']} | {r['alarms_pending']} | {r['clear_confirmed']} | "
                     f"{r.get('against_calibration', 'n/a')} |")
    return "\n".join(lines)


def lanes_cli(a) -> int:
    from detector.engine import ModelError, load_model_info

    from .app import Settings
    from .store import Store

    try:
        s = Settings()
    except ValueError as e:
        print(f"xfd lanes: error: {e}", file=sys.stderr)
        return 2
    root = Path(a.data_dir or s.data_dir)
    if not (root / "xfd.sqlite3").exists():
        print(f"xfd lanes: error: no service database in {root} (xfd.sqlite3); pass the service's --data-dir", file=sys.stderr)
        return 2
    if a.days is not None and not 0 < a.days <= 3660:
        print(f"xfd lanes: error: --days must be more than 0 and at most 3660, got {a.days}", file=sys.stderr)
        return 2
    if a.min_scans < 1:
        print(f"xfd lanes: error: --min-scans must be at least 1, got {a.min_scans}", file=sys.stderr)
        return 2
    try:
        info = load_model_info(a.model or s.model)
    except (ModelError, OSError, ValueError) as e:
        print(f"xfd lanes: error: cannot read the model to compare with: {e}", file=sys.stderr)
        return 2
    since = time.time() - a.days * 86400 if a.days else None
    rep = lane_report(Store(root).lane_counts(since=since), info.version, info.meta.get("calibration"), a.min_scans)
    if a.json:
        print(json.dumps({"model": info.version, "since": since, "lanes": rep}, indent=1))
    else:
        print(f"Lanes in {root}" + (f", last {a.days:g} days" if a.days else "") + f"; compared with {info.name} {info.version}'s "
              f"calibration (target Pfa {(info.meta.get('calibration') or {}).get('target_pfa', 'n/a')}):\n")
        print(markdown(rep))
        for r in rep:
            if r.get("advice"):
                print(f"\n{r['lane'] or '(none)'}: {r['advice']}.")
    return 0
