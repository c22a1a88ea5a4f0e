"""`xfd detect`: one JSON object per image (the service's schema), annotated PNGs, DICOS reports."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

import cv2
import numpy as np

from . import dicos, imaging, taxonomy
from .engine import Engine, EngineError, Result


def draw(rgb: np.ndarray, res: Result) -> np.ndarray:
    """Boxes coloured by class, labelled with confidence; alarms thick, others thin."""
    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    cls = taxonomy.classes()
    scale = max(0.5, min(img.shape[:2]) / 900)
    for d in res.detections:
        c = cls[d.class_id].bgr if d.class_id < len(cls) else (0, 0, 255)
        p1, p2 = (int(d.box.x1), int(d.box.y1)), (int(d.box.x2), int(d.box.y2))
        th = max(2, int(3 * scale)) if d.alarm else 1
        cv2.rectangle(img, p1, p2, (0, 0, 0), th + 2)
        cv2.rectangle(img, p1, p2, c, th)
        text = f"{d.label} {d.confidence:.2f}"
        (tw, tht), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.55 * scale, 1)
        y = max(tht + 4, p1[1] - 4)
        cv2.rectangle(img, (p1[0], y - tht - 4), (p1[0] + tw + 4, y + 2), c, -1)
        cv2.putText(img, text, (p1[0] + 2, y - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.55 * scale, (0, 0, 0), 1, cv2.LINE_AA)
    if res.verdict == "alarm":
        cv2.rectangle(img, (0, 0), (img.shape[1] - 1, img.shape[0] - 1), (0, 0, 255), max(4, int(6 * scale)))
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def detect_cli(a) -> int:
    if not a.images and not (a.raw_low and a.raw_high):
        print("xfd detect: error: give one or more images, or --raw-low and --raw-high", file=sys.stderr)
        return 2
    pixel_mm = None
    if getattr(a, "pixel_mm", None):
        try:
            pixel_mm = imaging.parse_pixel_mm(a.pixel_mm)
        except ValueError as e:
            print(f"xfd detect: error: --pixel-mm: {e}", file=sys.stderr)
            return 2
    engine = Engine(a.model, backend=a.backend, concurrency=1, flips=a.flips)
    save = Path(a.save_dir) if a.save_dir else None
    if save:
        save.mkdir(parents=True, exist_ok=True)
    tdr_dir = Path(a.tdr_dir) if getattr(a, "tdr_dir", None) else None
    if tdr_dir:
        tdr_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(p, None) for p in a.images]
    if a.raw_low and a.raw_high:
        jobs.append((a.raw_low, a.raw_high))
    failures = 0
    for path, high in jobs:
        rec = {"file": path if high is None else f"{path}+{high}", "scan_id": str(uuid.uuid4()), "model": engine.info.public()}
        try:
            if high is None:
                img = imaging.decode(Path(path).read_bytes())
            else:
                img = imaging.decode_raw_pair(Path(path).read_bytes(), Path(high).read_bytes())
            res = engine.detect(img, a.tile, pixel_mm=pixel_mm)
            rec.update(res.to_dict())
            if save:
                out = save / (Path(path).stem + "_detections.png")
                cv2.imwrite(str(out), cv2.cvtColor(draw(img.rgb, res), cv2.COLOR_RGB2BGR))
                rec["annotated"] = str(out)
            if tdr_dir:
                out = tdr_dir / (Path(path).stem + "_tdr.dcm")
                rec["created"] = time.time()
                out.write_bytes(dicos.write_tdr(rec, img.ids))
                rec["tdr"] = str(out)
        except (OSError, imaging.ImageError, EngineError) as e:
            failures += 1
            rec.update({"verdict": "error", "error": str(e)})
        print(json.dumps(rec), flush=True)
        if not a.json and rec.get("verdict") != "error":
            summary = ", ".join(f"{d['label']} {d['confidence']:.2f}" for d in rec["detections"] if d["alarm"]) or "no threat"
            grey = " [grey scan: read by the grey network]" if rec.get("network") == "grey" else ""
            print(f"# {rec['file']}: {rec['verdict'].upper()} ({summary}); {'; '.join(rec['reasons'])}{grey}", file=sys.stderr)
    return 1 if failures else 0
