"""Detection and screening metrics, written out so they can be checked by hand.

Conventions (also in the README):
- Predictions per scan: array rows [x1, y1, x2, y2, score, class]; ground truth rows
  [class, x1, y1, x2, y2]; pixels.
- AP: COCO-style 101-point interpolated precision, per class; mAP50-95 averages IoU
  0.50:0.05:0.95.
- Screening, per scan (parcel): a *threat scan* holds at least one labelled object; a
  *clean scan* none. With per-class thresholds theta, a scan alarms if any detection
  has score >= theta[class]. Pd = share of threat scans with at least one alarming
  detection that overlaps a labelled threat (IoU >= 0.5, any threat class: for the
  parcel's fate a gun called "slide" is still a catch). Pfa = share of clean scans
  that alarm.
"""

from __future__ import annotations

import numpy as np

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.96, 0.05), 2)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    aa = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    bb = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (aa[:, None] + bb[None, :] - inter + 1e-9)


def _ap101(recall: np.ndarray, precision: np.ndarray) -> float:
    if len(recall) == 0:
        return 0.0
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    x = np.linspace(0, 1, 101)
    idx = np.searchsorted(mrec, x, side="left")
    return float(np.mean(np.where(idx < len(mpre), mpre[np.clip(idx, 0, len(mpre) - 1)], 0)))


def match_class(preds: list[np.ndarray], gts: list[np.ndarray], cls: int, iou_thr: float):
    """Greedy score-ordered matching for one class: returns (scores, tp flags, n_gt)."""
    scores, tps = [], []
    n_gt = 0
    for p, g in zip(preds, gts, strict=True):
        gp = g[g[:, 0] == cls][:, 1:5] if len(g) else np.zeros((0, 4))
        pp = p[p[:, 5] == cls] if len(p) else np.zeros((0, 6))
        n_gt += len(gp)
        if len(pp) == 0:
            continue
        pp = pp[np.argsort(-pp[:, 4])]
        used = np.zeros(len(gp), bool)
        iou = box_iou(pp[:, :4], gp)
        for i in range(len(pp)):
            tp = False
            if len(gp):
                cand = np.where(~used, iou[i], -1)
                j = int(cand.argmax())
                if cand[j] >= iou_thr:
                    used[j] = True
                    tp = True
            scores.append(pp[i, 4])
            tps.append(tp)
    return np.array(scores), np.array(tps, bool), n_gt


def _class_table(preds, gts, cls: int, iou_thr: float = 0.5):
    """match_class() with each detection's image and each image's count of labelled objects."""
    scores, tps, imgs = [], [], []
    n_gt = np.zeros(len(preds))
    for i, (p, g) in enumerate(zip(preds, gts, strict=True)):
        s, t, n = match_class([p], [g], cls, iou_thr)
        scores.append(s)
        tps.append(t)
        imgs.append(np.full(len(s), i))
        n_gt[i] = n
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
    return cat(scores, np.float64), cat(tps, bool), cat(imgs, np.int64), n_gt


def map50_resampled(preds, gts, nc: int, weights: np.ndarray, chunk: int = 50) -> np.ndarray:
    """mAP50 of the scans reweighted by each row of `weights` (resamples x scans, e.g. bootstrap counts):
    a scan drawn twice counts its detections and its labelled objects twice. A class with no labelled
    object in a resample is left out of that resample's mean, as detection_metrics() does."""
    weights = np.asarray(weights, np.float64)
    aps = np.full((len(weights), nc), np.nan)
    for c in range(nc):
        s, t, img, n_gt = _class_table(preds, gts, c)
        order = np.argsort(-s, kind="stable")
        t, img = t[order], img[order]
        total = weights @ n_gt
        for a in range(0, len(weights), chunk):
            w = weights[a:a + chunk][:, img]
            tp = np.cumsum(w * t, axis=1)
            fp = np.cumsum(w * ~t, axis=1)
            for k in range(len(w)):
                if total[a + k] > 0:
                    aps[a + k, c] = _ap101(tp[k] / total[a + k], tp[k] / np.maximum(tp[k] + fp[k], 1e-12))
    ok = ~np.isnan(aps)  # a resample without any labelled object has no mAP50 (NaN), not a warning
    return np.where(ok.any(1), np.where(ok, aps, 0).sum(1) / np.maximum(ok.sum(1), 1), np.nan)


def paired_difference(new: np.ndarray, old: np.ndarray) -> dict:
    """Two models scored on the same resamples (row 0: the scans as they are, the rest bootstrap
    resamples): both values, the difference, its 95% interval, and the share of resamples in which
    new came out ahead and behind."""
    d = np.asarray(new, np.float64) - np.asarray(old, np.float64)
    return {"new": float(new[0]), "old": float(old[0]), "diff": float(d[0]), "diff_ci95": interval95(d[1:]),
            "new_ahead": float(np.mean(d[1:] > 1e-12)), "new_behind": float(np.mean(d[1:] < -1e-12))}


def interval95(values: np.ndarray) -> list[float] | None:
    """The 2.5th and 97.5th percentiles of the finite values (None when there are none)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return [float(x) for x in np.percentile(v, [2.5, 97.5])] if len(v) else None


def bootstrap_weights(n: int, resamples: int, seed: int = 0) -> np.ndarray:
    """Bootstrap counts: each row draws n scans with replacement from n."""
    return np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def pr_curve(scores: np.ndarray, tps: np.ndarray, n_gt: int):
    order = np.argsort(-scores)
    tp = np.cumsum(tps[order])
    fp = np.cumsum(~tps[order])
    recall = tp / max(n_gt, 1)
    precision = tp / np.maximum(tp + fp, 1)
    return recall, precision, scores[order]


def average_precision(preds, gts, cls: int, iou_thr: float = 0.5) -> float:
    s, t, n = match_class(preds, gts, cls, iou_thr)
    if n == 0:
        return float("nan")
    r, p, _ = pr_curve(s, t, n)
    return _ap101(r, p)


def detection_metrics(preds, gts, names: list[str], thresholds: dict[str, float] | None = None,
                      scan_thresholds: np.ndarray | None = None) -> dict:
    """mAP and per class AP, and precision and recall at the thresholds: `thresholds` for every scan,
    or scan_thresholds (scans, classes) for each its own (reported per class: `thresholds`')."""
    per_class = {}
    ap50s, ap5095s = [], []
    for c, name in enumerate(names):
        aps = [average_precision(preds, gts, c, t) for t in IOU_THRESHOLDS]
        thr = (thresholds or {}).get(name, 0.25)
        if scan_thresholds is None:
            s, t, n = match_class(preds, gts, c, 0.5)
            sel = s >= thr
        else:
            s, t, imgs, per_img = _class_table(preds, gts, c, 0.5)
            n = int(per_img.sum())
            sel = s.astype(np.float32) >= np.asarray(scan_thresholds, np.float32)[imgs, c]  # as pd_pfa compares
        tp = int(t[sel].sum())
        prec = tp / max(int(sel.sum()), 1)
        rec = tp / max(n, 1)
        per_class[name] = {"ap50": None if np.isnan(aps[0]) else round(aps[0], 4),
                           "ap50_95": None if np.isnan(aps[0]) else round(float(np.mean(aps)), 4),
                           "precision": round(prec, 4), "recall": round(rec, 4), "instances": n, "threshold": thr}
        if not np.isnan(aps[0]):
            ap50s.append(aps[0])
            ap5095s.append(float(np.mean(aps)))
    return {"map50": round(float(np.mean(ap50s)), 4) if ap50s else 0.0,
            "map50_95": round(float(np.mean(ap5095s)), 4) if ap5095s else 0.0, "per_class": per_class}


# ----------------------------------------------------------------- screening
def scan_tables(preds, gts, nc: int, iou_thr: float = 0.5):
    """Per scan and class, the highest score of any detection (any_max) and of any
    detection that overlaps a labelled threat (hit_max); and which scans hold threats."""
    n = len(preds)
    any_max = np.zeros((n, nc), np.float32)
    hit_max = np.zeros((n, nc), np.float32)
    threat = np.zeros(n, bool)
    for i, (p, g) in enumerate(zip(preds, gts, strict=True)):
        threat[i] = len(g) > 0
        if len(p) == 0:
            continue
        cls = p[:, 5].astype(int)
        for c in np.unique(cls):
            any_max[i, c] = p[cls == c, 4].max()
        if len(g):
            hit = box_iou(p[:, :4], g[:, 1:5]).max(1) >= iou_thr
            for c in np.unique(cls[hit]):
                hit_max[i, c] = p[hit & (cls == c), 4].max()
    return any_max, hit_max, threat


def theta_rows(theta) -> np.ndarray:
    """Per-class thresholds against per-scan tables: one row for every scan ((nc,) given), or each
    scan's own row ((scans, nc) given: a model whose grey scans a grey network reads, at its thresholds)."""
    t = np.asarray(theta, np.float32)
    return t[None, :] if t.ndim == 1 else t


def scan_theta(theta, i: int) -> np.ndarray:
    """Scan i's thresholds (nc,) from theta as theta_rows takes it."""
    t = np.asarray(theta, np.float32)
    return t if t.ndim == 1 else t[i]


def pd_pfa(any_max, hit_max, threat, theta: np.ndarray) -> tuple[float, float]:
    theta = theta_rows(theta)
    detected = (hit_max >= theta) & (hit_max > 0)
    alarm = (any_max >= theta) & (any_max > 0)
    pd = float(detected[threat].any(1).mean()) if threat.any() else float("nan")
    pfa = float(alarm[~threat].any(1).mean()) if (~threat).any() else float("nan")
    return pd, pfa


def parcel_tables(any_max, hit_max, threat, groups: list[np.ndarray]):
    """scan_tables() of parcels seen in several views (a dual-view scanner's two images):
    `groups` holds each parcel's rows. A parcel alarms when any of its views does, is detected
    when an alarm in any view lies on a labelled threat, and holds a threat when any view shows
    one labelled."""
    return (np.stack([any_max[g].max(0) for g in groups]), np.stack([hit_max[g].max(0) for g in groups]),
            np.array([threat[g].any() for g in groups], bool))


def screening(any_max, hit_max, threat, theta: np.ndarray, curve: dict | None = None) -> dict:
    """Pd and Pfa at thresholds theta with their 95% intervals (from the counts behind them), and
    the best Pd at Pfa <= 1, 5 and 10% with one threshold for every class (from `curve`, else
    the pd_pfa_curve of these tables)."""
    curve = curve or pd_pfa_curve(any_max, hit_max, threat)
    th = theta_rows(theta)
    detected = ((hit_max >= th) & (hit_max > 0)).any(1)
    alarmed = ((any_max >= th) & (any_max > 0)).any(1)
    pd, pfa = pd_pfa(any_max, hit_max, threat, theta)
    # a set without clean scans (a public set's positives only) has no false-alarm rate, and so no Pd at
    # a fixed one; without threat scans, no Pd: None ("n/a"), never 0 or NaN
    out = {"pd": None if np.isnan(pd) else round(pd, 4), "pfa": None if np.isnan(pfa) else round(pfa, 4)}
    for key, k, n in (("pd_ci95", detected[threat].sum(), threat.sum()), ("pfa_ci95", alarmed[~threat].sum(), (~threat).sum())):
        iv = rate_interval(int(k), int(n))
        out[key] = None if iv is None else [round(iv[0], 4), round(iv[1], 4)]
    for f in (0.01, 0.05, 0.10):
        if out["pd"] is None or out["pfa"] is None:
            out[f"pd_at_pfa_{f:.2f}"] = None
            continue
        ok = [p for p, q in zip(curve["pd"], curve["pfa"], strict=True) if q <= f]
        out[f"pd_at_pfa_{f:.2f}"] = max(ok) if ok else 0.0
    out["detected"], out["alarmed"] = detected, alarmed
    return out


def pd_pfa_curve(any_max, hit_max, threat, steps: int = 200) -> dict:
    """Pd and Pfa at one threshold for every class, over thresholds; a rate the set cannot measure
    (no clean scans, or no threat scans) is None all along."""
    ts = np.linspace(0.0, 1.0, steps + 1)[1:]
    pts = [pd_pfa(any_max, hit_max, threat, np.full(any_max.shape[1], t)) for t in ts]
    return {"thresholds": [round(float(t), 4) for t in ts], "pd": [None if np.isnan(p[0]) else p[0] for p in pts],
            "pfa": [None if np.isnan(p[1]) else p[1] for p in pts]}


def fmt_rate(v: float | None, needs: str | None = None) -> str:
    """A rate to three places, or n/a where the set cannot give it (no clean scans: no Pfa, nor Pd at a
    fixed one; no threat scans: no Pd), saying which scans were missing when `needs` names them."""
    if v is None:
        return f"n/a (no {needs} scans)" if needs else "n/a"
    return f"{v:.3f}"


def pfa_upper_bound(false_alarms: int, clean: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound of a false-alarm rate seen as k of n."""
    from scipy.stats import beta

    if false_alarms >= clean:  # also no clean scans at all: nothing is known
        return 1.0
    return float(beta.ppf(confidence, false_alarms + 1, clean - false_alarms))


def rate_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """Two-sided Clopper-Pearson interval of a rate seen as k of n (None when n = 0): what a
    Pd or Pfa measured on a few hundred scans can and cannot tell apart."""
    from scipy.stats import beta

    if n <= 0:
        return None
    a = (1 - level) / 2
    lo = 0.0 if k <= 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k >= n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def calibrate_thresholds(any_max, hit_max, threat, target_pfa: float = 0.05, rounds: int = 3,
                         grid: np.ndarray | None = None, confidence: float | None = None,
                         min_gain: int = 0) -> tuple[np.ndarray, float, float]:
    """Per-class thresholds reaching scan-level Pfa <= target at the highest Pd:
    the best single threshold first, then coordinate ascent over classes.
    confidence (e.g. 0.9): require the Clopper-Pearson upper bound of the calibration
    set's Pfa, not its point value, to meet the target. Searching thresholds right at the
    limit is optimistic on the set searched; the bound makes the operating point hold on
    new scans with that confidence (at a cost in Pd).
    min_gain (threat scans): a class's threshold is lowered only where that detects at least
    this many more threat scans of the calibration set. A class that rarely fires on the clean
    scans searched can otherwise be pushed down to a near-zero threshold for one or two scans,
    and then fire on new clean scans (INT8 2026.11.28.7: printed_part 0.03; 2026.11.28.8:
    frame 0.12 for 2 of 664 threat scans, one more false alarm on vendor)."""
    nc = any_max.shape[1]
    n_threat = int(np.asarray(threat, bool).sum())
    grid = np.round(np.arange(0.01, 1.0, 0.01), 2) if grid is None else grid
    limit = target_pfa
    if confidence:  # the bound grows with the false-alarm count: find the largest count it allows, once
        clean = int((~np.asarray(threat, bool)).sum())
        k = 0
        while k <= clean and pfa_upper_bound(k, clean, confidence) <= target_pfa + 1e-9:
            k += 1
        limit = (k - 1) / clean if k else -1.0

    def score(th):
        pd, pfa = pd_pfa(any_max, hit_max, threat, th)
        ok = pfa <= limit + 1e-9
        return (ok, pd if ok else -pfa, -pfa)

    best = None
    for t in grid:
        th = np.full(nc, t)
        s = score(th)
        if best is None or s > best[0]:
            best = (s, th)
    theta = best[1].copy()
    cur = best[0]
    for _ in range(rounds):
        changed = False
        for c in range(nc):
            for t in grid:
                th = theta.copy()
                th[c] = t
                s = score(th)
                if min_gain and t < theta[c] and s[0] and cur[0] and round((s[1] - cur[1]) * n_threat) < min_gain:
                    continue  # lowering this class's threshold buys too little
                if s > cur:
                    cur, theta, changed = s, th, True
        if not changed:
            break
    pd, pfa = pd_pfa(any_max, hit_max, threat, theta)
    return theta, pd, pfa


def confusion(preds, gts, nc: int, theta: np.ndarray, iou_thr: float = 0.5) -> np.ndarray:
    """(nc+1) x (nc+1): rows true class (+ background), cols predicted (+ missed)."""
    m = np.zeros((nc + 1, nc + 1), int)
    for i, (p, g) in enumerate(zip(preds, gts, strict=True)):
        p = p[p[:, 4] >= scan_theta(theta, i)[p[:, 5].astype(int)]] if len(p) else p
        used = np.zeros(len(p), bool)
        if len(g) and len(p):
            iou = box_iou(g[:, 1:5], p[:, :4])
            for i in np.argsort(-iou.max(1)):
                cand = np.where(~used, iou[i], -1)
                j = int(cand.argmax())
                if cand[j] >= iou_thr:
                    used[j] = True
                    m[int(g[i, 0]), int(p[j, 5])] += 1
                else:
                    m[int(g[i, 0]), nc] += 1
        else:
            for gi in g:
                m[int(gi[0]), nc] += 1
        for j in np.nonzero(~used)[0]:
            m[nc, int(p[j, 5])] += 1
    return m
