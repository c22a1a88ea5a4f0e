"""`xfd compare`: old and new model on the same held-out scans, side by side."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from detector.engine import Engine
from training import metrics as M
from training.evaluate import evaluate
from training.pool import paired, paired_markdown


def compare(old: str, new: str, data: str, split: str, out: str | Path, examples: int = 6) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    eo, en = Engine(old, concurrency=1), Engine(new, concurrency=1)
    ro = evaluate(eo, data, split, out / "old", return_predictions=True)
    rn = evaluate(en, data, split, out / "new", return_predictions=True)
    (po_, go), (pn_, _) = ro.pop("_predictions"), rn.pop("_predictions")
    po = {p["file"]: p for p in ro["per_scan"]}
    pn = {p["file"]: p for p in rn["per_scan"]}
    fixed = [f for f in po if po[f]["threat"] and not po[f]["detected"] and pn[f]["detected"]]
    broken = [f for f in po if po[f]["threat"] and po[f]["detected"] and not pn[f]["detected"]]
    fa_fixed = [f for f in po if not po[f]["threat"] and po[f]["alarm"] and not pn[f]["alarm"]]
    fa_new = [f for f in po if not po[f]["threat"] and not po[f]["alarm"] and pn[f]["alarm"]]
    for name, files in (("fixed", fixed), ("broken", broken), ("false_alarms_removed", fa_fixed), ("false_alarms_added", fa_new)):
        d = out / name
        d.mkdir(exist_ok=True)
        for f in files[:examples]:
            _side_by_side(f, eo, en, d / (Path(f).stem + ".png"))
    rows = []
    for c in ro["per_class"]:
        a, b = ro["per_class"][c]["ap50"], rn["per_class"][c]["ap50"]
        rows.append((c, a, b))
    res = {"old": ro["model"], "new": rn["model"], "split": split, "data": str(Path(data).resolve()),
           "old_metrics": {k: ro[k] for k in ("map50", "map50_95", "pd", "pfa", "pd_at_pfa_0.05")},
           "new_metrics": {k: rn[k] for k in ("map50", "map50_95", "pd", "pfa", "pd_at_pfa_0.05")},
           "per_class_ap50": {c: {"old": a, "new": b} for c, a, b in rows},
           "found_by_kind": _found_by_kind(ro, rn),
           "fixed": fixed, "broken": broken, "false_alarms_removed": fa_fixed, "false_alarms_added": fa_new,
           "paired": paired([rn], [ro]) if ro["threat_scans"] else None,
           "paired_map50": paired_map50(po_, pn_, go, len(ro["per_class"]))}
    (out / "compare.json").write_text(json.dumps(res, indent=1))
    f = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    md = [f"# {ro['model']['name']} {ro['model']['version']} vs {rn['model']['name']} {rn['model']['version']} on {split}", "",
          "| metric | old | new |", "|---|---|---|"]
    for k in ("map50", "map50_95", "pd", "pfa", "pd_at_pfa_0.05"):
        md.append(f"| {k} | {f(res['old_metrics'][k])} | {f(res['new_metrics'][k])} |")
    md += ["", "| class | AP50 old | AP50 new |", "|---|---|---|"] + [f"| {c} | {f(a)} | {f(b)} |" for c, a, b in rows]
    if res["found_by_kind"]:
        md += ["", "| class | kind | found old | found new | objects |", "|---|---|---|---|---|"]
        md += [f"| {k['class']} | {k['kind']} | {k['old']} | {k['new']} | {k['objects']} |" for k in res["found_by_kind"]]
    if res["paired"]:  # is the difference more than these scans can tell apart?
        md += ["", paired_markdown(res["paired"])]
    pm = res["paired_map50"]
    if pm:
        md += ["", f"mAP50, paired over the same {pm['scans']} scans ({pm['resamples']} image-bootstrap resamples): new − old "
                   f"{pm['diff']:+.3f} (95% interval {pm['diff_ci95'][0]:+.3f} to {pm['diff_ci95'][1]:+.3f}); new ahead in "
                   f"{pm['new_ahead']:.0%} of resamples, behind in {pm['new_behind']:.0%}."]
    md += ["", f"Threat scans the new model catches and the old missed: {len(fixed)} (examples in fixed/).",
           f"Threat scans the new model misses and the old caught: {len(broken)} (broken/).",
           f"False alarms removed: {len(fa_fixed)}; added: {len(fa_new)}."]
    (out / "compare.md").write_text("\n".join(md) + "\n")
    return res


def paired_map50(old_preds, new_preds, gts, nc: int, resamples: int = 200, seed: int = 0) -> dict:
    """mAP50 of two models on the same scans, resampled together (image bootstrap): the difference and its
    95% interval, and how often new came out ahead and behind."""
    w = np.concatenate([np.ones((1, len(gts))), M.bootstrap_weights(len(gts), resamples, seed)])
    new, old = M.map50_resampled(new_preds, gts, nc, w), M.map50_resampled(old_preds, gts, nc, w)
    if not np.isfinite(new[0] - old[0]):  # no labelled object in these scans: no mAP to compare
        return None
    return {"scans": len(gts), "resamples": resamples, **M.paired_difference(new, old)}


def _found_by_kind(ro: dict, rn: dict) -> list[dict]:
    """Threats of each kind (simulator manifests only) found by the old and the new model at their
    own operating points, in the new report's order (per class, least often found first)."""
    old = {(x["class"], x["kind"]): x for x in (ro.get("threats_found_by") or {}).get("kind", [])}
    rows = []
    for x in (rn.get("threats_found_by") or {}).get("kind", []):
        o = old.get((x["class"], x["kind"]))
        if o is not None:
            rows.append({"class": x["class"], "kind": x["kind"], "objects": x["objects"], "old": o["found"], "new": x["found"]})
    return rows


def _side_by_side(path: str, eo: Engine, en: Engine, dst: Path) -> None:
    from detector.detect_cli import draw

    rgb = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    a = draw(rgb, eo.detect(rgb))
    b = draw(rgb, en.detect(rgb))
    both = cv2.hconcat([a, b])
    cv2.putText(both, "old", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1, (0, 0, 0), 2)
    cv2.putText(both, "new", (rgb.shape[1] + 10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1, (0, 0, 0), 2)
    cv2.imwrite(str(dst), cv2.cvtColor(both, cv2.COLOR_RGB2BGR))


def compare_cli(a) -> int:
    r = compare(a.old, a.new, a.data, a.split, a.out)
    print(json.dumps({"old": r["old_metrics"], "new": r["new_metrics"], "fixed": len(r["fixed"]), "broken": len(r["broken"])}, indent=1))
    print(f"report: {Path(a.out) / 'compare.md'}")
    return 0
