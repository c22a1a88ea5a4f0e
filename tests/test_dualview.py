"""Dual-view scanners: the simulator's side view (xfd synth --side-view) and parcel-level
screening over views (xfd eval)."""

import json

import numpy as np
import pytest

from detector.engine import Engine
from detector.synth import side_view
from detector.synth.dataset import write_dataset
from detector.synth.scene import SceneConfig, simulate
from detector.synth.shapes import orientation_rotation
from training import metrics as M
from training.evaluate import evaluate

from .test_synth import _assert_boxes_tight

BUSY = dict(p_soft=0.6, p_tools=0.4, p_fan=0.4, p_display=0.3)


def test_side_view_leaves_the_top_view_byte_identical():
    for i in range(8):
        plain = simulate(41, i, SceneConfig(**BUSY))
        both = simulate(41, i, SceneConfig(**BUSY, side_view=True))
        assert plain.side is None and both.side is not None
        assert np.array_equal(plain.image, both.image) and plain.boxes == both.boxes
        assert both.meta["view"] == "top" and both.side.meta["view"] == "side"
        # same detector line along the belt: same columns; its own height (the tunnel's)
        assert both.side.image.shape[1] == both.image.shape[1]
        assert both.side.image.ndim == both.image.ndim  # same display: grey stays grey


def test_side_view_holds_the_same_threats_with_their_mass_and_tight_labels():
    """Each threat is replayed, not redrawn: its own attenuation summed over the pixels (its
    mass times the attenuation coefficient, per pixel area) is the same seen from below and from
    the side, up to the magnification (1-1.15) the top view draws and the side view does not;
    and each side label is the tight box of that threat's side projection."""
    pairs = 0
    for i in range(30):
        s = simulate(42, i, SceneConfig(p_soft=0.6, p_tools=0.4, p_display=0.3, side_view=True), keep_raw=True)
        top, side = s.extras["threat_maps"], s.side.extras["threat_maps"]
        assert len(side) == len(s.side.boxes)
        _assert_boxes_tight(s.side)
        if len(top) != len(side):  # a threat outside one view's frame: not comparable one to one
            continue
        for (a, _, _), (b, _, _) in zip(top, side, strict=True):
            assert 1 / 1.15 - 0.03 <= float(b.sum()) / float(a.sum()) <= 1.03
            pairs += 1
        assert [b["label"] for b in s.boxes] == [b["label"] for b in s.side.boxes]
    assert pairs >= 8


def test_poses_seen_from_the_side():
    """A thing lying flat is seen from the side on its edge or end, never flat; one standing on
    its end is never end-on from the side."""
    rng = np.random.default_rng(3)
    for _ in range(200):
        assert side_view.beam_orientation(orientation_rotation(rng, "flat"), 2) == "flat"
        assert side_view.beam_orientation(orientation_rotation(rng, "flat"), 1) != "flat"
        assert side_view.beam_orientation(orientation_rotation(rng, "end"), 1) != "end"
    # the scene turned for the side view is a proper rotation: it maps height to image rows
    assert np.allclose(side_view.TO_SIDE @ side_view.TO_SIDE.T, np.eye(3)) and np.linalg.det(side_view.TO_SIDE) == 1
    assert side_view.TO_SIDE @ np.array([0, 0, 1.0]) == pytest.approx([0, -1, 0])  # up on the belt = up the image


def test_side_view_dataset_pairs_views_by_parcel(tmp_path):
    m = write_dataset(tmp_path / "d", 6, seed=43, split="train=0.5,test=0.5", workers=1,
                      cfg=SceneConfig(side_view=True), coco=False, sheet=False, progress=lambda *a: None)
    assert m["counts"]["parcels"] == {"train": 3, "test": 3} and m["counts"]["scans"] == {"train": 6, "test": 6}
    recs = json.loads((tmp_path / "d" / "manifest.json").read_text())["scans"]
    assert len(recs) == 12
    for top, side in zip(recs[0::2], recs[1::2], strict=True):
        assert top["parcel"] == side["parcel"] and (top["view"], side["view"]) == ("top", "side")
        assert top["split"] == side["split"]  # never one view in training and the other in test
        assert side["file"] == top["file"].replace(".png", "_side.png")
        assert (tmp_path / "d" / side["file"]).is_file()
        label = (tmp_path / "d" / side["file"].replace("images/", "labels/").replace(".png", ".txt")).read_text().split("\n")
        assert len([x for x in label if x]) == len(side["objects"])


def test_parcel_tables_and_screening_known_answers():
    # four images, two parcels of two views each; one class
    any_max = np.array([[0.9], [0.1], [0.0], [0.6]], np.float32)
    hit_max = np.array([[0.0], [0.1], [0.0], [0.0]], np.float32)  # parcel A's threat only weakly found, in view 2
    threat = np.array([True, True, False, False])
    groups = [np.array([0, 1]), np.array([2, 3])]
    pa, ph, pt = M.parcel_tables(any_max, hit_max, threat, groups)
    assert pa[:, 0].tolist() == pytest.approx([0.9, 0.6]) and ph[:, 0].tolist() == pytest.approx([0.1, 0.0])
    assert pt.tolist() == [True, False]
    s = M.screening(pa, ph, pt, np.array([0.05]))
    assert (s["pd"], s["pfa"]) == (1.0, 1.0)  # caught in view 2; parcel B's second view alarms
    s = M.screening(pa, ph, pt, np.array([0.5]))
    assert (s["pd"], s["pfa"]) == (0.0, 1.0)  # the alarm on A lies off its threat: not a detection
    assert s["pd_at_pfa_0.05"] == 0.0 and s["pd_ci95"] == [0.0, 0.975]


def test_eval_scores_parcels_over_views_with_the_real_model(tmp_path, model_dir):
    write_dataset(tmp_path / "d", 8, seed=44, split="test=1", workers=1, cfg=SceneConfig(side_view=True, p_threat=0.8),
                  coco=False, sheet=False, progress=lambda *a: None)
    eng = Engine(model_dir, concurrency=1)
    rep = evaluate(eng, str(tmp_path / "d" / "data.yaml"), "test", tmp_path / "r", plots_too=False)
    assert rep["scans"] == 16
    pc = rep["parcels"]
    assert pc["parcels"] == 8 and pc["views"] == ["side", "top"]
    # the parcel numbers follow from the per-image ones: a parcel is detected when a view is
    by_parcel: dict[str, list[dict]] = {}
    for s in rep["per_scan"]:
        name = s["file"].rsplit("/", 1)[-1].replace("_side", "").replace(".png", "")
        by_parcel.setdefault(name, []).append(s)
    threat = [p for p in by_parcel.values() if any(v["threat"] for v in p)]
    clean = [p for p in by_parcel.values() if not any(v["threat"] for v in p)]
    assert pc["threat_parcels"] == len(threat) > 0
    assert pc["all_views"]["pd"] == pytest.approx(np.mean([any(v["detected"] for v in p) for p in threat]), abs=1e-4)
    if clean:
        assert pc["all_views"]["pfa"] == pytest.approx(np.mean([any(v["alarm"] for v in p) for p in clean]), abs=1e-4)
    for v in ("top", "side"):
        alone = pc["each_view_alone"][v]
        assert alone["pd"] <= pc["all_views"]["pd"] + 1e-9 and alone["pfa"] <= pc["all_views"]["pfa"] + 1e-9
        assert rep["strata"][f"view={v}"]["scans"] == 8
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Parcels" in md and "| top alone |" in md and "| side alone |" in md
    lo, hi = rep["map50_ci95"]  # what mAP50 these few scans can tell apart
    assert 0 <= lo <= hi <= 1 and f"{rep['map50']:.3f} (95% CI" in md
    # each scan's scores (what xfd pool --against resamples) agree with its flags at the thresholds and the curve
    th = min(rep["thresholds"].values())
    for s in rep["per_scan"]:
        assert 0 <= s["hit_score"] <= s["alarm_score"] <= 1
        assert (s["hit_score"] >= th) >= s["detected"] and (s["alarm_score"] >= th) >= s["alarm"]  # flag => score
    ts, cpd = rep["pd_pfa_curve"]["thresholds"], rep["pd_pfa_curve"]["pd"]
    hits = [s["hit_score"] for s in rep["per_scan"] if s["threat"]]
    for t, v in zip(ts[::20], cpd[::20], strict=True):
        assert v == pytest.approx(np.mean([h >= t and h > 0 for h in hits]), abs=1e-9)


def _H(key):
    return {"Authorization": f"Bearer {key}"}


def test_views_of_a_parcel_over_http(server):
    """A dual-view scanner sends each view with the parcel's id: each answer carries the parcel's
    verdict so far, and /v1/parcels/{id} gives the parcel over its views; operators review views."""
    import httpx

    from .conftest import png_bytes

    s = simulate(45, 3, SceneConfig(side_view=True, p_threat=1.0))
    url, ik, ok = server.url, server.keys["integrator"], server.keys["operator"]
    r1 = httpx.post(url + "/v1/detect", headers=_H(ik), timeout=60,
                    files={"image": ("top.png", png_bytes(s.image), "image/png")}, data={"parcel": "PX-1", "view": "top"})
    assert r1.status_code == 200, r1.text
    j1 = r1.json()
    assert (j1["parcel"], j1["view"], j1["parcel_views"], j1["parcel_verdict"]) == ("PX-1", "top", 1, j1["verdict"])
    r2 = httpx.post(url + "/v1/detect?parcel=PX-1&view=side", headers={**_H(ik), "Content-Type": "image/png"},
                    content=png_bytes(s.side.image), timeout=60)
    j2 = r2.json()
    either = "alarm" if "alarm" in (j1["verdict"], j2["verdict"]) else "clear"
    assert (j2["view"], j2["parcel_views"], j2["parcel_verdict"]) == ("side", 2, either)
    # another parcel's view does not count towards this one
    httpx.post(url + "/v1/detect?parcel=PX-2&view=top", headers={**_H(ik), "Content-Type": "image/png"},
               content=png_bytes(s.image), timeout=60).raise_for_status()

    for key in (ik, ok):  # integrators and operators may read a parcel
        p = httpx.get(url + "/v1/parcels/PX-1", headers=_H(key)).json()
        assert p["parcel"] == "PX-1" and p["verdict"] == either and p["review"] == "pending"
        assert [(v["scan_id"], v["view"]) for v in p["views"]] == [(j1["scan_id"], "top"), (j2["scan_id"], "side")]
    listed = httpx.get(url + "/v1/scans?parcel=PX-1", headers=_H(ok)).json()
    assert listed["total"] == 2 and {x["view"] for x in listed["items"]} == {"top", "side"}
    assert httpx.get(url + f"/v1/scans/{j2['scan_id']}", headers=_H(ok)).json()["parcel"] == "PX-1"

    r = httpx.post(url + f"/v1/scans/{j2['scan_id']}/review", headers=_H(ok), json={"decision": "confirmed"})
    assert r.status_code == 200
    assert httpx.get(url + "/v1/parcels/PX-1", headers=_H(ok)).json()["review"] == "confirmed"

    r = httpx.get(url + "/v1/parcels/NOPE-9", headers=_H(ok))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    # a bad parcel or view id is refused before anything is analysed or stored
    before = httpx.get(url + "/v1/scans", headers=_H(ok)).json()["total"]
    for params, form in ((None, {"parcel": "a b"}), (None, {"view": "x" * 33}), ({"parcel": "p" * 129}, None)):
        r = httpx.post(url + "/v1/detect", headers=_H(ik), params=params, data=form, timeout=60,
                       files={"image": ("top.png", png_bytes(s.image), "image/png")})
        assert r.status_code == 422 and r.json()["error"]["code"] in ("invalid_request", "validation_error"), r.text
    assert httpx.get(url + "/v1/scans", headers=_H(ok)).json()["total"] == before


def test_a_database_from_before_parcels_keeps_its_scans(tmp_path):
    """A service upgraded in place opens its old database: the parcel and view columns are added,
    the scans already there keep everything and read as no parcel."""
    import sqlite3

    from serve.store import Store

    old = tmp_path / "xfd.sqlite3"
    with sqlite3.connect(old) as c:
        c.executescript("""CREATE TABLE scans (id TEXT PRIMARY KEY, created REAL NOT NULL, lane TEXT, verdict TEXT NOT NULL,
            reasons TEXT NOT NULL, detections TEXT NOT NULL, width INTEGER, height INTEGER, model_name TEXT,
            model_version TEXT, model_sha256 TEXT, image_path TEXT NOT NULL, image_sha256 TEXT, content_type TEXT,
            timing TEXT, review_state TEXT NOT NULL DEFAULT 'pending', review_note TEXT, review_boxes TEXT,
            reviewed_at REAL, reviewed_by TEXT);""")
        c.execute("INSERT INTO scans(id,created,lane,verdict,reasons,detections,width,height,image_path) "
                  "VALUES('old-1', 1.0, 'l1', 'alarm', '[\"assembled firearm\"]', '[]', 10, 20, '/x.png')")
    st = Store(tmp_path)
    rec = st.get_scan("old-1")
    assert rec["lane"] == "l1" and rec["verdict"] == "alarm" and rec["parcel"] is None and rec["view"] is None
    assert st.list_scans(parcel="anything")[1] == 0 and st.list_scans()[1] == 1


def test_reviewed_views_import_with_their_parcel_in_one_split(tmp_path):
    """Reviewed views go back into training with their parcel (so xfd eval and --calibrate
    score parcels), and a parcel's views never straddle train and test."""
    import time

    from serve.store import Store
    from training.importers import import_dataset

    from .test_import import _img

    st = Store(tmp_path / "svc")
    kid, _ = st.create_key("operator")
    for k in range(12):
        for view in ("top", "side"):
            sid = st.new_id()
            path = st.save_image(sid, _img(tmp_path / f"{k}{view}.png", 10 * k + (view == "side")).read_bytes(), ".png")
            st.insert_scan({"scan_id": sid, "created": time.time(), "lane": "l1", "verdict": "clear", "reasons": [],
                            "detections": [], "image": {"width": 320, "height": 240}, "parcel": f"P{k}", "view": view,
                            "model": {"name": "m", "version": "1", "sha256": "x"}, "image_path": str(path)})
            st.review(sid, "false_alarm", None, None, kid)
    import_dataset("reviews", None, tmp_path / "out", data_dir=str(tmp_path / "svc"))
    scans = json.loads((tmp_path / "out" / "manifest.json").read_text())["scans"]
    assert len(scans) == 24
    split_of: dict[str, set] = {}
    for s in scans:
        split_of.setdefault(s["parcel"], set()).add(s["split"])
    assert len(split_of) == 12 and all(len(v) == 1 for v in split_of.values())
    assert len({next(iter(v)) for v in split_of.values()}) > 1  # parcels still spread over the splits
    assert sorted(s["view"] for s in scans) == ["side"] * 12 + ["top"] * 12


def test_card_quotes_parcels_over_views_and_pools_fullness_once():
    from training import card

    view = {"pd": 0.2, "pfa": 0.03, "pd_ci95": [0.1, 0.3], "pfa_ci95": [0.0, 0.1], "pd_at_pfa_0.05": 0.25}
    dual = {"parcels": {"parcels": 300, "threat_parcels": 180, "views": ["side", "top"],
                        "all_views": {**view, "pd": 0.3, "pfa": 0.06}, "each_view_alone": {"side": view, "top": view},
                        "threat_parcels_caught_only_in": {"side": 7, "top": 20}}}
    lines = "\n".join(card.parcel_lines({"test": {"parcels": None}, "dualview": dual}))
    assert "| dualview | all views | 300 (180 threat) | 0.300 [0.10, 0.30] | 0.060 [0.00, 0.10] | 0.250 |" in lines
    assert "| dualview | side alone |" in lines and "| dualview | top alone |" in lines
    assert "side 7, top 20" in lines
    assert card.parcel_lines({"test": {}}) == []


def test_calibrating_on_views_of_parcels_targets_the_parcels_false_alarm_rate(tmp_path, model_dir):
    """--calibrate on a dual-view set: the target Pfa holds per parcel (over its views), and the
    model records that it was calibrated so."""
    import shutil

    write_dataset(tmp_path / "d", 10, seed=47, split="val=1", workers=1, cfg=SceneConfig(side_view=True),
                  coco=False, sheet=False, progress=lambda *a: None)
    m = tmp_path / "m"
    shutil.copytree(model_dir, m)
    rep = evaluate(Engine(m, concurrency=1), str(tmp_path / "d" / "data.yaml"), "val", tmp_path / "r", calibrate=True,
                   target_pfa=0.2, min_gain=0, plots_too=False)
    assert rep["calibrated_on"] == "parcels"
    assert rep["parcels"]["all_views"]["pfa"] <= 0.2 + 1e-9
    from training.evaluate import store_thresholds

    store_thresholds(str(m), rep)
    cal = json.loads((m / "model.json").read_text())
    cal = cal.get("backend_calibration", {}).get(rep["backend"]) or cal["calibration"]
    assert cal["per"] == "parcel" and cal["parcels"] == 10 and cal["scans"] == 20
    assert cal["pfa"] == rep["parcels"]["all_views"]["pfa"]


def test_dicos_views_of_one_scan_are_one_parcel(server):
    """DICOS files are the views of one scan of one object when they share a study: sent without
    a parcel id, they are grouped by their StudyInstanceUID."""
    import io

    import httpx
    import pydicom

    from .test_dicos import dx_rgb

    s = simulate(48, 2, SceneConfig(side_view=True))
    study = pydicom.uid.generate_uid()
    ids = []
    for img in (s.image, s.side.image):
        rgb = img if img.ndim == 3 else np.dstack([img] * 3)
        ds = pydicom.dcmread(io.BytesIO(dx_rgb(np.ascontiguousarray(rgb))))
        ds.StudyInstanceUID = study
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        r = httpx.post(server.url + "/v1/detect", headers={**_H(server.keys["integrator"]), "Content-Type": "application/dicom"},
                       content=buf.getvalue(), timeout=60)
        assert r.status_code == 200, r.text
        ids.append(r.json())
    assert [j["parcel"] for j in ids] == [study, study] and [j["parcel_views"] for j in ids] == [1, 2]
    p = httpx.get(server.url + f"/v1/parcels/{study}", headers=_H(server.keys["operator"])).json()
    assert [v["scan_id"] for v in p["views"]] == [j["scan_id"] for j in ids]
    # an explicit parcel id wins over the study
    r = httpx.post(server.url + "/v1/detect?parcel=MINE-1", headers={**_H(server.keys["integrator"]), "Content-Type": "application/dicom"},
                   content=buf.getvalue(), timeout=60)
    assert r.json()["parcel"] == "MINE-1"
