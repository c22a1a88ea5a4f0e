"""`xfd export`: a model directory with PyTorch weights, ONNX, OpenVINO FP32 and INT8,
each checked against PyTorch on real (simulated) scans.

INT8 is quantised by NNCF from the FP32 IR, calibrated on the dataset's own validation
images letterboxed exactly as the engine feeds them (nothing is downloaded), with the
detection head left in floating point."""

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


def calibration_images(data: str | Path, n: int = 300, seed: int = 0) -> list[Path]:
    """Up to n images of the dataset's 'val' split (a fixed random choice): what INT8 is
    calibrated on. Never the test split."""
    try:
        items, _ = load_split(data, "val")
    except EvalError as e:
        raise ExportError(f"no 'val' split to calibrate INT8 on: {e}") from None
    if not items:
        raise ExportError(f"the 'val' split of {data} holds no images to calibrate INT8 on")
    pick = np.random.default_rng(seed).choice(len(items), min(n, len(items)), replace=False)
    return [items[int(k)]["image"] for k in sorted(pick)]


def head_scope(model) -> str | None:
    """The detection head's module prefix in an ultralytics OpenVINO IR ('model.23'): the
    module of the graph's last Sigmoid (the class scores)."""
    sig = [o.get_friendly_name() for o in model.get_ordered_ops() if o.get_type_name() == "Sigmoid"]
    if not sig:
        return None
    mod = sig[-1].split("/", 1)[0]
    return mod.removeprefix("__module.") if mod.startswith("__module.") else None


def _letterboxed(f: Path, imgsz: int):
    from detector.engine import letterbox, to_tensor

    bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ExportError(f"cannot read calibration image {f}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    lb, r, pad = letterbox(rgb, imgsz)
    return to_tensor([lb]), rgb.shape[:2], r, pad


def screening_metric(target_pfa: float = 0.05):
    """The validation function INT8 accuracy control keeps: scan-level Pd at Pfa <= target
    with per-class thresholds chosen on the same scans (what `xfd eval --calibrate` does),
    for a compiled OpenVINO model and items (tensor, gt boxes in pixels, letterbox geometry)."""
    from detector.engine import decode_output, to_image

    def fn(compiled, items) -> float:
        preds, gts = [], []
        out = compiled.output(0)
        for x, gt, nc, r, pad in items:
            preds.append(to_image(decode_output(compiled(x)[out][0], 0.01, nc).copy(), r, pad))
            gts.append(gt)
        any_max, hit_max, threat = M.scan_tables(preds, gts, nc)
        return M.calibrate_thresholds(any_max, hit_max, threat, target_pfa, rounds=1)[1]

    return fn


def quantize_openvino(fp32_xml: Path, data: str | Path, imgsz: int, out_dir: Path, n: int = 300,
                      max_drop: float | None = None) -> dict:
    """INT8 IR from an FP32 IR with NNCF (MIXED preset). The whole detection head (its box and
    class convolutions and the decoding) stays in floating point: quantising the class branch
    is what cost scan-level Pd. Measured on xfd-default 2026.11.28.3 (synth-test, FP32
    thresholds; FP32 Pd 0.425): ultralytics' own scope (decoding only) Pd 0.287, whole head 0.376.

    max_drop: NNCF's accuracy control on top: it ranks the quantised layers by how much they
    change the model's outputs and returns them to floating point one by one until the
    validation split's scan-level Pd at Pfa <= 5% (screening_metric) is within max_drop of
    FP32's. Slower (each step re-evaluates every val scan); what it kept in floating point is
    reported."""
    import nncf
    import openvino as ov

    from training.evaluate import load_split, read_gt

    tensors = [_letterboxed(f, imgsz)[0] for f in calibration_images(data, n)]
    model = ov.Core().read_model(str(fp32_xml))
    head = head_scope(model)
    names = [o.get_friendly_name() for o in model.get_ordered_ops()]
    keep_fp = [m for m in names if head and (f"{head}." in m or f"{head}/" in m)]
    info = {"calibration_images": len(tensors), "floating_point_scope": head, "floating_point_ops": len(keep_fp)}
    try:
        common = dict(preset=nncf.QuantizationPreset.MIXED, subset_size=len(tensors),
                      ignored_scope=nncf.IgnoredScope(names=keep_fp, validate=False))
        if max_drop is None:
            q = nncf.quantize(model, nncf.Dataset(tensors), **common)
        else:
            items, cls_names = load_split(data, "val")
            val = []
            for it in items:
                x, (h, w), r, pad = _letterboxed(it["image"], imgsz)
                val.append((x, read_gt(it["label"], w, h), len(cls_names), r, pad))
            from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

            t0 = time.time()
            q = nncf.quantize_with_accuracy_control(
                model, nncf.Dataset(tensors), nncf.Dataset(val, lambda v: v[0]), screening_metric(),
                max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE,
                advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                    ranking_subset_size=min(300, len(val))), **common)
            fp_ops = [o for o in q.get_ordered_ops() if o.get_type_name() == "Convolution"
                      and not any(i.get_source_output().get_node().get_type_name() == "FakeQuantize"
                                  for i in o.inputs())]
            info.update({"accuracy_control": {"metric": "val Pd at Pfa <= 5% (thresholds chosen on val)",
                                              "max_drop": max_drop, "validation_scans": len(val),
                                              "seconds": round(time.time() - t0, 1),
                                              "convolutions_in_floating_point": len(fp_ops)}})
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"INT8 quantisation failed: {type(e).__name__}: {str(e)[:200]}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(q, str(out_dir / fp32_xml.name))
    meta = fp32_xml.with_name("metadata.yaml")
    if meta.exists():
        shutil.copyfile(meta, out_dir / "metadata.yaml")
    return info


def strip_training_state(pt: Path, ckpt: dict | None = None) -> bool:
    """A checkpoint saved mid-run (training stopped or interrupted before ultralytics' own last
    step) still holds the optimizer state: 25 MB instead of 5 for YOLO26n. Drop it; the weights
    (the EMA, stored in FP16) are untouched. True if something was stripped."""
    import torch

    if ckpt is None:
        ckpt = torch.load(pt, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("optimizer") is None:
        return False
    from ultralytics.utils.torch_utils import strip_optimizer

    strip_optimizer(str(pt))
    return True


def export_model(weights: str | Path, out: str | Path, data: str | Path, imgsz: int | None = None,
                 formats=("onnx", "openvino", "openvino-int8"), name: str = "xfd", version: str | None = None,
                 check_images: int = 20, extra_meta: dict | None = None, compact: bool = False,
                 int8_max_drop: float | None = None) -> dict:
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
    strip_training_state(out / "model.pt", getattr(yolo, "ckpt", None))
    files = {"torch": "model.pt"}
    timings = {}
    int8_info = None
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
            src = out / "openvino" if "openvino" in files else None  # still FP32 here: compaction comes later
            if src is None:
                src = _ul_export(y, format="openvino", imgsz=imgsz, half=False, dynamic=False, device="cpu")
            if (out / "openvino-int8").exists():
                shutil.rmtree(out / "openvino-int8")
            int8_info = quantize_openvino(next(src.glob("*.xml")), data, imgsz, out / "openvino-int8", max_drop=int8_max_drop)
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
    if int8_info:
        meta["int8_quantisation"] = int8_info
    # backend_thresholds (INT8's own operating point) is not carried over: the new INT8 graph needs its own
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


def copy_with_onnx(model_dir: str | Path, dest: str | Path) -> Path:
    """A copy of a model directory with an ONNX export beside the shipped files (ONNX is not
    shipped, to keep the repo small): for the ONNX Runtime backend in tests and benchmarks."""
    from detector import offline

    dest = Path(dest)
    shutil.copytree(model_dir, dest)
    meta = json.loads((dest / "model.json").read_text())
    if "onnx" not in meta["files"]:
        offline.configure()
        from ultralytics import YOLO

        p = _ul_export(YOLO(str(dest / "model.pt")), format="onnx", imgsz=meta["imgsz"], dynamic=False, simplify=True,
                       device="cpu")
        meta["files"]["onnx"] = p.name
        (dest / "model.json").write_text(json.dumps(meta, indent=1))
    return dest


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
    ref_engine = Engine(model_dir, backend="torch", concurrency=1, flips=1)
    ref = [_dets(ref_engine, im, conf) for im in imgs]
    out = {"images": len(imgs), "conf": conf}
    for b in ("onnx", "openvino", "openvino-int8"):
        if b not in ref_engine.info.files:
            continue
        e = Engine(model_dir, backend=b, concurrency=1, flips=1)
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
    meta = export_model(a.weights, a.out, a.data, a.imgsz, formats, name=a.name, version=a.version, compact=a.compact,
                        int8_max_drop=a.int8_max_drop)
    print(json.dumps({"model_dir": str(Path(a.out).resolve()), "files": meta["files"], "export_check": meta["export_check"]}, indent=1))
    return 0
