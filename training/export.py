"""`xfd export`: a model directory with PyTorch weights, ONNX, OpenVINO FP32 and INT8,
each checked against PyTorch on real (simulated) scans.

INT8 is calibrated on the dataset's own validation images (ultralytics reads the
`val` split of the given YAML; nothing is downloaded)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np

from detector import offline, taxonomy
from detector.engine import Engine, sha256_file
from training import metrics as M
from training.evaluate import EvalError, load_split


class ExportError(ValueError):
    pass


def _ul_export(yolo, **kw) -> Path:
    try:
        return Path(yolo.export(**kw))
    except Exception as e:
        raise ExportError(f"export {kw.get('format')} failed: {type(e).__name__}: {e}") from e


def _calibration_yaml(data: str | Path, work: Path) -> str:
    """ultralytics' INT8 calibration reads the 'val' split but insists on a 'train' key too;
    a calibration-only dataset (`xfd synth --split val=1`) gets a private copy of its YAML
    that names val for both, so nothing can train on it by accident."""
    import yaml

    d = yaml.safe_load(Path(data).read_text()) or {}
    if "val" not in d:
        raise ExportError(f"dataset {data} has no 'val' split to calibrate INT8 on")
    if "train" in d:
        return str(Path(data).resolve())
    d.setdefault("path", str(Path(data).resolve().parent))
    d["train"] = d["val"]
    p = work / "calibration.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return str(p)


def export_model(weights: str | Path, out: str | Path, data: str | Path, imgsz: int | None = None,
                 formats=("onnx", "openvino", "openvino-int8"), name: str = "xfd", version: str | None = None,
                 check_images: int = 20, extra_meta: dict | None = None, compact: bool = False) -> dict:
    """compact: store the OpenVINO FP32 weights as FP16 (lossless: ultralytics checkpoints
    hold FP16 weights; compute stays FP32) and leave ONNX out of the directory after the
    checks, so the shipped model stays a few MB. `xfd export` without --compact keeps all."""
    offline.configure()
    from ultralytics import YOLO

    weights = Path(weights)
    if not weights.exists():
        raise ExportError(f"weights not found: {weights}")
    offline.refuse_download_key(data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        yolo = YOLO(str(weights))
    except Exception as e:
        raise ExportError(f"cannot load weights {weights}: {type(e).__name__}: {e}") from None
    train_args = (getattr(yolo, "ckpt", None) or {}).get("train_args", {})
    imgsz = int(imgsz or train_args.get("imgsz", 512))
    names = [yolo.names[i] for i in sorted(yolo.names)]
    if names != taxonomy.names()[: len(names)]:
        raise ExportError(f"model classes {names} differ from the taxonomy {taxonomy.names()}")
    old = {}
    if (out / "model.json").exists():
        old = json.loads((out / "model.json").read_text())
    if weights.resolve() != (out / "model.pt").resolve():
        shutil.copyfile(weights, out / "model.pt")
    files = {"torch": "model.pt"}
    timings = {}
    work = out / ".export_tmp"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    shutil.copyfile(out / "model.pt", work / "model.pt")
    for fmt in formats:
        t0 = time.time()
        y = YOLO(str(work / "model.pt"))
        if fmt == "onnx":
            p = _ul_export(y, format="onnx", imgsz=imgsz, dynamic=False, simplify=True, device="cpu")
            shutil.move(str(p), out / "model.onnx")
            files["onnx"] = "model.onnx"
        elif fmt == "openvino":
            p = _ul_export(y, format="openvino", imgsz=imgsz, half=False, dynamic=False, device="cpu")
            _replace_dir(p, out / "openvino")
            files["openvino"] = "openvino"
        elif fmt == "openvino-int8":
            p = _ul_export(y, format="openvino", imgsz=imgsz, int8=True, data=_calibration_yaml(data, work), fraction=1.0,
                           dynamic=False, device="cpu")
            _replace_dir(p, out / "openvino-int8")
            files["openvino-int8"] = "openvino-int8"
        else:
            raise ExportError(f"unknown format {fmt!r}")
        timings[fmt] = round(time.time() - t0, 1)
    shutil.rmtree(work, ignore_errors=True)
    meta = {
        "name": name, "version": version or time.strftime("%Y%m%d-%H%M%S", time.gmtime()), "imgsz": imgsz, "names": names,
        "thresholds": old.get("thresholds", {n: 0.25 for n in names}), "files": files,
        "sha256": sha256_file(out / "model.pt"), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source_weights": str(weights), "export_seconds": timings, **(extra_meta or {}),
    }
    for k in ("calibration", "metrics", "training"):
        if k in old and k not in meta:
            meta[k] = old[k]
    (out / "model.json").write_text(json.dumps(meta, indent=1))
    if compact and "openvino" in files:
        import openvino as ov

        xml = next((out / "openvino").glob("*.xml"))
        m = ov.Core().read_model(str(xml))
        tmp = xml.with_name("fp16.xml")
        ov.save_model(m, str(tmp), compress_to_fp16=True)
        os.replace(tmp, xml)
        os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
    check = check_exports(out, data, n=check_images)
    meta["export_check"] = check
    if compact and "onnx" in files:
        (out / "model.onnx").unlink()
        del files["onnx"]
        meta["files"] = files
        meta["onnx"] = "not shipped (size); `xfd export --weights model.pt` recreates it"
    (out / "model.json").write_text(json.dumps(meta, indent=1))
    write_sha256sums(out)
    return meta


def _replace_dir(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.move(str(src), dst)


def write_sha256sums(root: Path) -> None:
    lines = []
    for f in sorted(root.rglob("*")):
        if f.is_file() and f.name != "SHA256SUMS" and ".export_tmp" not in f.parts:
            lines.append(f"{sha256_file(f)}  {f.relative_to(root)}")
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def check_exports(model_dir: Path, data: str | Path, n: int = 20, conf: float = 0.05) -> dict:
    """Run every backend on the same validation scans; compare with PyTorch: share of
    PyTorch detections matched (same class, IoU >= 0.8), largest confidence gap."""
    try:
        items, _ = load_split(data, "val")
    except EvalError:
        items, _ = load_split(data, "train")
    items = items[:n]
    imgs = [cv2.cvtColor(cv2.imread(str(it["image"])), cv2.COLOR_BGR2RGB) for it in items]
    ref_engine = Engine(model_dir, backend="torch", concurrency=1)
    ref = [_dets(ref_engine, im, conf) for im in imgs]
    out = {"images": len(imgs), "conf": conf}
    for b in ("onnx", "openvino", "openvino-int8"):
        if b not in ref_engine.info.files:
            continue
        e = Engine(model_dir, backend=b, concurrency=1)
        got = [_dets(e, im, conf) for im in imgs]
        matched, total, gap = 0, 0, 0.0
        for r, g in zip(ref, got, strict=True):
            total += len(r)
            if len(r) == 0 or len(g) == 0:
                continue
            iou = M.box_iou(r[:, :4], g[:, :4])
            for i in range(len(r)):
                same = (g[:, 5] == r[i, 5]) & (iou[i] >= 0.8)
                if same.any():
                    matched += 1
                    gap = max(gap, float(np.abs(g[same, 4] - r[i, 4]).min()))
        out[b] = {"torch_detections": total, "matched": matched,
                  "match_rate": round(matched / total, 4) if total else None, "max_conf_gap": round(gap, 4)}
    return out


def _dets(engine: Engine, img: np.ndarray, conf: float) -> np.ndarray:
    r = engine.detect(img, conf=conf, tile="off")
    return np.array([[d.box.x1, d.box.y1, d.box.x2, d.box.y2, d.confidence, d.class_id] for d in r.detections],
                    np.float32).reshape(-1, 6)


def export_cli(a) -> int:
    formats = tuple(f.strip() for f in a.formats.split(",") if f.strip())
    meta = export_model(a.weights, a.out, a.data, a.imgsz, formats, name=a.name, version=a.version, compact=a.compact)
    print(json.dumps({"model_dir": str(Path(a.out).resolve()), "files": meta["files"], "export_check": meta["export_check"]}, indent=1))
    return 0
