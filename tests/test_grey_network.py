"""Grey scans read by the model's grey network: the grey test, the routing, each scan at its
network's thresholds in the evaluation, and what the service says of it."""

import json
import shutil

import cv2
import numpy as np
import pytest

from detector import imaging
from detector.engine import Engine, ModelError
from detector.synth.dataset import write_dataset
from detector.synth.scene import SceneConfig, simulate
from training import metrics as M
from training.evaluate import EvalError, evaluate


def _jpeg(rgb: np.ndarray, q: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _rgb(img: np.ndarray) -> np.ndarray:
    """A scan as the engine gets it decoded: RGB (the simulator keeps a grey scan as one channel)."""
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


@pytest.fixture(scope="module")
def both():
    """Scans of the same seeds rendered grey and in colour (simulator, seed 4252)."""
    grey = [_rgb(simulate(4252, i, SceneConfig(p_gray=1.0, p_jpeg=0.0)).image) for i in range(4)]
    colour = [simulate(4252, i, SceneConfig(p_gray=0.0, p_jpeg=0.0)).image for i in range(4)]
    return grey, colour


def test_grey_test_tells_grey_from_colour_also_as_jpeg(both):
    grey, colour = both
    for g, c in zip(grey, colour, strict=True):
        assert imaging.is_grey(g) and imaging.is_grey(_jpeg(g, 30))
        assert not imaging.is_grey(c) and not imaging.is_grey(_jpeg(c, 30))
    # a grey scan with one small coloured label on it (0.1 % of the pixels) is still grey; a grey
    # scan tinted (a display palette) is not: the main network reads what it was calibrated on
    g = grey[0].copy()
    h, w = g.shape[:2]
    side = int(np.sqrt(0.001 * h * w))
    g[:side, :side] = (200, 30, 30)
    assert imaging.is_grey(g)
    tinted = np.clip(grey[0].astype(np.int16) * np.array([1.0, 0.9, 0.75]), 0, 255).astype(np.uint8)
    assert not imaging.is_grey(tinted)
    # judged by the pixels that show something: a small colour object alone on a white belt is colour, a
    # colour scan's negative (dark air) is colour, a grey scan in a black frame is grey, and a scan of
    # nothing but air is not called grey (it is read as any scan was before there was a grey network)
    lone = np.full((1000, 1000, 3), 255, np.uint8)
    lone[500:540, 500:540] = colour[0][200:240, 150:190]
    assert (lone[500:540, 500:540].min(2) < 235).mean() > 0.5 and not imaging.is_grey(lone)
    assert not imaging.is_grey(255 - colour[1]) and imaging.is_grey(255 - grey[1])
    framed = np.zeros((grey[2].shape[0] + 80, grey[2].shape[1] + 80, 3), np.uint8)
    framed[40:-40, 40:-40] = grey[2]
    assert imaging.is_grey(framed)
    assert not imaging.is_grey(np.full((500, 500, 3), 250, np.uint8))


@pytest.fixture(scope="module")
def routed(routed_model_dir):
    return Engine(routed_model_dir, concurrency=1)


@pytest.fixture(scope="module")
def unrouted(routed_model_dir):
    return Engine(routed_model_dir, concurrency=1, grey_network=False)


def _rows(res):
    return [(d.label, round(d.confidence, 5), round(d.box.x1, 2), round(d.box.y1, 2), d.alarm) for d in res.detections]


def test_the_shipped_model_reads_every_scan_with_one_network(model_dir, both):
    """Since 2026.12.01.20 the shipped model has no grey network: its one network, trained on grey scans
    too, reads every scan, grey or colour, at its own thresholds."""
    m = Engine(model_dir, concurrency=1)
    assert "grey_network" not in m.info.meta and m.grey is None
    assert m.networks()["main"]["reads"] == "every scan" and "grey" not in m.networks()
    for g in both[0][:2]:
        r = m.detect(g).to_dict()
        assert r["network"] == "main" and all(d["alarm"] == (d["confidence"] >= m.info.thresholds[d["label"]])
                                              for d in r["detections"])


def test_a_model_with_a_grey_network_routes_grey_scans_to_it(routed_model_dir, routed, unrouted, both):
    grey, colour = both
    model_dir = routed_model_dir
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["grey_network"]["dir"] == "grey" and routed.grey is not None and unrouted.grey is None
    alone = Engine(model_dir / "grey", concurrency=1)  # the grey network as a model of its own
    th = alone.info.thresholds
    assert th != routed.info.thresholds and routed.grey.info.thresholds == th
    assert routed.grey.flips == alone.flips == alone.info.meta["calibration"]["flips"]
    for g, c in zip(grey, colour, strict=True):
        rg, rc = routed.detect(g), routed.detect(c)
        assert rg.to_dict()["network"] == "grey" and rc.to_dict()["network"] == "main"
        assert "route" in rg.timing_ms
        # grey: what the grey network alone answers, alarms at its thresholds; colour: the main network's answer
        assert _rows(rg) == _rows(alone.detect(g))
        assert all(d.alarm == (d.confidence >= th[d.label]) for d in rg.detections)
        assert _rows(rc) == _rows(unrouted.detect(c))
        assert unrouted.detect(g).to_dict()["network"] == "main"
    n = routed.networks()
    assert n["grey"]["thresholds"] == th and n["grey"]["calibration"]["data"] == alone.info.meta["calibration"]["data"]
    assert n["main"]["reads"] == "colour scans" and unrouted.networks()["main"]["reads"] == "every scan"


def test_grey_routing_switch_and_broken_model_directories(routed_model_dir, tmp_path, monkeypatch):
    model_dir = routed_model_dir
    monkeypatch.setenv("XFD_GREY_NETWORK", "off")
    assert Engine(model_dir, concurrency=1, warmup=False).grey is None
    monkeypatch.setenv("XFD_GREY_NETWORK", "maybe")
    with pytest.raises(ModelError, match="XFD_GREY_NETWORK must be on or off"):
        Engine(model_dir, concurrency=1, warmup=False)
    monkeypatch.delenv("XFD_GREY_NETWORK")
    m = tmp_path / "m"
    shutil.copytree(model_dir, m, ignore=shutil.ignore_patterns("eval", "openvino-int8", "model.pt"))
    shutil.rmtree(m / "grey")
    with pytest.raises(ModelError, match="grey"):  # a model naming a grey network it lacks does not load
        Engine(m, concurrency=1, warmup=False)
    shutil.copytree(model_dir / "grey", m / "grey")
    g = json.loads((m / "grey" / "model.json").read_text())
    g["names"] = g["names"][:3]
    (m / "grey" / "model.json").write_text(json.dumps(g))
    with pytest.raises(ModelError, match="classes"):
        Engine(m, concurrency=1, warmup=False)


def test_each_scan_at_its_own_networks_thresholds_known_answers():
    """Scans 0-3 threat, 4-7 clean (test_metrics' hand-made predictions); per-scan thresholds."""
    from tests.test_metrics import GTS, PREDS

    any_max, hit_max, threat = M.scan_tables(PREDS, GTS, 7)
    one = np.full(7, 0.5)
    rows = np.tile(one, (8, 1))
    assert M.pd_pfa(any_max, hit_max, threat, rows) == M.pd_pfa(any_max, hit_max, threat, one)
    rows[5] = 0.25  # clean scan 5 (a 0.3 'frame') read at lower thresholds: it alarms
    rows[1] = 0.7   # threat scan 1 (caught at 0.6) read at higher ones: missed
    assert M.pd_pfa(any_max, hit_max, threat, rows) == (pytest.approx(1 / 4), pytest.approx(2 / 4))
    assert M.screening(any_max, hit_max, threat, rows)["alarmed"].tolist() == [True, False, True, False, True, True, False, False]
    names = ["gun", "barrel", "slide", "frame", "magazine", "printed_part", "ammunition"]
    flat = M.detection_metrics(PREDS, GTS, names, dict.fromkeys(names, 0.5))
    same = M.detection_metrics(PREDS, GTS, names, dict.fromkeys(names, 0.5), scan_thresholds=np.tile(one, (8, 1)))
    assert same == flat
    high = np.tile(one, (8, 1))
    high[4] = 0.75  # the clean scan's 0.7 'gun' read at a higher threshold: one false detection fewer
    per = M.detection_metrics(PREDS, GTS, names, dict.fromkeys(names, 0.5), scan_thresholds=high)
    assert flat["per_class"]["gun"]["precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert per["per_class"]["gun"]["precision"] == 0.5 and per["per_class"]["gun"]["recall"] == 0.5
    assert per["map50"] == flat["map50"]  # AP does not depend on thresholds
    assert M.confusion(PREDS, GTS, 7, rows)[7, 3] == 1 and M.confusion(PREDS, GTS, 7, one)[7, 3] == 0


def test_evaluation_scores_each_scan_at_the_thresholds_of_the_network_that_read_it(tmp_path, routed, unrouted):
    write_dataset(tmp_path / "d", 16, seed=4253, split="val=0.5,test=0.5", workers=1, coco=False, sheet=False,
                  cfg=SceneConfig(p_gray=0.5), progress=lambda *a: None)
    data = str(tmp_path / "d" / "data.yaml")
    man = json.loads((tmp_path / "d" / "manifest.json").read_text())
    grey_files = {s["file"].split("/")[-1] for s in man["scans"] if s["split"] == "test" and s["grayscale"]}
    rep = evaluate(routed, data, "test", tmp_path / "r", plots_too=False)
    got = {p["file"].split("/")[-1] for p in rep["per_scan"] if p["network"] == "grey"}
    assert got == grey_files and rep["grey_network"]["scans"] == len(grey_files)
    assert rep["grey_network"]["thresholds"] == routed.grey.info.thresholds
    # every scan's alarm is the verdict of the network that read it, at that network's thresholds
    for p in rep["per_scan"]:
        rgb = cv2.cvtColor(cv2.imread(p["file"]), cv2.COLOR_BGR2RGB)
        assert p["alarm"] == (routed.detect(rgb).verdict == "alarm")
    assert len(grey_files) == 5  # of the 8 test scans (seed 4253)
    assert "read by the grey network" in (tmp_path / "r" / "report.md").read_text()
    plain = evaluate(unrouted, data, "test", tmp_path / "r0", plots_too=False)
    assert plain["grey_network"] is None and "network" not in plain["per_scan"][0]
    colour = [i for i, p in enumerate(rep["per_scan"]) if p["network"] == "main"]
    assert [rep["per_scan"][i]["alarm_score"] for i in colour] == [plain["per_scan"][i]["alarm_score"] for i in colour]
    # thresholds are a network's own: calibrating a routed model chooses the main network's, reading every scan
    cal = evaluate(routed, data, "val", tmp_path / "c", calibrate=True, target_pfa=0.5, min_gain=0, plots_too=False)
    cal0 = evaluate(unrouted, data, "val", tmp_path / "c0", calibrate=True, target_pfa=0.5, min_gain=0, plots_too=False)
    assert cal["grey_network"] is None and cal["thresholds"] == cal0["thresholds"] and cal["per_scan"] == cal0["per_scan"]
    assert routed.grey is not None  # the engine itself still routes
    with pytest.raises(EvalError, match="test split"):
        evaluate(routed, data, "test", tmp_path / "t", calibrate=True)
