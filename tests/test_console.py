"""The operator console in a real headless Chromium against a real running service."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from .conftest import REPO, Server, make_key, png_bytes

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("XFD_ARTIFACTS", REPO / "artifacts")) / "console"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def console_env(tmp_path_factory, model_dir):
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run `make setup-browser` (make test does)")
    from playwright.sync_api import sync_playwright

    d = tmp_path_factory.mktemp("console")
    keys = {r: make_key(d, r) for r in ("integrator", "operator")}
    srv = Server(d, model_dir).start()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"])
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    yield srv, keys, page
    browser.close()
    pw.stop()
    srv.stop()


def post(srv, key, img, lane="lane-1"):
    r = httpx.post(f"{srv.url}/v1/detect?lane={lane}", headers={"Authorization": f"Bearer {key}", "Content-Type": "image/png"},
                   content=png_bytes(img), timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _threat_scans(scans):
    from detector.synth.scene import SceneConfig, simulate

    yield from scans["threat"]
    cfg = SceneConfig(p_gray=0.0)
    n = 0
    for i in range(200):
        s = simulate(777, i, cfg)
        if s.boxes:
            n += 1
            yield s
        if n >= 40:
            return


def _signed_in(srv, keys, page):
    """Sign in as an operator unless an earlier test left the console signed in."""
    if page.is_hidden("#app"):
        page.goto(srv.url + "/console/")
        page.fill("#key", keys["operator"])
        page.click("#signin-btn")
        page.wait_for_selector("#app:not([hidden])")


def test_console_end_to_end(console_env, scans):
    srv, keys, page = console_env
    page.goto(srv.url + "/console/")
    # wrong key
    page.fill("#key", "xfd_wrong")
    page.click("#signin-btn")
    page.wait_for_selector("#signin-error:has-text('Wrong or revoked key')")
    page.screenshot(path=str(ARTIFACTS / "01_wrong_key.png"))
    # sign in
    page.fill("#key", keys["operator"])
    page.click("#signin-btn")
    page.wait_for_selector("#app:not([hidden])")
    page.wait_for_selector("#conn:has-text('connected')")
    # a threat scan arrives: alarm banner, boxes listed, within a second or so
    alarm = None
    for s in _threat_scans(scans):  # the console is under test here, not the model: post until one alarms
        j = post(srv, keys["integrator"], s.image)
        if j["verdict"] == "alarm":
            alarm = j
            break
    assert alarm, "the shipped model raised no alarm on 40 threat scans"
    page.wait_for_selector("#banner:not([hidden])", timeout=5000)
    assert "ALARM" in page.inner_text("#status-line")
    assert alarm["scan_id"][:8] in page.inner_text("#status-line")
    labels = page.inner_text("#det-list")
    assert any(d["label"] in labels for d in alarm["detections"] if d["alarm"])
    page.wait_for_function("document.getElementById('queue-count').textContent !== '0'")
    page.wait_for_timeout(400)
    page.screenshot(path=str(ARTIFACTS / "02_alarm.png"))
    # image tools do not break the view
    for key in ("m", "m", "i", "e", "+", "0", "o", "o", "i", "e", "m"):
        page.keyboard.press(key)
    # review with one key
    page.keyboard.press("c")
    page.wait_for_selector("#review-msg:has-text('Confirmed')")
    got = httpx.get(f"{srv.url}/v1/scans/{alarm['scan_id']}", headers={"Authorization": f"Bearer {keys['operator']}"}).json()
    assert got["review"]["state"] == "confirmed" and got["review"]["boxes"]
    page.wait_for_selector("#banner", state="hidden")
    # a clean scan passes quietly; one the model false-alarms on is cleared with the 'f' key, as an
    # operator would (an unreviewed alarm stays on screen, and a clear scan behind it only notes itself)
    clean = None
    for s in scans["clean"]:
        j = post(srv, keys["integrator"], s.image)
        if j["verdict"] == "clear":
            clean = j
            break
        page.wait_for_selector(f"#status-line:has-text('{j['scan_id'][:8]}')", timeout=5000)
        page.keyboard.press("f")
        page.wait_for_selector("#review-msg:has-text('false alarm')")
        page.wait_for_selector("#banner", state="hidden")
        got = httpx.get(f"{srv.url}/v1/scans/{j['scan_id']}", headers={"Authorization": f"Bearer {keys['operator']}"}).json()
        assert got["review"]["state"] == "false_alarm"
    assert clean, "the shipped model alarmed on every clean scan"
    page.wait_for_selector(f"#status-line:has-text('{clean['scan_id'][:8]}')", timeout=5000)
    assert "CLEAR" in page.inner_text("#status-line")
    assert page.is_hidden("#banner")
    page.screenshot(path=str(ARTIFACTS / "03_clear.png"))
    # history: find the reviewed alarm
    page.click("#tab-history")
    page.select_option("#h-review", "confirmed")
    page.click("#h-search")
    page.wait_for_selector(f".card[data-id='{alarm['scan_id']}']")
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "04_history.png"))
    page.click(f".card[data-id='{alarm['scan_id']}']")
    page.wait_for_selector("#view-live:not([hidden])")
    page.wait_for_selector("#status-line:has-text('reviewed: confirmed')")


def test_console_bad_states(console_env, scans):
    srv, keys, page = console_env
    _signed_in(srv, keys, page)
    # a scan whose image is missing
    j = post(srv, keys["integrator"], scans["clean"][2].image, lane="lane-x")
    con = sqlite3.connect(srv.data_dir / "xfd.sqlite3")
    os.remove(con.execute("SELECT image_path FROM scans WHERE id=?", (j["scan_id"],)).fetchone()[0])
    con.close()
    page.evaluate(f"openScan('{j['scan_id']}')")
    page.wait_for_selector("#missing:not([hidden])")
    assert "missing" in page.inner_text("#missing").lower()
    # a scan whose image the retention policy deleted (`xfd storage purge`): said so, not "missing"
    j = post(srv, keys["integrator"], scans["clean"][1].image, lane="lane-x")
    con = sqlite3.connect(srv.data_dir / "xfd.sqlite3")
    con.execute("UPDATE scans SET created = created - 40 * 86400 WHERE id=?", (j["scan_id"],))
    con.commit()
    con.close()
    r = subprocess.run([sys.executable, "-m", "detector.cli", "storage", "purge", "--data-dir", str(srv.data_dir),
                        "--retain-days", "30"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0 and '"scans": 1' in r.stdout, r.stderr
    page.evaluate(f"openScan('{j['scan_id']}')")
    page.wait_for_selector("#missing:has-text('retention')")
    # service restarting: the console says so and reconnects
    srv.stop()
    page.wait_for_selector("#conn:has-text('reconnecting')", timeout=20000)
    page.screenshot(path=str(ARTIFACTS / "05_reconnecting.png"))
    srv.start()
    page.wait_for_selector("#conn:has-text('connected')", timeout=30000)
    j2 = post(srv, keys["integrator"], scans["clean"][3].image, lane="lane-1")
    page.wait_for_selector(f"#status-line:has-text('{j2['scan_id'][:8]}')", timeout=8000)
    # a laptop-sized screen still shows the decision buttons
    page.set_viewport_size({"width": 1366, "height": 768})
    assert page.is_visible("#btn-confirm")
    page.screenshot(path=str(ARTIFACTS / "06_laptop.png"))


def test_console_shows_tiff_and_dicos_scans(console_env, scans):
    """Browsers cannot draw TIFF or DICOM: the console shows them through ?format=png."""
    import cv2

    from .test_dicos import dx_rgb

    srv, keys, page = console_env
    _signed_in(srv, keys, page)
    img = scans["clean"][0].image
    ok, tif = cv2.imencode(".tif", cv2.cvtColor(img, cv2.COLOR_RGB2BGR).astype("uint16") * 257)
    for ctype, data in (("image/tiff", tif.tobytes()), ("application/dicom", dx_rgb(img))):
        r = httpx.post(f"{srv.url}/v1/detect?lane=lane-t", headers={"Authorization": f"Bearer {keys['integrator']}",
                                                                    "Content-Type": ctype}, content=data, timeout=60)
        assert r.status_code == 200, r.text
        sid = r.json()["scan_id"]
        page.evaluate(f"openScan('{sid}')")
        page.wait_for_selector(f"#status-line:has-text('{sid[:8]}')", timeout=5000)
        page.wait_for_function(f"S.img !== null && S.img.width === {img.shape[1]} && S.img.height === {img.shape[0]}",
                               timeout=5000)
        assert page.is_hidden("#missing"), (ctype, page.inner_text("#missing"))
        assert "grey network" not in page.inner_text("#scan-info")


def test_console_says_a_grey_scan_was_read_by_the_grey_network(console_env, scans, tmp_path, routed_model_dir):
    """A model with a grey network (the shipped one has none since 2026.12.01.20): the scan line says a
    grey scan was read by it, and says nothing of networks for a colour scan."""
    page = console_env[2].context.browser.new_page(viewport={"width": 1920, "height": 1080})
    keys = {r: make_key(tmp_path, r) for r in ("integrator", "operator")}
    srv = Server(tmp_path, routed_model_dir).start()
    try:
        _signed_in(srv, keys, page)
        img = scans["clean"][0].image
        grey = np.repeat(img.mean(2, keepdims=True).round().astype(np.uint8), 3, axis=2)
        for rgb, want in ((img, "main"), (grey, "grey")):
            j = post(srv, keys["integrator"], rgb, lane="lane-t")
            assert j["network"] == want
            page.evaluate(f"openScan('{j['scan_id']}')")
            page.wait_for_selector(f"#status-line:has-text('{j['scan_id'][:8]}')", timeout=5000)
            assert ("grey scan, read by the grey network" in page.inner_text("#scan-info")) == (want == "grey")
    finally:
        page.close()
        srv.stop()


def test_console_shows_the_views_of_a_parcel(console_env):
    """A dual-view scanner's two views: the console names the parcel and view, and opens the
    other view in one click."""
    from detector.synth.scene import SceneConfig, simulate

    srv, keys, page = console_env
    _signed_in(srv, keys, page)
    s = simulate(46, 1, SceneConfig(side_view=True, p_threat=1.0))
    ids = []
    for view, img in (("top", s.image), ("side", s.side.image)):
        r = httpx.post(f"{srv.url}/v1/detect?lane=lane-v&parcel=DV-7&view={view}",
                       headers={"Authorization": f"Bearer {keys['integrator']}", "Content-Type": "image/png"},
                       content=png_bytes(img), timeout=60)
        assert r.status_code == 200, r.text
        ids.append(r.json()["scan_id"])
    for _ in range(3):  # the live feed may still show the two new scans as they arrive: open the top view after them
        page.evaluate(f"openScan('{ids[0]}')")
        page.wait_for_selector(f"#status-line:has-text('{ids[0][:8]}')", timeout=5000)
        page.wait_for_timeout(500)
        if ids[0][:8] in page.inner_text("#status-line"):
            break
    assert "parcel DV-7 (top view)" in page.inner_text("#status-line")
    page.wait_for_selector("#views:not([hidden]) .view-btn", timeout=5000)
    buttons = page.query_selector_all("#views .view-btn")
    assert [b.get_attribute("data-id") for b in buttons] == ids
    assert "current" in buttons[0].get_attribute("class")
    page.screenshot(path=str(ARTIFACTS / "08_parcel_views.png"))
    buttons[1].click()
    page.wait_for_selector(f"#status-line:has-text('{ids[1][:8]}')", timeout=5000)
    assert "(side view)" in page.inner_text("#status-line")
    page.wait_for_selector(f"#views .view-btn.current[data-id='{ids[1]}']", timeout=5000)


def test_console_lists_a_view_that_arrives_behind_an_unreviewed_alarm(console_env, scans):
    """An unreviewed alarm stays on screen when a clear scan arrives; a clear view of the same
    parcel arriving then still appears in its list of views."""
    srv, keys, page = console_env
    _signed_in(srv, keys, page)

    def send(img, view):
        r = httpx.post(f"{srv.url}/v1/detect?lane=lane-w&parcel=DV-8&view={view}",
                       headers={"Authorization": f"Bearer {keys['integrator']}", "Content-Type": "image/png"},
                       content=png_bytes(img), timeout=60)
        assert r.status_code == 200, r.text
        return r.json()

    alarm = next((j for j in (send(x.image, "top") for x in _threat_scans(scans)) if j["verdict"] == "alarm"), None)
    assert alarm, "the shipped model raised no alarm on the threat scans"
    page.evaluate(f"openScan('{alarm['scan_id']}')")
    page.wait_for_selector(f"#status-line:has-text('{alarm['scan_id'][:8]}')", timeout=5000)
    page.wait_for_selector("#views:not([hidden]) .view-btn", timeout=5000)
    n = len(page.query_selector_all("#views .view-btn"))
    clear = send(scans["clean"][0].image, "side")
    assert clear["verdict"] == "clear"
    page.wait_for_function(f"document.querySelectorAll('#views .view-btn').length === {n + 1}", timeout=5000)
    assert page.evaluate("S.scan.scan_id") == alarm["scan_id"]  # the alarm is still the scan shown
    assert page.query_selector(f"#views .view-btn[data-id='{clear['scan_id']}']") is not None


def test_console_says_when_a_scan_was_not_screened(console_env, scans):
    """A scan the service could not analyse (here a black image: the X-ray source or detector off)
    puts a NOT SCREENED bar over the screen, naming lane, parcel and reason; the scan shown stays."""

    srv, keys, page = console_env
    _signed_in(srv, keys, page)
    j = post(srv, keys["integrator"], scans["clean"][1].image, lane="lane-1")
    page.wait_for_selector(f"#status-line:has-text('{j['scan_id'][:8]}')", timeout=8000)
    assert page.is_hidden("#refused")
    shown = page.evaluate("S.scan.scan_id")  # j, or an unreviewed alarm an earlier test left on screen
    r = httpx.post(f"{srv.url}/v1/detect?lane=lane-1&parcel=PX-404", timeout=60, content=png_bytes(np.zeros((300, 400, 3), np.uint8)),
                   headers={"Authorization": f"Bearer {keys['integrator']}", "Content-Type": "image/png"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "dark_scan"
    page.wait_for_selector("#refused:not([hidden])", timeout=8000)
    text = page.inner_text("#refused")
    assert "NOT SCREENED" in text and "lane-1" in text and "PX-404" in text and "dark_scan" in text
    assert page.evaluate("S.scan.scan_id") == shown
    page.screenshot(path=str(ARTIFACTS / "09_not_screened.png"))
    page.click("#refused-ok")
    assert page.is_hidden("#refused")


def test_console_says_when_the_service_is_not_screening(console_env, tmp_path, model_dir):
    """A service that cannot store scans (below its free-space floor) screens nothing: the console says
    so at once, from /readyz, without waiting for a scan to be refused."""
    _, _, page = console_env
    key = make_key(tmp_path, "operator")
    full = Server(tmp_path, model_dir, env={"XFD_MIN_FREE_MB": str(10**12)}).start(wait_ready=False)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:  # the model warm, the disk "full"
            r = httpx.get(full.url + "/readyz", timeout=5)
            if r.status_code == 503 and r.json()["error"]["code"] == "storage_full":
                break
            time.sleep(0.5)
        page.goto(full.url + "/console/")
        page.fill("#key", key)
        page.click("#signin-btn")
        page.wait_for_selector("#app:not([hidden])")
        page.wait_for_selector("#health:not([hidden])", timeout=15000)
        assert "storage_full" in page.inner_text("#health") and "NOT SCREENING" in page.inner_text("#health")
        page.screenshot(path=str(ARTIFACTS / "10_not_screening.png"))
    finally:
        full.stop()
