"""The inference service: a versioned HTTP API for scanners, integrators and consoles.

Run with `xfd serve` (or `make serve`). Configuration: flags or XFD_* variables
(see Settings). Inference runs in a bounded thread pool, off the event loop; a full
queue answers 503 with Retry-After. Every 200 from /v1/detect is persisted (image
fsync'ed + record committed) before the response is sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as FPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from detector import dicos, imaging, taxonomy
from detector.engine import DEFAULT_MODEL_DIR, Engine, EngineError, check_precision
from detector.offline import REPO_ROOT

from . import metrics as mx
from .registry import Registry
from .store import FULL_ERRNOS, REVIEW_STATES, ROLES, StorageFull, Store

log = logging.getLogger("xfd.serve")
CONSOLE_DIR = Path(__file__).resolve().parent / "console"
IMAGE_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "image/tiff": ".tif", "image/bmp": ".bmp",
               "image/x-ms-bmp": ".bmp", "application/dicom": ".dcm"}


def _env(name: str, default, cast=str):
    v = os.environ.get(name)
    if v in (None, ""):
        return default
    try:
        out = cast(v)
    except ValueError as e:  # every setting's error names the variable
        raise ValueError(str(e) if name in str(e) else f"{name}: {v!r} is not valid ({e})") from None
    if cast in (int, float) and not (0 <= out < float("inf")):  # counts, sizes, seconds: never negative or NaN
        raise ValueError(f"{name}: {v!r} must be a number >= 0")
    return out


def _site_pixel_mm(text: str) -> tuple[float, float]:
    try:
        return imaging.parse_pixel_mm(text)
    except ValueError as e:
        raise ValueError(f"XFD_PIXEL_MM: {e}") from None


def parse_days(name: str):
    def cast(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = float("nan")
        if not (0 <= v < float("inf")):
            raise ValueError(f"{name}: {text!r} is not a number of days >= 0 (0: keep for ever)")
        return v
    return cast


def _min_free(text: str) -> int:
    if not text.strip().isdigit():
        raise ValueError(f"XFD_MIN_FREE_MB: {text!r} is not a whole number of MB >= 0")
    return int(text) * 1024 * 1024


OUTBOX_KEEP_DAYS = 7  # delivered webhook deliveries are kept this long (given-up ones until retried or purged by hand)
WEBHOOK_EVENTS = {"alarm": "scan.alarm", "clear": "scan.clear", "review": "scan.review", "refused": "scan.refused"}


def _webhook_urls(text: str) -> list[str]:
    from urllib.parse import urlsplit

    urls = [u.strip() for u in text.split(",") if u.strip()]
    for u in urls:
        parts = urlsplit(u)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"XFD_WEBHOOK_URLS: {u!r} is not an http(s) URL")
    return urls


def redact_url(url: str) -> str:
    """A webhook URL as logs and the API show it: no user, password or query (they may hold tokens)."""
    from urllib.parse import urlsplit

    p = urlsplit(url)
    host = p.hostname or ""
    return f"{p.scheme}://{host}{f':{p.port}' if p.port else ''}{p.path}" + ("?..." if p.query else "")


def _webhook_events(text: str) -> list[str]:
    names = [e.strip() for e in text.split(",") if e.strip()]
    bad = [e for e in names if e not in WEBHOOK_EVENTS]
    if bad or not names:
        raise ValueError(f"XFD_WEBHOOK_EVENTS: {', '.join(bad) or 'nothing'} given; choose from {', '.join(WEBHOOK_EVENTS)}")
    return [WEBHOOK_EVENTS[e] for e in names]


def _site_flips(text: str) -> int:
    if text.strip() not in ("1", "2", "4"):
        raise ValueError(f"XFD_FLIPS: {text!r} is not 1, 2 or 4 (readings of each scan, mirrored)")
    return int(text)


@dataclass
class Settings:
    host: str = field(default_factory=lambda: _env("XFD_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: _env("XFD_PORT", 8000, int))
    model: str = field(default_factory=lambda: _env("XFD_MODEL", str(DEFAULT_MODEL_DIR)))
    data_dir: str = field(default_factory=lambda: _env("XFD_DATA_DIR", str(REPO_ROOT / "var")))
    backend: str | None = field(default_factory=lambda: _env("XFD_BACKEND", None))
    max_body_bytes: int = field(default_factory=lambda: _env("XFD_MAX_BODY_MB", 64, int) * 1024 * 1024)
    max_pixels: int = field(default_factory=lambda: _env("XFD_MAX_MEGAPIXELS", 50, int) * 1_000_000)
    workers: int = field(default_factory=lambda: _env("XFD_WORKERS", 2, int))
    queue_size: int = field(default_factory=lambda: _env("XFD_QUEUE", 32, int))
    rate_per_key: float = field(default_factory=lambda: _env("XFD_RATE_PER_KEY", 100.0, float))
    cors_origins: str = field(default_factory=lambda: _env("XFD_CORS_ORIGINS", ""))
    warmup_delay_s: float = field(default_factory=lambda: _env("XFD_WARMUP_DELAY", 0.0, float))
    # this installation's scanner pixel size ('S' or 'ROW,COL' mm), for scans sent without pixel_mm
    # and without a DICOS PixelSpacing: one service per scanner line need not send it every time
    pixel_mm: tuple[float, float] | None = field(default_factory=lambda: _env("XFD_PIXEL_MM", None, _site_pixel_mm))
    # readings of each scan, mirrored (1, 2 or 4; detector.engine.FLIPS): unset, as the model's
    # thresholds were calibrated; another value trades speed for detections at thresholds that then hold only roughly
    flips: int | None = field(default_factory=lambda: _env("XFD_FLIPS", None, _site_flips))
    # the precision OpenVINO computes scores in (detector.engine.ov_precision reads it; checked here at start-up)
    ov_precision: str = field(default_factory=lambda: _env("XFD_OV_PRECISION", "f32", check_precision))
    # storage: below this much free space in the data directory scans are refused (507) rather than
    # analysed and lost; images past their retention are deleted (records stay) every purge_every_s
    min_free_bytes: int = field(default_factory=lambda: _env("XFD_MIN_FREE_MB", 512 * 1024 * 1024, _min_free))
    retain_days: float = field(default_factory=lambda: _env("XFD_RETAIN_DAYS", 0.0, parse_days("XFD_RETAIN_DAYS")))
    retain_clear_days: float = field(default_factory=lambda: _env("XFD_RETAIN_CLEAR_DAYS", 30.0, parse_days("XFD_RETAIN_CLEAR_DAYS")))
    purge_every_s: float = field(default_factory=lambda: _env("XFD_PURGE_EVERY_S", 3600.0, float))
    # webhooks: each event POSTed (signed) to every URL, queued in the database with the scan, retried
    # with backoff in order per URL, given up after webhook_max_age_h
    webhook_urls: list[str] = field(default_factory=lambda: _env("XFD_WEBHOOK_URLS", [], _webhook_urls))
    webhook_secret: str = field(default_factory=lambda: _env("XFD_WEBHOOK_SECRET", ""))
    webhook_events: list[str] = field(default_factory=lambda: _env("XFD_WEBHOOK_EVENTS", ["scan.alarm", "scan.review", "scan.refused"],
                                                                   _webhook_events))
    webhook_timeout_s: float = field(default_factory=lambda: _env("XFD_WEBHOOK_TIMEOUT_S", 5.0, float))
    webhook_max_age_h: float = field(default_factory=lambda: _env("XFD_WEBHOOK_MAX_AGE_H", 24.0, float))


# ----------------------------------------------------------------- errors
class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_body(status: int, code: str, message: str) -> dict:
    return {"error": {"status": status, "code": code, "message": message}}


PIXEL_MM_HELP = ("the scanner's pixel size in mm: 'S' for square pixels, or 'ROW,COL' (mm between rows, mm between "
                 "columns: on a line scan, across the belt and along it). A scan whose pixels are not square, or of a "
                 "size the model did not train on, is analysed resampled; boxes stay in the scan's own pixels. A DICOS "
                 "scan's PixelSpacing is used when this is not sent")
IMAGE_ERROR_STATUS = {"empty": 400, "truncated": 400, "bad_image": 400, "unsupported_format": 415,
                      "unsupported_depth": 415, "too_large": 413, "too_small": 422, "dark_scan": 422}


# ----------------------------------------------------------------- schemas (the API contract)
class BoxModel(BaseModel):
    model_config = {"allow_inf_nan": False}  # a reviewed box of NaN would pass every bounds check

    x1: float
    y1: float
    x2: float
    y2: float


class DetectionModel(BaseModel):
    label: str
    class_id: int
    confidence: float
    box: BoxModel
    alarm: bool


class ModelRef(BaseModel):
    name: str
    version: str
    sha256: str


class ImageSize(BaseModel):
    width: int
    height: int


class PixelGeometry(BaseModel):
    declared: list[float] = Field(..., description="mm between rows, mm between columns, as sent or declared")
    resampled: bool = Field(..., description="analysed resampled to square pixels of a size the model trained on")
    analysed_mm: float = Field(..., description="the pixel size (mm) it was analysed at")
    analysed_size: list[int] = Field(..., description="width, height it was analysed at (boxes are in the scan's own pixels)")


class DetectResponse(BaseModel):
    scan_id: str
    model: ModelRef
    image: ImageSize
    verdict: Literal["alarm", "clear"]
    reasons: list[str]
    detections: list[DetectionModel]
    timing_ms: dict[str, float]
    lane: str | None = None
    parcel: str | None = Field(None, description="the parcel this scan is a view of, as sent")
    view: str | None = Field(None, description="which view of the parcel, as sent (e.g. top, side)")
    parcel_verdict: Literal["alarm", "clear"] | None = Field(
        None, description="with `parcel`: alarm when any view of the parcel stored so far alarms")
    parcel_views: int | None = Field(None, description="with `parcel`: views of the parcel stored so far, this one included")
    pixel_mm: PixelGeometry | None = Field(
        None, description="when the scan's pixel size was sent (`pixel_mm`) or its DICOS header declared it: how it was analysed")
    network: Literal["main", "grey"] = Field(
        "main", description="which of the model's networks read the scan: `grey` for a grey scan where the model has a grey "
                            "network (its thresholds then decide `alarm`; see /v1/models `networks`), else `main`")
    created: float | None = None

    model_config = {"json_schema_extra": {"examples": [{
        "scan_id": "7f0c6c1e-2b8a-4e53-9a8e-0f6f5b0d2c11", "model": {"name": "xfd-default", "version": "2026.11.28", "sha256": "ab12..."},
        "image": {"width": 1024, "height": 640}, "verdict": "alarm", "reasons": ["assembled firearm"],
        "detections": [{"label": "gun", "class_id": 0, "confidence": 0.91, "box": {"x1": 412.0, "y1": 230.5, "x2": 598.0, "y2": 371.0}, "alarm": True}],
        "timing_ms": {"decode": 4.1, "preprocess": 1.2, "inference": 21.0, "postprocess": 0.3, "total": 27.0}, "lane": "lane-1"}]}}


class ReviewBox(BaseModel):
    label: str
    box: BoxModel

    @field_validator("box")
    @classmethod
    def _ordered(cls, b: BoxModel):
        if b.x2 <= b.x1 or b.y2 <= b.y1:
            raise ValueError("box must have x2 > x1 and y2 > y1")
        return b


class ReviewRequest(BaseModel):
    decision: Literal["confirmed", "false_alarm"]
    note: str | None = Field(default=None, max_length=2000)
    boxes: list[ReviewBox] | None = Field(default=None, max_length=100,
                                          description="corrected or added threat boxes (original image pixels)")

    model_config = {"json_schema_extra": {"examples": [
        {"decision": "confirmed", "note": "pistol frame in toolbox", "boxes": [{"label": "frame", "box": {"x1": 100, "y1": 80, "x2": 260, "y2": 190}}]},
        {"decision": "false_alarm", "note": "toy gun"}]}}


# ----------------------------------------------------------------- middleware
class BodyLimit:
    """Pure ASGI: refuse bodies over the limit (Content-Length first, then counted)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    return await _send_json(send, 400, error_body(400, "bad_request", "invalid Content-Length"))
                if n > self.limit:
                    return await _send_json(send, 413, error_body(413, "body_too_large",
                                                                  f"request body is {n} bytes, over the limit of {self.limit}"))
        seen = 0

        async def counted():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise ApiError(413, "body_too_large", f"request body over the limit of {self.limit} bytes")
            return msg

        try:
            await self.app(scope, counted, send)
        except ApiError as e:
            await _send_json(send, e.status, error_body(e.status, e.code, e.message))


async def _send_json(send, status: int, body: dict, headers: list | None = None):
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": data})


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin", "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
CSP = "default-src 'self'; img-src 'self' blob: data:; media-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"


# ----------------------------------------------------------------- the app state
class Service:
    def __init__(self, settings: Settings):
        self.s = settings
        self.store = Store(settings.data_dir)
        self.engine: Engine | None = None
        self.engine_error: str | None = None
        self.pool = ThreadPoolExecutor(max_workers=max(1, settings.workers), thread_name_prefix="infer")
        # the upload is written and fsync'ed while the model runs: waiting on the disk costs no CPU
        self.io_pool = ThreadPoolExecutor(max_workers=max(2, settings.workers), thread_name_prefix="store")
        self.pending = 0
        self.lock = threading.Lock()
        self.buckets: dict[str, tuple[float, float]] = {}
        self.listeners: set[asyncio.Queue] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started = time.time()
        self.registry = Registry(settings.data_dir)
        self.registry_version: str | None = None
        self.swap_error: str | None = None
        self.stopping = threading.Event()
        self.idem_inflight: set[str | None] = set()  # Idempotency-Keys whose scans are being analysed
        self.webhook_wake = threading.Event()

    def _new_engine(self, path: str | Path) -> Engine:
        eng = Engine(path, backend=self.s.backend, concurrency=max(1, self.s.workers), warmup=True, flips=self.s.flips)
        self_test(eng)
        return eng

    def _set_engine(self, eng: Engine, version: str | None) -> None:
        self.engine = eng  # one reference assignment: in-flight requests keep the engine they started with
        self.registry_version = version
        mx.MODEL_INFO.info({"name": eng.info.name, "version": eng.info.version, "sha256": eng.info.sha256, "backend": eng.backend,
                            "precision": eng.precision, "flips": str(eng.flips)})
        log.info("model %s %s ready (%s in %s, %d reading%s a scan)", eng.info.name, eng.info.version, eng.backend, eng.precision,
                 eng.flips, "s" if eng.flips > 1 else "")

    def load_engine(self) -> None:
        try:
            if self.s.warmup_delay_s:
                time.sleep(self.s.warmup_delay_s)
            active = self.registry.state().get("active")
            path = self.registry.path(active) if active else self.s.model
            import pydicom  # noqa: F401  (DICOS reading; imported before ready, not on the first DICOS scan: ~0.1 s)

            self._set_engine(self._new_engine(path), active)
        except Exception as e:  # readiness stays false and says why
            self.engine_error = f"{type(e).__name__}: {e}"
            log.error("model failed to load: %s", self.engine_error)
        threading.Thread(target=self.watch_registry, name="registry-watch", daemon=True).start()

    def watch_registry(self) -> None:
        """Hot swap on promote/rollback: load, warm, self-test, swap; keep the old on failure."""
        last = None
        while not self.stopping.is_set():
            try:
                m = self.registry.file.stat().st_mtime_ns if self.registry.file.exists() else None
                if m != last:
                    last = m
                    active = self.registry.state().get("active")
                    if active and active != self.registry_version:
                        log.info("registry: switching to %s", active)
                        try:
                            self._set_engine(self._new_engine(self.registry.path(active)), active)
                            self.swap_error = None
                            self.store.audit(None, "model.swap", active, None)
                        except Exception as e:
                            self.swap_error = f"{active}: {type(e).__name__}: {e}"
                            log.error("model swap failed, keeping %s: %s", self.registry_version, self.swap_error)
                            self.store.audit(None, "model.swap_failed", active, {"error": str(e)[:500]})
            except Exception as e:  # never let the watcher die
                log.error("registry watch: %s", e)
            self.stopping.wait(1.0)

    def storage_problem(self, incoming: int = 0) -> str | None:
        """Why a scan of `incoming` bytes cannot be stored now (None: it can)."""
        free = self.store.free_bytes()
        mx.STORAGE_FREE.set(free)
        if free - incoming < self.s.min_free_bytes:
            return (f"the data directory has {free / 2**20:.0f} MB free, below the {self.s.min_free_bytes / 2**20:.0f} MB "
                    "floor (XFD_MIN_FREE_MB): scans cannot be stored, so none is analysed. Free space, or delete old "
                    "images (`xfd storage purge`, XFD_RETAIN_DAYS / XFD_RETAIN_CLEAR_DAYS)")
        return None

    def purge_once(self) -> dict:
        """Apply the retention policy once: log, count and audit what was deleted; and forget webhook
        deliveries delivered more than a week ago."""
        self.store.outbox_prune(time.time() - OUTBOX_KEEP_DAYS * 86400)
        done = self.store.purge(self.s.retain_days, self.s.retain_clear_days)
        if done["scans"]:
            mx.PURGED.inc(done["scans"])
            mx.PURGED_BYTES.inc(done["bytes"])
            log.info("retention: deleted the images of %d scans (%d files, %.1f MB; %d of them clear scans older than "
                     "%g days)", done["scans"], done["files"], done["bytes"] / 2**20, done["clear"], self.s.retain_clear_days)
            self.store.audit(None, "storage.purge", None, {**done, "retain_days": self.s.retain_days,
                                                          "retain_clear_days": self.s.retain_clear_days})
        return done

    def retention(self) -> None:
        """The retention policy, applied at start and every purge_every_s while the service runs."""
        while not self.stopping.is_set():
            try:
                self.purge_once()
            except Exception as e:  # never let the loop die; the next round tries again
                log.error("retention: purge failed: %s", e)
            self.stopping.wait(max(1.0, self.s.purge_every_s))

    def webhook_rows(self, event: str, body: dict) -> list[tuple[str, str, dict]]:
        """The outbox rows of one event: one per webhook URL, if the event is sent at all."""
        return [(u, event, body) for u in self.s.webhook_urls] if event in self.s.webhook_events else []

    def deliver_webhooks(self) -> None:
        """Send the outbox, oldest first per URL, until the service stops: a 2xx is delivered; anything
        else is tried again after 1, 2, 4 ... 600 s, and given up (kept, listed in /v1/webhooks) once
        older than XFD_WEBHOOK_MAX_AGE_H. Redirects are not followed."""
        import httpx

        if not self.s.webhook_urls:
            return
        logging.getLogger("httpx").setLevel(logging.WARNING)  # its request lines carry the URL's token
        if not self.s.webhook_secret:
            log.warning("webhooks: XFD_WEBHOOK_SECRET is not set, so deliveries are not signed")
        with httpx.Client(timeout=self.s.webhook_timeout_s, follow_redirects=False) as client:
            while not self.stopping.is_set():
                try:
                    rows = self.store.outbox_due(time.time())
                    for r in rows:
                        if self.stopping.is_set():
                            break
                        self._deliver(client, r)
                except Exception as e:  # never let the sender die
                    log.error("webhooks: %s", e)
                    rows = []
                if not rows:
                    self.webhook_wake.wait(1.0)
                    self.webhook_wake.clear()

    def _deliver(self, client, r: dict) -> None:
        import httpx

        body = r["body"].encode()
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": "xfd-webhook/1", "X-XFD-Event": r["event"],
                   "X-XFD-Delivery": str(r["id"]), "X-XFD-Timestamp": ts}
        if self.s.webhook_secret:
            mac = hmac.new(self.s.webhook_secret.encode(), ts.encode() + b"." + body, hashlib.sha256)
            headers["X-XFD-Signature"] = "sha256=" + mac.hexdigest()
        status = error = None
        try:
            resp = client.post(r["url"], content=body, headers=headers)
            status = resp.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"[:300]
        if error is None:
            self.store.outbox_result(r["id"], True, status, None)
            mx.WEBHOOKS.labels("delivered").inc()
        elif time.time() - r["created"] > self.s.webhook_max_age_h * 3600:
            self.store.outbox_result(r["id"], False, status, error)
            mx.WEBHOOKS.labels("given_up").inc()
            log.error("webhooks: gave up delivery %d (%s) to %s after %d attempts: %s", r["id"], r["event"], redact_url(r["url"]),
                      r["attempts"] + 1, error)
        else:
            self.store.outbox_result(r["id"], False, status, error, time.time() + min(600.0, 2.0 ** r["attempts"]))
            mx.WEBHOOKS.labels("retry").inc()

    def rate_ok(self, key_id: str) -> bool:
        rate = self.s.rate_per_key
        if rate <= 0:
            return True
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.get(key_id, (rate, now))
            tokens = min(rate, tokens + (now - last) * rate)
            if tokens < 1:
                self.buckets[key_id] = (tokens, now)
                return False
            self.buckets[key_id] = (tokens - 1, now)
            return True

    def publish(self, event: dict) -> None:
        for q in list(self.listeners):
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:
                pass


# ----------------------------------------------------------------- auth
def require(*roles: str) -> Callable:
    allowed = set(roles) | {"admin"}

    async def dep(request: Request) -> dict:
        svc: Service = request.app.state.svc
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer ") or not auth[7:].strip():
            raise ApiError(401, "unauthorized", "missing API key: send 'Authorization: Bearer <key>'",
                           {"WWW-Authenticate": "Bearer"})
        key = svc.store.lookup_key(auth[7:].strip())
        if key is None:
            raise ApiError(401, "unauthorized", "invalid or revoked API key", {"WWW-Authenticate": "Bearer"})
        if key["expires"] is not None and key["expires"] <= time.time():
            raise ApiError(401, "key_expired", f"this API key expired on "
                           f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(key['expires']))}: ask an admin for a new one",
                           {"WWW-Authenticate": "Bearer"})
        if key["role"] not in allowed:
            raise ApiError(403, "forbidden", f"role '{key['role']}' may not use this route (needs {' or '.join(sorted(allowed))})")
        if not svc.rate_ok(key["id"]):
            raise ApiError(429, "rate_limited", "too many requests for this key", {"Retry-After": "1"})
        request.state.key = key
        return key

    return dep


# ----------------------------------------------------------------- factory
def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    svc = Service(settings)
    app = FastAPI(
        title="X-ray firearm-component detector", version="1.0.0", redirect_slashes=False,
        description="Detects firearms and firearm components (barrel, slide, frame, magazine, 3D-printed parts, "
                    "ammunition) in parcel X-ray scans and returns a parcel verdict. All /v1 routes need "
                    "`Authorization: Bearer <key>` (see `xfd keys`). Errors have the shape "
                    "`{\"error\": {\"status\", \"code\", \"message\"}}`.",
    )
    app.state.svc = svc

    @app.on_event("startup")
    async def _startup():
        svc.loop = asyncio.get_running_loop()
        if svc.store.count_active_keys() == 0:
            kid, token = svc.store.create_key("admin", "bootstrap")
            print(f"\n*** First start: created admin API key (shown once, store it now):\n    {token}\n", file=sys.stderr, flush=True)
        threading.Thread(target=svc.load_engine, name="model-loader", daemon=True).start()
        threading.Thread(target=svc.retention, name="retention", daemon=True).start()
        threading.Thread(target=svc.deliver_webhooks, name="webhooks", daemon=True).start()

    @app.on_event("shutdown")
    async def _shutdown():
        svc.stopping.set()
        svc.webhook_wake.set()
        svc.pool.shutdown(wait=True, cancel_futures=False)
        svc.io_pool.shutdown(wait=True, cancel_futures=False)

    # ------------------------------------------------------------ error handlers
    @app.exception_handler(ApiError)
    async def _api_error(request, e: ApiError):
        return JSONResponse(error_body(e.status, e.code, e.message), e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, e: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "error")
        return JSONResponse(error_body(e.status_code, code, str(e.detail)), e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request, e: RequestValidationError):
        msg = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()[:5])
        return JSONResponse(error_body(422, "invalid_request", msg), 422)

    @app.exception_handler(Exception)
    async def _internal(request, e: Exception):
        log.exception("internal error on %s", request.url.path)
        return JSONResponse(error_body(500, "internal", "internal error; the scan was not analysed"), 500)

    @app.middleware("http")
    async def _headers_and_metrics(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        mx.REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        mx.LATENCY.labels(path).observe(time.perf_counter() - t0)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        if path.startswith("/console"):
            response.headers.setdefault("Content-Security-Policy", CSP)
        elif path != "/docs":  # API answers are never cached
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=[o.strip() for o in settings.cors_origins.split(",")],
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])

    # ------------------------------------------------------------ health
    @app.get("/healthz", tags=["health"], summary="Liveness: the process is up")
    async def healthz():
        return {"status": "ok", "uptime_s": round(time.time() - svc.started, 1)}

    @app.get("/readyz", tags=["health"], summary="Readiness: model loaded and warmed",
             responses={503: {"description": "not ready yet (or the model failed to load), or the data directory is "
                                              "below its free-space floor (storage_full)"}})
    async def readyz():
        full = svc.storage_problem()
        if full and svc.engine is not None and svc.engine.ready:  # it could analyse, but not store: not ready for scans
            return JSONResponse(error_body(503, "storage_full", full), 503, headers={"Retry-After": "60"})
        if svc.engine is not None and svc.engine.ready:
            return {"status": "ready", "model": svc.engine.info.public(), "backend": svc.engine.backend, "precision": svc.engine.precision,
                    "flips": svc.engine.flips}
        body = error_body(503, "not_ready", svc.engine_error or "model loading and warming up")
        return JSONResponse(body, 503, headers={"Retry-After": "2"})

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics (any key)")
    async def metrics(key=Depends(require("integrator", "operator"))):
        mx.QUEUE.set(svc.pending)
        mx.STORAGE_FREE.set(svc.store.free_bytes())
        mx.WEBHOOK_PENDING.set(svc.store.outbox_pending())
        data, ctype = mx.render()
        return Response(data, media_type=ctype)

    # ------------------------------------------------------------ detect
    @app.post("/v1/detect", response_model=DetectResponse, tags=["detect"],
              summary="Analyse one scan",
              description="Send the scan as multipart field `image`, or as the raw body with an image content type "
                          "(image/png, image/jpeg, image/tiff, image/bmp, or application/dicom for a DICOS/DICOM "
                          "projection image), or as multipart fields `low` and `high`: a scanner's raw 16-bit "
                          "low- and high-energy images (PNG or TIFF, same size), rendered to the model's colours "
                          "by the simulator's physics. Optional query or form fields: `lane`, `tile` (auto|on|off), and for "
                          "a dual-view (or multi-view) scanner `parcel` (the parcel's id, the same for each of its "
                          "views) and `view` (e.g. top, side): the answer then carries `parcel_verdict` over the "
                          "views stored so far, and GET /v1/parcels/{parcel} gives the whole parcel; `pixel_mm`, the "
                          "scanner's pixel size ('S' or 'ROW,COL' mm), for scanners whose pixels are not square (a "
                          "belt speed or line rate off the vendor's setting) or far finer or coarser than the model "
                          "trained on: the scan is analysed resampled (DICOS: read from PixelSpacing). Boxes are "
                          "in the original image's pixels. The scan is stored before the response is sent. With "
                          "`Accept: application/dicom` the answer is the scan's DICOS Threat Detection Report "
                          "instead of JSON (scan id in the `X-Scan-Id` header). A retry should carry an `Idempotency-Key` "
                          "header: a repeat of a stored request is answered with the stored scan (`Idempotent-Replayed: "
                          "true`), not analysed again; 409 while the first is still being analysed, 422 when the key was "
                          "used for another request.",
              responses={200: {"content": {"application/dicom": {}},
                               "description": "the analysis (JSON), or its DICOS report with Accept: application/dicom"},
                         400: {"description": "unreadable or truncated image"}, 401: {"description": "no or bad key"},
                         403: {"description": "role may not detect"}, 413: {"description": "body or pixels over the limit"},
                         415: {"description": "not an image type we accept"},
                         422: {"description": "bad field, an image under 32 px a side (too_small), or a scan dark "
                                               "throughout (dark_scan: no X-rays reached the detector; not cleared)"},
                         409: {"description": "idempotency_in_progress: a request with this Idempotency-Key is "
                                               "still being analysed"},
                         429: {"description": "rate limited"}, 503: {"description": "not ready or queue full"},
                         507: {"description": "storage_full: the data directory has no room to store the scan, so it "
                                             "was not analysed (see XFD_MIN_FREE_MB)"}})
    async def detect(request: Request, key=Depends(require("integrator")),
                     lane: str | None = Query(None, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$"),
                     tile: Literal["auto", "on", "off"] = Query("auto"),
                     parcel: str | None = Query(None, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$"),
                     view: str | None = Query(None, max_length=32, pattern=r"^[A-Za-z0-9_.:-]+$"),
                     pixel_mm: str | None = Query(None, max_length=40, description=PIXEL_MM_HELP)):
        if svc.engine is None or not svc.engine.ready:
            raise ApiError(503, "not_ready", svc.engine_error or "model is loading", {"Retry-After": "2"})
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            form = await request.form(max_files=2, max_fields=10)
            sent = sorted(k for k, v in form.multi_items() if _is_file(v))
            if sent not in (["image"], ["high", "low"]):  # one scan a request: nothing sent is left unread
                raise ApiError(422, "invalid_request", "send one scan a request: one file field 'image', or 'low' and "
                               f"'high' for a raw dual-energy pair; got {', '.join(sent) or 'no file'}")
            if form.get("tile") is not None and form.get("tile") not in ("auto", "on", "off"):
                raise ApiError(422, "invalid_request", "tile must be auto, on or off")
            up, low, high = (form.get(k) for k in ("image", "low", "high"))
            if sent == ["image"]:
                data = await up.read()
            else:
                up, data = low, (await low.read(), await high.read())  # a raw dual-energy pair
            lane = form.get("lane") if isinstance(form.get("lane"), str) else lane
            tile = form.get("tile") or tile  # checked above
            parcel = form.get("parcel") if isinstance(form.get("parcel"), str) else parcel
            view = form.get("view") if isinstance(form.get("view"), str) else view
            pixel_mm = form.get("pixel_mm") if isinstance(form.get("pixel_mm"), str) else pixel_mm
            claimed = (up.content_type or "").lower()
        elif ctype in IMAGE_TYPES:
            data = await request.body()
            claimed = ctype
        elif not ctype:
            raise ApiError(415, "unsupported_media_type", "missing Content-Type: send multipart/form-data or an image type")
        else:
            raise ApiError(415, "unsupported_media_type", f"Content-Type {ctype!r} is not accepted; use multipart/form-data or "
                           + ", ".join(k for k in IMAGE_TYPES if k != "image/x-ms-bmp"))
        for name, value, most in (("lane", lane, 64), ("parcel", parcel, 128), ("view", view, 32)):
            if value is not None and not _is_name(value, most):
                raise ApiError(422, "invalid_request", f"{name} must be 1-{most} characters of letters, digits, _ . : -")
        if key["lanes"] is not None and lane not in key["lanes"]:  # a scanner's key speaks for its own lanes only
            raise ApiError(403, "lane_not_allowed", f"this key may send scans for lane {', '.join(key['lanes'])} only, "
                           f"not {lane or 'no lane'}")
        pixels = None
        if pixel_mm is not None:
            try:
                pixels = imaging.parse_pixel_mm(pixel_mm)
            except ValueError as e:
                raise ApiError(422, "invalid_request", str(e)) from None
        # from here on, an Idempotency-Key in flight is always released (the finally below)
        idem = idem_fp = None
        idem_key = request.headers.get("idempotency-key")
        if idem_key is not None:
            if not _is_name(idem_key, 128):
                raise ApiError(422, "invalid_request", "Idempotency-Key must be 1-128 characters of letters, digits, _ . : -")
            idem = f"{key['id']}:{idem_key}"  # each API key its own namespace
            idem_fp = await asyncio.get_running_loop().run_in_executor(  # hashing megabytes: off the event loop
                svc.io_pool, _fingerprint, data, lane, tile, parcel, view, pixel_mm)
            found = svc.store.find_idempotent(idem)
            if found is not None:
                return _replay(svc, request, found, idem_fp, idem_key)
            with svc.lock:
                if idem in svc.idem_inflight:
                    raise ApiError(409, "idempotency_in_progress", f"a request with Idempotency-Key {idem_key} is being "
                                   "analysed; retry for its answer", {"Retry-After": "1"})
                svc.idem_inflight.add(idem)
        with svc.lock:
            if svc.pending >= svc.s.queue_size:
                mx.REJECTED.inc()
                svc.idem_inflight.discard(idem)
                raise ApiError(503, "overloaded", "inference queue is full; retry shortly", {"Retry-After": "1"})
            svc.pending += 1
        mx.QUEUE.set(svc.pending)
        loop = asyncio.get_running_loop()
        try:
            rec, ids = await loop.run_in_executor(svc.pool, _analyse_and_store, svc, data, claimed, lane, tile, key,
                                                  parcel, view, pixels, (idem, idem_fp))
        except ApiError as e:  # a scan came in and was not screened: the belt is told, not only the sender
            refused = {"lane": lane, "parcel": parcel, "view": view, "status": e.status, "code": e.code,
                       "message": e.message, "created": time.time()}
            svc.publish({"type": "refused", "scan": refused})
            rows = svc.webhook_rows("scan.refused", {"refused": refused})
            if rows:
                try:  # (a full disk may refuse this too: the sender has its answer either way)
                    svc.store.enqueue(rows)
                    svc.webhook_wake.set()
                except Exception as qe:
                    log.error("webhooks: could not queue a refusal: %s", qe)
            raise
        finally:
            with svc.lock:
                svc.pending -= 1
                svc.idem_inflight.discard(idem)
            mx.QUEUE.set(svc.pending)
        svc.publish({"type": "scan", "scan": rec})
        if _wants_dicom(request):
            tdr = await loop.run_in_executor(svc.io_pool, dicos.write_tdr, rec, ids)  # the scan's UIDs, as decoded
            return Response(tdr, media_type=dicos.MEDIA_TYPE, headers={"X-Scan-Id": rec["scan_id"]})
        return rec

    # ------------------------------------------------------------ scans
    @app.get("/v1/scans", tags=["scans"], summary="List scans (newest first)")
    async def list_scans(key=Depends(require("operator")), lane: str | None = Query(None, max_length=64),
                         parcel: str | None = Query(None, max_length=128, description="only the views of this parcel"),
                         verdict: Literal["alarm", "clear"] | None = None,
                         review: Literal["pending", "confirmed", "false_alarm"] | None = None,
                         since: float | None = Query(None, allow_inf_nan=False, description="unix time, inclusive"),
                         until: float | None = Query(None, allow_inf_nan=False, description="unix time, exclusive"),
                         limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10**12)):
        items, total = svc.store.list_scans(lane, verdict, review, since, until, limit, offset, parcel)
        nxt = offset + len(items) if offset + len(items) < total else None
        return {"items": items, "total": total, "limit": limit, "offset": offset, "next_offset": nxt}

    @app.get("/v1/lanes", tags=["scans"], summary="Each lane's alarm rate against the model's calibration, with reviews",
             description="Per lane and model version over the scans stored (optionally since/until, unix time): scans, "
                         "alarms, the alarms operators confirmed or called false, clear scans confirmed by hand (threats "
                         "the model missed), the rate of alarms not confirmed as threats with its 95% interval, and for "
                         "the active model's scans whether that rate is 'above' the false-alarm rate its thresholds were "
                         "calibrated for (on simulated scans), 'consistent' with it, or from 'too_few_scans' to tell "
                         "(under min_scans, default 100, or an interval too wide). A "
                         "lane 'above' runs on images the model was not calibrated for.")
    async def lanes(key=Depends(require("operator")),
                    since: float | None = Query(None, allow_inf_nan=False, description="unix time, inclusive"),
                    until: float | None = Query(None, allow_inf_nan=False, description="unix time, exclusive"),
                    min_scans: int = Query(100, ge=1, le=10**9, description="judge a lane from this many scans")):
        from .lanes import lane_report

        if svc.engine is None:
            raise ApiError(503, "not_ready", svc.engine_error or "model is loading", {"Retry-After": "2"})
        info = svc.engine.info
        cal = info.meta.get("calibration")
        # the database query and the intervals (scipy) off the event loop
        report = await asyncio.to_thread(lambda: lane_report(svc.store.lane_counts(since, until), info.version, cal, min_scans))
        return {"model": info.version, "calibration": cal, "since": since, "until": until, "min_scans": min_scans,
                "lanes": report}

    @app.get("/v1/parcels/{parcel}", tags=["scans"], summary="One parcel over all its views (dual-view scanners)",
             description="The parcel's verdict over every view stored with this `parcel` (alarm when any view "
                         "alarms), the reasons of its alarming views, a review state over them, and each view in "
                         "the order received. 404 when no scan was sent with this parcel id.")
    async def get_parcel(parcel: str = FPath(..., max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$"),
                         key=Depends(require("integrator", "operator"))):
        views = svc.store.parcel_scans(parcel)
        if not views:
            raise ApiError(404, "not_found", f"no scan was sent for parcel {parcel}")
        return parcel_summary(parcel, views)

    @app.get("/v1/scans/{scan_id}", tags=["scans"], summary="One scan with its detections and review")
    async def get_scan(scan_id: str, key=Depends(require("operator"))):
        rec = svc.store.get_scan(scan_id)
        if rec is None:
            raise ApiError(404, "not_found", f"no scan {scan_id}")
        return rec

    @app.get("/v1/scans/{scan_id}/image", tags=["scans"],
             summary="The original image as sent; ?format=png: as the model saw it, as PNG (what a browser can "
                     "show of TIFF and DICOS scans); ?overlay=1: PNG with the boxes drawn",
             response_class=Response,
             responses={404: {"description": "unknown scan, or its image missing from the store (image_missing)"},
                        410: {"description": "image_purged: deleted under the retention policy; the record is kept"}})
    async def get_image(scan_id: str, key=Depends(require("operator")), overlay: bool = False,
                        format: Literal["original", "png"] = "original"):
        found = svc.store.image_path(scan_id)
        if found is None:
            raise ApiError(404, "not_found", f"no scan {scan_id}")
        path, ctype = found
        purged = svc.store.purged_at(scan_id)
        if purged is not None:
            raise ApiError(410, "image_purged", f"the image of scan {scan_id} was deleted on "
                           f"{time.strftime('%Y-%m-%d', time.gmtime(purged))} under the retention policy "
                           "(XFD_RETAIN_DAYS / XFD_RETAIN_CLEAR_DAYS); its record is kept")
        if not path.exists():
            raise ApiError(404, "image_missing", f"the image of scan {scan_id} is missing from the store")
        if not overlay and (format == "original" or ctype == "image/png"):
            return FileResponse(path, media_type=ctype or "application/octet-stream")
        rec = svc.store.get_scan(scan_id) if overlay else None
        loop = asyncio.get_running_loop()
        png = await loop.run_in_executor(svc.pool, _overlay_png, path, rec)
        return Response(png, media_type="image/png")

    @app.get("/v1/scans/{scan_id}/tdr", tags=["scans"], response_class=Response,
             summary="The scan's DICOS Threat Detection Report (application/dicom)",
             description="`type=machine` (default): the detector's alarm decision and alarming boxes. "
                         "`type=operator`: the screener's review (409 while the scan is pending). The report "
                         "references the DICOS image when the scan was one; its UIDs are derived from the scan id, "
                         "so fetching it again gives the same report.",
             responses={200: {"content": {"application/dicom": {}}}, 404: {"description": "unknown scan"},
                        409: {"description": "operator report of a scan not yet reviewed"}})
    async def get_tdr(scan_id: str, key=Depends(require("integrator", "operator")),
                      type: Literal["machine", "operator"] = "machine"):
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(svc.io_pool, _tdr_bytes, svc, scan_id, type.upper())
        return Response(data, media_type=dicos.MEDIA_TYPE,
                        headers={"Content-Disposition": f'attachment; filename="{scan_id}-{type}-tdr.dcm"'})

    @app.post("/v1/scans/{scan_id}/review", tags=["scans"], summary="Operator decision: confirmed or false_alarm")
    async def review(scan_id: str, body: ReviewRequest, key=Depends(require("operator"))):
        rec = svc.store.get_scan(scan_id)
        if rec is None:
            raise ApiError(404, "not_found", f"no scan {scan_id}")
        names = svc.engine.names if svc.engine else None
        boxes = None
        if body.boxes is not None:
            boxes = []
            for b in body.boxes:
                if names and b.label not in names:
                    raise ApiError(422, "invalid_request", f"unknown label {b.label!r}; known: {', '.join(names)}")
                w, h = rec["image"]["width"], rec["image"]["height"]
                if b.box.x1 < 0 or b.box.y1 < 0 or b.box.x2 > w or b.box.y2 > h:
                    raise ApiError(422, "invalid_request", f"box {b.box.model_dump()} is outside the {w}x{h} image")
                boxes.append(b.model_dump())
        urls = svc.s.webhook_urls if "scan.review" in svc.s.webhook_events else None
        out = svc.store.review(scan_id, body.decision, body.note, boxes, key["id"], outbox_urls=urls)
        if urls:
            svc.webhook_wake.set()
        mx.REVIEWS.labels(body.decision).inc()
        svc.publish({"type": "review", "scan": out})
        return out

    # ------------------------------------------------------------ events (console push)
    @app.get("/v1/events", tags=["scans"], summary="Server-sent events: new scans and reviews, as they happen",
             description="`event: scan` (the stored record, as from /v1/detect), `event: review` (the scan with its "
                         "review), and `event: refused` (`lane`, `parcel`, `view`, `status`, `code`, `message`, "
                         "`created`): a scan that reached /v1/detect and could not be analysed (unreadable, too "
                         "large or small, a dark scan), so its parcel was not screened. `?lane=` keeps one lane's.")
    async def events(request: Request, key=Depends(require("operator")), lane: str | None = None):
        q: asyncio.Queue = asyncio.Queue(maxsize=100)
        svc.listeners.add(q)

        async def gen():
            try:
                yield "event: hello\ndata: {}\n\n"
                while True:
                    if await request.is_disconnected():
                        break
                    try:
                        ev = await asyncio.wait_for(q.get(), timeout=15)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if lane and ev["scan"].get("lane") != lane:
                        continue
                    yield f"event: {ev['type']}\ndata: {json.dumps(ev['scan'])}\n\n"
            finally:
                svc.listeners.discard(q)

        return StreamingResponse(gen(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # ------------------------------------------------------------ models
    @app.get("/v1/models", tags=["models"], summary="The active model, its card and thresholds")
    async def models(key=Depends(require("integrator", "operator"))):
        if svc.engine is None:
            raise ApiError(503, "not_ready", svc.engine_error or "model is loading", {"Retry-After": "2"})
        i = svc.engine.info
        colors = {c.name: c.color for c in taxonomy.classes()}
        return {"active": {**i.public(), "backend": svc.engine.backend, "precision": svc.engine.precision, "flips": svc.engine.flips, "imgsz": i.imgsz, "classes": i.names, "colors": colors,
                           "thresholds": i.thresholds, "networks": svc.engine.networks(), "card": i.card, "calibration": i.meta.get("calibration"),
                           "metrics": i.meta.get("metrics"), "registry_version": svc.registry_version},
                "registry": {"versions": svc.registry.versions(), "last_swap_error": svc.swap_error}}

    @app.get("/v1/webhooks", tags=["admin"], summary="Webhook deliveries: configuration, counts, pending and given-up ones (admin)")
    async def webhooks(key=Depends(require()), limit: int = Query(20, ge=1, le=500)):
        def shown(rows: list[dict]) -> list[dict]:
            return [{**r, "url": redact_url(r["url"])} for r in rows]

        return {"urls": [redact_url(u) for u in svc.s.webhook_urls], "events": svc.s.webhook_events,
                "signed": bool(svc.s.webhook_secret), **svc.store.outbox_stats(),
                "pending_deliveries": shown(svc.store.outbox_list("pending", limit)),
                "failed_deliveries": shown(svc.store.outbox_list("failed", limit))}

    @app.post("/v1/webhooks/deliveries/{delivery}/retry", tags=["admin"],
              summary="Queue a given-up webhook delivery again (admin)")
    async def webhook_retry(delivery: int, key=Depends(require())):
        if not svc.store.outbox_retry(delivery):
            raise ApiError(404, "not_found", f"no given-up delivery {delivery}")
        svc.store.audit(key["id"], "webhook.retry", str(delivery), None)
        svc.webhook_wake.set()
        return {"delivery": delivery, "state": "pending"}

    @app.get("/v1/audit", tags=["admin"], summary="Audit log of reviews and key use (admin)")
    async def audit(key=Depends(require()), limit: int = Query(100, ge=1, le=1000)):
        return {"items": svc.store.audit_log(limit)}

    # ------------------------------------------------------------ console
    if CONSOLE_DIR.exists():
        @app.get("/", include_in_schema=False)
        @app.get("/console", include_in_schema=False)  # exact routes (redirect_slashes is off): the typed URL works
        async def root():
            return RedirectResponse("/console/")

        app.mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")

    return app


# ----------------------------------------------------------------- self-test before a model serves
_SELF_TEST_SCAN = None


def self_test(eng: Engine) -> None:
    """A model must analyse a simulated parcel scan sanely before it serves."""
    global _SELF_TEST_SCAN
    from detector import taxonomy as tx

    if eng.names != tx.names():
        raise ValueError(f"model classes {eng.names} differ from the taxonomy {tx.names()}")
    if _SELF_TEST_SCAN is None:  # made once: the same scan, and its PNG, for every model this process loads
        from detector.synth.scene import simulate

        scan = simulate(20261128, 0).image
        scan = scan if scan.ndim == 3 else cv2.cvtColor(scan, cv2.COLOR_GRAY2RGB)
        _SELF_TEST_SCAN = (scan, cv2.imencode(".png", cv2.cvtColor(scan, cv2.COLOR_RGB2BGR))[1].tobytes())
    img, png = _SELF_TEST_SCAN
    # through the decoder as a scanner's PNG arrives (and warm it: the first scan is not the slow one)
    if not np.array_equal(imaging.decode(png).rgb, img):
        raise ValueError("self-test: a PNG scan does not decode to its own pixels")
    res = eng.detect(img)
    if (res.width, res.height) != (img.shape[1], img.shape[0]):
        raise ValueError("self-test: wrong image size in the result")
    for d in res.detections:
        if not (0 <= d.confidence <= 1 and 0 <= d.box.x1 < d.box.x2 <= res.width and 0 <= d.box.y1 < d.box.y2 <= res.height):
            raise ValueError(f"self-test: implausible detection {d}")


# ----------------------------------------------------------------- worker-thread work
def _is_file(field) -> bool:
    """A multipart field that is an uploaded file (form text comes as str)."""
    return field is not None and not isinstance(field, str)


def _is_name(value: str, most: int) -> bool:
    return 0 < len(value) <= most and value.isascii() and all(ch.isalnum() or ch in "_.:-" for ch in value)


def parcel_summary(parcel: str, views: list[dict]) -> dict:
    """One parcel over its stored views (a dual-view scanner's two, say): it alarms when any view
    alarms, for the reasons its alarming views give; its review is confirmed when an operator
    confirmed any view, a false alarm when every alarming view was marked one, else pending."""
    alarming = [v for v in views if v["verdict"] == "alarm"]
    states = [v["review"]["state"] for v in alarming]
    review = ("confirmed" if "confirmed" in [v["review"]["state"] for v in views]
              else "false_alarm" if states and all(x == "false_alarm" for x in states) else "pending")
    return {"parcel": parcel, "verdict": "alarm" if alarming else "clear",
            "reasons": list(dict.fromkeys(r for v in alarming for r in v["reasons"])), "review": review,
            "views": [{"scan_id": v["scan_id"], "view": v["view"], "lane": v["lane"], "created": v["created"],
                       "verdict": v["verdict"], "reasons": v["reasons"],
                       "alarms": sum(1 for d in v["detections"] if d.get("alarm")), "review": v["review"]["state"]}
                      for v in views]}


def _refused(e: imaging.ImageError) -> ApiError:
    """The API error for an image that cannot be analysed, counted by reason."""
    mx.BAD_INPUT.labels(e.code).inc()
    return ApiError(IMAGE_ERROR_STATUS.get(e.code, 400), e.code, str(e))


def _not_stored(e: OSError) -> ApiError:
    """The API error for a scan whose image or record could not be written: 507 when the disk (or a
    quota, or a file size limit) has no room, 500 for any other failure of the store. Either way the
    scan is not answered with a verdict, and nothing of it is kept."""
    if isinstance(e, StorageFull) or e.errno in FULL_ERRNOS:
        mx.STORAGE_REFUSED.inc()
        return ApiError(507, "storage_full", f"the scan could not be stored ({e.strerror or e}), so it was not "
                        "analysed: free space in the data directory or delete old images (`xfd storage purge`)")
    log.error("store: %s", e)
    return ApiError(500, "storage_failed", f"the scan could not be stored ({e.strerror or type(e).__name__}), "
                    "so it was not analysed")


def _fingerprint(data: bytes | tuple[bytes, bytes], *fields) -> str:
    """What makes two detect requests the same request: the scan's bytes and the fields sent with it."""
    h = hashlib.sha256()
    for part in data if isinstance(data, tuple) else (data,):
        h.update(hashlib.sha256(part).digest())
    h.update(json.dumps([str(f) if f is not None else None for f in fields]).encode())
    return h.hexdigest()


def _replay(svc: Service, request: Request, found: tuple[dict, str], fp: str, idem_key: str) -> Response:
    """The answer to a retried request: the scan its Idempotency-Key stored, not a second analysis."""
    rec, stored_fp = found
    if stored_fp != fp:
        raise ApiError(422, "idempotency_key_reused", f"Idempotency-Key {idem_key} was used for another request "
                       "(a different scan or fields); use a new key for a new scan")
    mx.REPLAYS.inc()
    headers = {"Idempotent-Replayed": "true"}
    if _wants_dicom(request):
        return Response(_tdr_bytes(svc, rec["scan_id"], "MACHINE"), media_type=dicos.MEDIA_TYPE,
                        headers={**headers, "X-Scan-Id": rec["scan_id"]})
    if rec["parcel"] is not None:  # the parcel as it stands now
        n, alarms = svc.store.parcel_tally(rec["parcel"])
        rec["parcel_verdict"], rec["parcel_views"] = ("alarm" if alarms else "clear"), n
    body = DetectResponse.model_validate(rec).model_dump(mode="json")
    return JSONResponse(body, headers=headers)


# a stored record's fields that are the store's business, never an answer's or a webhook's
INTERNAL_FIELDS = ("image_path", "image_sha256", "content_type", "idem", "idem_fp")


def _analyse_and_store(svc: Service, data: bytes | tuple[bytes, bytes], claimed: str, lane: str | None, tile: str,
                       key: dict, parcel: str | None = None, view: str | None = None,
                       pixel_mm: tuple[float, float] | None = None,
                       idem: tuple[str | None, str | None] = (None, None)) -> tuple[dict, dict | None]:
    """The stored record of one analysed scan, and the DICOS identifiers of its image when it was one."""
    eng = svc.engine
    t0 = time.perf_counter()
    raw = isinstance(data, tuple)  # (low, high): a raw dual-energy pair
    full = svc.storage_problem(sum(map(len, data)) if raw else len(data))
    if full:  # a scan the service cannot keep is not analysed: an answer it could not stand behind
        mx.STORAGE_REFUSED.inc()
        raise ApiError(507, "storage_full", full)
    try:
        img = imaging.decode_raw_pair(*data, svc.s.max_pixels) if raw else imaging.decode(data, svc.s.max_pixels)
    except imaging.ImageError as e:
        raise _refused(e) from None
    t1 = time.perf_counter()
    if parcel is None and img.ids and _is_name(img.ids.get("StudyInstanceUID", ""), 128):
        parcel = img.ids["StudyInstanceUID"]  # DICOS: a study is one scan of one object, all its views
    pixel_mm = pixel_mm or img.pixel_mm or svc.s.pixel_mm  # as sent, else its DICOS header's, else the site's
    if pixel_mm is not None:
        nw, nh = eng.analysis_size(img.width, img.height, pixel_mm)
        if nw * nh > svc.s.max_pixels:
            mx.BAD_INPUT.labels("too_large").inc()
            raise ApiError(413, "too_large", f"resampled to square pixels of the size the model trained on, this "
                           f"{img.width}x{img.height} scan of {pixel_mm[0]:g} x {pixel_mm[1]:g} mm pixels would be "
                           f"{nw}x{nh} pixels, over the limit of {svc.s.max_pixels}")
    scan_id = svc.store.new_id()
    ctype = "image/png" if raw else imaging.FORMATS[img.format]

    def store_image() -> tuple[Path, str]:  # in parallel with the model: encode, hash, write, fsync
        if raw:  # the scan's image is the PNG the model saw; the pair is kept beside it, byte for byte
            png = imaging.encode_png(img.rgb)
            pair = [(d, imaging.EXTENSIONS[imaging.sniff_format(d)]) for d in data]
            return svc.store.save_raw_pair(scan_id, png, *pair), hashlib.sha256(png).hexdigest()
        return svc.store.save_image(scan_id, data, imaging.EXTENSIONS[img.format]), hashlib.sha256(data).hexdigest()

    saving = svc.io_pool.submit(store_image)
    try:
        res = eng.detect(img, tile, pixel_mm=pixel_mm)
    except (EngineError, imaging.ImageError) as e:
        try:
            svc.store.discard_files(saving.result()[0])  # no record will point at them
        except OSError:
            pass
        if isinstance(e, imaging.ImageError):  # the image shows nothing to analyse (a dark scan)
            raise _refused(e) from None
        raise ApiError(500, "analysis_failed", f"the scan could not be analysed (not cleared): {e}") from None
    res.timing_ms = {"decode": (t1 - t0) * 1e3, **res.timing_ms}
    t2 = time.perf_counter()
    try:
        path, sha = saving.result()  # the image is on disk (fsync'ed) before its record is committed
    except OSError as e:
        raise _not_stored(e) from None
    rec = {"scan_id": scan_id, "model": eng.info.public(), **res.to_dict(), "lane": lane, "parcel": parcel,
           "view": view, "created": time.time(), "image_path": str(path), "image_sha256": sha, "content_type": ctype,
           "idem": idem[0], "idem_fp": idem[1]}
    public = {k: v for k, v in rec.items() if k not in INTERNAL_FIELDS}
    outbox = svc.webhook_rows("scan.alarm" if res.verdict == "alarm" else "scan.clear", {"scan": public})
    try:
        svc.store.insert_scan(rec, outbox)
    except OSError as e:  # StorageFull from the database: no record, so no files either
        svc.store.discard_files(path)
        raise _not_stored(e) from None
    except sqlite3.IntegrityError:  # the same Idempotency-Key stored meanwhile (by another process)
        svc.store.discard_files(path)
        raise ApiError(409, "idempotency_in_progress", "a request with this Idempotency-Key was stored meanwhile; "
                       "retry for its answer", {"Retry-After": "1"}) from None
    if outbox:
        svc.webhook_wake.set()
    if parcel is not None:  # the parcel as far as its views have come in (this one included)
        n, alarms = svc.store.parcel_tally(parcel)
        rec["parcel_verdict"], rec["parcel_views"] = ("alarm" if alarms else "clear"), n
    rec["timing_ms"].pop("total", None)  # the engine's total; the scan's total (decode to stored) goes last
    rec["timing_ms"]["store"] = round((time.perf_counter() - t2) * 1e3, 2)
    rec["timing_ms"]["total"] = round((time.perf_counter() - t0) * 1e3, 2)
    for stage, v in rec["timing_ms"].items():
        mx.STAGE.labels(stage).observe(v / 1e3)
    mx.VERDICTS.labels(res.verdict).inc()
    mx.NETWORKS.labels(res.extra.get("network", "main")).inc()
    if res.extra.get("negative"):
        mx.NEGATIVE.inc()
    for d in res.detections:
        if d.alarm:
            mx.DETECTIONS.labels(d.label).inc()
    svc.store.touch_key(key["id"])
    for internal in INTERNAL_FIELDS:
        rec.pop(internal)
    return rec, img.ids


def _wants_dicom(request: Request) -> bool:
    """Accept: application/dicom (before any JSON type) asks /v1/detect for the DICOS report."""
    for part in request.headers.get("accept", "").split(","):
        t = part.split(";")[0].strip().lower()
        if t == dicos.MEDIA_TYPE:
            return True
        if t in ("application/json", "*/*", "application/*"):
            return False
    return False


def _tdr_bytes(svc: Service, scan_id: str, kind: str) -> bytes:
    rec = svc.store.get_scan(scan_id)
    if rec is None:
        raise ApiError(404, "not_found", f"no scan {scan_id}")
    if kind == "OPERATOR" and rec["review"]["state"] == "pending":
        raise ApiError(409, "not_reviewed", f"scan {scan_id} has not been reviewed yet: no operator report")
    ids = None
    found = svc.store.image_path(scan_id)
    if found is not None and found[1] == dicos.MEDIA_TYPE and found[0].exists():
        try:
            ids = dicos.read_ids(found[0].read_bytes())
        except dicos.DicosError:
            ids = None  # the report still stands; it just cannot point at the image
    return dicos.write_tdr(rec, ids, kind)


def _overlay_png(path: Path, rec: dict | None) -> bytes:
    """The stored scan decoded as the engine receives it (8-bit RGB), as PNG; with rec, its boxes
    drawn over it."""
    from detector.detect_cli import draw
    from detector.engine import Box, Detection, Result

    img = imaging.decode(path.read_bytes(), max_pixels=10**9)
    if rec is None:
        return imaging.encode_png(img.rgb)
    dets = [Detection(d["label"], d["class_id"], d["confidence"], Box(**d["box"]), d["alarm"]) for d in rec["detections"]]
    res = Result(rec["image"]["width"], rec["image"]["height"], dets, rec["verdict"], rec["reasons"], {})
    out = draw(img.rgb, res)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    return buf.tobytes()


# ----------------------------------------------------------------- running
def build_settings(a=None) -> Settings:
    s = Settings()
    if a is not None:
        for k in ("host", "port", "model", "data_dir"):
            v = getattr(a, k, None)
            if v is not None:
                setattr(s, k, v)
    return s


def run_server(a=None) -> int:
    import uvicorn

    try:
        s = build_settings(a)
    except ValueError as e:
        print(f"xfd serve: error: {e}", file=sys.stderr)
        return 2
    if not Path(s.model).exists():
        print(f"xfd serve: error: model not found: {s.model}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = BodyLimit(create_app(s), s.max_body_bytes)
    print(f"xfd serve: http://{s.host}:{s.port}  (console /console/, API docs /docs, data {s.data_dir})", file=sys.stderr, flush=True)
    # graceful shutdown: in-flight scans finish and are stored; long-lived event streams
    # (consoles) are closed after a few seconds instead of holding the process open
    uvicorn.run(app, host=s.host, port=s.port, log_level="info", access_log=True, server_header=False,
                timeout_graceful_shutdown=3)
    return 0


def app_factory() -> BodyLimit:
    """For `uvicorn --factory serve.app:app_factory`."""
    s = Settings()
    return BodyLimit(create_app(s), s.max_body_bytes)


__all__ = ["create_app", "run_server", "Settings", "ROLES", "REVIEW_STATES"]
