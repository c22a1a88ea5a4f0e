"""Screening numbers pooled over several held-out sets (`xfd pool`).

One set of 200-300 scans separates differences of about ten points of Pd; a model change worth
shipping is judged over all the test sets at once. Pooling is done in scan counts, never by averaging
rates: the operating point (threat scans detected, clean scans alarmed, at each report's own
thresholds) and the single-threshold Pd-Pfa curve, each set's curve turned back into counts at the
same thresholds and summed. mAP50 is averaged (it is not a count).

Two models evaluated on the same scans are compared paired (`xfd pool NEW... --against OLD...`): the
scans are resampled with replacement (within each set, threat and clean scans apart) and both models
scored on each resample, so the interval is of the difference itself, far narrower than two models'
intervals side by side, and it says how often the new model came out ahead.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

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


def _scores(r: dict) -> dict:
    ps = r["per_scan"]
    if any("hit_score" not in s for s in ps):
        raise PoolError(f"{r.get('_path', 'a report')} has no per-scan scores (written before they were): "
                        "run its `xfd eval` again to compare paired")
    t = np.array([s["threat"] for s in ps], bool)
    return {"files": [s["file"] for s in ps], "threat": t,
            "hit": np.array([s["hit_score"] for s in ps], np.float64)[t],
            "alarm": np.array([s["alarm_score"] for s in ps], np.float64)[~t],
            "detected": np.array([s["detected"] for s in ps], bool)[t],
            "alarmed": np.array([s["alarm"] for s in ps], bool)[~t]}


def paired(new: list[dict], old: list[dict], resamples: int = 2000, seed: int = 0) -> dict:
    """New against old on the same scans, pooled over the sets: the single-threshold Pd at pooled Pfa
    <= each of PFAS, and Pd and Pfa at each report's own thresholds; for each, both values, their
    difference, its 95% paired-bootstrap interval and the share of resamples in which new was ahead
    (and behind). Also the scans each model alone gets right."""
    if len(new) != len(old) or not new:
        raise PoolError(f"compare the same sets: {len(new)} new reports against {len(old)} old ones")
    ths = np.asarray(new[0]["pd_pfa_curve"]["thresholds"], np.float64)
    # a set is its scans and how they were altered (xfd robustness: one report per alteration of one set)
    by_set = {(r["data"], r["split"], r.get("perturbation")): r for r in old}
    pairs, against = [], []
    for rn in new:
        ro = by_set.get((rn["data"], rn["split"], rn.get("perturbation")))
        if ro is None:
            raise PoolError(f"{rn.get('_path')}: no old report on {rn['data']} ({rn['split']}) to compare with")
        sn, so = _scores(rn), _scores(ro)
        if sn["files"] != so["files"]:
            raise PoolError(f"{rn.get('_path')} and {ro.get('_path')} did not score the same scans")
        pairs.append((sn, so))
        against.append(ro.get("_path"))
    nt = sum(int(sn["threat"].sum()) for sn, _ in pairs)
    nc = sum(int((~sn["threat"]).sum()) for sn, _ in pairs)
    if not nt:
        raise PoolError("no threat scans in these sets: nothing to compare")
    rng = np.random.default_rng(seed)

    # reports of one set (the same scans, altered in different ways: xfd robustness) share their resamples, so
    # that a scan's alterations are drawn together and the interval is not narrowed by counting one scan many times
    groups = [(rn["data"], rn["split"]) for rn in new]

    def weights(sizes: list[int]) -> np.ndarray:
        # one row per resample (row 0: the scans as they are), scans drawn with replacement within each stratum
        rows = [np.ones((1, sum(sizes)))]
        drawn: dict = {}
        draws = []
        for g, n in zip(groups, sizes, strict=True):
            if (g, n) not in drawn:
                drawn[(g, n)] = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples) if n else np.zeros((resamples, 0))
            draws.append(drawn[(g, n)])
        rows.append(np.concatenate(draws, axis=1) if draws else np.zeros((resamples, 0)))
        return np.concatenate(rows)

    wt = weights([len(sn["hit"]) for sn, _ in pairs])
    wc = weights([len(sn["alarm"]) for sn, _ in pairs])

    def stack(key: str, side: int) -> np.ndarray:
        return np.concatenate([p[side][key] for p in pairs])

    def curve(side: int) -> tuple[np.ndarray, np.ndarray]:
        hit, alarm = stack("hit", side), stack("alarm", side)
        pd = wt @ ((hit[:, None] >= ths[None]) & (hit[:, None] > 0)) / nt
        pfa = (wc @ ((alarm[:, None] >= ths[None]) & (alarm[:, None] > 0)) / nc) if nc else None
        return pd, pfa

    (pd_n, pfa_n), (pd_o, pfa_o) = curve(0), curve(1)
    rows = {}

    def row(name: str, vn: np.ndarray, vo: np.ndarray) -> None:
        rows[name] = M.paired_difference(vn, vo)

    if nc:
        for x in PFAS:
            best = [np.where(pfa <= x + 1e-12, pd, 0.0).max(1) for pd, pfa in ((pd_n, pfa_n), (pd_o, pfa_o))]
            row(f"pd_at_pfa_{x:.2f}", *best)
    row("pd", wt @ stack("detected", 0) / nt, wt @ stack("detected", 1) / nt)
    if nc:
        row("pfa", wc @ stack("alarmed", 0) / nc, wc @ stack("alarmed", 1) / nc)
    dn, do = stack("detected", 0), stack("detected", 1)
    an, ao = stack("alarmed", 0), stack("alarmed", 1)
    return {"sets": [rn.get("_path") for rn in new], "against": against, "measured_unlike": measured_unlike(new, old),
            "threat_scans": nt, "clean_scans": nc, "resamples": resamples, "seed": seed, "rows": rows,
            "threat_scans_only_new_detects": int((dn & ~do).sum()), "threat_scans_only_old_detects": int((do & ~dn).sum()),
            "clean_scans_only_new_alarms": int((an & ~ao).sum()), "clean_scans_only_old_alarms": int((ao & ~an).sum())}


def _conditions(r: dict) -> dict:
    """How a report's scores were computed, where that can move them: backend, precision, readings, machine."""
    m = r.get("machine") or {}
    return {"backend": r.get("backend"), "precision": r.get("precision"), "readings": r.get("flips"),
            "CPU": f"{m['cpu']} ({', '.join(m.get('isa') or []) or 'no listed ISA'})" if m else None}


def measured_unlike(new: list[dict], old: list[dict]) -> list[str]:
    """What differs between how the new and the old reports were measured, beyond the model: 'precision:
    new f32, old bf16'. Unrecorded on either side (reports written before it was recorded) is not a
    difference. A paired difference then holds that too: compare on one machine, as served."""
    out = []
    for key in ("backend", "precision", "readings", "CPU"):
        vn = {c[key] for c in map(_conditions, new)} - {None}
        vo = {c[key] for c in map(_conditions, old)} - {None}
        if vn and vo and vn != vo:
            out.append(f"{key}: new {', '.join(map(str, sorted(vn)))}, old {', '.join(map(str, sorted(vo)))}")
    return out


def paired_markdown(c: dict) -> str:
    out = [f"Paired over {c['threat_scans']} threat and {c['clean_scans']} clean scans, {c['resamples']} bootstrap "
           "resamples (within each set, threat and clean scans apart):", "",
           "| | old | new | new − old | 95% interval | new ahead in | new behind in |", "|---|---|---|---|---|---|---|"]
    names = {"pd": "Pd at each model's thresholds", "pfa": "Pfa at each model's thresholds"}
    for k, v in c["rows"].items():
        label = names[k] if k in names else f"Pd at Pfa≤{float(k.rsplit('_', 1)[1]):.0%} (one threshold)"
        out.append(f"| {label} | {v['old']:.3f} | {v['new']:.3f} | {v['diff']:+.3f} | "
                   f"{v['diff_ci95'][0]:+.3f} to {v['diff_ci95'][1]:+.3f} | {v['new_ahead']:.0%} | {v['new_behind']:.0%} |")
    out += ["", f"Threat scans only the new model detects: {c['threat_scans_only_new_detects']}, only the old: "
                f"{c['threat_scans_only_old_detects']}; clean scans only the new one alarms on: "
                f"{c['clean_scans_only_new_alarms']}, only the old: {c['clean_scans_only_old_alarms']}."]
    if c.get("measured_unlike"):
        out += ["", "**Not measured alike** (the differences above include this, not only the models): "
                + "; ".join(c["measured_unlike"]) + "."]
    return "\n".join(out)


def markdown(p: dict, name: str = "pooled") -> str:
    head = "| | sets | threat scans detected | clean scans alarmed | Pd | Pfa | " + \
           " | ".join(f"Pd at Pfa≤{float(x):.0%}" for x in p["pd_at_pfa"]) + " | mean mAP50 |"
    sep = "|" + "---|" * (7 + len(p["pd_at_pfa"]))
    row = (f"| {name} | {len(p['sets'])} | {p['detected']} / {p['threat_scans']} | {p['alarmed_clean']} / {p['clean_scans']} | "
           f"{M.fmt_rate(p['pd'])} | {M.fmt_rate(p['pfa'])} | " + " | ".join(M.fmt_rate(v) for v in p["pd_at_pfa"].values()) +
           f" | {p['mean_map50']:.3f} |")
    return "\n".join([head, sep, row])


def pool_cli(a) -> int:
    new = [load(x) for x in a.reports]
    p = pool(new)
    print(markdown(p, a.name))
    if getattr(a, "against", None):
        old = [load(x) for x in a.against]
        po = pool(old)
        print(markdown(po, "against").split("\n")[2])
        c = paired(new, old, resamples=a.resamples)
        print()
        print(paired_markdown(c))
        p["paired"] = c
        p["against"] = po
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(p, indent=1))
    return 0
