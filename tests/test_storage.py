"""Storage: the retention policy (images deleted, records kept), the free-space floor, and a disk that
refuses a write: a scan that cannot be stored is answered 507 and leaves nothing behind."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from serve.store import StorageFull, Store

from .conftest import REPO, Server, make_key, png_bytes

NOW = time.time()


def H(k):
    return {"Authorization": f"Bearer {k}"}


def _add(store: Store, days_ago: float, verdict: str = "clear", parcel: str | None = None,
         day: str = "2026/10/01", raw: bool = False) -> str:
    """A scan record with real files in the image store, as old as days_ago."""
    sid = store.new_id()
    d = store.images / day
    d.mkdir(parents=True, exist_ok=True)
    img = d / f"{sid}.png"
    img.write_bytes(b"x" * 1000)
    if raw:
        (d / f"{sid}_low.tif").write_bytes(b"l" * 500)
        (d / f"{sid}_high.tif").write_bytes(b"h" * 500)
    store.insert_scan({"scan_id": sid, "created": NOW - days_ago * 86400, "lane": "l1", "verdict": verdict,
                       "reasons": [], "detections": [], "image": {"width": 10, "height": 10},
                       "model": {"name": "m", "version": "v", "sha256": "s"}, "image_path": str(img), "parcel": parcel})
    return sid


def _files(store: Store, sid: str) -> list:
    return store.scan_files(store.image_path(sid)[0])


def test_purge_deletes_only_what_the_policy_lets_go(tmp_path):
    st = Store(tmp_path)
    old_clear = _add(st, 40)
    recent_clear = _add(st, 10, day="2026/11/20")
    old_alarm = _add(st, 40, "alarm")
    missed = _add(st, 40)  # cleared by the model, but the screener confirmed a threat in it: a miss, kept
    st.review(missed, "confirmed", "found by hand", None, "k1")
    quiet_view, alarm_view = _add(st, 40, parcel="P1"), _add(st, 40, "alarm", parcel="P1")  # the parcel alarmed
    clear_parcel = [_add(st, 40, parcel="P2"), _add(st, 40, parcel="P2")]
    raw_pair = _add(st, 40, raw=True)
    gone = [old_clear, *clear_parcel, raw_pair]
    kept = [recent_clear, old_alarm, missed, quiet_view, alarm_view]

    dry = st.purge(retain_clear_days=30, now=NOW, dry_run=True)
    assert (dry["scans"], dry["clear"], dry["files"], dry["bytes"], dry["dry_run"]) == (4, 4, 6, 5000, True)
    assert all(_files(st, s) for s in gone + kept) and all(st.purged_at(s) is None for s in gone)

    done = st.purge(retain_clear_days=30, now=NOW)
    assert (done["scans"], done["files"], done["bytes"]) == (4, 6, 5000)
    for s in gone:
        assert _files(st, s) == [] and st.purged_at(s) == NOW
        rec = st.get_scan(s)  # the record stays: verdict and detections outlive the image
        assert rec["verdict"] == "clear" and rec["image_purged"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW))
    for s in kept:
        assert len(_files(st, s)) == 1 and st.get_scan(s)["image_purged"] is None
    assert st.purge(retain_clear_days=30, now=NOW)["scans"] == 0  # nothing twice

    # every scan's image after 35 days: the alarms, the reviewed and their parcels too; the recent one stays
    done = st.purge(retain_days=35, retain_clear_days=30, now=NOW + 1)
    assert (done["scans"], done["clear"]) == (4, 0)
    assert len(_files(st, recent_clear)) == 1 and all(_files(st, s) == [] for s in kept[1:])
    assert not (st.images / "2026" / "10").exists() and (st.images / "2026" / "11" / "20").is_dir()  # emptied days go
    status = st.storage_status()
    assert (status["scans"], status["images_kept"], status["images_purged"], status["image_files"], status["image_bytes"]) \
        == (9, 1, 8, 1, 1000)
    assert status["images_kept_clear_only"] == 1 and status["disk_free_bytes"] > 0
    assert status["webhook_deliveries"]["pending"] == 0


def test_purge_refuses_days_that_are_not_days(tmp_path):
    st = Store(tmp_path)
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="days"):
            st.purge(retain_days=bad)
    assert st.purge()["scans"] == 0  # both 0: keep for ever


# the store under a real limit on file size (RLIMIT_FSIZE: writes past it fail with EFBIG, as a full
# disk fails with ENOSPC): nothing half-written is left behind
_LIMITED = r"""
import errno, os, resource, sqlite3, sys
from pathlib import Path
from serve.store import Store, StorageFull
st = Store(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
out = {}
try:
    st.save_image("big", os.urandom(200_000), ".png")
except OSError as e:
    out["image"] = e.errno
try:
    st.save_raw_pair("pair", os.urandom(1000), (os.urandom(10_000), ".tif"), (os.urandom(200_000), ".tif"))
except OSError as e:
    out["pair"] = e.errno
out["files"] = sorted(p.name for p in st.images.rglob("*") if p.is_file())
print(out)
"""


def test_a_write_the_disk_refuses_leaves_no_file(tmp_path):
    r = subprocess.run([sys.executable, "-c", _LIMITED, str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    out = eval(r.stdout)  # noqa: S307  (our own subprocess's dict)
    import errno

    assert out == {"image": errno.EFBIG, "pair": errno.EFBIG, "files": []}, out


def test_a_database_that_cannot_grow_is_storage_full(tmp_path):
    st = Store(tmp_path)
    with pytest.raises(StorageFull):
        st._conn().execute("PRAGMA max_page_count = 1")  # SQLite's own "database or disk is full"
        for _ in range(50):
            _add(st, 1)


# ----------------------------------------------------------------- the running service
def _ready_or(srv: Server, code: str, timeout: float = 180) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            r = httpx.get(srv.url + "/readyz", timeout=2)
            if r.status_code == 503 and r.json()["error"]["code"] == code:
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"/readyz never said {code}: {srv.log.read_text()[-2000:]}")


def test_below_the_free_space_floor_scans_are_refused_not_lost(tmp_path, model_dir, scans):
    keys = {r: make_key(tmp_path, r) for r in ("integrator", "operator")}
    srv = Server(tmp_path, model_dir, env={"XFD_MIN_FREE_MB": str(10**12)}).start(wait_ready=False)
    try:
        ready = _ready_or(srv, "storage_full")  # the model is warm, but no scan could be kept
        assert "XFD_MIN_FREE_MB" in ready["error"]["message"]
        told: list[str] = []  # the belt's console is told the parcel was not screened
        hello = threading.Event()

        def listen():
            with httpx.stream("GET", srv.url + "/v1/events", headers=H(keys["operator"]), timeout=30) as ev:
                for line in ev.iter_lines():
                    hello.set()
                    if line.startswith("data: ") and "storage_full" in line:
                        told.append(line)
                        return

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        assert hello.wait(20)
        r = httpx.post(srv.url + "/v1/detect?lane=l2", headers={**H(keys["integrator"]), "Content-Type": "image/png"},
                       content=png_bytes(scans["threat"][0].image), timeout=60)
        assert r.status_code == 507 and r.json()["error"]["code"] == "storage_full", r.text
        t.join(20)
        assert told and json.loads(told[0][6:])["status"] == 507
        assert httpx.get(srv.url + "/v1/scans", headers=H(keys["operator"])).json()["total"] == 0
        assert [p for p in (tmp_path / "images").rglob("*") if p.is_file()] == []
        text = httpx.get(srv.url + "/metrics", headers=H(keys["operator"])).text
        assert "xfd_storage_refused_total 1.0" in text and "xfd_storage_free_bytes" in text
    finally:
        srv.stop()


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def test_a_scan_the_disk_cannot_take_is_507_and_the_next_one_is_stored(tmp_path, model_dir, scans):
    keys = {r: make_key(tmp_path, r) for r in ("integrator", "operator")}
    srv = Server(tmp_path, model_dir, preexec=_limit_file_size).start()
    try:
        noisy = np.random.default_rng(0).integers(0, 256, (700, 800, 3), dtype=np.uint8)  # a 1.7 MB PNG
        big = png_bytes(noisy)
        assert len(big) > 1 << 20
        hk = {**H(keys["integrator"]), "Content-Type": "image/png"}
        r = httpx.post(srv.url + "/v1/detect?lane=full-1", headers=hk, content=big, timeout=60)
        assert r.status_code == 507 and r.json()["error"]["code"] == "storage_full", r.text
        assert "too large" in r.json()["error"]["message"].lower()
        assert [p for p in (tmp_path / "images").rglob("*") if p.is_file()] == []  # no .part left behind
        assert httpx.get(srv.url + "/v1/scans", headers=H(keys["operator"])).json()["total"] == 0
        small = png_bytes(scans["clean"][0].image)
        assert len(small) < 1 << 19
        r = httpx.post(srv.url + "/v1/detect?lane=full-1", headers=hk, content=small, timeout=60)
        assert r.status_code == 200, r.text
        img = httpx.get(srv.url + f"/v1/scans/{r.json()['scan_id']}/image", headers=H(keys["operator"]))
        assert img.status_code == 200 and img.content == small
    finally:
        srv.stop()


def _xfd(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "detector.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_retention_on_a_running_service_and_from_the_cli(tmp_path, model_dir, scans):
    keys = {r: make_key(tmp_path, r) for r in ("integrator", "operator", "admin")}
    # clear scans' images go after 2.6 s, looked for every second
    srv = Server(tmp_path, model_dir, env={"XFD_RETAIN_CLEAR_DAYS": "0.00003", "XFD_PURGE_EVERY_S": "1"}).start()
    o = H(keys["operator"])
    try:
        sent = []
        for s in [*scans["clean"][:3], scans["threat"][0]]:
            r = httpx.post(srv.url + "/v1/detect", headers={**H(keys["integrator"]), "Content-Type": "image/png"},
                           content=png_bytes(s.image), timeout=60)
            assert r.status_code == 200, r.text
            sent.append(r.json())
        clear = [j["scan_id"] for j in sent if j["verdict"] == "clear"]
        alarm = [j["scan_id"] for j in sent if j["verdict"] == "alarm"]
        assert clear, "the clean scans should mostly clear"
        deadline = time.time() + 30
        while time.time() < deadline and not all(httpx.get(srv.url + f"/v1/scans/{s}", headers=o).json()["image_purged"]
                                                 for s in clear):
            time.sleep(0.5)
        for s in clear:
            r = httpx.get(srv.url + f"/v1/scans/{s}/image", headers=o)
            assert r.status_code == 410 and r.json()["error"]["code"] == "image_purged", r.text
            assert httpx.get(srv.url + f"/v1/scans/{s}/image?overlay=1", headers=o).status_code == 410
            assert httpx.get(srv.url + f"/v1/scans/{s}", headers=o).json()["verdict"] == "clear"  # the record stays
            assert httpx.get(srv.url + f"/v1/scans/{s}/tdr", headers=o).status_code == 200  # and its report
        for s in alarm:  # alarms are kept (XFD_RETAIN_DAYS is 0: for ever)
            assert httpx.get(srv.url + f"/v1/scans/{s}/image", headers=o).status_code == 200
        audit = httpx.get(srv.url + "/v1/audit", headers=H(keys["admin"])).json()["items"]
        assert any(a["action"] == "storage.purge" for a in audit)
        assert "xfd_purged_scans_total" in httpx.get(srv.url + "/metrics", headers=o).text

        # the CLI on the running service's directory: a dry run, then every image older than 0.9 s
        r = _xfd("storage", "purge", "--data-dir", str(tmp_path), "--retain-days", "0.00001", "--dry-run")
        assert r.returncode == 0 and json.loads(r.stdout.splitlines()[0])["scans"] == len(alarm), r.stderr
        r = _xfd("storage", "purge", "--data-dir", str(tmp_path), "--retain-days", "0.00001")
        assert r.returncode == 0 and json.loads(r.stdout.splitlines()[0])["scans"] == len(alarm), r.stderr
        for s in alarm:
            assert httpx.get(srv.url + f"/v1/scans/{s}/image", headers=o).status_code == 410
        st = json.loads(_xfd("storage", "status", "--data-dir", str(tmp_path)).stdout)
        assert (st["scans"], st["images_kept"], st["images_purged"], st["image_files"]) == (4, 0, 4, 0)
    finally:
        srv.stop()
    # refusals: a mistyped directory (not created), days that are not days, nothing to do
    for args, want in ((["storage", "purge", "--data-dir", str(tmp_path / "nope")], "no service database"),
                       (["storage", "purge", "--data-dir", str(tmp_path), "--retain-days", "soon"], "not a number of days"),
                       (["storage", "purge", "--data-dir", str(tmp_path), "--retain-clear-days", "0"], "nothing to purge")):
        r = _xfd(*args)
        assert r.returncode == 2 and want in r.stderr, (args, r.stderr)
    assert not (tmp_path / "nope").exists()


def test_bad_retention_settings_stop_the_service_at_start(tmp_path, model_dir):
    for name, value in (("XFD_RETAIN_DAYS", "-3"), ("XFD_RETAIN_CLEAR_DAYS", "a week"), ("XFD_MIN_FREE_MB", "1.5"),
                        ("XFD_PURGE_EVERY_S", "hourly"), ("XFD_WEBHOOK_TIMEOUT_S", "nan"), ("XFD_QUEUE", "-1"),
                        ("XFD_PORT", "http")):
        r = subprocess.run([sys.executable, "-m", "detector.cli", "serve", "--data-dir", str(tmp_path), "--model", str(model_dir)],
                           capture_output=True, text=True, cwd=REPO, timeout=60, env={**os.environ, name: value})
        assert r.returncode == 2 and name in r.stderr, (name, r.stderr)


def test_backup_of_a_running_service_restores_and_then_copies_only_what_is_new(tmp_path, model_dir, scans):
    live, bk = tmp_path / "live", tmp_path / "backup"
    keys = {r: make_key(live, r) for r in ("integrator", "operator")}
    srv = Server(live, model_dir).start()
    k, o = {**H(keys["integrator"]), "Content-Type": "image/png"}, H(keys["operator"])
    sent = {}
    try:
        for s in scans["clean"][:2] + scans["threat"][:1]:
            data = png_bytes(s.image)
            sent[httpx.post(srv.url + "/v1/detect?lane=b1", headers=k, content=data, timeout=60).json()["scan_id"]] = data
        first = next(iter(sent))
        assert httpx.post(srv.url + f"/v1/scans/{first}/review", headers=o, json={"decision": "false_alarm"}).status_code == 200
        r = _xfd("storage", "backup", "--data-dir", str(live), "--out", str(bk))  # while the service runs
        assert r.returncode == 0, r.stderr
        j = json.loads(r.stdout)
        assert (j["scans"], j["files_copied"], j["files_present"], j["missing"]) == (3, 3, 0, 0), j
        r = _xfd("storage", "backup", "--data-dir", str(live), "--out", str(bk))  # again: nothing new to copy
        j = json.loads(r.stdout)
        assert (j["files_copied"], j["files_present"], j["bytes_copied"]) == (0, 3, 0), j
        r = _xfd("storage", "backup", "--data-dir", str(live), "--out", str(live))
        assert r.returncode == 1 and "data directory itself" in r.stderr
        assert [a["action"] for a in Store(live).audit_log()].count("storage.backup") == 2
    finally:
        srv.stop()
    # the backup, moved elsewhere, is a data directory the service runs on: same keys, scans, images, reviews
    moved = tmp_path / "restored"
    bk.rename(moved)
    srv = Server(moved, model_dir).start()
    try:
        lst = httpx.get(srv.url + "/v1/scans", headers=o).json()
        assert lst["total"] == 3
        for sid, data in sent.items():
            img = httpx.get(srv.url + f"/v1/scans/{sid}/image", headers=o)
            assert img.status_code == 200 and img.content == data
        assert httpx.get(srv.url + f"/v1/scans/{first}", headers=o).json()["review"]["state"] == "false_alarm"
        assert httpx.post(srv.url + "/v1/detect?lane=b1", headers=k, content=png_bytes(scans["clean"][2].image),
                          timeout=60).status_code == 200
    finally:
        srv.stop()


def test_a_database_from_before_grey_networks_gains_the_column_and_keeps_its_rows(tmp_path):
    """A data directory written before scans recorded which network read them opens with its rows
    (read by the one network then: 'main'); new rows record theirs."""
    import sqlite3

    st = Store(tmp_path)
    old = _add(st, 1)
    c = sqlite3.connect(st.path)
    c.execute("ALTER TABLE scans DROP COLUMN network")  # the table as it was
    c.commit()
    c.close()
    assert "network" not in {r[1] for r in sqlite3.connect(st.path).execute("PRAGMA table_info(scans)")}
    st2 = Store(tmp_path)
    assert st2.get_scan(old)["network"] == "main"
    sid = st2.new_id()
    st2.insert_scan({"scan_id": sid, "created": NOW, "lane": "l1", "verdict": "clear", "reasons": [], "detections": [],
                     "image": {"width": 10, "height": 10}, "model": {"name": "m", "version": "v", "sha256": "s"},
                     "image_path": str(tmp_path / "x.png"), "network": "grey"})
    assert st2.get_scan(sid)["network"] == "grey"
