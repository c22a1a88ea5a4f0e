"""Bad inputs to train / eval / export give clear errors, not tracebacks."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml

from training.train import TrainError, check_dataset


def run(*args):
    return subprocess.run([sys.executable, "-m", "detector.cli", *args], capture_output=True, text=True)


def test_missing_dataset(tmp_path):
    with pytest.raises(TrainError, match="not found"):
        check_dataset(tmp_path / "nope.yaml")
    r = run("train", "--data", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "not found" in r.stderr


def test_unknown_class_names(tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "images" / "val").mkdir(parents=True)
    y = tmp_path / "d.yaml"
    y.write_text(yaml.safe_dump({"path": str(tmp_path), "train": "images/train", "val": "images/val", "names": {0: "knife", 1: "gun"}}))
    with pytest.raises(TrainError, match="knife"):
        check_dataset(y)


def test_download_key_refused(tmp_path):
    y = tmp_path / "d.yaml"
    y.write_text(yaml.safe_dump({"path": str(tmp_path), "train": "a", "val": "a", "names": {0: "gun"},
                                 "download": "https://example.invalid/data.zip"}))
    with pytest.raises(ValueError, match="download"):
        check_dataset(y)


def test_corrupt_weights(tmp_path):
    w = tmp_path / "model.pt"
    w.write_bytes(b"\x00garbage" * 1000)
    r = run("detect", str(w), "--model", str(w))
    assert r.returncode == 2 and "cannot load weights" in r.stderr
    r = run("export", "--weights", str(w), "--out", str(tmp_path / "m"), "--data", str(tmp_path / "none.yaml"))
    assert r.returncode == 2 and ("not found" in r.stderr or "cannot load" in r.stderr)


def test_eval_missing_split(tmp_path, model_dir):
    (tmp_path / "images" / "train").mkdir(parents=True)
    y = tmp_path / "d.yaml"
    y.write_text(yaml.safe_dump({"path": str(tmp_path), "train": "images/train", "val": "images/train",
                                 "names": {0: "gun"}}))
    r = run("eval", "--model", str(model_dir), "--data", str(y), "--split", "test", "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "no 'test' split" in r.stderr
    r = run("eval", "--model", str(model_dir), "--data", str(y), "--split", "test", "--calibrate", "--out", str(tmp_path / "r"))
    assert r.returncode == 2


def test_calibrating_needs_clean_and_threat_scans(tmp_path, model_dir):
    """A set of positives only (as public X-ray sets often are) has no false-alarm rate to calibrate
    for: refused before any inference, with the reason."""
    names = ["gun", "barrel", "slide", "frame", "magazine", "printed_part", "ammunition"]
    (tmp_path / "images" / "val").mkdir(parents=True)
    (tmp_path / "labels" / "val").mkdir(parents=True)
    for k in range(3):
        cv2.imwrite(str(tmp_path / "images" / "val" / f"p{k}.png"), np.full((64, 64, 3), 200, np.uint8))
        (tmp_path / "labels" / "val" / f"p{k}.txt").write_text("0 0.5 0.5 0.3 0.3\n")
    y = tmp_path / "d.yaml"
    y.write_text(yaml.safe_dump({"path": str(tmp_path), "val": "images/val", "names": dict(enumerate(names))}))
    r = run("eval", "--model", str(model_dir), "--data", str(y), "--split", "val", "--calibrate", "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "only threat scans" in r.stderr and "need clean scans" in r.stderr
    assert not (tmp_path / "r" / "report.json").exists()
    # evaluated without calibrating, it reports Pd, and no Pfa rather than a made-up one
    r = run("eval", "--model", str(model_dir), "--data", str(y), "--split", "val", "--out", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Pfa at the operating point** | **n/a (no clean scans)" in md and "NaN" not in (tmp_path / "r" / "report.json").read_text()


def test_help_lists_subcommands():
    r = run("--help")
    for c in ("synth", "train", "eval", "export", "detect", "serve", "import", "bench", "keys"):
        assert c in r.stdout
    r = run("synth", "--help")
    assert "examples:" in r.stdout


def test_int8_calibration_images_come_from_val_only(tmp_path):
    """INT8 calibrates on the 'val' split (a calibration-only set has nothing else); a dataset
    without one is refused with a clear error, never calibrated on test."""
    from training.export import ExportError, calibration_images

    (tmp_path / "images" / "val").mkdir(parents=True)
    (tmp_path / "images" / "test").mkdir(parents=True)
    for k in range(5):
        cv2.imwrite(str(tmp_path / "images" / "val" / f"v{k}.png"), np.full((8, 8, 3), 200, np.uint8))
        cv2.imwrite(str(tmp_path / "images" / "test" / f"t{k}.png"), np.full((8, 8, 3), 200, np.uint8))
    cal = tmp_path / "cal.yaml"
    cal.write_text(yaml.safe_dump({"path": str(tmp_path), "val": "images/val", "test": "images/test", "names": {0: "gun"}}))
    got = calibration_images(cal, n=3)
    assert len(got) == 3 and all(f.parent.name == "val" for f in got)
    assert calibration_images(cal, n=3) == got  # a fixed choice
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"path": str(tmp_path), "test": "images/test", "names": {0: "gun"}}))
    with pytest.raises(ExportError, match="no 'val' split"):
        calibration_images(bad)


def test_export_strips_optimizer_state_from_a_mid_run_checkpoint(tmp_path, model_dir):
    """best.pt of a run stopped by hand keeps the optimizer (5x the size); what export ships
    does not, with the same weights."""
    import torch

    from training.export import strip_training_state

    pt = tmp_path / "best.pt"
    ck = torch.load(model_dir / "model.pt", map_location="cpu", weights_only=False)
    ck["optimizer"] = {"state": {0: {"exp_avg": torch.ones(2_000_000)}}}
    torch.save(ck, pt)
    big = pt.stat().st_size
    assert strip_training_state(pt) is True
    assert pt.stat().st_size < big - 7_000_000
    after = torch.load(pt, map_location="cpu", weights_only=False)
    assert after.get("optimizer") is None
    want = (ck.get("ema") or ck["model"]).float().state_dict()
    got = (after.get("ema") or after["model"]).float().state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert strip_training_state(pt) is False  # nothing left to strip
