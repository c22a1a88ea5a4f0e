"""Prometheus metrics of the service (own registry: no process-global surprises)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry()
_B = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter("xfd_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY)
LATENCY = Histogram("xfd_request_seconds", "HTTP request latency", ["route"], buckets=_B, registry=REGISTRY)
STAGE = Histogram("xfd_stage_seconds", "Per-stage time of /v1/detect (decode, preprocess, inference, postprocess, store, total)",
                  ["stage"], buckets=_B, registry=REGISTRY)
VERDICTS = Counter("xfd_verdicts_total", "Parcel verdicts", ["verdict"], registry=REGISTRY)
NETWORKS = Counter("xfd_scans_by_network_total", "Scans analysed, by the network that read them (main; grey: grey scans "
                   "where the model has a grey network)", ["network"], registry=REGISTRY)
DETECTIONS = Counter("xfd_detections_total", "Alarming detections per class", ["label"], registry=REGISTRY)
REVIEWS = Counter("xfd_reviews_total", "Operator reviews", ["decision"], registry=REGISTRY)
BAD_INPUT = Counter("xfd_bad_input_total", "Refused scans by reason", ["reason"], registry=REGISTRY)
NEGATIVE = Counter("xfd_negative_scans_total", "Scans sent as a negative display (dark air), turned back before the model",
                   registry=REGISTRY)
REJECTED = Counter("xfd_rejected_overload_total", "Scans refused with 503 because the queue was full", registry=REGISTRY)
STORAGE_FREE = Gauge("xfd_storage_free_bytes", "Free space in the data directory", registry=REGISTRY)
STORAGE_REFUSED = Counter("xfd_storage_refused_total", "Scans refused with 507 because the data directory had no room",
                          registry=REGISTRY)
PURGED = Counter("xfd_purged_scans_total", "Scans whose images the retention policy deleted", registry=REGISTRY)
PURGED_BYTES = Counter("xfd_purged_bytes_total", "Bytes of images the retention policy deleted", registry=REGISTRY)
REPLAYS = Counter("xfd_idempotent_replays_total", "Detect requests answered from the scan their Idempotency-Key stored",
                  registry=REGISTRY)
WEBHOOKS = Counter("xfd_webhook_attempts_total", "Webhook delivery attempts by result (delivered, retry, given_up)",
                   ["result"], registry=REGISTRY)
WEBHOOK_PENDING = Gauge("xfd_webhook_pending", "Webhook deliveries queued and not yet delivered", registry=REGISTRY)
QUEUE = Gauge("xfd_queue_depth", "Scans waiting for or in inference", registry=REGISTRY)
MODEL_INFO = Info("xfd_model", "Active model", registry=REGISTRY)


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
