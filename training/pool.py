"""Screening numbers pooled over several held-out sets (`xfd pool`).

One set of 200-300 scans separates differences of about ten points of Pd; a model change worth
shipping is judged over all the test sets at once. Pooling is done in scan counts, never by averaging
rates: the operating point (threat scans detected, clean scans alarmed, at each report's own
thresholds) and the single-threshold Pd-Pfa curve, each set's curve turned back into counts at the
same thresholds and summed. mAP50 is averaged (it is not a count).
"""

from __future__ import annotations

import json
from pathlib import Path

from . import metrics as M

PFAS = (0.01, 0.02, 0.03, 0.05, 0.10)


class PoolError(ValueError):
    pass


def load(path: str | Path) -> dict:
    p = Path(path)
    f = p / "report.json" if p.is_dir() else p
    if not f.is_file():
        raise PoolError(f"no report at {path}: give an `xfd eval --out` directory or its report.json")
    try:
        r = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise PoolError(f"{f} is not JSON: {e}") from None
    for k in ("per_scan", "pd_pfa_curve", "threat_scans", "clean_scans", "map50"):
        if k not in r:
            raise PoolError(f"{f} is not an `xfd eval` report (no {k!r})")
    r["_path"] = str(f)
    return r


def pool(reports: list[dict]) -> dict:
    if not reports:
        raise PoolError("nothing to pool: give at least one report")
    ths = reports[0]["pd_pfa_curve"]["thresholds"]
    for r in reports[1:]:
        if r["pd_pfa_curve"]["thresholds"] != ths:
            raise PoolError(f"{r.get('_path', 'a report')} has other curve thresholds: pool reports of one xfd version")
    nt = sum(r["threat_scans"] for r in reports)
    nc = sum(r["clean_scans"] for r in reports)
    det = sum(1 for r in reports for s in r["per_scan"] if s["threat"] and s["detected"])
    fa = sum(1 for r in reports for s in r["per_scan"] if not s["threat"] and s["alarm"])

    def counts(key: str, n: str) -> list[float]:
        # a set without threat (or clean) scans has None all along: it adds nothing to that count
        return [sum(round((r["pd_pfa_curve"][key][i] or 0.0) * r[n]) for r in reports) for i in range(len(ths))]

    hits, alarms = counts("pd", "threat_scans"), counts("pfa", "clean_scans")
    curve_pd = [h / nt if nt else None for h in hits]
    curve_pfa = [a / nc if nc else None for a in alarms]
    # the best Pd whose pooled Pfa is at most x (no clean or no threat scans: not measurable)
    at = {f"{x:.2f}": max((d for d, f in zip(curve_pd, curve_pfa, strict=True) if f <= x + 1e-12), default=0.0)
          if nc and nt else None for x in PFAS}
    return {
        "sets": [r.get("_path") for r in reports], "threat_scans": nt, "clean_scans": nc,
        "detected": det, "alarmed_clean": fa,
        "pd": det / nt if nt else None, "pfa": fa / nc if nc else None,
        "pd_interval": M.rate_interval(det, nt), "pfa_interval": M.rate_interval(fa, nc),
        "pd_at_pfa": at, "mean_map50": sum(r["map50"] for r in reports) / len(reports),
        "curve": {"thresholds": ths, "pd": curve_pd, "pfa": curve_pfa},
    }


def markdown(p: dict, name: str = "pooled") -> str:
    head = "| | sets | threat scans detected | clean scans alarmed | Pd | Pfa | " + \
           " | ".join(f"Pd at Pfa≤{float(x):.0%}" for x in p["pd_at_pfa"]) + " | mean mAP50 |"
    sep = "|" + "---|" * (7 + len(p["pd_at_pfa"]))
    row = (f"| {name} | {len(p['sets'])} | {p['detected']} / {p['threat_scans']} | {p['alarmed_clean']} / {p['clean_scans']} | "
           f"{M.fmt_rate(p['pd'])} | {M.fmt_rate(p['pfa'])} | " + " | ".join(M.fmt_rate(v) for v in p["pd_at_pfa"].values()) +
           f" | {p['mean_map50']:.3f} |")
    return "\n".join([head, sep, row])


def pool_cli(a) -> int:
    p = pool([load(x) for x in a.reports])
    print(markdown(p, a.name))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(p, indent=1))
    return 0
