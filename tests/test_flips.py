"""Mirrored readings (test-time flips): each crop is also read mirrored, the readings are mirrored
back and fused, a thing's score averaged over the readings. The fusion on hand-made readings with
known answers, the engine on a real scan and its mirror image, the calibration that records how
many readings its thresholds hold for, and the service's XFD_FLIPS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import httpx
import numpy as np
import pytest

from detector.engine import Engine, ModelError, fuse_flips
from tests.conftest import REPO, Server, make_key, png_bytes


def rows(*r):
    return np.array(r, np.float32).reshape(-1, 6)


def test_fusion_of_mirrored_readings_on_hand_made_boxes():
    S = 100  # a 100 x 100 crop
    plain = rows([10, 20, 30, 40, 0.8, 0], [12, 21, 31, 41, 0.3, 0])  # the second: the same thing, weaker
    lr = rows([70, 20, 90, 40, 0.6, 0], [0, 0, 10, 10, 0.4, 1])  # read mirrored left-right: x -> 100 - x
    ud = rows([10, 60, 30, 80, 0.4, 0])  # mirrored top-bottom: y -> 100 - y
    both = rows()  # the fourth reading saw nothing
    f = fuse_flips([plain, lr, ud, both], S)
    f = f[np.argsort(-f[:, 4])]
    assert f.shape == (2, 6)
    gun, other = f
    # one object: its three readings' best boxes, each mirrored back to (10, 20, 30, 40); score (0.8 + 0.6 + 0.4) / 4
    assert np.allclose(gun[:4], [10, 20, 30, 40], atol=1e-4) and gun[4] == pytest.approx(0.45) and gun[5] == 0
    # seen in one reading of four: a quarter of its score, at its mirrored-back place
    assert np.allclose(other[:4], [90, 0, 100, 10]) and other[4] == pytest.approx(0.1) and other[5] == 1
    # two readings: the score-weighted mean box; another class or a box that does not overlap stays apart
    f2 = fuse_flips([rows([10, 10, 30, 30, 0.9, 2]), rows([68, 10, 88, 30, 0.3, 2], [70, 10, 90, 30, 0.5, 3])], S)
    f2 = f2[np.argsort(-f2[:, 4])]
    assert len(f2) == 2
    assert np.allclose(f2[0], [10.5, 10, 30.5, 30, 0.6, 2]) and np.allclose(f2[1], [10, 10, 30, 30, 0.25, 3])
    assert fuse_flips([rows(), rows()], S).shape == (0, 6)


@pytest.fixture(scope="module")
def engine4(model_dir):
    return Engine(model_dir, concurrency=1, flips=4)


def test_four_readings_answer_a_mirrored_scan_with_the_mirrored_boxes(engine4, scans):
    """The four readings of a scan and of its mirror image are the same four images, so the fused
    answer is the same, mirrored; and the easy gun is still found."""
    s = scans["threat"][0]
    img = s.image
    h, w = img.shape[:2]
    # mirrored along its longer side: the letterbox then pads nothing on that axis, and the model
    # input of the mirror image is exactly the mirror image of the model input
    lr = w >= h
    mirrored = np.ascontiguousarray(img[:, ::-1] if lr else img[::-1])
    a, b = engine4.detect(img, tile="off", conf=0.1), engine4.detect(mirrored, tile="off", conf=0.1)
    assert len(a.detections) == len(b.detections) > 0
    for da in a.detections:
        x1, y1, x2, y2 = da.box.x1, da.box.y1, da.box.x2, da.box.y2
        back = (w - x2, y1, w - x1, y2) if lr else (x1, h - y2, x2, h - y1)
        match = [db for db in b.detections if db.label == da.label
                 and np.allclose([db.box.x1, db.box.y1, db.box.x2, db.box.y2], back, atol=1.5)]
        assert match and abs(match[0].confidence - da.confidence) < 0.02, (da, b.detections)
    gun = next(o for o in s.boxes if o["label"] == "gun")
    gx1, gy1, gx2, gy2 = gun["box"]

    def iou(d):
        ix = max(0.0, min(d.box.x2, gx2) - max(d.box.x1, gx1))
        iy = max(0.0, min(d.box.y2, gy2) - max(d.box.y1, gy1))
        inter = ix * iy
        return inter / ((d.box.x2 - d.box.x1) * (d.box.y2 - d.box.y1) + (gx2 - gx1) * (gy2 - gy1) - inter)

    assert any(d.label == "gun" and iou(d) >= 0.5 for d in a.detections)
    assert a.extra["views"] == 1 and a.backend == engine4.backend


def test_calibration_records_its_readings_and_the_engine_follows_them(tmp_path, model_dir):
    from detector.synth.dataset import write_dataset
    from detector.synth.scene import SceneConfig
    from training.evaluate import evaluate, store_thresholds

    write_dataset(tmp_path / "d", 12, seed=49, split="val=1", workers=1, cfg=SceneConfig(),
                  coco=False, sheet=False, progress=lambda *a: None)
    m = tmp_path / "m"
    shutil.copytree(model_dir, m)
    shipped = Engine(m, concurrency=1, warmup=False)  # as the shipped thresholds were calibrated
    meta0 = json.loads((m / "model.json").read_text())
    cal0 = (meta0.get("backend_calibration") or {}).get(shipped.backend) or meta0["calibration"]
    assert shipped.flips == cal0.get("flips", 1)
    rep = evaluate(Engine(m, concurrency=1, flips=2), str(tmp_path / "d" / "data.yaml"), "val", tmp_path / "r",
                   calibrate=True, target_pfa=0.2, min_gain=0, plots_too=False)
    assert rep["flips"] == 2
    store_thresholds(str(m), rep)
    meta = json.loads((m / "model.json").read_text())
    cal = meta.get("backend_calibration", {}).get(rep["backend"]) or meta["calibration"]
    assert cal["flips"] == 2 and cal["precision"] == rep["precision"] == "f32"  # what the scores were computed in
    e = Engine(m, backend=rep["backend"], concurrency=1, warmup=False)
    assert e.flips == 2 and e.info.thresholds == {k: float(v) for k, v in rep["thresholds"].items()}
    assert Engine(m, backend=rep["backend"], concurrency=1, warmup=False, flips=1).flips == 1  # a caller may say otherwise
    with pytest.raises(ModelError, match="flips must be one of 1, 2, 4"):
        Engine(m, concurrency=1, warmup=False, flips=3)


def test_service_reads_as_many_times_as_it_is_told(tmp_path, model_dir, scans):
    r = subprocess.run([sys.executable, "-m", "detector.cli", "serve", "--model", str(model_dir), "--data-dir", str(tmp_path / "bad")],
                       capture_output=True, text=True, cwd=REPO, timeout=120, env={**os.environ, "XFD_FLIPS": "3"})
    assert r.returncode == 2 and "XFD_FLIPS" in r.stderr and "1, 2 or 4" in r.stderr
    r = subprocess.run([sys.executable, "-m", "detector.cli", "serve", "--model", str(model_dir), "--data-dir", str(tmp_path / "bad")],
                       capture_output=True, text=True, cwd=REPO, timeout=120, env={**os.environ, "XFD_OV_PRECISION": "fp64"})
    assert r.returncode == 2 and "XFD_OV_PRECISION" in r.stderr and "f32, bf16, f16" in r.stderr
    r = subprocess.run([sys.executable, "-m", "detector.cli", "eval", "--model", str(model_dir), "--data", "x.yaml",
                        "--out", str(tmp_path / "r"), "--flips", "3"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 2 and "--flips" in r.stderr
    d = tmp_path / "site"
    key = make_key(d, "integrator")
    srv = Server(d, model_dir, env={"XFD_FLIPS": "2"}).start()
    try:
        ready = httpx.get(srv.url + "/readyz", timeout=30).json()
        assert ready["flips"] == 2 and ready["precision"] == "f32"
        s = scans["threat"][0]
        j = httpx.post(srv.url + "/v1/detect", headers={"Authorization": f"Bearer {key}", "Content-Type": "image/png"},
                       content=png_bytes(s.image), timeout=60).json()
        ref = Engine(model_dir, concurrency=1, flips=2).detect(s.image)
        assert [d["label"] for d in j["detections"]] == [d.label for d in ref.detections]
        assert [d["confidence"] for d in j["detections"]] == pytest.approx([d.confidence for d in ref.detections], abs=2e-3)
        assert 'flips="2"' in httpx.get(srv.url + "/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30).text
    finally:
        srv.stop()
