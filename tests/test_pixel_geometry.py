"""A scanner's declared pixel size: scans with non-square pixels (a belt speed or line rate off the
vendor's setting) or far finer or coarser pixels than the model trained on are analysed resampled to
square pixels of a trained size, and their boxes come back in the scan's own pixels: the library,
the CLI, the service (query and form fields, DICOS PixelSpacing) and bad values."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import httpx
import numpy as np
import pytest

from detector import dicos, imaging
from detector.engine import TRAINED_PIXEL_MM, Engine, pixel_geometry
from tests.conftest import REPO, Server, make_key, png_bytes
from tests.test_dicos import _dataset, _save


def H(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_pixel_geometry_and_parsing():
    assert pixel_geometry((1.0, 1.0)) is None and pixel_geometry((0.8, 0.81)) is None  # square, trained: as it comes
    fx, fy, t = pixel_geometry((1.0, 0.8))  # 1.0 mm between rows, 0.8 along the belt: rows resampled to 0.8
    assert (round(fx, 6), round(fy, 6), t) == (1.0, 1.25, 0.8)
    fx, fy, t = pixel_geometry((0.3, 0.3))  # a third of a mm: brought up to the finest trained size
    assert t == TRAINED_PIXEL_MM[0] and abs(fx - 0.5) < 1e-9 and abs(fy - 0.5) < 1e-9
    assert pixel_geometry((2.5, 2.5))[2] == TRAINED_PIXEL_MM[1]
    assert imaging.parse_pixel_mm("0.8") == (0.8, 0.8) and imaging.parse_pixel_mm(" 1.0, 0.8 ") == (1.0, 0.8)
    for bad, msg in (("abc", "not a number"), ("1,2,3", "one size"), ("0", "between"), ("11", "between"),
                     ("nan", "between"), ("", "not a number")):
        with pytest.raises(ValueError, match=msg):
            imaging.parse_pixel_mm(bad)


@pytest.fixture(scope="module")
def engine(model_dir):
    return Engine(model_dir, concurrency=1)


def stretched(scan, f: float) -> np.ndarray:
    h, w = scan.image.shape[:2]
    return cv2.resize(scan.image, (round(w * f), h), interpolation=cv2.INTER_LINEAR)


def test_engine_analyses_resampled_and_answers_in_the_scans_own_pixels(engine, scans):
    s = scans["threat"][0]
    mm = s.meta["mm_per_px"]
    img = stretched(s, 1.3)  # a belt running slow: 1.3 times the columns
    h, w = img.shape[:2]
    res = engine.detect(img, conf=0.05, pixel_mm=(mm, mm / 1.3))
    nw, nh = engine.analysis_size(w, h, (mm, mm / 1.3))
    assert (nw, nh) == (w, round(h * 1.3)) and res.extra["pixel_mm"]["resampled"]
    assert res.extra["pixel_mm"]["analysed_size"] == [nw, nh] and (res.width, res.height) == (w, h)
    assert "resample" in res.timing_ms
    # exactly the model's reading of the resampled scan, its boxes scaled back
    ref = engine.detect(cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR), conf=0.05)
    assert [d.label for d in res.detections] == [d.label for d in ref.detections] and res.detections
    for a, b in zip(res.detections, ref.detections, strict=True):
        assert a.confidence == b.confidence
        assert np.allclose([a.box.x1, a.box.y1, a.box.x2, a.box.y2],
                           [b.box.x1 * w / nw, b.box.y1 * h / nh, b.box.x2 * w / nw, b.box.y2 * h / nh], atol=1e-3)
        assert 0 <= a.box.x1 < a.box.x2 <= w and 0 <= a.box.y1 < a.box.y2 <= h
    # the gun it finds lies where the label is, stretched with the scan
    gun = next(b for b in s.boxes if b["label"] == "gun")
    gx1, gy1, gx2, gy2 = gun["box"][0] * 1.3, gun["box"][1], gun["box"][2] * 1.3, gun["box"][3]
    best = max((d for d in res.detections if d.label == "gun"), key=lambda d: d.confidence)
    ix = max(0.0, min(best.box.x2, gx2) - max(best.box.x1, gx1)) * max(0.0, min(best.box.y2, gy2) - max(best.box.y1, gy1))
    union = (best.box.x2 - best.box.x1) * (best.box.y2 - best.box.y1) + (gx2 - gx1) * (gy2 - gy1) - ix
    assert ix / union > 0.5
    # square pixels of a trained size: analysed as they come, and says so
    plain = engine.detect(s.image, conf=0.05, pixel_mm=(mm, mm))
    assert plain.extra["pixel_mm"]["resampled"] is False
    assert plain.to_dict()["detections"] == engine.detect(s.image, conf=0.05).to_dict()["detections"]
    assert "pixel_mm" not in engine.detect(s.image).to_dict()  # undeclared: nothing claimed


def test_dicos_pixel_spacing_is_read(engine, scans):
    s = scans["threat"][0]
    grey = cv2.cvtColor(stretched(s, 1.25), cv2.COLOR_RGB2GRAY)
    ds = _dataset(rows=grey.shape[0], cols=grey.shape[1])
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = grey.astype(np.uint8).tobytes()
    ds.PixelSpacing = [1.0, 0.8]
    data = _save(ds)
    img = imaging.decode(data)
    assert img.pixel_mm == (1.0, 0.8)
    res = engine.detect(img)
    assert res.extra["pixel_mm"]["declared"] == [1.0, 0.8] and res.extra["pixel_mm"]["analysed_size"][1] == round(grey.shape[0] * 1.25)
    assert engine.detect(img, pixel_mm=(1.0, 1.0)).extra["pixel_mm"]["resampled"] is False  # what is sent wins
    del ds.PixelSpacing
    ds.ImagerPixelSpacing = [0.9, 0.9]
    assert imaging.decode(_save(ds)).pixel_mm == (0.9, 0.9)
    del ds.ImagerPixelSpacing
    assert imaging.decode(_save(ds)).pixel_mm is None
    assert dicos.pixel_spacing({"PixelSpacing": ["x", "1"]}) is None


def test_service_pixel_mm_field(server, scans):
    s = scans["threat"][0]
    mm = s.meta["mm_per_px"]
    img = stretched(s, 1.3)
    key = H(server.keys["integrator"])
    url = server.url + "/v1/detect"
    r = httpx.post(url, params={"pixel_mm": f"{mm},{mm / 1.3}"}, headers={**key, "Content-Type": "image/png"},
                   content=png_bytes(img), timeout=60)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["pixel_mm"]["resampled"] and j["pixel_mm"]["analysed_size"] == [img.shape[1], round(img.shape[0] * 1.3)]
    assert j["image"] == {"width": img.shape[1], "height": img.shape[0]} and "resample" in j["timing_ms"]
    assert all(d["box"]["x2"] <= img.shape[1] and d["box"]["y2"] <= img.shape[0] for d in j["detections"])
    stored = httpx.get(server.url + f"/v1/scans/{j['scan_id']}", headers=H(server.keys["operator"]), timeout=10).json()
    assert stored["pixel_mm"] == j["pixel_mm"] and stored["detections"] == j["detections"]
    # as a multipart form field too
    r = httpx.post(url, headers=key, files={"image": ("s.png", png_bytes(s.image), "image/png")},
                   data={"pixel_mm": str(mm)}, timeout=60)
    assert r.status_code == 200 and r.json()["pixel_mm"]["resampled"] is False
    assert "pixel_mm" in httpx.get(server.url + "/openapi.json", timeout=10).text
    # bad values: 422 with the reason, nothing stored
    before = httpx.get(server.url + "/v1/scans", headers=H(server.keys["operator"]), timeout=10).json()["total"]
    for bad, msg in (("abc", "not a number"), ("1,2,3", "one size"), ("0", "between")):
        r = httpx.post(url, params={"pixel_mm": bad}, headers={**key, "Content-Type": "image/png"},
                       content=png_bytes(s.image), timeout=60)
        assert r.status_code == 422 and msg in r.text, r.text
    # pixels so coarse that the trained size would make the scan over the pixel limit: 413, nothing stored
    big = np.full((3000, 3000, 3), 255, np.uint8)
    r = httpx.post(url, params={"pixel_mm": "10"}, headers={**key, "Content-Type": "image/png"},
                   content=png_bytes(big), timeout=60)
    assert r.status_code == 413 and "over the limit" in r.json()["error"]["message"], r.text
    after = httpx.get(server.url + "/v1/scans", headers=H(server.keys["operator"]), timeout=10).json()["total"]
    assert after == before


def test_cli_pixel_mm(tmp_path, scans):
    s = scans["threat"][0]
    p = tmp_path / "s.png"
    p.write_bytes(png_bytes(stretched(s, 1.3)))
    mm = s.meta["mm_per_px"]
    r = subprocess.run([sys.executable, "-m", "detector.cli", "detect", str(p), "--json", "--pixel-mm", f"{mm},{mm / 1.3}"],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["pixel_mm"]["resampled"] is True
    r = subprocess.run([sys.executable, "-m", "detector.cli", "detect", str(p), "--pixel-mm", "1,x"],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 2 and "--pixel-mm" in r.stderr and "not a number" in r.stderr


def test_site_pixel_size_setting(tmp_path, model_dir, scans):
    """XFD_PIXEL_MM: the installation's scanner, for scans that do not say; a bad value stops the start."""
    r = subprocess.run([sys.executable, "-m", "detector.cli", "serve", "--model", str(model_dir), "--data-dir", str(tmp_path / "bad")],
                       capture_output=True, text=True, cwd=REPO, timeout=120, env={**os.environ, "XFD_PIXEL_MM": "1,0"})
    assert r.returncode == 2 and "XFD_PIXEL_MM" in r.stderr and "between" in r.stderr
    d = tmp_path / "site"
    key = make_key(d, "integrator")
    srv = Server(d, model_dir, env={"XFD_PIXEL_MM": "1.0,0.8"}).start()
    try:
        s = scans["threat"][0]
        url = srv.url + "/v1/detect"
        j = httpx.post(url, headers={**H(key), "Content-Type": "image/png"}, content=png_bytes(s.image), timeout=60).json()
        assert j["pixel_mm"]["declared"] == [1.0, 0.8] and j["pixel_mm"]["resampled"]
        j = httpx.post(url, params={"pixel_mm": "1"}, headers={**H(key), "Content-Type": "image/png"},
                       content=png_bytes(s.image), timeout=60).json()
        assert j["pixel_mm"]["declared"] == [1.0, 1.0] and not j["pixel_mm"]["resampled"]  # what is sent wins
    finally:
        srv.stop()
