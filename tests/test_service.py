"""The HTTP service, as integrators and consoles use it: a real server process over HTTP."""

from __future__ import annotations

import io
import struct
import threading
import zlib

import httpx
import numpy as np
import pytest
from PIL import Image

from .conftest import Server, keyed_server, make_key, png_bytes


def H(key):
    return {"Authorization": f"Bearer {key}"}


def _huge_png_header(w=100_000, h=100_000) -> bytes:
    """A valid PNG signature and IHDR declaring w x h, with a tiny (wrong) body."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    idat = zlib.compress(b"\x00" * 100)
    data += struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    return data + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


def test_health_without_key_and_docs(server):
    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"
    r = httpx.get(server.url + "/readyz")
    assert r.status_code == 200 and r.json()["model"]["sha256"]
    spec = httpx.get(server.url + "/openapi.json").json()
    for path in ("/v1/detect", "/v1/scans", "/v1/scans/{scan_id}", "/v1/scans/{scan_id}/image",
                 "/v1/scans/{scan_id}/review", "/v1/models", "/healthz", "/readyz", "/metrics"):
        assert path in spec["paths"], path
    assert httpx.get(server.url + "/docs").status_code == 200
    for typed in ("/", "/console"):  # what people type reaches the console
        r = httpx.get(server.url + typed)
        assert r.status_code in (302, 307) and r.headers["location"] == "/console/", typed
    assert httpx.get(server.url + "/console/").status_code == 200


def test_detect_contract_multipart_and_raw(server, scans):
    s = scans["threat"][0]
    data = png_bytes(s.image)
    r = httpx.post(server.url + "/v1/detect", headers=H(server.keys["integrator"]),
                   files={"image": ("scan.png", data, "image/png")}, data={"lane": "lane-7"}, timeout=60)
    assert r.status_code == 200, r.text
    j = r.json()
    assert set(j) >= {"scan_id", "model", "image", "verdict", "reasons", "detections", "timing_ms"}
    assert set(j["model"]) == {"name", "version", "sha256"}
    assert j["image"] == {"width": s.image.shape[1], "height": s.image.shape[0]}
    assert j["verdict"] in ("alarm", "clear") and j["lane"] == "lane-7"
    for d in j["detections"]:
        assert set(d) == {"label", "class_id", "confidence", "box", "alarm"}
        assert set(d["box"]) == {"x1", "y1", "x2", "y2"}
        assert 0 <= d["box"]["x1"] < d["box"]["x2"] <= j["image"]["width"]
    for k in ("decode", "inference", "store", "total"):
        assert j["timing_ms"][k] >= 0
    assert list(j["timing_ms"])[-1] == "total"  # decode to stored, the last stage
    assert j["timing_ms"]["total"] >= j["timing_ms"]["decode"] + j["timing_ms"]["inference"]
    # the same scan as a raw body
    r2 = httpx.post(server.url + "/v1/detect?lane=lane-7", headers={**H(server.keys["integrator"]), "Content-Type": "image/png"},
                    content=data, timeout=60)
    assert r2.status_code == 200
    assert [d["label"] for d in r2.json()["detections"]] == [d["label"] for d in j["detections"]]
    assert r2.json()["scan_id"] != j["scan_id"]


def test_service_answers_like_the_library_in_original_pixels(server, scans, model_dir):
    """Over HTTP the detections are the engine's, in the original image's pixels, for
    scans of several sizes (the letterbox is undone)."""
    from detector.engine import Engine

    eng = Engine(model_dir, concurrency=1)
    for s in scans["threat"][:3]:
        for scale in (1.0, 0.6):
            img = s.image if scale == 1.0 else np.ascontiguousarray(s.image[:: int(1 / scale) + 1, ::1])
            lib = eng.detect(img).to_dict()["detections"]
            j = httpx.post(server.url + "/v1/detect", headers={**H(server.keys["integrator"]), "Content-Type": "image/png"},
                           content=png_bytes(img), timeout=60).json()
            assert j["image"] == {"width": img.shape[1], "height": img.shape[0]}
            def match(d, others):
                return any(o["label"] == d["label"] and abs(o["confidence"] - d["confidence"]) < 0.01
                           and all(abs(o["box"][k] - d["box"][k]) < 1.5 for k in ("x1", "y1", "x2", "y2")) for o in others)

            for a in j["detections"]:
                if a["confidence"] >= 0.06:
                    assert match(a, lib), a
            for b in lib:
                if b["confidence"] >= 0.06:
                    assert match(b, j["detections"]), b
            for a in j["detections"]:
                assert a["box"]["x2"] <= img.shape[1] and a["box"]["y2"] <= img.shape[0]


def test_roles(server, scans):
    data = png_bytes(scans["clean"][0].image)
    ctype = {"Content-Type": "image/png"}
    assert httpx.post(server.url + "/v1/detect", content=data, headers=ctype).status_code == 401
    assert httpx.post(server.url + "/v1/detect", content=data, headers={**ctype, "Authorization": "Bearer nope"}).status_code == 401
    assert httpx.post(server.url + "/v1/detect", content=data, headers={**ctype, **H(server.keys["operator"])}).status_code == 403
    assert httpx.post(server.url + "/v1/detect", content=data, headers={**ctype, **H(server.keys["admin"])}, timeout=60).status_code == 200
    assert httpx.get(server.url + "/v1/scans", headers=H(server.keys["integrator"])).status_code == 403
    assert httpx.get(server.url + "/v1/scans", headers=H(server.keys["operator"])).status_code == 200
    assert httpx.get(server.url + "/v1/audit", headers=H(server.keys["operator"])).status_code == 403
    assert httpx.get(server.url + "/v1/audit", headers=H(server.keys["admin"])).status_code == 200
    assert httpx.get(server.url + "/v1/models", headers=H(server.keys["integrator"])).status_code == 200
    assert httpx.get(server.url + "/metrics").status_code == 401
    # raw-path tricks do not reach a protected route without a key
    for p in ("/healthz/../v1/scans", "//v1/scans", "/v1/scans/", "/V1/scans"):
        r = httpx.get(server.url + p)
        assert r.status_code in (401, 404), (p, r.status_code)


def test_error_statuses_are_json(server, scans):
    k = H(server.keys["integrator"])
    good = png_bytes(scans["clean"][0].image)
    cases = [
        ({"Content-Type": "image/png"}, good[: len(good) // 2], 400, "truncated"),
        ({"Content-Type": "image/png"}, b"", 400, "empty"),
        ({"Content-Type": "image/png"}, b"hello, this is text", 415, "unsupported_format"),
        ({"Content-Type": "text/plain"}, b"hello", 415, "unsupported_media_type"),
        ({"Content-Type": "image/png"}, _huge_png_header(), 413, "too_large"),
        # a thumbnail or a one-line strip holds no parcel: refused, never analysed into "clear"
        ({"Content-Type": "image/png"}, png_bytes(np.zeros((7, 7, 3), np.uint8)), 422, "too_small"),
        ({"Content-Type": "image/png"}, png_bytes(np.full((1, 4000, 3), 255, np.uint8)), 422, "too_small"),
        # X-ray source or detector off: a black scan shows nothing, so it is refused, never cleared
        ({"Content-Type": "image/png"}, png_bytes(np.zeros((480, 640, 3), np.uint8)), 422, "dark_scan"),
    ]
    for hdr, body, status, code in cases:
        r = httpx.post(server.url + "/v1/detect", headers={**k, **hdr}, content=body, timeout=60)
        assert r.status_code == status, (code, r.status_code, r.text)
        assert r.json()["error"]["code"] == code and r.json()["error"]["message"]
    # a refused dark scan leaves nothing behind: its image was being stored beside the analysis
    stored = sorted(p.name for p in server.data_dir.rglob("*.png"))
    r = httpx.post(server.url + "/v1/detect", headers={**k, "Content-Type": "image/png"},
                   content=png_bytes(np.zeros((480, 640, 3), np.uint8)), timeout=60)
    assert r.status_code == 422 and sorted(p.name for p in server.data_dir.rglob("*.png")) == stored
    # jpeg cut short
    buf = io.BytesIO()
    Image.fromarray(scans["clean"][0].image).save(buf, "JPEG")
    r = httpx.post(server.url + "/v1/detect", headers={**k, "Content-Type": "image/jpeg"}, content=buf.getvalue()[:3000])
    assert r.status_code == 400 and r.json()["error"]["code"] == "truncated"
    # multipart without the image field; bad lane; bad tile
    r = httpx.post(server.url + "/v1/detect", headers=k, files={"file": ("a.png", good, "image/png")})
    assert r.status_code == 422
    r = httpx.post(server.url + "/v1/detect?lane=bad%20lane!", headers={**k, "Content-Type": "image/png"}, content=good)
    assert r.status_code == 422
    r = httpx.post(server.url + "/v1/detect?tile=maybe", headers={**k, "Content-Type": "image/png"}, content=good)
    assert r.status_code == 422
    # one scan a request: a second image, or an image beside a raw pair, is refused rather than left unread;
    # a bad tile in the form is refused as in the query
    for files in ([("image", ("a.png", good, "image/png")), ("image", ("b.png", good, "image/png"))],
                  [("image", ("a.png", good, "image/png")), ("low", ("l.png", good, "image/png"))]):
        r = httpx.post(server.url + "/v1/detect", headers=k, files=files)
        assert r.status_code == 422 and "one scan a request" in r.json()["error"]["message"], r.text
    r = httpx.post(server.url + "/v1/detect", headers=k, files={"image": ("a.png", good, "image/png")}, data={"tile": "sideways"})
    assert r.status_code == 422 and "tile" in r.json()["error"]["message"]
    # listing: non-finite times, an offset past SQLite's integers and an overlong lane are 422s, not 500s
    o = H(server.keys["operator"])
    for q in ("since=nan", "until=inf", "offset=99999999999999999999", "lane=" + "x" * 65):
        r = httpx.get(server.url + "/v1/scans?" + q, headers=o)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", (q, r.text)
    o = H(server.keys["operator"])
    r = httpx.get(server.url + "/v1/scans/does-not-exist", headers=o)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert httpx.get(server.url + "/v1/scans/nope/image", headers=o).status_code == 404
    assert httpx.get(server.url + "/v1/nothing-here", headers=o).status_code == 404


def test_oversize_body_is_413(tmp_path, model_dir):
    d = tmp_path / "small"
    key = make_key(d, "integrator")
    srv = Server(d, model_dir, env={"XFD_MAX_BODY_MB": "1"}).start()
    try:
        r = httpx.post(srv.url + "/v1/detect", headers={**H(key), "Content-Type": "image/png"}, content=b"\x89PNG" + b"0" * 2_000_000)
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    finally:
        srv.stop()


def test_scans_list_get_image_overlay_and_review(server, scans):
    k, o = H(server.keys["integrator"]), H(server.keys["operator"])
    s = scans["threat"][1]
    data = png_bytes(s.image)
    j = httpx.post(server.url + "/v1/detect?lane=lane-9", headers={**k, "Content-Type": "image/png"}, content=data, timeout=60).json()
    sid = j["scan_id"]
    got = httpx.get(server.url + f"/v1/scans/{sid}", headers=o).json()
    assert got["verdict"] == j["verdict"] and got["review"]["state"] == "pending"
    img = httpx.get(server.url + f"/v1/scans/{sid}/image", headers=o)
    assert img.status_code == 200 and img.content == data
    ov = httpx.get(server.url + f"/v1/scans/{sid}/image?overlay=1", headers=o)
    assert ov.status_code == 200 and ov.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(ov.content)).size == (s.image.shape[1], s.image.shape[0])
    lst = httpx.get(server.url + "/v1/scans", params={"lane": "lane-9", "limit": 5}, headers=o).json()
    assert lst["items"][0]["scan_id"] == sid and all(i["lane"] == "lane-9" for i in lst["items"])
    # malformed reviews
    for body in ({"decision": "maybe"}, {"decision": "confirmed", "boxes": [{"label": "gun", "box": {"x1": 5, "y1": 5, "x2": 1, "y2": 9}}]},
                 {"decision": "confirmed", "boxes": [{"label": "spoon", "box": {"x1": 1, "y1": 1, "x2": 9, "y2": 9}}]},
                 {"decision": "confirmed", "boxes": [{"label": "gun", "box": {"x1": 1, "y1": 1, "x2": 99999, "y2": 9}}]}, {}):
        r = httpx.post(server.url + f"/v1/scans/{sid}/review", headers=o, json=body)
        assert r.status_code == 422, (body, r.text)
    r = httpx.post(server.url + f"/v1/scans/{sid}/review", headers=o, content=b"{not json", )
    assert r.status_code == 422
    # a NaN box would pass every bounds check (NaN compares false): JSON's NaN and Infinity are refused
    for bad in (b'{"decision": "confirmed", "boxes": [{"label": "gun", "box": {"x1": NaN, "y1": 1, "x2": 9, "y2": 9}}]}',
                b'{"decision": "confirmed", "boxes": [{"label": "gun", "box": {"x1": 1, "y1": 1, "x2": Infinity, "y2": 9}}]}'):
        r = httpx.post(server.url + f"/v1/scans/{sid}/review", headers={**o, "Content-Type": "application/json"}, content=bad)
        assert r.status_code == 422 and "finite" in r.json()["error"]["message"], r.text
    assert httpx.get(server.url + f"/v1/scans/{sid}", headers=o).json()["review"]["state"] == "pending"
    box = s.boxes[0]["box"]
    r = httpx.post(server.url + f"/v1/scans/{sid}/review", headers=o,
                   json={"decision": "confirmed", "note": "seen", "boxes": [{"label": s.boxes[0]["label"],
                         "box": {"x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3]}}]})
    assert r.status_code == 200 and r.json()["review"]["state"] == "confirmed"
    assert httpx.get(server.url + "/v1/scans", params={"review": "confirmed"}, headers=o).json()["total"] >= 1
    assert httpx.post(server.url + "/v1/scans/nope/review", headers=o, json={"decision": "confirmed"}).status_code == 404
    audit = httpx.get(server.url + "/v1/audit", headers=H(server.keys["admin"])).json()["items"]
    assert any(a["action"] == "scan.review" and a["target"] == sid for a in audit)


def test_models_and_metrics(server):
    m = httpx.get(server.url + "/v1/models", headers=H(server.keys["operator"])).json()["active"]
    assert m["classes"][0] == "gun" and set(m["thresholds"]) == set(m["classes"]) and m["sha256"]
    text = httpx.get(server.url + "/metrics", headers=H(server.keys["admin"])).text
    for name in ("xfd_requests_total", "xfd_stage_seconds_bucket", "xfd_verdicts_total", "xfd_queue_depth"):
        assert name in text


def test_the_shipped_model_reads_grey_scans_with_its_one_network(server, scans):
    """2026.12.01.20 has no grey network: /v1/models names one network reading every scan, and a grey scan
    is read by it ("main") at the model's thresholds."""
    o = H(server.keys["operator"])
    nets = httpx.get(server.url + "/v1/models", headers=o).json()["active"]["networks"]
    assert list(nets) == ["main"] and nets["main"]["reads"] == "every scan"
    colour = scans["threat"][0].image
    grey = np.repeat(colour.mean(2, keepdims=True).round().astype(np.uint8), 3, axis=2)
    j = httpx.post(server.url + "/v1/detect", headers={**H(server.keys["integrator"]), "Content-Type": "image/png"},
                   content=png_bytes(grey), timeout=60).json()
    assert j["network"] == "main" and j["detections"], j


@pytest.fixture(scope="module")
def routed_server(tmp_path_factory, routed_model_dir):
    srv = keyed_server(tmp_path_factory, "service-routed", routed_model_dir)
    yield srv
    srv.stop()


def test_grey_scans_are_read_by_the_grey_network_and_say_so(routed_server, scans):
    """A model with a grey network routes grey scans to it: the response, the stored scan, /v1/models
    and the metrics say which network read a scan, and its alarms are at that network's thresholds."""
    from detector.engine import Engine

    server = routed_server
    k, o = H(server.keys["integrator"]), H(server.keys["operator"])
    nets = httpx.get(server.url + "/v1/models", headers=o).json()["active"]["networks"]
    assert nets["main"]["reads"] == "colour scans" and nets["grey"]["name"].endswith("-grey")
    assert nets["grey"]["thresholds"] != nets["main"]["thresholds"]
    colour = scans["threat"][0].image
    grey = np.repeat(colour.mean(2, keepdims=True).round().astype(np.uint8), 3, axis=2)  # the scan shown in grey
    for img, want in ((colour, "main"), (grey, "grey")):
        j = httpx.post(server.url + "/v1/detect", headers={**k, "Content-Type": "image/png"}, content=png_bytes(img),
                       timeout=60).json()
        assert j["network"] == want and j["detections"], j
        th = nets[want]["thresholds"]  # (confidences are rounded to 4 places in the response)
        assert all(d["alarm"] == (d["confidence"] >= th[d["label"]]) or abs(d["confidence"] - th[d["label"]]) < 1e-4
                   for d in j["detections"])
        assert httpx.get(server.url + f"/v1/scans/{j['scan_id']}", headers=o).json()["network"] == want
    assert Engine(server.model / "grey", concurrency=1, warmup=False).info.thresholds == nets["grey"]["thresholds"]
    text = httpx.get(server.url + "/metrics", headers=H(server.keys["admin"])).text
    assert 'xfd_scans_by_network_total{network="grey"}' in text and 'xfd_scans_by_network_total{network="main"}' in text


def test_security_headers_and_no_cors(server):
    r = httpx.get(server.url + "/healthz", headers={"Origin": "http://evil.example"})
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert "access-control-allow-origin" not in r.headers


def test_concurrent_detects_all_answered(server, scans):
    k = {**H(server.keys["integrator"]), "Content-Type": "image/png"}
    data = png_bytes(scans["clean"][1].image)
    codes = []

    def one():
        codes.append(httpx.post(server.url + "/v1/detect", headers=k, content=data, timeout=120).status_code)

    ts = [threading.Thread(target=one) for _ in range(8)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert codes == [200] * 8


def test_queue_full_gives_503_with_retry_after(tmp_path, model_dir, scans):
    d = tmp_path / "q"
    key = make_key(d, "integrator")
    srv = Server(d, model_dir, env={"XFD_QUEUE": "1", "XFD_WORKERS": "1"}).start()
    try:
        big = np.tile(scans["threat"][0].image, (3, 3, 1))  # slower scan: tiled
        data = png_bytes(big)
        res = []

        def one():
            res.append(httpx.post(srv.url + "/v1/detect?tile=on", headers={**H(key), "Content-Type": "image/png"}, content=data, timeout=120))

        ts = [threading.Thread(target=one) for _ in range(6)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        codes = sorted(r.status_code for r in res)
        assert 200 in codes and 503 in codes, codes
        busy = next(r for r in res if r.status_code == 503)
        assert busy.headers["retry-after"] and busy.json()["error"]["code"] == "overloaded"
    finally:
        srv.stop()


def test_readiness_before_warmup_and_persistence_across_restart(tmp_path, model_dir, scans):
    d = tmp_path / "persist"
    k = make_key(d, "admin")
    srv = Server(d, model_dir, env={"XFD_WARMUP_DELAY": "3"}).start(wait_ready=False)
    try:
        r = httpx.get(srv.url + "/readyz")
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        r = httpx.post(srv.url + "/v1/detect", headers={**H(k), "Content-Type": "image/png"}, content=png_bytes(scans["clean"][0].image))
        assert r.status_code == 503 and "retry-after" in r.headers
        srv.stop()
        srv.start()
        ids = []
        for s in scans["threat"][:2]:
            ids.append(httpx.post(srv.url + "/v1/detect", headers={**H(k), "Content-Type": "image/png"}, content=png_bytes(s.image), timeout=60).json()["scan_id"])
        srv.stop(kill=True)  # crash: acknowledged scans must survive
        srv.start()
        for sid in ids:
            r = httpx.get(srv.url + f"/v1/scans/{sid}", headers=H(k))
            assert r.status_code == 200
            assert httpx.get(srv.url + f"/v1/scans/{sid}/image", headers=H(k)).status_code == 200
    finally:
        srv.stop()


def test_first_start_prints_admin_key_once(tmp_path, model_dir):
    d = tmp_path / "fresh"
    srv = Server(d, model_dir).start()
    try:
        log = srv.log.read_text()
        token = next(line.strip() for line in log.splitlines() if line.strip().startswith("xfd_"))
        assert httpx.get(srv.url + "/v1/audit", headers=H(token)).status_code == 200
        assert token not in (d / "xfd.sqlite3").read_bytes().decode("latin1")  # stored hashed
    finally:
        srv.stop()
    srv.start()
    try:
        assert srv.log.read_text().count("First start") == 1
    finally:
        srv.stop()


def test_missing_image_is_reported(server, scans):
    import sqlite3

    k, o = H(server.keys["integrator"]), H(server.keys["operator"])
    sid = httpx.post(server.url + "/v1/detect", headers={**k, "Content-Type": "image/png"}, content=png_bytes(scans["clean"][2].image), timeout=60).json()["scan_id"]
    con = sqlite3.connect(server.data_dir / "xfd.sqlite3")
    path = con.execute("SELECT image_path FROM scans WHERE id=?", (sid,)).fetchone()[0]
    con.close()
    import os

    os.remove(path)
    r = httpx.get(server.url + f"/v1/scans/{sid}/image", headers=o)
    assert r.status_code == 404 and r.json()["error"]["code"] == "image_missing"


@pytest.mark.parametrize("role", ["integrator", "operator", "admin"])
def test_keys_cli_list_and_revoke(tmp_path, role):
    import json
    import subprocess
    import sys

    key = make_key(tmp_path, role)
    assert key.startswith("xfd_")
    out = subprocess.run([sys.executable, "-m", "detector.cli", "keys", "list", "--data-dir", str(tmp_path)], capture_output=True, text=True)
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert rows[0]["role"] == role and "hash" not in rows[0]
    r = subprocess.run([sys.executable, "-m", "detector.cli", "keys", "revoke", rows[0]["id"], "--data-dir", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0
    from serve.store import Store

    assert Store(tmp_path).lookup_key(key) is None


def test_raw_dual_energy_pair_over_http(server, model_dir):
    """A scanner's raw 16-bit low/high pair as multipart `low` and `high`: analysed as the library
    analyses it (the simulator's physics palette), the rendered scan stored as the scan's image
    and the pair kept beside it byte for byte; bad pairs get clear errors and store nothing."""
    import cv2

    from detector import imaging
    from detector.engine import Engine
    from detector.synth.scene import SceneConfig, simulate
    from detector.xray import render

    s = next(x for x in (simulate(78, i, SceneConfig(p_jpeg=0.0), keep_raw=True) for i in range(40)) if x.boxes)
    low = cv2.imencode(".png", render.to_raw16(s.t_low))[1].tobytes()
    high = cv2.imencode(".png", render.to_raw16(s.t_high))[1].tobytes()
    ik, ok = H(server.keys["integrator"]), H(server.keys["operator"])
    r = httpx.post(server.url + "/v1/detect", headers=ik, data={"lane": "raw-1"}, timeout=60,
                   files={"low": ("low.png", low, "image/png"), "high": ("high.png", high, "image/png")})
    assert r.status_code == 200, r.text
    j = r.json()
    want = Engine(model_dir, concurrency=1).detect(imaging.decode_raw_pair(low, high))
    assert [d["label"] for d in j["detections"]] == [d.label for d in want.detections]
    for got, exp in zip(j["detections"], want.detections, strict=True):
        assert got["confidence"] == pytest.approx(exp.confidence, abs=0.02)
    assert j["image"] == {"width": s.image.shape[1], "height": s.image.shape[0]}
    img = httpx.get(server.url + f"/v1/scans/{j['scan_id']}/image", headers=ok)
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    kept = {p.name: p.read_bytes() for p in (server.data_dir / "images").rglob(j["scan_id"] + "_*")}
    assert kept == {f"{j['scan_id']}_low.png": low, f"{j['scan_id']}_high.png": high}

    before = httpx.get(server.url + "/v1/scans", headers=ok).json()["total"]
    eight = cv2.imencode(".png", (s.t_low * 255).astype(np.uint8))[1].tobytes()
    small = cv2.imencode(".png", render.to_raw16(s.t_high[:-10]))[1].tobytes()
    for files, status, words in (
            ({"low": ("low.png", low, "image/png")}, 422, "'low' and 'high'"),
            ({"low": ("low.png", eight, "image/png"), "high": ("high.png", high, "image/png")}, 415, "16-bit"),
            ({"low": ("low.png", low, "image/png"), "high": ("high.png", small, "image/png")}, 400, "differ in size"),
            ({"low": ("low.png", low[:len(low) // 2], "image/png"), "high": ("high.png", high, "image/png")}, 400, "")):
        r = httpx.post(server.url + "/v1/detect", headers=ik, files=files, timeout=60)
        assert r.status_code == status and words in r.json()["error"]["message"], r.text
    assert httpx.get(server.url + "/v1/scans", headers=ok).json()["total"] == before


def test_store_keeps_a_raw_pair_beside_its_scan_and_discards_all_of_it(tmp_path):
    """What a failed analysis undoes: the rendered scan and the raw pair beside it go together,
    and nothing of another scan."""
    from serve.store import Store

    st = Store(tmp_path)
    png = b"\x89PNG-rendered"
    path = st.save_raw_pair("s1", png, (b"\x89PNG-low", ".png"), (b"II*\x00-high", ".tif"))
    other = st.save_image("s10", b"\x89PNG-other", ".png")  # a name that starts like s1's
    assert path.read_bytes() == png
    assert (path.parent / "s1_low.png").read_bytes() == b"\x89PNG-low"
    assert (path.parent / "s1_high.tif").read_bytes() == b"II*\x00-high"
    st.discard_files(path)
    assert sorted(p.name for p in path.parent.iterdir()) == [other.name]


def test_events_stream_tells_of_scans_and_of_scans_not_screened(server, scans):
    """/v1/events pushes each analysed scan, and each scan that reached /v1/detect but could not be
    analysed (its parcel was not screened), filtered by lane."""
    import json as _json

    got: list[tuple[str, dict]] = []
    ready = threading.Event()

    def listen():
        with httpx.stream("GET", server.url + "/v1/events?lane=belt-7", headers=H(server.keys["operator"]), timeout=30) as r:
            ev = None
            for line in r.iter_lines():
                if line.startswith("event: "):
                    ev = line[7:]
                    if ev == "hello":
                        ready.set()
                elif line.startswith("data: ") and ev not in (None, "hello"):
                    got.append((ev, _json.loads(line[6:])))
                    if len(got) == 2:
                        return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert ready.wait(20)
    k = {**H(server.keys["integrator"]), "Content-Type": "image/png"}
    other = httpx.post(server.url + "/v1/detect?lane=belt-8", headers=k, content=png_bytes(np.zeros((300, 400, 3), np.uint8)))
    assert other.status_code == 422  # another lane's refusal: not in this stream
    ok = httpx.post(server.url + "/v1/detect?lane=belt-7", headers=k, content=png_bytes(scans["clean"][0].image), timeout=60)
    dark = httpx.post(server.url + "/v1/detect?lane=belt-7&parcel=PX-9", headers=k,
                      content=png_bytes(np.zeros((300, 400, 3), np.uint8)), timeout=60)
    assert ok.status_code == 200 and dark.status_code == 422
    t.join(20)
    assert [e for e, _ in got] == ["scan", "refused"], got
    assert got[0][1]["scan_id"] == ok.json()["scan_id"]
    r = got[1][1]
    assert (r["lane"], r["parcel"], r["status"], r["code"]) == ("belt-7", "PX-9", 422, "dark_scan") and "not cleared" in r["message"]


def test_idempotency_key_answers_a_retry_with_the_scan_it_stored(server, scans):
    """A scanner that retries after a timeout sends the same Idempotency-Key: it gets the scan stored the
    first time (no second analysis, no duplicate view in the console); the key reused for another
    request is refused; each API key has its own keys; concurrent retries never store twice."""
    k, o = H(server.keys["integrator"]), H(server.keys["operator"])
    data = png_bytes(scans["clean"][1].image)
    hk = {**k, "Content-Type": "image/png", "Idempotency-Key": "belt3-000123"}
    url = server.url + "/v1/detect?lane=idem-1&parcel=PI-1&view=top"
    a = httpx.post(url, headers=hk, content=data, timeout=60)
    b = httpx.post(url, headers=hk, content=data, timeout=60)
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    assert "idempotent-replayed" not in a.headers and b.headers["idempotent-replayed"] == "true"
    ja, jb = a.json(), b.json()
    for f in ("scan_id", "verdict", "reasons", "detections", "model", "image", "lane", "parcel", "view", "parcel_views",
              "parcel_verdict"):
        assert ja[f] == jb[f], f
    assert jb["parcel_views"] == 1
    assert httpx.get(server.url + "/v1/scans", params={"lane": "idem-1"}, headers=o).json()["total"] == 1
    dcm = httpx.post(url, headers={**hk, "Accept": "application/dicom"}, content=data, timeout=60)
    assert dcm.status_code == 200 and dcm.headers["content-type"] == "application/dicom"
    assert dcm.headers["x-scan-id"] == ja["scan_id"]
    # the same key for another scan, or the same scan with other fields: refused, nothing stored
    other = httpx.post(url, headers=hk, content=png_bytes(scans["clean"][2].image), timeout=60)
    moved = httpx.post(server.url + "/v1/detect?lane=idem-2&parcel=PI-1&view=top", headers=hk, content=data, timeout=60)
    for r in (other, moved):
        assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency_key_reused", r.text
    for bad in ("", "x" * 129, "semi;colon"):
        r = httpx.post(url, headers={**hk, "Idempotency-Key": bad}, content=data, timeout=60)
        assert r.status_code == 422 and "Idempotency-Key" in r.json()["error"]["message"], (bad, r.text)
    # a request refused for a bad field leaves its key free: the corrected retry is analysed, not told 409
    kk = {**hk, "Idempotency-Key": "belt3-000124"}
    r = httpx.post(server.url + "/v1/detect?lane=idem-4&pixel_mm=wide", headers=kk, content=data, timeout=60)
    assert r.status_code == 422, r.text
    assert httpx.post(server.url + "/v1/detect?lane=idem-4&pixel_mm=1.0", headers=kk, content=data, timeout=60).status_code == 200
    # another integrator's key of the same name is another scan
    k2 = make_key(server.data_dir, "integrator")
    c = httpx.post(url, headers={**hk, "Authorization": f"Bearer {k2}"}, content=data, timeout=60)
    assert c.status_code == 200 and c.json()["scan_id"] != ja["scan_id"] and "idempotent-replayed" not in c.headers
    # four copies of one request at once: one scan stored; the others get it back or are told to retry
    fresh = png_bytes(scans["clean"][3].image)
    out: list[httpx.Response] = []

    def send():
        out.append(httpx.post(server.url + "/v1/detect?lane=idem-3", content=fresh, timeout=60,
                              headers={**k, "Content-Type": "image/png", "Idempotency-Key": "burst-1"}))

    ts = [threading.Thread(target=send) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(90)
    assert {r.status_code for r in out} <= {200, 409} and any(r.status_code == 200 for r in out), [r.text for r in out]
    assert all(r.json()["error"]["code"] == "idempotency_in_progress" for r in out if r.status_code == 409)
    assert len({r.json()["scan_id"] for r in out if r.status_code == 200}) == 1
    assert httpx.get(server.url + "/v1/scans", params={"lane": "idem-3"}, headers=o).json()["total"] == 1
    assert "xfd_idempotent_replays_total" in httpx.get(server.url + "/metrics", headers=o).text


def test_keys_that_expire_and_keys_bound_to_lanes(server, scans, tmp_path):
    """A scanner's key may be bound to its lanes (it cannot send scans as another lane) and may expire
    (401 key_expired, said as such); keys made before either are upgraded in place."""
    import json
    import sqlite3
    import subprocess
    import sys
    import time

    def keys(*args):
        return subprocess.run([sys.executable, "-m", "detector.cli", "keys", *args, "--data-dir", str(server.data_dir)],
                              capture_output=True, text=True)

    r = keys("create", "--role", "integrator", "--name", "belt-a scanner", "--lanes", "belt-a,belt-a2", "--expires-days", "0.0001")
    assert r.returncode == 0, r.stderr
    made = json.loads(r.stdout)
    assert made["lanes"] == ["belt-a", "belt-a2"] and made["expires"] > time.time()
    hk = {**H(made["key"]), "Content-Type": "image/png"}
    data = png_bytes(scans["clean"][0].image)
    assert httpx.post(server.url + "/v1/detect?lane=belt-a2", headers=hk, content=data, timeout=60).status_code == 200
    for q in ("?lane=belt-b", ""):
        r = httpx.post(server.url + "/v1/detect" + q, headers=hk, content=data, timeout=60)
        assert r.status_code == 403 and r.json()["error"]["code"] == "lane_not_allowed", r.text
    listed = [json.loads(x) for x in keys("list").stdout.splitlines()]
    assert next(k for k in listed if k["id"] == made["id"])["lanes"] == ["belt-a", "belt-a2"]
    time.sleep(max(0.0, made["expires"] - time.time()) + 0.2)
    r = httpx.post(server.url + "/v1/detect?lane=belt-a", headers=hk, content=data, timeout=60)
    assert r.status_code == 401 and r.json()["error"]["code"] == "key_expired" and "expired on" in r.json()["error"]["message"]
    for bad, why in ((["--role", "operator", "--lanes", "belt-a"], "only integrator keys"),
                     (["--role", "integrator", "--expires-days", "-1"], "days > 0")):
        r = keys("create", *bad)
        assert r.returncode == 2 and why in r.stderr, r.stderr
    # a keys table from before expiry and lanes gains the columns; its keys work as before (any lane, never expire)
    old = tmp_path / "old"
    old.mkdir()
    with sqlite3.connect(old / "xfd.sqlite3") as c:
        c.execute("CREATE TABLE keys (id TEXT PRIMARY KEY, name TEXT, role TEXT NOT NULL, hash TEXT UNIQUE NOT NULL, "
                  "created REAL NOT NULL, revoked REAL, last_used REAL)")
        from serve.store import hash_key

        c.execute("INSERT INTO keys(id,name,role,hash,created) VALUES('k1','old','integrator',?,1.0)", (hash_key("xfd_old"),))
    from serve.store import Store

    k = Store(old).lookup_key("xfd_old")
    assert (k["id"], k["expires"], k["lanes"]) == ("k1", None, None)
