"""The detection engine: any scanner image in, typed detections and a parcel verdict out.

One pre/post-processing pipeline for every backend (PyTorch .pt, ONNX Runtime,
OpenVINO IR FP32/INT8), so they agree. Concurrency: each backend runner is owned by
one call at a time (a pool), because ultralytics model objects and OpenVINO infer
requests are not safe to share between concurrent calls. Large or long scans are
analysed in overlapping tiles plus a full-image pass, merged without duplicates.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from . import imaging, taxonomy
from .offline import REPO_ROOT, default_threads

log = logging.getLogger("xfd.engine")

DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "default"
BACKENDS = ("openvino-int8", "openvino", "onnx", "torch")
UNEVALUATED_ORDER = ("openvino", "onnx", "torch", "openvino-int8")  # a model.json without default_backend


class EngineError(RuntimeError):
    """The engine could not analyse a scan (never reported as 'clear')."""


class ModelError(ValueError):
    """A model directory or weights file that cannot be loaded."""


# ----------------------------------------------------------------- result types
@dataclass
class Box:
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass
class Detection:
    label: str
    class_id: int
    confidence: float
    box: Box
    alarm: bool


@dataclass
class Result:
    width: int
    height: int
    detections: list[Detection]
    verdict: str  # "alarm" | "clear"
    reasons: list[str]
    timing_ms: dict[str, float]
    tiled: bool = False
    backend: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "image": {"width": self.width, "height": self.height},
            "verdict": self.verdict,
            "reasons": self.reasons,
            "detections": [
                {"label": d.label, "class_id": d.class_id, "confidence": round(d.confidence, 4),
                 "box": {k: round(v, 1) for k, v in asdict(d.box).items()}, "alarm": d.alarm}
                for d in self.detections
            ],
            "timing_ms": {k: round(v, 2) for k, v in self.timing_ms.items()},
            **({"pixel_mm": self.extra["pixel_mm"]} if "pixel_mm" in self.extra else {}),
            "network": self.extra.get("network", "main"),
        }


# ----------------------------------------------------------------- model directory
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class ModelInfo:
    name: str
    version: str
    imgsz: int
    names: list[str]
    thresholds: dict[str, float]
    files: dict[str, str]
    root: Path
    sha256: str
    card: str = ""
    meta: dict = field(default_factory=dict)

    def public(self) -> dict:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


def load_model_info(path: str | Path) -> ModelInfo:
    """A model directory (model.json + weights) or a bare weights file."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model not found: {p}")
    if p.is_dir():
        mj = p / "model.json"
        if not mj.exists():
            raise ModelError(f"{p} is not a model directory (no model.json)")
        try:
            meta = json.loads(mj.read_text())
        except json.JSONDecodeError as e:
            raise ModelError(f"{mj} is not valid JSON: {e}") from None
        files = {k: str(p / v) for k, v in meta.get("files", {}).items() if (p / v).exists()}
        if not files:
            raise ModelError(f"model directory {p} lists no weights that exist")
        main = files.get("torch") or next(iter(files.values()))
        card = (p / "card.md").read_text() if (p / "card.md").exists() else ""
        names = meta.get("names") or taxonomy.names()
        thr = {n: float(meta.get("thresholds", {}).get(n, 0.25)) for n in names}
        return ModelInfo(meta.get("name", p.name), str(meta.get("version", "0")), int(meta.get("imgsz", 512)), names,
                         thr, files, p, meta.get("sha256") or sha256_file(Path(main)), card, meta)
    kind = {".pt": "torch", ".onnx": "onnx", ".xml": "openvino"}.get(p.suffix)
    if kind is None:
        raise ModelError(f"unsupported weights file {p.name}: use .pt, .onnx, .xml or a model directory")
    names = taxonomy.names()
    imgsz = 512
    if kind == "torch":
        imgsz = int(_torch_meta(p).get("imgsz", imgsz))
    return ModelInfo(p.stem, "dev", imgsz, names, {n: 0.25 for n in names}, {kind: str(p)}, p.parent, sha256_file(p))


def _torch_meta(p: Path) -> dict:
    from . import offline

    offline.configure()  # unpickling imports ultralytics: settings and threads first
    try:
        import torch

        ck = torch.load(str(p), map_location="cpu", weights_only=False)
    except Exception as e:
        raise ModelError(f"cannot load weights {p}: {type(e).__name__}: {str(e)[:200]}") from None
    if not isinstance(ck, dict) or "model" not in ck and "ema" not in ck:
        raise ModelError(f"{p} is not an ultralytics checkpoint")
    args = ck.get("train_args") or {}
    return {"imgsz": args.get("imgsz", 512)}


# ----------------------------------------------------------------- backends
class _TorchRunner:
    def __init__(self, path: str, threads: int):
        from . import offline

        offline.configure()
        import torch
        from ultralytics.nn.tasks import load_checkpoint

        try:
            model, _ = load_checkpoint(path, device="cpu", fuse=True)
        except Exception as e:
            raise ModelError(f"cannot load weights {path}: {type(e).__name__}: {str(e)[:200]}") from None
        # fused one-to-many head + NMS, as ultralytics' own predict does by default
        self.model = model.float().eval()
        self.torch = torch

    def __call__(self, img: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            y = self.model(self.torch.from_numpy(to_tensor([img])))
        if isinstance(y, (list, tuple)):
            y = y[0]
        return y.numpy()


class _OnnxRunner:
    def __init__(self, path: str, threads: int):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ModelError(f"cannot load ONNX model {path}: {str(e)[:200]}") from None
        self.inp = self.sess.get_inputs()[0].name

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return self.sess.run(None, {self.inp: to_tensor([img])})[0]


class _OpenVinoModel:
    """One compiled model shared by runners; each runner owns an infer request."""

    _cache: dict[tuple[str, int, int, str], object] = {}
    _lock = threading.Lock()

    @classmethod
    def compiled(cls, path: str, threads: int, streams: int = 1, precision: str = "f32"):
        with cls._lock:
            key = (path, threads, streams, precision)
            if key not in cls._cache:
                import openvino as ov

                core = ov.Core()
                try:
                    model = core.read_model(path)
                    # fold uint8 HWC -> float32 CHW /255 into the compiled graph: no numpy pass per scan
                    ppp = ov.preprocess.PrePostProcessor(model)
                    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
                    ppp.input().model().set_layout(ov.Layout("NCHW"))
                    ppp.input().preprocess().convert_element_type(ov.Type.f32).scale(255.0)
                    model = ppp.build()
                    cls._cache[key] = core.compile_model(model, "CPU", ov_config(threads, streams, precision))
                except Exception as e:
                    raise ModelError(f"cannot load OpenVINO model {path}: {str(e)[:200]}") from None
            return cls._cache[key]


class _OpenVinoRunner:
    def __init__(self, path: str, threads: int, streams: int = 1, precision: str = "f32"):
        self.req = _OpenVinoModel.compiled(path, threads, streams, precision).create_infer_request()

    def __call__(self, img: np.ndarray) -> np.ndarray:
        self.req.infer({0: img[None]})
        return self.req.get_output_tensor(0).data.copy()


RUNNERS = {"torch": _TorchRunner, "onnx": _OnnxRunner, "openvino": _OpenVinoRunner, "openvino-int8": _OpenVinoRunner}


# OpenVINO's CPU plugin runs a floating-point IR in bfloat16 by default wherever the CPU has
# AVX512-BF16 or AMX, and in f32 elsewhere, so the same model gave other scores, and another
# operating point, on another CPU (synth-test: 6 of 116 clean scans alarmed where it ran bf16,
# 8 where it ran f32). Scores are computed in f32 on every CPU unless a site asks otherwise.
OV_PRECISIONS = ("f32", "bf16", "f16")


def check_precision(text: str | None) -> str:
    """A value of XFD_OV_PRECISION as the engine uses it (empty: f32), or ModelError naming the variable."""
    v = (text or "f32").strip().lower()
    if v not in OV_PRECISIONS:
        raise ModelError(f"XFD_OV_PRECISION must be one of {', '.join(OV_PRECISIONS)}, got {v!r} (the precision "
                         "OpenVINO computes scores in; default f32, the precision the shipped thresholds were calibrated in)")
    return v


def ov_precision() -> str:
    """Floating-point precision OpenVINO computes in: XFD_OV_PRECISION, else f32 (the precision the
    shipped thresholds are calibrated in; bf16 or f16 is faster on CPUs built for it, at scores that
    differ from the calibrated ones in the last digits)."""
    return check_precision(os.environ.get("XFD_OV_PRECISION"))


def ov_config(threads: int, streams: int, precision: str) -> dict:
    """The CPU plugin's settings: threads, streams and the inference precision, always explicit."""
    return {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": streams, "INFERENCE_PRECISION_HINT": precision}


def ov_streams(concurrency: int, threads: int) -> int:
    """OpenVINO streams for `concurrency` runners on `threads` cores: XFD_OV_STREAMS, else 1
    (one request at a time on all cores: the lowest latency per scan; measured in `make bench`)."""
    env = os.environ.get("XFD_OV_STREAMS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ModelError(f"XFD_OV_STREAMS must be a whole number, got {env!r}") from None
        if n < 1:
            raise ModelError(f"XFD_OV_STREAMS must be at least 1, got {n}")
        return min(n, max(1, threads))
    return 1


def grey_routing() -> bool:
    """XFD_GREY_NETWORK: 'on' (default) routes grey scans to the model's grey network where it has
    one; 'off' reads every scan with the main network (a measurement, or a site that wants every scan read so)."""
    v = (os.environ.get("XFD_GREY_NETWORK") or "on").strip().lower()
    if v not in ("on", "off"):
        raise ModelError(f"XFD_GREY_NETWORK must be on or off, got {v!r}")
    return v == "on"


def grey_network_dir(root: Path, meta: dict) -> Path | None:
    """The directory of a model's grey network (model.json grey_network: a model directory inside it), or None."""
    sub = meta.get("grey_network")
    return Path(root) / str(sub.get("dir", "grey")) if sub else None


def _own_backend(info: ModelInfo, wanted: str) -> str:
    """The backend a second network of a model runs on: the engine's where it has weights for it,
    else its own default (its thresholds hold for the backend they were calibrated on)."""
    if wanted in info.files:
        return wanted
    pref = info.meta.get("default_backend") or (info.meta.get("calibration") or {}).get("backend")
    if pref in info.files:
        return pref
    return next(b for b in UNEVALUATED_ORDER if b in info.files)


def _backend_path(info: ModelInfo, backend: str) -> str:
    f = info.files.get(backend)
    if f is None:
        raise ModelError(f"model {info.name} has no {backend} weights (has: {', '.join(info.files)})")
    if backend.startswith("openvino") and Path(f).is_dir():
        xmls = sorted(Path(f).glob("*.xml"))
        if not xmls:
            raise ModelError(f"no OpenVINO .xml in {f}")
        f = str(xmls[0])
    return f


# ----------------------------------------------------------------- geometry
def letterbox(img: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    h, w = img.shape[:2]
    r = min(size / h, size / w)
    nh, nw = max(1, int(round(h * r))), max(1, int(round(w * r)))  # a 1 x 4000 strip keeps a row
    out = np.full((size, size, 3), 114, np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    # bilinear both ways, as ultralytics resizes every training and validation image: the model
    # learnt on bilinear downscales (INTER_AREA here cost 1.5 ms a scan and matched nothing it saw)
    resized = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nh, nw) != (h, w) else img
    out[top : top + nh, left : left + nw] = resized
    return out, r, (left, top)


def to_image(dets: np.ndarray, r: float, pad: tuple[float, float], offset: tuple[float, float] = (0, 0)) -> np.ndarray:
    """Boxes (x1, y1, x2, y2, ...) from letterboxed model input back to the image (in place)."""
    dets[:, [0, 2]] = (dets[:, [0, 2]] - pad[0]) / r + offset[0]
    dets[:, [1, 3]] = (dets[:, [1, 3]] - pad[1]) / r + offset[1]
    return dets


def to_tensor(batch: list[np.ndarray]) -> np.ndarray:
    x = np.stack(batch).astype(np.float32) * np.float32(1 / 255.0)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        ov = inter / (areas[i] + areas[order[1:]] - inter + 1e-9)
        small = np.minimum(areas[i], areas[order[1:]])
        contain = inter / (small + 1e-9)
        order = order[1:][(ov < iou) & (contain < 0.85)]
    return np.array(keep, np.int64)


def decode_output(out: np.ndarray, conf: float, nc: int, iou: float = 0.7, max_det: int = 300) -> np.ndarray:
    """Model output for one image -> rows [x1, y1, x2, y2, score, cls] in input pixels."""
    if out.ndim == 2 and out.shape[-1] == 6:  # end-to-end (NMS-free) head
        rows = out[out[:, 4] >= conf]
        return rows.astype(np.float32)
    # (4 + nc, anchors): xywh + class scores, needs NMS
    p = out.T
    scores = p[:, 4 : 4 + nc]
    cls = scores.argmax(1)
    sc = scores[np.arange(len(p)), cls]
    m = sc >= conf
    p, cls, sc = p[m], cls[m], sc[m]
    xy, wh = p[:, :2], p[:, 2:4]
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)
    keep = []
    for c in np.unique(cls):
        idx = np.nonzero(cls == c)[0]
        keep.extend(idx[nms(boxes[idx], sc[idx], iou)])
    keep = np.array(keep, np.int64)
    if len(keep) > max_det:
        keep = keep[np.argsort(-sc[keep])[:max_det]]
    if len(keep) == 0:
        return np.zeros((0, 6), np.float32)
    return np.concatenate([boxes[keep], sc[keep, None], cls[keep, None]], 1).astype(np.float32)




# test-time flips: each crop is also read mirrored left-right, top-bottom and both (a scan has no
# "up" or "left": the belt runs either way and parcels lie any way round)
FLIPS = {1: ((False, False),), 2: ((False, False), (True, False)),
         4: ((False, False), (True, False), (False, True), (True, True))}


def flip_views(crop: np.ndarray, n: int) -> list[np.ndarray]:
    return [crop[::-1 if fy else 1, ::-1 if fx else 1] for fx, fy in FLIPS[n]]


def fuse_flips(outs: list[np.ndarray], size: int, iou: float = 0.55) -> np.ndarray:
    """Readings of one square crop and its mirror images -> one set of rows [x1, y1, x2, y2, score, cls].
    Each reading's boxes are mirrored back; boxes of a class that overlap (IoU >= iou) across readings
    are one object, whose box is the score-weighted mean and whose score is the sum of each reading's
    best score on it divided by the number of readings: a thing seen in every reading keeps its
    score, a thing one reading imagined keeps a fraction of it."""
    n = len(outs)
    rows = []
    for k, (o, (fx, fy)) in enumerate(zip(outs, FLIPS[n], strict=True)):
        if len(o) == 0:
            continue
        o = o[:, :6].copy()
        if fx:
            o[:, [0, 2]] = size - o[:, [2, 0]]
        if fy:
            o[:, [1, 3]] = size - o[:, [3, 1]]
        rows.append(np.concatenate([o, np.full((len(o), 1), k, np.float32)], 1))
    if not rows:
        return np.zeros((0, 6), np.float32)
    a = np.concatenate(rows)
    a = a[np.argsort(-a[:, 4], kind="stable")]
    fused = []
    for c in np.unique(a[:, 5]):
        b = a[a[:, 5] == c]
        x1, y1, x2, y2 = (b[:, j] for j in range(4))
        inter = (np.clip(np.minimum(x2[:, None], x2) - np.maximum(x1[:, None], x1), 0, None)
                 * np.clip(np.minimum(y2[:, None], y2) - np.maximum(y1[:, None], y1), 0, None))
        area = (x2 - x1) * (y2 - y1)
        near = inter >= iou * np.maximum(area[:, None] + area - inter, 1e-9)  # IoU >= iou, without dividing
        used = np.zeros(len(b), bool)
        for i in range(len(b)):  # greedy, strongest first: each unused box gathers the unused boxes near it
            if used[i]:
                continue
            members = np.nonzero(near[i] & ~used)[0]
            used[members] = True
            if len(members) == 1:  # seen by one reading only (most of the faint ones)
                fused.append([*b[i, :4], b[i, 4] / n, c])
                continue
            _, first = np.unique(b[members, 6], return_index=True)  # one box per reading: its best
            best = b[members[first]]
            w = best[:, 4:5]
            fused.append([*((best[:, :4] * w).sum(0) / w.sum()), best[:, 4].sum() / n, c])
    return np.array(fused, np.float32).reshape(-1, 6)


def tiles_for(h: int, w: int, tile: int, overlap: float = 0.25) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles (x0, y0, x1, y1) covering an h x w image."""
    step = max(1, int(tile * (1 - overlap)))
    xs = list(range(0, max(1, w - tile) + 1, step))
    ys = list(range(0, max(1, h - tile) + 1, step))
    if xs[-1] + tile < w:
        xs.append(w - tile)
    if ys[-1] + tile < h:
        ys.append(h - tile)
    return [(x, y, min(w, x + tile), min(h, y + tile)) for y in ys for x in xs]


# ----------------------------------------------------------------- verdicts
PART_NAMES = {"barrel": "barrel", "slide": "slide", "frame": "frame or receiver", "magazine": "magazine"}


# the pixel sizes (mm) the shipped model's training scans span (generator --wide: 0.6-1.8 mm; default
# settings 0.8-1.35): a scan whose pixel size is declared outside it, or not square, is resampled to
# square pixels inside it. model.json's "pixel_mm_range" overrides it (a model trained on other scans).
TRAINED_PIXEL_MM = (0.6, 1.8)


def pixel_geometry(pixel_mm: tuple[float, float], trained: tuple[float, float] = TRAINED_PIXEL_MM
                   ) -> tuple[float, float, float] | None:
    """(fx, fy, target mm): how to resample a scan whose pixels are pixel_mm = (mm between rows, mm
    between columns) to square pixels of the finer of the two sizes, brought inside the trained
    range; None when its pixels are already that (within 2 %). Robustness tests found the model
    losing Pd to pixels stretched along the belt and false alarms to pixels a third the size."""
    row, col = pixel_mm
    target = min(max(min(row, col), trained[0]), trained[1])
    fx, fy = col / target, row / target
    if abs(fx - 1) <= 0.02 and abs(fy - 1) <= 0.02:
        return None
    return fx, fy, target


def _resampled_size(width: int, height: int, geo: tuple[float, float, float] | None) -> tuple[int, int]:
    if geo is None:
        return width, height
    return max(8, int(round(width * geo[0]))), max(8, int(round(height * geo[1])))


def verdict_reasons(dets: list[Detection]) -> list[str]:
    labels = {d.label for d in dets if d.alarm}
    reasons = []
    if "gun" in labels:
        n = sum(1 for d in dets if d.alarm and d.label == "gun")
        reasons.append("assembled firearm" + (f" (x{n})" if n > 1 else ""))
    parts = [p for p in ("barrel", "slide", "frame") if p in labels]
    if len(parts) >= 2:
        reasons.append(f"{' and '.join(PART_NAMES[p] for p in parts)} in one parcel: possible disassembled firearm")
    elif parts:
        reasons.append(f"essential firearm component: {PART_NAMES[parts[0]]}")
    if "printed_part" in labels:
        reasons.append("3D-printed firearm part")
    if "magazine" in labels:
        reasons.append("firearm magazine" + (" with firearm parts" if parts or "gun" in labels else ""))
    if "ammunition" in labels:
        reasons.append("ammunition")
    return reasons


# ----------------------------------------------------------------- the engine
class Engine:
    def __init__(self, model: str | Path | None = None, backend: str | None = None, threads: int | None = None,
                 concurrency: int = 2, tile_size: int | None = None, warmup: bool = True, undo_negative: bool = True,
                 flips: int | None = None, grey_network: bool | None = None):
        self.info = load_model_info(model or DEFAULT_MODEL_DIR)
        # a scan framed in black is read inside its frame, and a negative (dark air) is read turned
        # back: the model cannot read either (_detect_either_way)
        self.undo_negative = undo_negative
        self.threads = threads or default_threads()
        self.backend = backend or self._best_backend()
        if self.backend not in RUNNERS:
            raise ModelError(f"unknown backend {self.backend!r}; choose from {', '.join(BACKENDS)}")
        path = _backend_path(self.info, self.backend)
        # a backend calibrated on its own (INT8 scores run lower than FP32's) has its own
        # operating point: the same target Pfa on the same calibration set, other thresholds
        own = (self.info.meta.get("backend_thresholds") or {}).get(self.backend)
        if own:
            self.info = replace(self.info, thresholds={n: float(own.get(n, self.info.thresholds[n])) for n in self.info.names},
                                meta={**self.info.meta, "calibration": (self.info.meta.get("backend_calibration") or {})
                                      .get(self.backend, self.info.meta.get("calibration"))})
        # how many mirror images each crop is read in (FLIPS): as the thresholds were calibrated,
        # unless the caller says otherwise (a measurement; the thresholds then hold only roughly)
        self.flips = flips if flips is not None else int((self.info.meta.get("calibration") or {}).get("flips", 1))
        if self.flips not in FLIPS:
            raise ModelError(f"flips must be one of {', '.join(map(str, FLIPS))}, got {self.flips!r}")
        # the floating-point precision scores are computed in (PyTorch and ONNX Runtime: f32)
        self.precision = ov_precision() if self.backend.startswith("openvino") else "f32"
        calibrated = (self.info.meta.get("calibration") or {}).get("precision")
        if calibrated and calibrated != self.precision:
            log.warning("model %s %s was calibrated with scores computed in %s, this engine computes them in %s: "
                        "its operating point holds only roughly", self.info.name, self.info.version, calibrated, self.precision)
        self.names = self.info.names
        self.imgsz = self.info.imgsz
        self.pixel_range = tuple(self.info.meta.get("pixel_mm_range") or TRAINED_PIXEL_MM)
        self.tile_size = tile_size or int(self.imgsz * 1.75)
        # threads per runner: the machine's threads shared by the concurrent runners
        per = max(1, self.threads // max(1, concurrency)) if concurrency > 1 else self.threads
        self._pool: queue.Queue = queue.Queue()
        # OpenVINO: one compiled model, one infer request per runner. Its streams run requests in
        # parallel, each on threads/streams cores; one stream runs them one after another.
        self.ov_streams = ov_streams(concurrency, self.threads) if self.backend.startswith("openvino") else None
        for _ in range(max(1, concurrency)):
            if self.ov_streams:
                self._pool.put(RUNNERS[self.backend](path, self.threads, self.ov_streams, self.precision))
            else:
                self._pool.put(RUNNERS[self.backend](path, per if concurrency > 1 else self.threads))
        # grey scans to the grey network (model.json grey_network: a model directory inside this one,
        # trained and calibrated on grey scans only), with its own thresholds: see detect()
        self.grey: Engine | None = None
        gdir = grey_network_dir(self.info.root, self.info.meta)
        if gdir and (grey_network if grey_network is not None else grey_routing()):
            ginfo = load_model_info(gdir)
            if ginfo.names != self.info.names:
                raise ModelError(f"grey network {gdir} has classes {ginfo.names}, the model {self.info.names}")
            self.grey = Engine(gdir, backend=_own_backend(ginfo, self.backend), threads=threads, concurrency=concurrency,
                               tile_size=tile_size, warmup=False, undo_negative=undo_negative, flips=flips, grey_network=False)
        self.ready = False
        if warmup:
            self.warmup()

    def without_grey(self) -> Engine:
        """This engine reading every scan with its main network (the same runners): what the main
        network's thresholds are calibrated with."""
        e = copy.copy(self)
        e.grey = None
        return e

    def networks(self) -> dict:
        """What reads which scans, as /v1/models and evaluation reports state it."""
        out = {"main": {"reads": "colour scans" if self.grey else "every scan", "backend": self.backend,
                        "precision": self.precision, "flips": self.flips, "thresholds": self.info.thresholds}}
        if self.grey:
            g = self.grey
            out["grey"] = {**g.info.public(), "reads": "grey scans (imaging.is_grey)", "backend": g.backend,
                           "precision": g.precision, "flips": g.flips, "thresholds": g.info.thresholds,
                           "calibration": g.info.meta.get("calibration")}
        return out

    def _best_backend(self) -> str:
        """XFD_BACKEND, else the model's own choice (model.json default_backend: the
        fastest path that met the accuracy bound at evaluation), else the first FP32 path: an
        INT8 model nobody has evaluated is never chosen by default."""
        order = [b for b in UNEVALUATED_ORDER if b in self.info.files]
        pref = os.environ.get("XFD_BACKEND") or self.info.meta.get("default_backend")
        if pref and (pref in self.info.files or os.environ.get("XFD_BACKEND")):
            return pref
        if not order:
            raise ModelError(f"model {self.info.name} has no usable weights")
        return order[0]

    def warmup(self, n: int = 2) -> None:
        img = np.full((self.imgsz, self.imgsz, 3), 255, np.uint8)
        for _ in range(n):
            self._detect_either_way(img, "off", None)  # the main network (a white image is grey: detect would route it)
        if self.grey:
            self.grey.warmup(n)
        self.ready = True

    def _infer(self, crops: list[np.ndarray], conf: float) -> list[np.ndarray]:
        runner = self._pool.get()
        try:
            outs = []
            for c in crops:  # batch 1: static shapes are fastest on CPU backends
                if self.flips == 1:
                    outs.append(decode_output(runner(c)[0], conf, len(self.names)))
                    continue
                # each mirror image read with a lower floor: a fused score is a mean over readings
                reads = [decode_output(runner(np.ascontiguousarray(v))[0], conf / self.flips, len(self.names))
                         for v in flip_views(c, self.flips)]
                f = fuse_flips(reads, c.shape[0])
                outs.append(f[f[:, 4] >= conf] if len(f) else f)
            return outs
        finally:
            self._pool.put(runner)

    def _should_tile(self, h: int, w: int, tile: str) -> bool:
        if tile == "on":
            return max(h, w) > self.imgsz
        if tile == "off":
            return False
        # auto: tile when downscaling to the model input would shrink objects > ~2.2x
        # beyond what training saw (scans up to ~1100 px letterboxed into imgsz)
        return max(h, w) > 2.2 * self.tile_size or (max(h, w) / max(1, min(h, w)) > 2.5 and max(h, w) > 1.6 * self.tile_size)

    def analysis_size(self, width: int, height: int, pixel_mm: tuple[float, float] | None) -> tuple[int, int]:
        """The size a scan of this pixel size is analysed at (its own when it needs no resampling)."""
        return _resampled_size(width, height, pixel_geometry(pixel_mm, self.pixel_range) if pixel_mm else None)

    def detect(self, img: np.ndarray | imaging.DecodedImage, tile: str = "auto", conf: float | None = None,
               pixel_mm: tuple[float, float] | None = None) -> Result:
        """pixel_mm: the scanner's pixel size (mm between rows, mm between columns), or the one a
        DICOS header declared; a scan whose pixels are not square, or outside the sizes the model
        trained on, is analysed resampled (pixel_geometry) and its boxes are given back in its own
        pixels. Undeclared, a scan is analysed as it comes."""
        rgb = img.rgb if isinstance(img, imaging.DecodedImage) else img
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise EngineError(f"engine expects an HxWx3 uint8 RGB image, got {rgb.shape} {rgb.dtype}")
        if self.grey is not None:
            t0 = time.perf_counter()
            grey = imaging.is_grey(rgb)
            t1 = time.perf_counter()
            res = self.grey.detect(img, tile, conf, pixel_mm) if grey else self._detect_main(img, rgb, tile, conf, pixel_mm)
            res.extra["network"] = "grey" if grey else "main"
            res.timing_ms = {"route": (t1 - t0) * 1e3, **res.timing_ms, "total": (time.perf_counter() - t0) * 1e3}
            return res
        return self._detect_main(img, rgb, tile, conf, pixel_mm)

    def _detect_main(self, img, rgb: np.ndarray, tile: str, conf: float | None, pixel_mm) -> Result:
        if pixel_mm is None and isinstance(img, imaging.DecodedImage):
            pixel_mm = img.pixel_mm
        if pixel_mm is None:
            return self._detect_either_way(rgb, tile, conf)
        t0 = time.perf_counter()
        h, w = rgb.shape[:2]
        geo = pixel_geometry(pixel_mm, self.pixel_range)
        nw, nh = _resampled_size(w, h, geo)
        info = {"declared": [round(float(v), 4) for v in pixel_mm], "resampled": geo is not None,
                "analysed_mm": round(geo[2], 4) if geo else round(float(pixel_mm[0]), 4), "analysed_size": [nw, nh]}
        if geo is None:
            res = self._detect_either_way(rgb, tile, conf)
            res.extra["pixel_mm"] = info
            return res
        scaled = imaging.resample(rgb, nw, nh)
        t1 = time.perf_counter()
        res = self._detect_either_way(scaled, tile, conf)
        sx, sy = nw / w, nh / h
        for d in res.detections:  # back to the scan's own pixels
            b = d.box
            d.box = Box(min(w, b.x1 / sx), min(h, b.y1 / sy), min(w, b.x2 / sx), min(h, b.y2 / sy))
        res.width, res.height = w, h
        res.extra["pixel_mm"] = info
        res.timing_ms = {"resample": (t1 - t0) * 1e3, **res.timing_ms, "total": (time.perf_counter() - t0) * 1e3}
        return res

    def _detect_either_way(self, rgb: np.ndarray, tile: str, conf: float | None) -> Result:
        """Dark margins (a black frame; a negative's dark air up to the parcel) are cut away; when the
        border inside them is still dark the scan is a negative (dark air beside the parcel), which
        the model cannot read (it finds nothing in negatives of colour scans and imagines things in
        them: xfd robustness), so the whole scan is read turned back; otherwise the scan inside its
        frame is read, as a black frame is nothing the model has seen either (see __init__). Until
        session 14 both ways round were read and the stronger reading kept: on 50 clean negatives
        that kept the wrong one 44 times, and the FP32 path then false-alarmed on most of them and
        on a third of black-framed clean scans (models/HISTORY.md, robustness)."""
        if not (self.undo_negative and imaging.dark_border(rgb)):  # the usual scan: air all round, white
            return self._detect(rgb, tile, conf)
        t0 = time.perf_counter()
        negative, box = imaging.negative_display(rgb)
        if box is None:
            imaging.check_not_dark(rgb)  # nothing bright anywhere: an error (ImageError), never 'clear'
        inner = rgb[box[1] : box[3], box[0] : box[2]] if box else rgb
        if negative:  # turned back whole: its dark margins were air, now white as the model knows it
            box = None
            res = self._detect(255 - rgb, tile, conf)
        else:
            res = self._detect(inner, tile, conf)
        if box:  # back to the scan's own pixels
            x0, y0 = box[0], box[1]
            for d in res.detections:
                b = d.box
                d.box = Box(b.x1 + x0, b.y1 + y0, b.x2 + x0, b.y2 + y0)
            res.width, res.height = rgb.shape[1], rgb.shape[0]
            res.extra["margins_cut"] = [int(v) for v in box]
        res.extra["negative"] = negative
        res.timing_ms["total"] = (time.perf_counter() - t0) * 1e3
        return res

    def _detect(self, rgb: np.ndarray, tile: str, conf: float | None) -> Result:
        t0 = time.perf_counter()
        h, w = rgb.shape[:2]
        floor = conf if conf is not None else min(0.5 * min(self.info.thresholds.values()), 0.1)
        tiled = self._should_tile(h, w, tile)
        views = [(rgb, 0, 0)]
        if tiled:
            views += [(rgb[y0:y1, x0:x1], x0, y0) for (x0, y0, x1, y1) in tiles_for(h, w, self.tile_size)]
        crops, metas = [], []
        for v, ox, oy in views:
            lb, r, (px, py) = letterbox(v, self.imgsz)
            crops.append(lb)
            metas.append((r, px, py, ox, oy))
        t1 = time.perf_counter()
        try:
            outs = self._infer(crops, floor)
        except Exception as e:
            raise EngineError(f"inference failed: {type(e).__name__}: {e}") from e
        t2 = time.perf_counter()
        rows = []
        for o, (r, px, py, ox, oy) in zip(outs, metas, strict=True):
            if len(o) == 0:
                continue
            rows.append(to_image(o.copy(), r, (px, py), (ox, oy)))
        dets_arr = np.concatenate(rows) if rows else np.zeros((0, 6), np.float32)
        if len(dets_arr):
            dets_arr[:, [0, 2]] = dets_arr[:, [0, 2]].clip(0, w)
            dets_arr[:, [1, 3]] = dets_arr[:, [1, 3]].clip(0, h)
            if tiled:  # merge tiles + full pass: class-wise NMS with containment
                keep = []
                for c in np.unique(dets_arr[:, 5]):
                    idx = np.nonzero(dets_arr[:, 5] == c)[0]
                    keep.extend(idx[nms(dets_arr[idx, :4], dets_arr[idx, 4], 0.5)])
                dets_arr = dets_arr[np.array(sorted(keep, key=lambda i: -dets_arr[i, 4]), np.int64)]
            dets_arr = dets_arr[np.argsort(-dets_arr[:, 4])]
        dets = []
        for x1, y1, x2, y2, s, c in dets_arr:
            ci = int(c)
            if ci >= len(self.names) or x2 - x1 < 1 or y2 - y1 < 1:
                continue
            label = self.names[ci]
            dets.append(Detection(label, ci, float(s), Box(float(x1), float(y1), float(x2), float(y2)),
                                  bool(s >= self.info.thresholds.get(label, 0.25))))
        reasons = verdict_reasons(dets)
        verdict = "alarm" if any(d.alarm for d in dets) else "clear"
        t3 = time.perf_counter()
        timing = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3,
                  "total": (t3 - t0) * 1e3}
        return Result(w, h, dets, verdict, reasons, timing, tiled, self.backend, {"views": len(views), "negative": False})

    def detect_bytes(self, data: bytes, tile: str = "auto", max_pixels: int = imaging.DEFAULT_MAX_PIXELS,
                     pixel_mm: tuple[float, float] | None = None) -> Result:
        t0 = time.perf_counter()
        img = imaging.decode(data, max_pixels)
        t1 = time.perf_counter()
        res = self.detect(img, tile, pixel_mm=pixel_mm)
        res.timing_ms = {"decode": (t1 - t0) * 1e3, **res.timing_ms, "total": (time.perf_counter() - t0) * 1e3}
        return res
