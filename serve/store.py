"""The service's embedded database (SQLite, WAL) and image store.

A scan is acknowledged only after its image file is fsync'ed and its record
committed, so a crash after a 200 loses nothing. Keys are stored as SHA-256 hashes
of high-entropy random tokens; the token itself is shown once, at creation.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import threading
import time
import uuid
from pathlib import Path

ROLES = ("integrator", "operator", "admin")
REVIEW_STATES = ("pending", "confirmed", "false_alarm")
DAY_S = 86400.0
# the errors of a disk (or quota, or file size limit) that has no room left: the scan is refused with
# 507, not a 500, and nothing of it is left behind
FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class StorageFull(OSError):
    """The data directory has no room for a scan: its image or its record could not be written."""


SCHEMA = """
CREATE TABLE IF NOT EXISTS scans (
  id TEXT PRIMARY KEY,
  created REAL NOT NULL,
  lane TEXT,
  verdict TEXT NOT NULL,
  reasons TEXT NOT NULL,
  detections TEXT NOT NULL,
  width INTEGER, height INTEGER,
  model_name TEXT, model_version TEXT, model_sha256 TEXT,
  image_path TEXT NOT NULL, image_sha256 TEXT, content_type TEXT,
  timing TEXT,
  review_state TEXT NOT NULL DEFAULT 'pending',
  review_note TEXT, review_boxes TEXT, reviewed_at REAL, reviewed_by TEXT,
  parcel TEXT, view TEXT,
  pixel_mm TEXT,
  purged REAL,
  idem TEXT, idem_fp TEXT,
  network TEXT
);
CREATE INDEX IF NOT EXISTS scans_created ON scans(created);
CREATE INDEX IF NOT EXISTS scans_lane ON scans(lane, created);
CREATE TABLE IF NOT EXISTS keys (
  id TEXT PRIMARY KEY, name TEXT, role TEXT NOT NULL, hash TEXT UNIQUE NOT NULL,
  created REAL NOT NULL, revoked REAL, last_used REAL, expires REAL, lanes TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, url TEXT NOT NULL, event TEXT NOT NULL,
  scan_id TEXT, body TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL,
  delivered REAL, failed REAL, last_status INTEGER, last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(url, id) WHERE delivered IS NULL AND failed IS NULL;
CREATE INDEX IF NOT EXISTS outbox_delivered ON outbox(delivered) WHERE delivered IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_failed ON outbox(failed) WHERE failed IS NOT NULL;
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, key_id TEXT, action TEXT NOT NULL,
  target TEXT, detail TEXT
);
"""


def resolve_image(images_root: Path, stored: str) -> Path:
    """Where a record's image is now: records keep the path the image was written to, but a data
    directory moved, copied or restored from a backup holds it under its own images/YYYY/MM/DD/."""
    return Path(images_root).joinpath(*Path(stored).parts[-4:])


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Store:
    def __init__(self, data_dir: str | Path):
        self.root = Path(data_dir)
        self.images = self.root / "images"
        self.images.mkdir(parents=True, exist_ok=True)
        self.path = self.root / "xfd.sqlite3"
        self._local = threading.local()
        self._write = threading.Lock()
        self._touched: dict[str, float] = {}
        with self._conn() as c:
            c.executescript(SCHEMA)
            # a database written before views of parcels (or pixel sizes) were stored gains their columns,
            # keeping its rows
            have = {r["name"] for r in c.execute("PRAGMA table_info(scans)")}
            for col, kind in (("parcel", "TEXT"), ("view", "TEXT"), ("pixel_mm", "TEXT"), ("purged", "REAL"),
                              ("idem", "TEXT"), ("idem_fp", "TEXT"), ("network", "TEXT")):
                if col not in have:
                    c.execute(f"ALTER TABLE scans ADD COLUMN {col} {kind}")
            c.execute("CREATE INDEX IF NOT EXISTS scans_parcel ON scans(parcel, created)")
            have = {r["name"] for r in c.execute("PRAGMA table_info(keys)")}
            for col, kind in (("expires", "REAL"), ("lanes", "TEXT")):  # keys made before expiry and lane binding
                if col not in have:
                    c.execute(f"ALTER TABLE keys ADD COLUMN {col} {kind}")
            # an integrator's Idempotency-Key names one scan: a retried request gets that scan back
            c.execute("CREATE UNIQUE INDEX IF NOT EXISTS scans_idem ON scans(idem) WHERE idem IS NOT NULL")

    def _conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=FULL")
            c.row_factory = sqlite3.Row
            self._local.conn = c
        return c

    # ------------------------------------------------------------- keys
    def create_key(self, role: str, name: str = "", expires_days: float | None = None,
                   lanes: list[str] | None = None) -> tuple[str, str]:
        """A new key: its id and the token (shown once). expires_days: refused after that many days;
        lanes: an integrator key that may send scans for these lanes only (a scanner's key cannot
        speak for another lane)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
        if expires_days is not None and not (0 < expires_days < float("inf")):
            raise ValueError(f"expiry must be a number of days > 0, not {expires_days!r}")
        if lanes is not None and role != "integrator":
            raise ValueError("only integrator keys (which send scans) are bound to lanes")
        token = "xfd_" + secrets.token_urlsafe(32)
        kid = secrets.token_hex(6)
        now = time.time()
        expires = now + expires_days * DAY_S if expires_days is not None else None
        with self._write:
            self._conn().execute("INSERT INTO keys(id,name,role,hash,created,expires,lanes) VALUES(?,?,?,?,?,?,?)",
                                 (kid, name, role, hash_key(token), now, expires, json.dumps(lanes) if lanes else None))
        self.audit(kid, "key.create", kid, {"role": role, "name": name, "expires": _iso(expires), "lanes": lanes})
        return kid, token

    def list_keys(self) -> list[dict]:
        rows = self._conn().execute("SELECT id,name,role,created,revoked,last_used,expires,lanes FROM keys "
                                    "ORDER BY created").fetchall()
        return [{**dict(r), "lanes": json.loads(r["lanes"]) if r["lanes"] else None} for r in rows]

    def revoke_key(self, kid: str) -> bool:
        with self._write:
            cur = self._conn().execute("UPDATE keys SET revoked=? WHERE id=? AND revoked IS NULL", (time.time(), kid))
        if cur.rowcount:
            self.audit(kid, "key.revoke", kid, None)
        return cur.rowcount > 0

    def count_active_keys(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM keys WHERE revoked IS NULL").fetchone()[0]

    def lookup_key(self, token: str) -> dict | None:
        """The key of a token, unless unknown or revoked; an expired key is returned with its expiry
        (the caller says so), and lanes as a list (None: any lane)."""
        r = self._conn().execute("SELECT id,name,role,revoked,expires,lanes FROM keys WHERE hash=?",
                                 (hash_key(token),)).fetchone()
        if r is None or r["revoked"] is not None:
            return None
        return {**dict(r), "lanes": json.loads(r["lanes"]) if r["lanes"] else None}

    TOUCH_EVERY_S = 30.0

    def touch_key(self, kid: str) -> None:
        """Record a key's last use, at most every 30 s per key: a committed write costs an
        fsync, which per request would double the disk waits of a scan."""
        now = time.time()
        if now - self._touched.get(kid, 0.0) < self.TOUCH_EVERY_S:
            return
        self._touched[kid] = now
        with self._write:
            self._conn().execute("UPDATE keys SET last_used=? WHERE id=?", (now, kid))

    # ------------------------------------------------------------- audit
    def audit(self, key_id: str | None, action: str, target: str | None, detail) -> None:
        with self._write:
            self._conn().execute("INSERT INTO audit(ts,key_id,action,target,detail) VALUES(?,?,?,?,?)",
                                 (time.time(), key_id, action, target, json.dumps(detail) if detail is not None else None))

    def audit_log(self, limit: int = 100) -> list[dict]:
        rows = self._conn().execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [dict(r) for r in rows]

    # ------------------------------------------------------------- scans
    def save_image(self, scan_id: str, data: bytes, ext: str) -> Path:
        day = time.strftime("%Y/%m/%d", time.gmtime())
        d = self.images / day
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{scan_id}{ext}"
        _write_durably(path, lambda f: f.write(data))
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return path

    def save_raw_pair(self, scan_id: str, rendered_png: bytes, low: tuple[bytes, str], high: tuple[bytes, str]) -> Path:
        """A raw dual-energy scan: its two originals ((bytes, extension) each, kept as SCANID_low and
        SCANID_high) beside the PNG the model saw, which is the scan's image. Returns the PNG's path."""
        saved: list[Path] = []
        try:
            for name, (data, ext) in (("low", low), ("high", high)):
                saved.append(self.save_image(f"{scan_id}_{name}", data, ext))
            return self.save_image(scan_id, rendered_png, ".png")
        except BaseException:  # all of the scan's files, or none
            for f in saved:
                f.unlink(missing_ok=True)
            raise

    @classmethod
    def discard_files(cls, image_path: Path) -> None:
        """Remove a scan's stored files (its image, and a raw pair's originals beside it)."""
        for p in cls.scan_files(image_path):
            p.unlink(missing_ok=True)

    def insert_scan(self, rec: dict, outbox: list[tuple[str, str, dict]] | None = None) -> None:
        """Commit a scan's record (its image is already on disk), and in the same transaction the
        webhook deliveries it causes ((url, event, body) each): a scan is never stored without them.
        A database that cannot grow raises StorageFull; any other failure to write it, OSError."""
        try:
            self._insert_scan(rec, outbox or [])
        except sqlite3.OperationalError as e:
            if "full" in str(e):  # SQLITE_FULL: "database or disk is full"
                raise StorageFull(errno.ENOSPC, str(e)) from None
            raise OSError(errno.EIO, str(e)) from None  # an I/O error, a lock held too long: not stored

    def _insert_scan(self, rec: dict, outbox: list[tuple[str, str, dict]]) -> None:
        with self._write, self._transaction() as c:
            self._enqueue(c, outbox, rec["scan_id"])
            c.execute(
                "INSERT INTO scans(id,created,lane,verdict,reasons,detections,width,height,model_name,model_version,"
                "model_sha256,image_path,image_sha256,content_type,timing,parcel,view,pixel_mm,idem,idem_fp,network) "
                "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (rec["scan_id"], rec["created"], rec.get("lane"), rec["verdict"], json.dumps(rec["reasons"]),
                 json.dumps(rec["detections"]), rec["image"]["width"], rec["image"]["height"], rec["model"]["name"],
                 rec["model"]["version"], rec["model"]["sha256"], rec["image_path"], rec.get("image_sha256"),
                 rec.get("content_type"), json.dumps(rec.get("timing_ms", {})), rec.get("parcel"), rec.get("view"),
                 json.dumps(rec["pixel_mm"]) if rec.get("pixel_mm") else None, rec.get("idem"), rec.get("idem_fp"),
                 rec.get("network", "main")))

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())

    def _row(self, r: sqlite3.Row) -> dict:
        return {
            "scan_id": r["id"], "created": r["created"],
            "created_iso": _iso(r["created"]),
            "lane": r["lane"], "parcel": r["parcel"], "view": r["view"], "verdict": r["verdict"], "reasons": json.loads(r["reasons"]),
            "detections": json.loads(r["detections"]), "image": {"width": r["width"], "height": r["height"]},
            "model": {"name": r["model_name"], "version": r["model_version"], "sha256": r["model_sha256"]},
            "timing_ms": json.loads(r["timing"] or "{}"),
            "pixel_mm": json.loads(r["pixel_mm"]) if r["pixel_mm"] else None,
            "network": r["network"] or "main",  # rows stored before grey networks: read by the one network
            "image_purged": _iso(r["purged"]),
            "review": {"state": r["review_state"], "note": r["review_note"],
                       "boxes": json.loads(r["review_boxes"]) if r["review_boxes"] else None,
                       "reviewed_at": r["reviewed_at"], "reviewed_by": r["reviewed_by"]},
        }

    def get_scan(self, scan_id: str) -> dict | None:
        r = self._conn().execute("SELECT * FROM scans WHERE id=?", (scan_id,)).fetchone()
        return self._row(r) if r else None

    def image_path(self, scan_id: str) -> tuple[Path, str] | None:
        r = self._conn().execute("SELECT image_path, content_type FROM scans WHERE id=?", (scan_id,)).fetchone()
        return (resolve_image(self.images, r["image_path"]), r["content_type"]) if r else None

    def find_idempotent(self, idem: str) -> tuple[dict, str] | None:
        """The scan stored under an idempotency key, and the fingerprint of the request that made it."""
        r = self._conn().execute("SELECT * FROM scans WHERE idem=?", (idem,)).fetchone()
        return (self._row(r), r["idem_fp"]) if r else None

    def purged_at(self, scan_id: str) -> float | None:
        """When the retention policy deleted this scan's image (None: it has not)."""
        r = self._conn().execute("SELECT purged FROM scans WHERE id=?", (scan_id,)).fetchone()
        return r["purged"] if r else None

    def list_scans(self, lane=None, verdict=None, review=None, since=None, until=None, limit=50, offset=0,
                   parcel=None) -> tuple[list[dict], int]:
        where, args = [], []
        for col, val in (("lane", lane), ("verdict", verdict), ("review_state", review), ("parcel", parcel)):
            if val is not None:
                where.append(f"{col}=?")
                args.append(val)
        _time_window(where, args, since, until)
        w = (" WHERE " + " AND ".join(where)) if where else ""
        c = self._conn()
        total = c.execute(f"SELECT COUNT(*) FROM scans{w}", args).fetchone()[0]
        rows = c.execute(f"SELECT * FROM scans{w} ORDER BY created DESC LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
        return [self._row(r) for r in rows], total

    def lane_counts(self, since: float | None = None, until: float | None = None) -> list[dict]:
        """Per lane and model version: scans, alarms, and what operators said of them (an alarm confirmed
        or called a false alarm; a clear scan confirmed is a threat the model missed and a person found)."""
        where, args = [], []
        _time_window(where, args, since, until)
        w = (" WHERE " + " AND ".join(where)) if where else ""
        rows = self._conn().execute(
            "SELECT lane, model_version, COUNT(*), COALESCE(SUM(verdict='alarm'), 0), "
            "COALESCE(SUM(verdict='alarm' AND review_state='confirmed'), 0), "
            "COALESCE(SUM(verdict='alarm' AND review_state='false_alarm'), 0), "
            "COALESCE(SUM(verdict!='alarm' AND review_state='confirmed'), 0), MIN(created), MAX(created) "
            f"FROM scans{w} GROUP BY lane, model_version ORDER BY lane, model_version", args).fetchall()
        return [{"lane": r[0], "model_version": r[1], "scans": r[2], "alarms": r[3], "alarms_confirmed": r[4],
                 "alarms_false": r[5], "clear_confirmed": r[6], "first": _iso(r[7]), "last": _iso(r[8])} for r in rows]

    def parcel_tally(self, parcel: str) -> tuple[int, int]:
        """Views of a parcel stored so far, and how many of them alarm (for each detect's answer)."""
        n, alarms = self._conn().execute(
            "SELECT COUNT(*), COALESCE(SUM(verdict='alarm'), 0) FROM scans WHERE parcel=?", (parcel,)).fetchone()
        return int(n), int(alarms)

    def parcel_scans(self, parcel: str) -> list[dict]:
        """Every stored view of one parcel, oldest first."""
        rows = self._conn().execute("SELECT * FROM scans WHERE parcel=? ORDER BY created, id", (parcel,)).fetchall()
        return [self._row(r) for r in rows]

    def review(self, scan_id: str, state: str, note: str | None, boxes: list | None, key_id: str,
               outbox_urls: list[str] | None = None) -> dict | None:
        """Record an operator's decision; with outbox_urls, the scan as reviewed is queued for each
        webhook in the same transaction."""
        with self._write, self._transaction() as c:
            cur = c.execute(
                "UPDATE scans SET review_state=?, review_note=?, review_boxes=?, reviewed_at=?, reviewed_by=? WHERE id=?",
                (state, note, json.dumps(boxes) if boxes is not None else None, time.time(), key_id, scan_id))
            if cur.rowcount and outbox_urls:
                r = c.execute("SELECT * FROM scans WHERE id=?", (scan_id,)).fetchone()
                self._enqueue(c, [(u, "scan.review", {"scan": self._row(r)}) for u in outbox_urls], scan_id)
        if not cur.rowcount:
            return None
        self.audit(key_id, "scan.review", scan_id, {"state": state, "note": note, "boxes": len(boxes or [])})
        return self.get_scan(scan_id)

    # ------------------------------------------------------------- webhook outbox
    @contextlib.contextmanager
    def _transaction(self):
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
            c.execute("COMMIT")
        except BaseException:  # a failed COMMIT (a full disk) too: the connection is left usable
            if c.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    c.execute("ROLLBACK")
            raise

    @staticmethod
    def _enqueue(c: sqlite3.Connection, rows: list[tuple[str, str, dict]], scan_id: str | None) -> None:
        now = time.time()
        for url, event, body in rows:
            cur = c.execute("INSERT INTO outbox(created,url,event,scan_id,body,next_at) VALUES(?,?,?,?,?,?)",
                            (now, url, event, scan_id, "", now))
            payload = {"event": event, "delivery": cur.lastrowid, "created": now, **body}
            c.execute("UPDATE outbox SET body=? WHERE id=?", (json.dumps(payload, separators=(",", ":")), cur.lastrowid))

    def enqueue(self, rows: list[tuple[str, str, dict]], scan_id: str | None = None) -> None:
        """Queue webhook deliveries ((url, event, body) each) that belong to no stored scan (a refused one)."""
        if rows:
            with self._write, self._transaction() as c:
                self._enqueue(c, rows, scan_id)

    def outbox_due(self, now: float, limit: int = 50) -> list[dict]:
        """The deliveries to send now: for each URL only its oldest pending one, so a receiver sees
        its events in the order they happened, however long one of them has to be retried."""
        rows = self._conn().execute(
            "SELECT * FROM outbox o WHERE delivered IS NULL AND failed IS NULL AND next_at <= ? AND NOT EXISTS ("
            "SELECT 1 FROM outbox p WHERE p.url=o.url AND p.id<o.id AND p.delivered IS NULL AND p.failed IS NULL) "
            "ORDER BY id LIMIT ?", (now, limit)).fetchall()
        return [dict(r) for r in rows]

    def outbox_result(self, oid: int, delivered: bool, status: int | None, error: str | None,
                      next_at: float | None = None) -> None:
        """After an attempt: delivered, to be retried at next_at, or (next_at None) given up."""
        now = time.time()
        with self._write:
            self._conn().execute(
                "UPDATE outbox SET attempts=attempts+1, last_status=?, last_error=?, delivered=?, failed=?, "
                "next_at=COALESCE(?, next_at) WHERE id=?",
                (status, error, now if delivered else None, None if delivered or next_at is not None else now,
                 next_at, oid))

    def outbox_pending(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM outbox WHERE delivered IS NULL AND failed IS NULL").fetchone()[0]

    def outbox_stats(self) -> dict:
        """Deliveries pending, delivered (those not yet pruned: the last week's) and given up, each
        counted on its own partial index."""
        c = self._conn()
        delivered = c.execute("SELECT COUNT(*) FROM outbox WHERE delivered IS NOT NULL").fetchone()[0]
        failed = c.execute("SELECT COUNT(*) FROM outbox WHERE failed IS NOT NULL").fetchone()[0]
        oldest = c.execute("SELECT MIN(created) FROM outbox WHERE delivered IS NULL AND failed IS NULL").fetchone()[0]
        return {"pending": self.outbox_pending(), "delivered": delivered, "failed": failed, "oldest_pending": _iso(oldest)}

    def outbox_list(self, state: str, limit: int = 100) -> list[dict]:
        where = {"pending": "delivered IS NULL AND failed IS NULL", "delivered": "delivered IS NOT NULL",
                 "failed": "failed IS NOT NULL"}[state]
        rows = self._conn().execute(f"SELECT id, created, url, event, scan_id, attempts, next_at, delivered, failed, "
                                    f"last_status, last_error FROM outbox WHERE {where} ORDER BY id DESC LIMIT ?",
                                    (limit,)).fetchall()
        return [dict(r) for r in rows]

    def outbox_prune(self, before: float) -> int:
        """Forget deliveries delivered before `before` (unix time); pending and given-up ones stay."""
        with self._write:
            return self._conn().execute("DELETE FROM outbox WHERE delivered IS NOT NULL AND delivered < ?", (before,)).rowcount

    def outbox_retry(self, oid: int) -> bool:
        """Queue a given-up delivery again (after the receiver is mended)."""
        with self._write:
            cur = self._conn().execute("UPDATE outbox SET failed=NULL, next_at=?, created=? WHERE id=? AND failed IS NOT NULL",
                                       (time.time(), time.time(), oid))
        return cur.rowcount > 0

    # ------------------------------------------------------------- storage: free space and retention
    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    # a scan's image is kept under the shorter, clear-scan retention only when nothing about its parcel
    # needs it: it cleared, nobody reviewed it, and no other view of its parcel alarmed or was reviewed
    _CLEAR_ONLY = ("s.verdict='clear' AND s.review_state='pending' AND (s.parcel IS NULL OR NOT EXISTS ("
                   "SELECT 1 FROM scans p WHERE p.parcel=s.parcel AND (p.verdict='alarm' OR p.review_state!='pending')))")

    def purge(self, retain_days: float = 0, retain_clear_days: float = 0, now: float | None = None,
              dry_run: bool = False, batch: int = 500) -> dict:
        """Delete the images (and raw pairs) of scans past their retention: every scan older than
        retain_days, and clear, unreviewed scans of parcels without an alarm or a review older than
        retain_clear_days (0: never, for either). Records stay, marked with the time of the purge,
        so verdicts, detections and statistics outlive the images. The records are marked first and
        the files deleted after: a crash in between leaves an orphan file, never a record pointing
        at nothing unexplained. Returns what was (or, with dry_run, would be) deleted."""
        for name, v in (("retain_days", retain_days), ("retain_clear_days", retain_clear_days)):
            if not (v >= 0) or v == float("inf"):
                raise ValueError(f"{name} must be a number of days >= 0 (0: keep for ever), not {v!r}")
        now = time.time() if now is None else now
        out = {"scans": 0, "clear": 0, "files": 0, "bytes": 0, "dry_run": dry_run}
        rules = []
        if retain_days > 0:
            rules.append(("s.created < ?", now - retain_days * DAY_S, False))
        if retain_clear_days > 0:
            rules.append((f"s.created < ? AND {self._CLEAR_ONLY}", now - retain_clear_days * DAY_S, True))
        today = self.images / time.strftime("%Y/%m/%d", time.gmtime())
        dirs: set[Path] = set()
        for where, cutoff, clear in rules:
            last = (-1.0, "")
            while True:  # keyset pages: each page ends where the last one did, whether it was purged or not
                rows = self._conn().execute(
                    f"SELECT s.id, s.created, s.image_path FROM scans s WHERE s.purged IS NULL AND {where} "
                    "AND (s.created, s.id) > (?, ?) ORDER BY s.created, s.id LIMIT ?", (cutoff, *last, batch)).fetchall()
                if not rows:
                    break
                last = (rows[-1]["created"], rows[-1]["id"])
                ids = [r["id"] for r in rows]
                if not dry_run:
                    with self._write:
                        self._conn().execute(f"UPDATE scans SET purged=? WHERE purged IS NULL AND id IN "
                                             f"({','.join('?' * len(ids))})", (now, *ids))
                for r in rows:
                    image = resolve_image(self.images, r["image_path"])
                    files = self.scan_files(image)
                    out["files"] += len(files)
                    for f in files:
                        try:
                            out["bytes"] += f.stat().st_size
                            if not dry_run:
                                f.unlink()
                        except FileNotFoundError:
                            pass
                    dirs.add(image.parent)
                out["scans"] += len(rows)
                out["clear"] += len(rows) if clear else 0
        if not dry_run:
            for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
                while d != self.images and self.images in d.parents and d != today and today not in d.parents:
                    try:
                        d.rmdir()  # only when empty: a day, then its month and year
                    except OSError:
                        break
                    d = d.parent
        return out

    @staticmethod
    def scan_files(image_path: Path) -> list[Path]:
        """A scan's stored files that exist: its image, and a raw pair's originals beside it."""
        return [p for p in (image_path, *image_path.parent.glob(image_path.stem + "_low.*"),
                            *image_path.parent.glob(image_path.stem + "_high.*")) if p.exists()]

    def backup(self, out: str | Path, images: bool = True) -> dict:
        """A consistent copy of the data directory that `xfd serve --data-dir OUT` runs on: the database
        through SQLite's online backup (a snapshot, while the service keeps writing), then the images of
        the scans in that snapshot not yet purged, and the model registry. Images and registered models
        never change once written, so a second backup into the same OUT copies only what is new.
        Returns counts, and the scans whose files were gone (purged meanwhile, or lost)."""
        out = Path(out)
        if out.resolve() == self.root.resolve():
            raise ValueError("the backup directory is the data directory itself")
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        tmp = out / "xfd.sqlite3.part"
        tmp.unlink(missing_ok=True)
        dst = sqlite3.connect(tmp)
        try:
            self._conn().backup(dst)
        finally:
            dst.close()
        for side in ("-wal", "-shm"):  # a live database's leftovers from an older copy would be replayed over it
            (out / f"xfd.sqlite3{side}").unlink(missing_ok=True)
        os.replace(tmp, out / "xfd.sqlite3")
        done = {"out": str(out), "scans": 0, "files_copied": 0, "files_present": 0, "bytes_copied": 0, "missing": []}
        snap = sqlite3.connect(f"file:{out / 'xfd.sqlite3'}?mode=ro", uri=True)
        try:
            done["scans"] = snap.execute("SELECT COUNT(*) FROM scans").fetchone()[0]
            rows = snap.execute("SELECT id, image_path FROM scans WHERE purged IS NULL") if images else []
            for sid, stored in rows:
                src = resolve_image(self.images, stored)
                files = self.scan_files(src)
                if not files:
                    done["missing"].append(sid)
                for f in files:
                    dst_f = out / "images" / f.relative_to(self.images)
                    n = _copy_if_new(f, dst_f)
                    done["files_copied" if n is not None else "files_present"] += 1
                    done["bytes_copied"] += n or 0
        finally:
            snap.close()
        models = self.root / "models"
        if models.is_dir():
            for f in sorted(models.rglob("*")):
                if f.is_file() and f.suffix != ".tmp":
                    n = _copy_if_new(f, out / "models" / f.relative_to(models), always=f.name == "registry.json")
                    done["files_copied" if n is not None else "files_present"] += 1
                    done["bytes_copied"] += n or 0
        done["seconds"] = round(time.time() - t0, 2)
        (out / "backup.json").write_text(json.dumps({**done, "source": str(self.root), "created": _iso(t0),
                                                     "images": images}, indent=1) + "\n")
        return done

    def storage_status(self) -> dict:
        """How the data directory stands: scans, images kept and purged, bytes on disk, free space."""
        c = self._conn()
        n, kept, purged, oldest = c.execute(
            "SELECT COUNT(*), COALESCE(SUM(purged IS NULL), 0), COALESCE(SUM(purged IS NOT NULL), 0), "
            "MIN(CASE WHEN purged IS NULL THEN created END) FROM scans").fetchone()
        clear = c.execute(f"SELECT COUNT(*) FROM scans s WHERE s.purged IS NULL AND {self._CLEAR_ONLY}").fetchone()[0]
        files = size = 0
        for dirpath, _, names in os.walk(self.images):
            for name in names:
                try:
                    size += os.stat(os.path.join(dirpath, name)).st_size
                    files += 1
                except FileNotFoundError:
                    pass
        usage = shutil.disk_usage(self.root)
        return {"data_dir": str(self.root), "scans": n, "images_kept": kept, "images_kept_clear_only": clear,
                "images_purged": purged, "oldest_kept": _iso(oldest), "image_files": files, "image_bytes": size,
                "database_bytes": sum(p.stat().st_size for p in self.root.glob("xfd.sqlite3*")),
                "webhook_deliveries": self.outbox_stats(),
                "disk_free_bytes": usage.free, "disk_total_bytes": usage.total}


def _time_window(where: list, args: list, since: float | None, until: float | None) -> None:
    """Add 'created in [since, until)' to a WHERE clause being built (either bound may be open)."""
    if since is not None:
        where.append("created>=?")
        args.append(since)
    if until is not None:
        where.append("created<?")
        args.append(until)


def _copy_if_new(src: Path, dst: Path, always: bool = False) -> int | None:
    """Copy src to dst (durably, as an image is written) unless a file of the same size is there;
    the bytes copied, or None when it was there already."""
    size = src.stat().st_size
    if not always and dst.exists() and dst.stat().st_size == size:
        return None
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as s:
        _write_durably(dst, lambda f: shutil.copyfileobj(s, f))
    return size


def _write_durably(path: Path, fill) -> None:
    """Write path aside (.part) with fill(file), fsync it, then rename it into place: a failure (a full
    disk) leaves no half-written file behind."""
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _iso(t: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) if t is not None else None
