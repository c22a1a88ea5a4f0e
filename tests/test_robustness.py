"""Robustness: held-out scans altered as other scanners alter them, and the engine's handling
of negative displays (dark air)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector import imaging
from detector.engine import Engine
from detector.synth.dataset import write_dataset
from training import robustness as R
from training.evaluate import EvalError, evaluate, load_split, predict

QUIET = dict(workers=1, coco=False, sheet=False, progress=lambda *a: None)


@pytest.fixture(scope="module")
def engine(model_dir):
    return Engine(model_dir, concurrency=1)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("rb") / "set"
    write_dataset(root, 16, seed=9, split="test=1", **QUIET)
    return root / "data.yaml"


def test_perturbation_specs_are_checked():
    assert R.parse("scale:0.5") == ("scale", 0.5) and R.parse("gray") == ("gray", None) and R.parse("jpeg") == ("jpeg", 25)
    for bad, msg in (("zoom:2", "unknown perturbation"), ("gray:2", "takes no parameter"), ("jpeg:high", "not a number"),
                     ("scale:9", "must be in"), ("stretch:0.1", "must be in")):
        with pytest.raises(R.PerturbError, match=msg):
            R.parse(bad)


def test_perturbations_do_what_they_say():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    img[:10] = 255
    assert R.make("scale:0.5")(img, 0).shape == (30, 40, 3)
    assert R.make("stretch:1.25")(img, 0).shape == (60, 100, 3) and R.make("stretch:0.5")(img, 0).shape == (60, 40, 3)
    assert (R.make("invert")(img, 0) == 255 - img).all()
    g = R.make("gray")(img, 0)
    assert (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all()
    assert (R.make("noise:12")(img, 3) == R.make("noise:12")(img, 3)).all()  # the same noise on every run
    assert not (R.make("noise:12")(img, 3) == R.make("noise:12")(img, 4)).all()
    assert R.make("gamma:2")(img, 0)[0, 0, 0] == 255 and R.make("gamma:2")(np.full((2, 2, 3), 128, np.uint8), 0)[0, 0, 0] == 64
    h = R.make("hue:180")(np.array([[[255, 0, 0]]], np.uint8), 0)[0, 0]
    assert h[0] < 10 and h[1] > 200 and h[2] > 200  # red turned to cyan
    assert R.make("blur:2")(img, 0).std() < img.std()
    framed = R.make("frame:0.1")(img, 0)  # 6 px: a tenth of the shorter side
    assert framed.shape == (72, 92, 3) and (framed[6:-6, 6:-6] == img).all() and framed[:6].max() == 0 and framed[:, -6:].max() == 0
    assert R.make("frame:0.1").shift(60, 80) == (6, 6) and not hasattr(R.make("scale:0.5"), "shift")


def test_scaled_scans_carry_their_boxes(engine, small_set):
    items, _ = load_split(small_set, "test")
    items = [it for it in items if it["label"].read_text().strip()][:3]
    _, gts, _ = predict(engine, items, progress=False)
    _, half, _ = predict(engine, items, progress=False, perturb=R.make("scale:0.5"))
    _, longer, _ = predict(engine, items, progress=False, perturb=R.make("stretch:1.5"))
    framed = [predict(engine, [it], progress=False, perturb=R.make("frame:0.2"))[1][0] for it in items]
    for a, b, c, f, it in zip(gts, half, longer, framed, items, strict=True):
        p = R.frame_width(*imaging.decode(it["image"].read_bytes()).rgb.shape[:2], 0.2)
        assert np.allclose(f[:, 1:], a[:, 1:] + p) and (f[:, 0] == a[:, 0]).all()  # moved with the scan, not scaled
        assert len(a) and (a[:, 0] == b[:, 0]).all()
        assert np.allclose(b[:, 1:], a[:, 1:] * 0.5, atol=1.0)
        assert np.allclose(c[:, [1, 3]], a[:, [1, 3]] * 1.5, atol=1.0) and np.allclose(c[:, [2, 4]], a[:, [2, 4]])


def test_robustness_report_and_negatives_are_read_the_right_way_round(engine, small_set, tmp_path):
    rep = R.robustness(engine, str(small_set), "test", tmp_path / "rb", specs=("invert", "scale:0.75", "frame:0.1"))
    rows = {r["perturbation"]: r for r in rep["rows"]}
    assert set(rows) == {"none", "invert", "scale:0.75", "frame:0.1"}
    # a black frame is cut away to the pixel: the scan inside is read as it is, its boxes moved back
    assert (rows["frame:0.1"]["pd"], rows["frame:0.1"]["pfa"]) == (rows["none"]["pd"], rows["none"]["pfa"])
    assert abs(rows["frame:0.1"]["map50"] - rows["none"]["map50"]) < 1e-6
    # a negative display (dark air) is turned back: the same scans are found, not none
    assert rows["invert"]["pd"] == rows["none"]["pd"] and abs(rows["invert"]["map50"] - rows["none"]["map50"]) < 0.05
    assert rows["none"]["d_pd"] == 0 and rows["invert"]["d_map50"] == round(rows["invert"]["map50"] - rows["none"]["map50"], 4)
    md = (tmp_path / "rb" / "robustness.md").read_text()
    assert "| invert |" in md and "at the model's own thresholds" in md
    assert json.loads((tmp_path / "rb" / "invert" / "report.json").read_text())["perturbation"] == "invert"
    # without the turn-back the model cannot read negatives: its boxes stop matching the threats
    # (it finds nothing, or alarms on clutter all over the scan: generator 4.0's set gives mAP50
    # 0.009 against 0.45, with 4 of 5 clean scans alarming)
    blind = Engine(engine.info.root, concurrency=1, undo_negative=False)
    r = evaluate(blind, str(small_set), "test", tmp_path / "blind", perturb="invert", plots_too=False)
    assert r["map50"] < 0.5 * rows["none"]["map50"]
    assert r["pd"] < rows["none"]["pd"] or r["pfa"] > rows["none"]["pfa"]


def test_evaluate_refuses_bad_perturbations(engine, small_set, tmp_path):
    with pytest.raises(EvalError, match="unknown perturbation"):
        evaluate(engine, str(small_set), "test", tmp_path / "x", perturb="zoom:2")
    with pytest.raises(EvalError, match="perturbed"):
        evaluate(engine, str(small_set), "val", tmp_path / "x", calibrate=True, perturb="jpeg:25")


def test_negative_and_black_padded_scans(engine, scans):
    """Both have a dark border. A black frame is cut away and the scan inside read as it is; a
    negative's dark air is cut up to the parcel, whose border is still dark: it is read turned back."""
    hits = 0
    for s in scans["threat"][:3]:
        h, w = s.image.shape[:2]
        normal = engine.detect(s.image)
        assert normal.extra["negative"] is False and "margins_cut" not in normal.extra
        assert imaging.dark_margins(s.image) is None
        neg = engine.detect(255 - s.image)
        assert neg.extra["negative"] is True and imaging.dark_border(255 - s.image) and not imaging.dark_border(s.image)
        assert neg.verdict == normal.verdict and {d.label for d in neg.detections if d.alarm} == {d.label for d in normal.detections if d.alarm}
        hits += normal.verdict == "alarm"
        pad = np.zeros((h + 40, w + 60, 3), np.uint8)
        pad[20:-20, 30:-30] = s.image
        assert imaging.dark_border(pad) and imaging.dark_margins(pad) == (30, 20, 30 + w, 20 + h)
        framed = engine.detect(pad)
        assert framed.extra["negative"] is False and framed.extra["margins_cut"] == [30, 20, 30 + w, 20 + h]
        assert (framed.width, framed.height) == (w + 60, h + 40)
        # the scan inside the frame is read exactly as the scan alone, its boxes moved by the frame
        assert [(d.label, round(d.confidence, 4), round(d.box.x1 - 30, 2), round(d.box.y2 - 20, 2)) for d in framed.detections] == \
               [(d.label, round(d.confidence, 4), round(d.box.x1, 2), round(d.box.y2, 2)) for d in normal.detections]
    assert hits, "the shipped model alarmed on none of the fixture's threat scans"
    assert engine.detect(scans["clean"][0].image).extra["negative"] is False
    # a frame that would leave too little of the scan is not a frame
    tiny = np.zeros((400, 400, 3), np.uint8)
    tiny[190:210, 190:210] = 255
    assert imaging.dark_margins(tiny) is None
    # inside a negative's cut margins the border may run along the parcel's grey wall: a quarter of
    # it under 48 still makes it dark when the engine asks (dark_share), never on its own
    wall = np.full((200, 300, 3), 150, np.uint8)
    wall[:, :40] = 20  # dark air down the left side: 28 % of the border ring, its median 150
    assert not imaging.dark_border(wall) and imaging.dark_border(wall, dark_share=0.25)
    assert not imaging.dark_border(wall, dark_share=0.5)
    # a scan dark throughout (an empty or failed acquisition) has no inside, at any size, odd or even
    for shape in ((487, 487), (488, 488), (100, 487), (487, 100)):
        dark = np.full(shape + (3,), 7, np.uint8)
        assert imaging.dark_margins(dark) is None and imaging.dark_border(dark)
    # ... and nothing in it can be seen (no X-rays reached the detector): an error, never 'clear'
    for dark in (np.zeros((487, 301, 3), np.uint8), np.full((300, 400, 3), 30, np.uint8)):
        with pytest.raises(imaging.ImageError) as e:
            engine.detect(dark)
        assert e.value.code == "dark_scan" and "not cleared" in str(e.value)
    # a dark scan with a little parcel in it is a negative display, read turned back
    small = np.zeros((300, 400, 3), np.uint8)
    small[120:180, 150:250] = 140
    assert engine.detect(small).extra["negative"] is True
    # ... and so is a pseudo-colour negative of a nearly empty parcel: its organic walls and contents,
    # orange as simulated, are dark in red and bright in blue inverted (once refused as dark_scan)
    colour = np.full((300, 400, 3), 255, np.uint8)
    colour[100:200, 120:280] = (235, 170, 120)  # light orange: a cardboard box's floor
    cv2.rectangle(colour, (120, 100), (280, 200), (215, 120, 30), 3)  # its walls
    inverted = 255 - colour
    assert (inverted.min(2) >= 48).mean() < 0.01  # every channel bright: almost nowhere
    assert engine.detect(inverted).extra["negative"] is True


def test_negatives_check_judges_each_scan_four_ways(small_set, capsys, tmp_path, monkeypatch):
    """python -m training.negatives: each scan as stored, framed in black, negated and negated in a
    frame, through the engine's own decision (imaging.negative_display); a scan whose cut border is
    wall and contents is a negative only by the white-air rule (NEGATIVE_AIR, generator 6.0.0)."""
    from training import negatives

    assert negatives.main([str(small_set.parent)]) == 0
    out = capsys.readouterr().out
    assert "negatives missed 0 of 32, others called negative 0 of 32" in out
    assert negatives.main([str(tmp_path)]) == 2  # no manifest: said, not a traceback
    # a negative cut up to its parcel: the border is the parcel's wall (light) and contents (grey)
    neg = np.zeros((300, 400, 3), np.uint8)
    neg[60:240, 80:320] = 150  # contents packed to the walls
    neg[60:240, [80, 319]] = 230  # the thin walls
    neg[[60, 239], 80:320] = 230
    assert imaging.negative_display(neg)[0]
    monkeypatch.setattr(imaging, "NEGATIVE_AIR", None)
    assert not imaging.negative_display(neg)[0]


def test_service_counts_negative_scans(server, scans):
    import httpx

    from .conftest import png_bytes

    k = {"Authorization": f"Bearer {server.keys['integrator']}"}
    s = scans["threat"][0]
    a = httpx.post(server.url + "/v1/detect", headers={**k, "Content-Type": "image/png"}, content=png_bytes(s.image), timeout=60).json()
    b = httpx.post(server.url + "/v1/detect", headers={**k, "Content-Type": "image/png"}, content=png_bytes(255 - s.image),
                   timeout=60).json()
    assert [d["label"] for d in b["detections"]] == [d["label"] for d in a["detections"]] and b["verdict"] == a["verdict"]
    m = httpx.get(server.url + "/metrics", headers=k).text
    assert "xfd_negative_scans_total 1.0" in m


def test_declared_pixel_sizes_follow_the_alteration(engine, small_set, tmp_path):
    """--declare-pixels: each scan's manifest pixel size, altered as the scan was, is given to the
    engine, which analyses a stretched scan resampled back to square pixels."""
    meta = {"mm_per_px": 1.2}
    assert R.declared_pixels(None, meta) == (1.2, 1.2) and R.declared_pixels("jpeg:25", meta) == (1.2, 1.2)
    assert np.allclose(R.declared_pixels("stretch:1.5", meta), (1.2, 0.8)) and np.allclose(R.declared_pixels("scale:2", meta), (0.6, 0.6))
    assert np.allclose(R.declared_pixels("stretch:2", {"mm_per_px": 1.0, "mm_per_px_along_belt": 0.8}), (1.0, 0.4))
    assert R.declared_pixels(None, {}) is None
    rep = R.robustness(engine, str(small_set), "test", tmp_path / "rb", specs=("stretch:1.5",), declare_pixels=True)
    assert rep["declared_pixels"] and "pixel size declared" in (tmp_path / "rb" / "robustness.md").read_text()
    r = json.loads((tmp_path / "rb" / "stretch_1.5" / "report.json").read_text())
    assert r["declared_pixels"] is True and r["perturbation"] == "stretch:1.5"
    # declared, the stretched scans score what the square ones do (the engine resamples them back);
    # as they come, the stretch costs this model (README: xfd robustness)
    plain = R.robustness(engine, str(small_set), "test", tmp_path / "rb-plain", specs=("stretch:1.5",))
    d, p = rep["rows"][1], plain["rows"][1]
    assert abs(d["map50"] - rep["rows"][0]["map50"]) < abs(p["map50"] - plain["rows"][0]["map50"]) + 0.02
    # a set whose manifest has no pixel size cannot be declared
    items, _ = load_split(small_set, "test")
    bare = tmp_path / "bare"
    (bare / "images" / "test").mkdir(parents=True)
    (bare / "labels" / "test").mkdir(parents=True)
    import shutil

    shutil.copy(items[0]["image"], bare / "images" / "test" / "a.png")
    shutil.copy(items[0]["label"], bare / "labels" / "test" / "a.txt")
    (bare / "data.yaml").write_text(f"path: {bare}\ntest: images/test\nnames: {dict(enumerate(engine.names))}\n")
    with pytest.raises(EvalError, match="no mm_per_px"):
        evaluate(engine, str(bare / "data.yaml"), "test", tmp_path / "bare-rep", declare_pixels=True, plots_too=False)


def test_a_scan_the_engine_refuses_is_reported_not_fatal(engine, tmp_path):
    """A scan the engine refuses (dark throughout) no longer stops an evaluation or a robustness run
    half-way: it is listed in the report with its code, has no detections (missed if it holds a
    threat) and the summary says so."""
    import shutil

    root = tmp_path / "set"
    write_dataset(root, 6, seed=9, split="test=1", **QUIET)
    img_dir, lab_dir = root / "images" / "test", root / "labels" / "test"
    first = sorted(img_dir.glob("*.png"))[0]
    dark = img_dir / "zz_dark.png"
    cv2.imwrite(str(dark), np.zeros((300, 400, 3), np.uint8))
    shutil.copy(lab_dir / (first.stem + ".txt"), lab_dir / "zz_dark.txt")  # the dark one "holds" first's threats
    rep = evaluate(engine, root / "data.yaml", "test", tmp_path / "rep", plots_too=False)
    assert rep["scans"] == 7 and [(Path(r["file"]).name, r["code"]) for r in rep["refused"]] == [("zz_dark.png", "dark_scan")]
    row = next(p for p in rep["per_scan"] if p["file"].endswith("zz_dark.png"))
    assert row["refused"] == "dark_scan" and not row["detected"] and not row["alarm"]
    assert "1 scan(s) refused by the engine** (dark_scan" in (tmp_path / "rep" / "report.md").read_text()
    # without a list to collect them, a refusal is still an error (predict's callers that expect every scan read)
    items, _ = load_split(root / "data.yaml", "test")
    with pytest.raises(imaging.ImageError):
        predict(engine, [it for it in items if it["image"].name == "zz_dark.png"], progress=False)
