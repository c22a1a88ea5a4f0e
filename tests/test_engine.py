"""The detection engine: every input form, backends, tiling, concurrency, bad inputs."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from PIL import Image

from detector import imaging
from detector.engine import Box, Detection, Engine, EngineError, ModelError, verdict_reasons
from detector.synth.scene import SceneConfig, simulate
from detector.xray import render
from training.metrics import box_iou

from .conftest import png_bytes


@pytest.fixture(scope="module")
def engine(model_dir):
    return Engine(model_dir, concurrency=2)


def _arr(res):
    return np.array([[d.box.x1, d.box.y1, d.box.x2, d.box.y2, d.confidence, d.class_id] for d in res.detections],
                    np.float32).reshape(-1, 6)


def _agree(a, b, iou=0.7, min_conf=0.4):
    """Every confident detection of a has a same-class match in b."""
    a = a[a[:, 4] >= min_conf]
    if len(a) == 0:
        return True
    if len(b) == 0:
        return False
    m = box_iou(a[:, :4], b[:, :4])
    return all(((m[i] >= iou) & (b[:, 5] == a[i, 5])).any() for i in range(len(a)))


def test_png_scan_gives_typed_result(engine, scans):
    s = scans["threat"][0]
    res = engine.detect_bytes(png_bytes(s.image))
    d = res.to_dict()
    assert d["image"] == {"width": s.image.shape[1], "height": s.image.shape[0]}
    assert d["verdict"] in ("alarm", "clear")
    assert set(d["timing_ms"]) >= {"decode", "preprocess", "inference", "postprocess", "total"}
    for det in d["detections"]:
        assert det["label"] in engine.names and 0 <= det["confidence"] <= 1
    if res.verdict == "alarm":
        assert res.reasons


def test_input_forms_agree(engine, scans):
    s = scans["threat"][1]
    base = _arr(engine.detect_bytes(png_bytes(s.image)))
    # 16-bit TIFF
    ok, tif = cv2.imencode(".tiff", cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    dec = imaging.decode(tif.tobytes())
    assert dec.bit_depth == 16 and dec.format == "TIFF"
    assert _agree(base, _arr(engine.detect(dec)), iou=0.6)
    # RGBA PNG (opaque alpha)
    rgba = np.dstack([s.image, np.full(s.image.shape[:2], 255, np.uint8)])
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    dec = imaging.decode(buf.getvalue())
    assert dec.source_mode == "RGBA" and np.array_equal(dec.rgb, s.image)
    # BMP
    ok, bmp = cv2.imencode(".bmp", cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR))
    assert np.array_equal(imaging.decode(bmp.tobytes()).rgb, s.image)
    # JPEG with EXIF orientation 6 (rotated 90 degrees on disk)
    rot = np.ascontiguousarray(np.rot90(s.image, 1))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(rot).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    dec = imaging.decode(buf.getvalue())
    assert dec.rgb.shape == s.image.shape
    # PNG with an eXIf chunk (the decoder skips Pillow's EXIF lookup only when no such chunk exists)
    buf = io.BytesIO()
    Image.fromarray(rot).save(buf, "PNG", exif=exif.tobytes())
    assert b"eXIf" in buf.getvalue()
    assert np.array_equal(imaging.decode(buf.getvalue()).rgb, s.image)


def test_png_fast_path_matches_the_general_decoder(scans, monkeypatch):
    """8-bit RGB and grey PNGs go through libspng; every other PNG through OpenCV. Same pixels
    either way, and a damaged file is refused by both, never decoded into wrong pixels."""
    img = scans["threat"][0].image
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    pal = io.BytesIO()
    Image.fromarray(img).convert("P", palette=Image.Palette.ADAPTIVE).save(pal, "PNG")
    trns = io.BytesIO()
    Image.fromarray(img).save(trns, "PNG", transparency=(255, 255, 255))
    cases = {"rgb8": png_bytes(img), "gray8": cv2.imencode(".png", gray)[1].tobytes(),
             "gray16": cv2.imencode(".png", gray.astype(np.uint16) * 257)[1].tobytes(),
             "palette": pal.getvalue(), "rgb8+tRNS": trns.getvalue()}
    fast = {k: imaging._spng_rgb(v) is not None for k, v in cases.items()}
    assert fast == {"rgb8": True, "gray8": True, "gray16": False, "palette": False, "rgb8+tRNS": False}
    got = {k: imaging.decode(v) for k, v in cases.items()}
    monkeypatch.setattr(imaging, "pyspng", None)
    for k, v in cases.items():
        ref = imaging.decode(v)
        assert np.array_equal(got[k].rgb, ref.rgb) and got[k].rgb.flags.c_contiguous, k
        assert (got[k].bit_depth, got[k].source_mode) == (ref.bit_depth, ref.source_mode), k
    assert np.array_equal(got["rgb8"].rgb, img)
    monkeypatch.undo()
    data = cases["rgb8"]
    rng = np.random.default_rng(3)
    for i in rng.integers(40, len(data) - 20, 40):  # one flipped byte anywhere in the chunks
        bad = bytearray(data)
        bad[i] ^= 0xFF
        with pytest.raises(imaging.ImageError) as e:
            imaging.decode(bytes(bad))
        assert e.value.code in ("bad_image", "truncated") and str(e.value)


def test_grayscale_16bit_and_8bit(engine):
    cfg = SceneConfig(p_gray=1.0, p_jpeg=0.0)
    s = next(simulate(99, i, cfg) for i in range(50) if simulate(99, i, cfg).boxes)
    ok, g8 = cv2.imencode(".png", s.image)
    ok, g16 = cv2.imencode(".png", s.image.astype(np.uint16) * 257)
    d8, d16 = imaging.decode(g8.tobytes()), imaging.decode(g16.tobytes())
    assert d8.rgb.shape == (*s.image.shape, 3) and d16.bit_depth == 16
    assert np.abs(d8.rgb.astype(int) - d16.rgb.astype(int)).max() <= 1
    r = engine.detect(d16)
    assert r.width == s.image.shape[1]


def test_12bit_detector_values_are_stretched():
    a = (np.linspace(0, 4095, 64 * 64).reshape(64, 64)).astype(np.uint16)
    ok, b = cv2.imencode(".png", a)
    d = imaging.decode(b.tobytes())
    assert d.rgb.max() == 255 and d.rgb.min() == 0


def test_raw_dual_energy_pair(engine):
    cfg = SceneConfig(p_gray=0.0, p_jpeg=0.0)
    s = next(x for x in (simulate(77, i, cfg, keep_raw=True) for i in range(40)) if x.boxes)
    ok, low = cv2.imencode(".png", render.to_raw16(s.t_low))
    ok, high = cv2.imencode(".png", render.to_raw16(s.t_high))
    dec = imaging.decode_raw_pair(low.tobytes(), high.tobytes())
    assert dec.rgb.shape == (s.meta["height"], s.meta["width"], 3) and dec.source_mode == "raw-dual-energy"
    # same physics and palette code as the simulator: metal pixels are blue, air is white
    assert dec.rgb[0, 0].min() >= 240
    res = engine.detect(dec)
    assert res.width == s.meta["width"]
    with pytest.raises(imaging.ImageError):
        imaging.decode_raw_pair(low.tobytes(), cv2.imencode(".png", np.zeros((5, 5), np.uint8))[1].tobytes())


def _paste(canvas: np.ndarray, crop: np.ndarray, ox: int, oy: int) -> None:
    """Multiply a crop into a canvas (X-ray overlap multiplies transmissions)."""
    canvas[oy:oy + crop.shape[0], ox:ox + crop.shape[1]] *= crop / 255.0


def _reference(engine):
    """A parcel crop around a threat in which the model detects something, seen at the
    scale of one tile (the tiling mechanism is under test here, not the model's recall)."""
    cfg = SceneConfig(p_gray=0.0, p_jpeg=0.0)
    t = engine.tile_size
    for i in range(120):
        g = simulate(4242, i, cfg)
        for b in g.boxes:
            x1, y1, x2, y2 = b["box"]
            pad = 40
            crop = g.image[max(0, y1 - pad):y2 + pad, max(0, x1 - pad):x2 + pad]
            if max(crop.shape[:2]) > t * 0.6:
                continue
            tile = np.full((t, t, 3), 255, np.float32)
            _paste(tile, crop, 100, 100)
            ref = _arr(engine.detect(np.clip(tile + 0.5, 0, 255).astype(np.uint8), tile="off"))
            ref = ref[ref[:, 4] >= 0.2]  # what the model finds clearly, not a score at the noise floor
            if len(ref):
                return crop, ref - np.array([100, 100, 100, 100, 0, 0], np.float32)
    pytest.fail("the shipped model detects nothing in any threat parcel")


def test_long_scan_small_threat_found_by_tiling(engine, scans):
    """A 6000x2000 belt of parcels with one small gun parcel: the tiled pass finds what
    the model finds in that parcel at tile scale; the merge leaves no duplicates."""
    crop, ref = _reference(engine)
    canvas = np.full((2000, 6000, 3), 255, np.float32)
    x = 0
    for s in scans["clean"]:
        h, w = s.image.shape[:2]
        if x + w > 4000:
            break
        _paste(canvas, s.image, x, 0)
        x += w + 100
    ox, oy = 4300, 1300
    _paste(canvas, crop, ox, oy)
    img = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    res = engine.detect(img, tile="auto")
    assert res.tiled and res.extra["views"] > 4
    a = _arr(res)
    for r in ref:
        want = r[:4] + np.array([ox, oy, ox, oy], np.float32)
        same = a[a[:, 5] == r[5]]
        assert len(same) and box_iou(same[:, :4], want[None]).max() >= 0.5, ("not found by tiling", r, a[:5])
    for c in np.unique(a[:, 5]):  # merged without duplicates
        b = a[a[:, 5] == c]
        m = box_iou(b[:, :4], b[:, :4])
        np.fill_diagonal(m, 0)
        assert m.max(initial=0) < 0.5
    whole = engine.detect(img, tile="off")
    assert not whole.tiled and whole.extra["views"] == 1


@pytest.mark.parametrize("backend", ["onnx", "openvino", "openvino-int8"])
def test_backends_agree_with_torch(model_with_onnx, scans, backend):
    ref = Engine(model_with_onnx, backend="torch", concurrency=1)
    other = Engine(model_with_onnx, backend=backend, concurrency=1)
    tol = 0.5 if backend == "openvino-int8" else 0.8
    for s in scans["threat"][:3] + scans["clean"][:2]:
        a, b = _arr(ref.detect(s.image)), _arr(other.detect(s.image))
        assert _agree(a, b, iou=tol, min_conf=0.5), (backend, a[:3], b[:3])


def test_concurrent_calls_match_serial(engine, scans):
    imgs = [s.image for s in scans["threat"][:4] + scans["clean"][:4]]
    serial = [_arr(engine.detect(i)) for i in imgs]
    with ThreadPoolExecutor(6) as ex:
        par = list(ex.map(lambda i: _arr(engine.detect(i)), imgs * 2))
    for k, p in enumerate(par):
        s = serial[k % len(imgs)]
        assert p.shape == s.shape and np.allclose(p, s, atol=1e-3)


def test_openvino_streams_setting(model_dir, scans, monkeypatch):
    """XFD_OV_STREAMS=2 runs two requests side by side on one core each; the answers are the
    same detections as the default single stream on all cores. Bad values are refused."""
    imgs = [s.image for s in scans["threat"][:3] + scans["clean"][:1]]
    one = Engine(model_dir, backend="openvino", concurrency=2, threads=2)
    assert one.ov_streams == 1
    monkeypatch.setenv("XFD_OV_STREAMS", "2")
    two = Engine(model_dir, backend="openvino", concurrency=2, threads=2)
    assert two.ov_streams == 2
    with ThreadPoolExecutor(2) as ex:
        par = list(ex.map(lambda i: _arr(two.detect(i)), imgs))
    for i, p in zip(imgs, par, strict=True):
        assert _agree(_arr(one.detect(i)), p, iou=0.9, min_conf=0.2)
    for bad in ("0", "two"):
        monkeypatch.setenv("XFD_OV_STREAMS", bad)
        with pytest.raises(ModelError, match="XFD_OV_STREAMS"):
            Engine(model_dir, backend="openvino", concurrency=2)


def test_openvino_precision_is_pinned(model_dir, scans, monkeypatch, tmp_path, caplog):
    """OpenVINO computes a floating-point IR in bfloat16 by default on CPUs with AVX512-BF16 or AMX
    and in f32 elsewhere, so one model had two operating points. Scores are computed in f32 unless
    XFD_OV_PRECISION says otherwise; the precision is in the compiled model, the engine and the
    calibration, an engine computing in another precision than its calibration's warns, and bad values
    are refused naming the variable."""
    import shutil

    from detector.engine import _OpenVinoModel, ov_config

    monkeypatch.delenv("XFD_OV_PRECISION", raising=False)
    e = Engine(model_dir, backend="openvino", concurrency=1, threads=2)
    assert e.precision == "f32"
    xml = str(next((model_dir / "openvino").glob("*.xml")))
    assert str(_OpenVinoModel.compiled(xml, 2, 1).get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
    assert ov_config(2, 1, "f32")["INFERENCE_PRECISION_HINT"] == "f32"
    assert Engine(model_dir, backend="torch").precision == "f32"

    # a model calibrated in f32, served in bf16 by a site's choice: served, with a warning
    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    meta = json.loads((copy / "model.json").read_text())
    meta.setdefault("calibration", {})["precision"] = "f32"
    (copy / "model.json").write_text(json.dumps(meta))
    monkeypatch.setenv("XFD_OV_PRECISION", "BF16")
    with caplog.at_level("WARNING", logger="xfd.engine"):
        b = Engine(copy, backend="openvino", concurrency=1, threads=2)
    assert b.precision == "bf16"
    assert any("calibrated with scores computed in f32" in r.getMessage() and "bf16" in r.getMessage() for r in caplog.records)
    # the same objects found, at scores that differ in the last digits
    found = 0
    for s in scans["threat"]:
        f32, bf16 = _arr(e.detect(s.image)), _arr(b.detect(s.image))
        found += int((f32[:, 4] >= 0.3).sum())
        assert _agree(f32, bf16, iou=0.8, min_conf=0.3)
    assert found > 0
    for bad in ("fp32", "int8"):
        monkeypatch.setenv("XFD_OV_PRECISION", bad)
        with pytest.raises(ModelError, match="XFD_OV_PRECISION"):
            Engine(model_dir, backend="openvino", concurrency=1)


def _png_header(w, h):
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    c = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + c + struct.pack(">I", zlib.crc32(c)) + b"\x00" * 64 + b"IEND\xaeB`\x82"


def test_bad_inputs_give_clear_errors(scans):
    good = png_bytes(scans["clean"][0].image)
    buf = io.BytesIO()
    Image.fromarray(scans["clean"][0].image).save(buf, "JPEG")
    jpg = buf.getvalue()
    f32 = io.BytesIO()
    Image.fromarray(np.random.rand(32, 32).astype(np.float32), "F").save(f32, "TIFF")
    cases = {
        "truncated png": (good[: len(good) // 3], "truncated"),
        "truncated jpeg": (jpg[: len(jpg) // 2], "truncated"),
        "zero bytes": (b"", "empty"),
        "text": (b"PARCEL 123, no image here\n", "unsupported_format"),
        "huge": (_png_header(80_000, 80_000), "too_large"),
        "float tiff": (f32.getvalue(), "unsupported_depth"),
        "thumbnail": (cv2.imencode(".png", np.zeros((31, 200, 3), np.uint8))[1].tobytes(), "too_small"),
        "one-line strip": (cv2.imencode(".bmp", np.full((1, 4000, 3), 255, np.uint8))[1].tobytes(), "too_small"),
    }
    for name, (data, code) in cases.items():
        with pytest.raises(imaging.ImageError) as e:
            imaging.decode(data)
        assert e.value.code == code, name
        assert str(e.value), name
    with pytest.raises(imaging.ImageError, match="limit"):
        imaging.decode(good, max_pixels=1000)


def test_engine_refuses_wrong_arrays_and_models(engine, tmp_path):
    with pytest.raises(EngineError):
        engine.detect(np.zeros((10, 10), np.uint8))
    # arrays are the library's business: a strip one pixel high is letterboxed to a row, not an error
    strip = engine.detect(np.full((1, 4000, 3), 255, np.uint8))
    assert (strip.width, strip.height, strip.verdict) == (4000, 1, "clear")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint" * 100)
    with pytest.raises(ModelError, match="cannot load"):
        Engine(bad, backend="torch")
    with pytest.raises(ModelError, match="not found"):
        Engine(tmp_path / "missing")
    with pytest.raises(ModelError, match="model.json"):
        Engine(tmp_path)


def test_verdict_reasons_read_like_a_screener():
    def d(label, alarm=True):
        return Detection(label, 0, 0.9, Box(0, 0, 10, 10), alarm)

    assert "possible disassembled firearm" in verdict_reasons([d("barrel"), d("slide")])[0]
    assert verdict_reasons([d("printed_part")]) == ["3D-printed firearm part"]
    assert verdict_reasons([d("gun"), d("gun")])[0] == "assembled firearm (x2)"
    assert verdict_reasons([d("barrel", alarm=False)]) == []
    assert verdict_reasons([d("ammunition")]) == ["ammunition"]


def test_detect_cli_json_and_annotated_png(model_dir, scans, tmp_path):
    p = tmp_path / "scan.png"
    p.write_bytes(png_bytes(scans["threat"][0].image))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    r = subprocess.run([sys.executable, "-m", "detector.cli", "detect", str(p), str(bad), "--model", str(model_dir),
                        "--json", "--save-dir", str(tmp_path / "out")], capture_output=True, text=True)
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert r.returncode == 1 and len(lines) == 2
    assert set(lines[0]) >= {"scan_id", "model", "image", "verdict", "reasons", "detections", "timing_ms"}
    assert lines[1]["verdict"] == "error" and "supported" in lines[1]["error"]
    assert (tmp_path / "out" / "scan_detections.png").exists()


def test_default_backend_is_the_evaluated_choice_never_an_unevaluated_int8(model_dir, tmp_path, monkeypatch):
    """The shipped model.json names the backend that met the accuracy bound; a model directory
    without that choice (exported, not yet evaluated) runs FP32, not INT8; XFD_BACKEND wins."""
    import shutil

    monkeypatch.delenv("XFD_BACKEND", raising=False)
    assert Engine(model_dir, concurrency=1, warmup=False).backend == json.loads((model_dir / "model.json").read_text())["default_backend"]
    d = tmp_path / "m"
    shutil.copytree(model_dir, d, ignore=shutil.ignore_patterns("eval", "*.md"))
    meta = json.loads((d / "model.json").read_text())
    meta.pop("default_backend", None)
    (d / "model.json").write_text(json.dumps(meta))
    assert Engine(d, concurrency=1, warmup=False).backend == "openvino"
    meta["default_backend"] = "openvino-int8"
    (d / "model.json").write_text(json.dumps(meta))
    assert Engine(d, concurrency=1, warmup=False).backend == "openvino-int8"
    monkeypatch.setenv("XFD_BACKEND", "torch")
    assert Engine(d, concurrency=1, warmup=False).backend == "torch"
