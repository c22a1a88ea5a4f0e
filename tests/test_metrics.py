"""Screening and detection metrics on hand-made predictions with known answers."""

import warnings

import numpy as np
import pytest

from training import metrics as M


def P(*rows):
    return np.array(rows, np.float32).reshape(-1, 6)


def G(*rows):
    return np.array(rows, np.float32).reshape(-1, 5)


# four threat scans, four clean scans
GTS = [G([0, 10, 10, 50, 50]), G([1, 100, 100, 140, 120]), G([0, 0, 0, 30, 30]), G([6, 5, 5, 15, 15])] + [G()] * 4
PREDS = [
    P([11, 11, 50, 49, 0.9, 0]),          # caught, high score
    P([100, 100, 139, 121, 0.6, 2]),       # caught as the wrong class (slide for barrel): still a catch
    P([200, 200, 230, 230, 0.8, 0]),       # alarm somewhere else: NOT a detection
    P(),                                   # missed
    P([1, 1, 9, 9, 0.7, 0]),               # false alarm at 0.7
    P([1, 1, 9, 9, 0.3, 3]),               # false alarm at 0.3
    P(),
    P(),
]


def test_pd_pfa_known_answers():
    any_max, hit_max, threat = M.scan_tables(PREDS, GTS, 7)
    assert threat.tolist() == [True] * 4 + [False] * 4
    pd, pfa = M.pd_pfa(any_max, hit_max, threat, np.full(7, 0.5))
    assert pd == pytest.approx(2 / 4) and pfa == pytest.approx(1 / 4)
    pd, pfa = M.pd_pfa(any_max, hit_max, threat, np.full(7, 0.25))
    assert pd == pytest.approx(2 / 4) and pfa == pytest.approx(2 / 4)
    pd, pfa = M.pd_pfa(any_max, hit_max, threat, np.full(7, 0.95))
    assert pd == 0 and pfa == 0
    # per-class thresholds: raise 'gun' above 0.7 kills the clean alarm but also scan 0's catch
    th = np.full(7, 0.5)
    th[0] = 0.95
    assert M.pd_pfa(any_max, hit_max, threat, th) == (pytest.approx(1 / 4), pytest.approx(0.0))


def test_a_set_without_clean_scans_has_no_false_alarm_rate():
    """A public set's positives only: Pd is measured, Pfa and Pd at a fixed Pfa are not (None, never 0)."""
    any_max, hit_max, threat = M.scan_tables(PREDS[:4], GTS[:4], 7)
    s = M.screening(any_max, hit_max, threat, np.full(7, 0.5))
    assert s["pd"] == 0.5 and s["pfa"] is None and s["pfa_ci95"] is None
    assert s["pd_at_pfa_0.01"] is None and s["pd_at_pfa_0.05"] is None and s["pd_at_pfa_0.10"] is None
    assert set(M.pd_pfa_curve(any_max, hit_max, threat)["pfa"]) == {None}
    any_max, hit_max, threat = M.scan_tables(PREDS[4:], GTS[4:], 7)  # clean scans only: no Pd
    s = M.screening(any_max, hit_max, threat, np.full(7, 0.5))
    assert s["pd"] is None and s["pfa"] == 0.25 and s["pd_at_pfa_0.05"] is None


def test_curve_is_monotone():
    any_max, hit_max, threat = M.scan_tables(PREDS, GTS, 7)
    c = M.pd_pfa_curve(any_max, hit_max, threat)
    assert all(a >= b for a, b in zip(c["pd"], c["pd"][1:], strict=False))
    assert all(a >= b for a, b in zip(c["pfa"], c["pfa"][1:], strict=False))


def test_calibration_reaches_target_pfa_at_best_pd():
    any_max, hit_max, threat = M.scan_tables(PREDS, GTS, 7)
    theta, pd, pfa = M.calibrate_thresholds(any_max, hit_max, threat, target_pfa=0.0)
    assert pfa == 0.0
    # best possible with zero false alarms: keep the 'slide' catch (0.6) and gun 0.9 above the clean 0.7 gun
    assert pd == pytest.approx(2 / 4)
    assert theta[0] > 0.7 and theta[2] <= 0.6 and theta[3] > 0.3


def test_average_precision_simple_cases():
    gts = [G([0, 0, 0, 10, 10]), G([0, 20, 20, 30, 30])]
    perfect = [P([0, 0, 10, 10, 0.9, 0]), P([20, 20, 30, 30, 0.8, 0])]
    assert M.average_precision(perfect, gts, 0) == pytest.approx(1.0)
    half = [P([0, 0, 10, 10, 0.9, 0]), P([50, 50, 60, 60, 0.8, 0])]
    assert M.average_precision(half, gts, 0) == pytest.approx(0.5, abs=0.01)
    # a false positive ranked first halves precision at every recall
    fp_first = [P([0, 0, 10, 10, 0.5, 0], [40, 40, 45, 45, 0.9, 0]), P([20, 20, 30, 30, 0.4, 0])]
    assert M.average_precision(fp_first, gts, 0) == pytest.approx(2 / 3, abs=0.02)
    assert np.isnan(M.average_precision(perfect, gts, 3))


def test_detection_metrics_and_confusion():
    det = M.detection_metrics(PREDS, GTS, ["gun", "barrel", "slide", "frame", "magazine", "printed_part", "ammunition"])
    assert det["per_class"]["gun"]["instances"] == 2 and det["per_class"]["barrel"]["ap50"] == 0
    conf = M.confusion(PREDS, GTS, 7, np.full(7, 0.5))
    assert conf[1, 2] == 1  # barrel predicted as slide
    assert conf[6, 7] == 1  # ammunition missed
    assert conf[7, 0] == 2  # two 'gun' false detections (scan 2 elsewhere, clean scan 4)


def test_pfa_upper_bound_and_conservative_calibration():
    # Clopper-Pearson: 0 of 59 -> 95% bound ~5% (the "rule of three" territory); 5 of 251 at 90% ~3.6%
    assert M.pfa_upper_bound(0, 59, 0.95) == pytest.approx(1 - 0.05 ** (1 / 59), rel=1e-6)
    assert 0.03 < M.pfa_upper_bound(5, 251, 0.9) < 0.04
    assert M.pfa_upper_bound(3, 3, 0.9) == 1.0
    # 400 scans, one class: threat scores ~ U(0.3, 1), clean scores ~ U(0, 0.6)
    rng = np.random.default_rng(0)
    n = 400
    threat = np.arange(n) < 150
    score = np.where(threat, rng.uniform(0.3, 1.0, n), rng.uniform(0.0, 0.6, n)).astype(np.float32)
    any_max = np.zeros((n, 7), np.float32)
    any_max[:, 0] = score
    hit_max = np.where(threat[:, None], any_max, 0).astype(np.float32)
    th_point, pd_point, pfa_point = M.calibrate_thresholds(any_max, hit_max, threat, 0.05)
    th_bound, pd_bound, pfa_bound = M.calibrate_thresholds(any_max, hit_max, threat, 0.05, confidence=0.9)
    clean = int((~threat).sum())
    assert pfa_point <= 0.05 and M.pfa_upper_bound(int(round(pfa_bound * clean)), clean, 0.9) <= 0.05
    assert pfa_bound < pfa_point and pd_bound <= pd_point and th_bound[0] > th_point[0]


def test_min_gain_keeps_thresholds_that_buy_too_little():
    """100 scans (40 threat). 'gun' fires on every threat scan at 0.8 and on 2 clean scans at 0.5.
    'frame' fires weakly (0.05) on 2 threat scans gun misses and on no clean scan; 'magazine'
    at 0.1 on 4 more. With min_gain 0 both get pushed down to near zero; with min_gain 3 only
    magazine (4 scans) earns its low threshold, frame (2) keeps the common one."""
    n, nc = 100, 7
    threat = np.arange(n) < 40
    any_max = np.zeros((n, nc), np.float32)
    any_max[:34, 0] = 0.8  # gun catches 34 of the 40
    any_max[40:42, 0] = 0.5  # two clean scans with a gun-like tool
    any_max[34:36, 3] = 0.05  # frame: 2 more threat scans
    any_max[36:40, 4] = 0.1  # magazine: 4 more
    hit_max = np.where(threat[:, None], any_max, 0).astype(np.float32)
    th0, pd0, pfa0 = M.calibrate_thresholds(any_max, hit_max, threat, 0.0)
    assert pd0 == pytest.approx(1.0) and pfa0 == 0.0 and th0[3] <= 0.05 and th0[4] <= 0.1
    th3, pd3, pfa3 = M.calibrate_thresholds(any_max, hit_max, threat, 0.0, min_gain=3)
    assert pfa3 == 0.0 and pd3 == pytest.approx(38 / 40)
    assert th3[4] <= 0.1 and th3[3] > 0.05 and th3[3] == th3[0] > 0.5
    # 0 disables the rule; a gain exactly at the limit is taken
    th2, pd2, _ = M.calibrate_thresholds(any_max, hit_max, threat, 0.0, min_gain=2)
    assert pd2 == pytest.approx(1.0) and th2[3] <= 0.05


def test_rate_interval_is_clopper_pearson():
    """Two-sided 95% Clopper-Pearson: the textbook values, and the interval always holds k/n."""
    from training.metrics import rate_interval

    lo, hi = rate_interval(0, 10)
    assert lo == 0.0 and abs(hi - 0.3085) < 1e-3
    lo, hi = rate_interval(5, 10)
    assert abs(lo - 0.1871) < 1e-3 and abs(hi - 0.8129) < 1e-3
    assert rate_interval(10, 10)[1] == 1.0 and rate_interval(3, 0) is None
    for k, n in ((6, 78), (73, 181), (1, 300)):
        lo, hi = rate_interval(k, n)
        assert lo < k / n < hi
    assert rate_interval(6, 78)[1] > 0.15  # 6 false alarms in 78 clean scans: anything from ~3% to ~16%


def test_false_alarms_by_content_counts_clean_scans_holding_each_kind():
    """Four clean scans and a threat scan: the flask is in 3 clean scans, 2 of which alarm (Pfa
    2/3 against 2/4 for all clean scans); the book in 2, 1 alarms; the glue gun (a tool) in 2, none
    alarms; kinds in fewer than min_scans clean scans and threat scans are left out."""
    from training.evaluate import false_alarms_by_content

    def scan(kinds, tools=None):
        return {"meta": {"clutter": [{"kind": k, "orientation": "flat"} for k in kinds], "tools": tools}}

    items = [scan(["vacuum_flask", "book"]), scan(["vacuum_flask", "book"], ["glue_gun"]), scan(["vacuum_flask"]),
             scan(["pipe"], ["glue_gun"]), scan(["pipe", "pipe", "pipe"])]
    threat = np.array([False, False, False, False, True])
    alarmed = np.array([True, False, True, False, True])
    rows = {r["kind"]: r for r in false_alarms_by_content(items, threat, alarmed, min_scans=2)}
    assert set(rows) == {"vacuum_flask", "book", "tool:glue_gun"}  # pipe: one clean scan only
    assert (rows["vacuum_flask"]["clean_scans"], rows["vacuum_flask"]["alarmed"]) == (3, 2)
    assert rows["vacuum_flask"]["pfa"] == pytest.approx(2 / 3, abs=1e-4)
    assert rows["vacuum_flask"]["vs_all_clean"] == pytest.approx((2 / 3) / 0.5, abs=0.01)
    assert rows["book"]["pfa"] == 0.5 and rows["tool:glue_gun"]["pfa"] == 0
    assert [r["kind"] for r in false_alarms_by_content(items, threat, alarmed, min_scans=2)][0] == "vacuum_flask"
    # ties (same Pfa, same number of scans) in name order, whatever order the scans met them in:
    # the report reads the same from run to run (a scan's kinds are a set, whose order follows the hash seed)
    tied = [scan(["torch"]), scan(["torch"]), scan(["hammer"]), scan(["hammer"])]
    no = np.zeros(4, bool)
    for order in (tied, tied[::-1]):
        assert [r["kind"] for r in false_alarms_by_content(order, no, no, min_scans=2)] == ["hammer", "torch"]


def test_threats_found_by_kind_orientation_and_concealment():
    """Object-level recall at the operating point with known answers: three revolvers (two found:
    one by a gun box, one by a frame box, any class counts), one of them lying end-on and missed;
    three loose-cartridge heaps, only one found, another seen only below its class threshold and
    one hit by a box that overlaps too little; groups of fewer than min_objects left out; rows in
    class order, least often found first within a class."""
    from training.evaluate import threats_found_by

    def obj(label, kind, box, orientation="flat", concealment="none"):
        return {"label": label, "kind": kind, "box": box, "orientation": orientation, "concealment": concealment}

    theta = np.array([0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3])
    row = lambda box, score, cls: [*box, score, cls]  # noqa: E731
    items = [
        {"meta": {"objects": [obj("gun", "revolver", [0, 0, 100, 50]), obj("ammunition", "loose_cartridges", [200, 200, 240, 230])]}},
        {"meta": {"objects": [obj("gun", "revolver", [10, 10, 110, 60]), obj("ammunition", "loose_cartridges", [300, 0, 340, 40], concealment="wrapped")]}},
        {"meta": {"objects": [obj("gun", "revolver", [0, 0, 40, 40], orientation="end"), obj("ammunition", "loose_cartridges", [50, 50, 90, 90])]}},
        {"meta": {"objects": [obj("magazine", "pistol_magazine", [0, 0, 20, 60])]}},
        {"meta": {}},  # an imported scan without a manifest: nothing to count
    ]
    preds = [np.array([row([2, 1, 100, 50], 0.9, 0), row([200, 200, 240, 230], 0.8, 6)], np.float32),
             np.array([row([10, 10, 110, 60], 0.5, 3), row([300, 0, 340, 40], 0.2, 6)], np.float32),  # frame box finds the revolver
             np.array([row([50, 50, 70, 70], 0.9, 6)], np.float32),  # IoU 0.25 with the heap: not found
             np.zeros((0, 6), np.float32), np.array([row([0, 0, 5, 5], 0.9, 0)], np.float32)]
    names = ["gun", "barrel", "slide", "frame", "magazine", "printed_part", "ammunition"]
    r = threats_found_by(items, preds, theta, names, min_objects=2)
    kind = {x["kind"]: x for x in r["kind"]}
    assert set(kind) == {"revolver", "loose_cartridges"}  # one magazine: below min_objects
    assert (kind["revolver"]["found"], kind["revolver"]["objects"]) == (2, 3)
    assert (kind["loose_cartridges"]["found"], kind["loose_cartridges"]["objects"]) == (1, 3)
    assert [x["kind"] for x in r["kind"]] == ["revolver", "loose_cartridges"]  # in class order
    lo, hi = kind["revolver"]["recall_ci95"]
    assert lo < 2 / 3 < hi and kind["revolver"]["recall"] == pytest.approx(2 / 3, abs=1e-4)
    orient = {(x["class"], x["orientation"]): x for x in r["orientation"]}
    assert orient[("gun", "flat")]["recall"] == 1.0 and ("gun", "end") not in orient  # one end-on gun only
    conceal = {(x["class"], x["concealment"]): x for x in r["concealment"]}
    assert conceal[("ammunition", "none")]["found"] == 1 and conceal[("ammunition", "none")]["objects"] == 2
    assert threats_found_by([{"meta": {}}], [np.zeros((0, 6), np.float32)], theta) == {}


def test_hidden_threat_strata_from_visibility():
    """Threat scans whose every threat is hidden (visibility < 0.1) form their own stratum; a
    scan with one visible threat is visible; clean scans are in neither; older manifests
    without visibility get neither stratum."""
    from training.evaluate import strata

    def item(*vis, **kw):
        return {"meta": {"n_threats": len(vis), "objects": [{"visibility": v} for v in vis], **kw}}

    items = [item(0.02), item(0.05, 0.8), item(), item(0.0, 0.09), item(1.0)]
    s = strata(items)
    assert s["visibility=hidden"].tolist() == [True, False, False, True, False]
    assert s["visibility=visible"].tolist() == [False, True, False, False, True]
    old = strata([{"meta": {"n_threats": 1, "objects": [{"occlusion": 0.9}]}}])
    assert "visibility=hidden" not in old and "render=colour" in old


def test_clutter_strata_split_scans_by_items_packed():
    """Every scan of a manifest that counts its clutter falls in exactly one fullness band, at
    the bands' edges as named; a manifest without the counts gets no clutter strata."""
    from training.evaluate import strata

    counts = [0, 9, 10, 24, 25, 80]
    s = strata([{"meta": {"n_threats": 0, "n_clutter": n}} for n in counts])
    assert s["clutter=0-9"].tolist() == [True, True, False, False, False, False]
    assert s["clutter=10-24"].tolist() == [False, False, True, True, False, False]
    assert s["clutter=25+"].tolist() == [False, False, False, False, True, True]
    assert (s["clutter=0-9"].astype(int) + s["clutter=10-24"] + s["clutter=25+"]).tolist() == [1] * 6
    partial = strata([{"meta": {"n_threats": 0, "n_clutter": 3}}, {"meta": {"n_threats": 0}}])
    assert not any(k.startswith("clutter=") for k in partial)


def test_map50_of_reweighted_scans_is_map50_of_those_scans_repeated():
    """The image bootstrap behind mAP50's interval: weights 1 give detection_metrics' mAP50; a scan of
    weight 2 counts as that scan sent twice; weight 0 as not sent."""
    rng = np.random.default_rng(3)
    preds, gts = [], []
    for _ in range(12):
        g, p = [], []
        for _ in range(int(rng.integers(0, 3))):
            c, (x, y) = int(rng.integers(0, 3)), rng.uniform(0, 300, 2)
            g.append([c, x, y, x + 40, y + 40])
            if rng.random() < 0.7:
                p.append([x + rng.normal(0, 4), y, x + 40, y + 40, rng.random(), c])
        for _ in range(int(rng.integers(0, 3))):
            x, y = rng.uniform(0, 300, 2)
            p.append([x, y, x + 25, y + 25, rng.random() * 0.6, int(rng.integers(0, 3))])
        preds.append(np.array(p, np.float64).reshape(-1, 6))
        gts.append(np.array(g, np.float64).reshape(-1, 5))
    names = ["a", "b", "c"]
    w = np.ones((3, 12))
    w[1, 4], w[2, 7] = 2, 0
    got = M.map50_resampled(preds, gts, 3, w)
    assert got[0] == pytest.approx(M.detection_metrics(preds, gts, names)["map50"], abs=1e-4)
    twice = preds + [preds[4]], gts + [gts[4]]
    assert got[1] == pytest.approx(M.detection_metrics(*twice, names)["map50"], abs=1e-4)
    without = [p for i, p in enumerate(preds) if i != 7], [g for i, g in enumerate(gts) if i != 7]
    assert got[2] == pytest.approx(M.detection_metrics(*without, names)["map50"], abs=1e-4)
    b = M.bootstrap_weights(12, 5, seed=1)
    assert b.shape == (5, 12) and (b.sum(1) == 12).all()
    # scans without a labelled object have no mAP50: NaN (no warning), and no interval rather than a NaN one
    empty = [np.zeros((0, 5))] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        none = M.map50_resampled(preds[:3], empty, 3, np.ones((2, 3)))
    assert np.isnan(none).all() and M.interval95(none) is None and M.interval95(np.array([0.1, np.nan, 0.3])) is not None
