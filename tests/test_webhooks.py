"""Webhooks: a real service process POSTs its events to a real HTTP receiver; deliveries are queued
in the database with the scan, signed, retried in order, kept across a restart, and given up on
(visibly) when the receiver stays broken."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np

from .conftest import REPO, Server, free_port, make_key, png_bytes

SECRET = "s3cret-for-tests"


class Receiver:
    """An HTTP endpoint that records what it is sent and answers with scripted statuses (then 200)."""

    def __init__(self, statuses: list[int] | None = None, port: int | None = None):
        self.got: list[dict] = []
        self.statuses = list(statuses or [])
        rec = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = rec.statuses.pop(0) if rec.statuses else 200
                rec.got.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body, "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def wait(self, n: int, timeout: float = 30) -> list[dict]:
        deadline = time.time() + timeout
        while len(self.got) < n and time.time() < deadline:
            time.sleep(0.1)
        assert len(self.got) >= n, f"{len(self.got)} of {n} deliveries arrived: {[g['headers'].get('x-xfd-event') for g in self.got]}"
        return self.got


def H(k):
    return {"Authorization": f"Bearer {k}"}


def _signed(g: dict) -> bool:
    want = hmac.new(SECRET.encode(), g["headers"]["x-xfd-timestamp"].encode() + b"." + g["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(g["headers"]["x-xfd-signature"], "sha256=" + want)


def test_events_are_signed_retried_in_order_and_survive_a_restart(tmp_path, model_dir, scans):
    rx = Receiver([500])  # the first attempt fails: it is sent again, and nothing overtakes it
    keys = {r: make_key(tmp_path, r) for r in ("integrator", "operator", "admin")}
    env = {"XFD_WEBHOOK_URLS": rx.url + "?token=tok-123", "XFD_WEBHOOK_SECRET": SECRET,
           "XFD_WEBHOOK_EVENTS": "alarm,clear,review,refused"}
    srv = Server(tmp_path, model_dir, env=env).start()
    k = {**H(keys["integrator"]), "Content-Type": "image/png"}
    try:
        a = httpx.post(srv.url + "/v1/detect?lane=w1", headers=k, content=png_bytes(scans["threat"][0].image), timeout=60).json()
        b = httpx.post(srv.url + "/v1/detect?lane=w1", headers=k, content=png_bytes(scans["clean"][0].image), timeout=60).json()
        dark = httpx.post(srv.url + "/v1/detect?lane=w1", headers=k, content=png_bytes(np.zeros((300, 400, 3), np.uint8)))
        assert dark.status_code == 422
        assert httpx.post(srv.url + f"/v1/scans/{a['scan_id']}/review", headers=H(keys["operator"]),
                          json={"decision": "confirmed"}).status_code == 200
        got = rx.wait(5)
        events = [(g["headers"]["x-xfd-event"], g["status"]) for g in got]
        first = f"scan.{a['verdict']}"
        assert events[:2] == [(first, 500), (first, 200)], events  # retried before anything else is sent
        assert [e for e, _ in events[2:5]] == [f"scan.{b['verdict']}", "scan.refused", "scan.review"], events
        assert got[0]["headers"]["x-xfd-delivery"] == got[1]["headers"]["x-xfd-delivery"]  # the same delivery
        assert all(_signed(g) for g in got)
        readme = (REPO / "README.md").read_text()  # the receiver's check the README gives works as written
        block = readme.split("def verify(")[0].rsplit("```python", 1)[1] + "def verify(" + readme.split("def verify(")[1].split("```")[0]
        ns: dict = {}
        exec(block, ns)  # noqa: S102  (our README's own example)
        hdr = {"X-XFD-Timestamp": got[1]["headers"]["x-xfd-timestamp"], "X-XFD-Signature": got[1]["headers"]["x-xfd-signature"]}
        assert ns["verify"](hdr, got[1]["body"], SECRET) and not ns["verify"](hdr, got[1]["body"] + b" ", SECRET)
        bodies = [json.loads(g["body"]) for g in got]
        assert bodies[1]["scan"]["scan_id"] == a["scan_id"] and bodies[1]["scan"]["detections"] == a["detections"]
        assert "image_path" not in bodies[1]["scan"] and "idem" not in bodies[1]["scan"]
        assert bodies[3]["refused"]["code"] == "dark_scan" and bodies[3]["refused"]["lane"] == "w1"
        assert bodies[4]["scan"]["review"]["state"] == "confirmed"
        r = httpx.get(srv.url + "/v1/webhooks", headers=H(keys["admin"]))
        st = r.json()
        assert (st["delivered"], st["pending"], st["failed"], st["signed"]) == (4, 0, 0, True)
        assert st["urls"] == [rx.url + "?..."] and "tok-123" not in r.text  # a token in the URL is not shown
        assert "tok-123" not in srv.log.read_text()  # nor logged
        assert httpx.get(srv.url + "/v1/webhooks", headers=H(keys["integrator"])).status_code == 403
        # the receiver goes down: a scan's event waits in the database, through a restart of the service
        rx.stop()
        c = httpx.post(srv.url + "/v1/detect?lane=w2", headers=k, content=png_bytes(scans["clean"][1].image), timeout=60).json()
        time.sleep(1.5)
        assert httpx.get(srv.url + "/v1/webhooks", headers=H(keys["admin"])).json()["pending"] == 1
    finally:
        srv.stop()
    rx2 = Receiver(port=rx.port)
    srv.start()
    try:
        got = rx2.wait(1, timeout=60)
        body = json.loads(got[0]["body"])
        assert body["scan"]["scan_id"] == c["scan_id"] and _signed(got[0])
        text = httpx.get(srv.url + "/metrics", headers=H(keys["operator"])).text
        assert 'xfd_webhook_attempts_total{result="delivered"}' in text and "xfd_webhook_pending 0.0" in text
    finally:
        srv.stop()
        rx2.stop()


def test_a_receiver_that_stays_broken_is_given_up_visibly_and_can_be_retried(tmp_path, model_dir, scans):
    rx = Receiver([503] * 50)
    keys = {r: make_key(tmp_path, r) for r in ("integrator", "admin")}
    env = {"XFD_WEBHOOK_URLS": rx.url, "XFD_WEBHOOK_EVENTS": "alarm,clear", "XFD_WEBHOOK_MAX_AGE_H": "0.0005"}  # 1.8 s
    srv = Server(tmp_path, model_dir, env=env).start()
    try:
        httpx.post(srv.url + "/v1/detect", headers={**H(keys["integrator"]), "Content-Type": "image/png"},
                   content=png_bytes(scans["clean"][0].image), timeout=60)
        deadline = time.time() + 30
        st = {}
        while time.time() < deadline:
            st = httpx.get(srv.url + "/v1/webhooks", headers=H(keys["admin"])).json()
            if st["failed"]:
                break
            time.sleep(0.3)
        assert st["failed"] == 1 and st["pending"] == 0 and st["signed"] is False, st
        f = st["failed_deliveries"][0]
        assert f["last_status"] == 503 and f["last_error"] == "HTTP 503" and f["attempts"] >= 2
        assert "x-xfd-signature" not in rx.got[0]["headers"]  # no secret: sent unsigned (and the log says so)
        rx.statuses.clear()  # mended: an admin sends it again
        n = len(rx.got)
        r = httpx.post(srv.url + f"/v1/webhooks/deliveries/{f['id']}/retry", headers=H(keys["admin"]))
        assert r.status_code == 200
        rx.wait(n + 1)
        assert rx.got[-1]["status"] == 200
        assert httpx.post(srv.url + "/v1/webhooks/deliveries/999/retry", headers=H(keys["admin"])).status_code == 404
        audit = httpx.get(srv.url + "/v1/audit", headers=H(keys["admin"])).json()["items"]
        assert any(a["action"] == "webhook.retry" for a in audit)
    finally:
        srv.stop()
        rx.stop()


def test_bad_webhook_settings_stop_the_service_at_start(tmp_path, model_dir):
    for name, value in (("XFD_WEBHOOK_URLS", "ftp://customs.example/hook"), ("XFD_WEBHOOK_URLS", "not a url"),
                        ("XFD_WEBHOOK_EVENTS", "alarm,everything")):
        r = subprocess.run([sys.executable, "-m", "detector.cli", "serve", "--data-dir", str(tmp_path), "--model", str(model_dir)],
                           capture_output=True, text=True, cwd=REPO, timeout=60, env={**os.environ, name: value})
        assert r.returncode == 2 and name in r.stderr, (name, r.stderr)


def test_delivered_deliveries_are_forgotten_after_a_week_and_the_rest_kept(tmp_path):
    from serve.store import Store

    st = Store(tmp_path)
    st.enqueue([("http://a/h", "scan.refused", {"refused": {"code": "dark_scan"}})] * 3)
    ids = [r["id"] for r in st.outbox_list("pending")]
    assert len(ids) == 3 and st.outbox_due(time.time())[0]["id"] == min(ids)  # one at a time per URL, oldest first
    st.outbox_result(min(ids), True, 200, None)
    st.outbox_result(sorted(ids)[1], False, 500, "HTTP 500")  # given up
    assert st.outbox_stats() | {"oldest_pending": None} == {"pending": 1, "delivered": 1, "failed": 1, "oldest_pending": None}
    assert st.outbox_prune(time.time() - 7 * 86400) == 0  # delivered just now: kept
    assert st.outbox_prune(time.time() + 1) == 1
    assert st.outbox_stats()["delivered"] == 0 and st.outbox_pending() == 1 and st.outbox_stats()["failed"] == 1
