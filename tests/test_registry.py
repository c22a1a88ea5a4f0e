"""Researcher loop: tiny fine-tune from the shipped model, compare, promote on a live
service (hot swap), observe the version change, roll back; a broken model never serves."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import httpx
import pytest

from .conftest import Server, make_key, png_bytes

pytestmark = pytest.mark.slow


def xfd(*args):
    r = subprocess.run([sys.executable, "-m", "detector.cli", *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def wait_version(srv, key, version, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = httpx.get(srv.url + "/v1/models", headers={"Authorization": f"Bearer {key}"}).json()
        if m["active"]["registry_version"] == version:
            return m
        time.sleep(0.5)
    raise AssertionError(f"service did not switch to {version}: {m}")


def test_finetune_compare_promote_rollback(tmp_path, model_dir, scans):
    from detector.synth.dataset import write_dataset
    from training.compare import compare
    from training.export import export_model
    from training.mix import mix
    from training.train import train

    write_dataset(tmp_path / "d", 16, seed=21, split="train=0.5,val=0.25,test=0.25", workers=1, sheet=False)
    m = mix([(str(tmp_path / "d" / "data.yaml"), 2.0)], tmp_path / "mix")
    assert m["train_images"] == 16
    run = train(m["data"], weights=str(model_dir / "model.pt"), epochs=1, imgsz=160, batch=4, workers=0,
                project=str(tmp_path / "runs"), name="ft", plots=False)
    cand = tmp_path / "cand"
    # checked on the mixed set's val list, as the README's walkthrough exports
    export_model(run / "weights" / "best.pt", cand, m["data"], formats=("onnx", "openvino"), check_images=2,
                 name="xfd-candidate", version="cand-1")
    res = compare(str(model_dir), str(cand), str(tmp_path / "d" / "data.yaml"), "test", tmp_path / "cmp")
    assert set(res["per_class_ap50"]) >= {"gun", "barrel"} and (tmp_path / "cmp" / "compare.md").exists()
    pr = res["paired"]["rows"]  # the paired difference agrees with the two reports it came from
    assert pr["pd"]["old"] == pytest.approx(res["old_metrics"]["pd"], abs=1e-4)
    assert pr["pd"]["new"] == pytest.approx(res["new_metrics"]["pd"], abs=1e-4)
    lo, hi = pr["pd"]["diff_ci95"]
    assert lo <= pr["pd"]["diff"] <= hi and "95% interval" in (tmp_path / "cmp" / "compare.md").read_text()
    pm = res["paired_map50"]  # mAP50's paired difference: the two reports' mAP50s apart, with an interval
    assert pm["diff"] == pytest.approx(res["new_metrics"]["map50"] - res["old_metrics"]["map50"], abs=2e-4)
    assert pm["diff_ci95"][0] <= pm["diff_ci95"][1] and "mAP50, paired" in (tmp_path / "cmp" / "compare.md").read_text()
    assert isinstance(res["found_by_kind"], list)

    data = tmp_path / "svc"
    admin = make_key(data, "admin")
    xfd("models", "add", str(model_dir), "--version", "v1", "--data-dir", str(data))
    xfd("models", "add", str(cand), "--version", "v2", "--data-dir", str(data))
    broken = tmp_path / "broken"
    shutil.copytree(cand, broken)
    (broken / "model.pt").write_bytes(b"corrupt")
    for f in ("model.onnx",):
        (broken / f).write_bytes(b"corrupt")
    shutil.rmtree(broken / "openvino")
    xfd("models", "add", str(broken), "--version", "v3-broken", "--data-dir", str(data))
    xfd("models", "promote", "v1", "--data-dir", str(data))
    srv = Server(data, model_dir).start()
    try:
        hdr = {"Authorization": f"Bearer {admin}", "Content-Type": "image/png"}
        img = png_bytes(scans["threat"][0].image)
        assert wait_version(srv, admin, "v1")["active"]["version"] == "v1"
        xfd("models", "promote", "v2", "--data-dir", str(data))
        wait_version(srv, admin, "v2")
        assert httpx.post(srv.url + "/v1/detect", headers=hdr, content=img, timeout=60).json()["model"]["version"] == "v2"
        # a broken model is refused; v2 keeps serving
        xfd("models", "promote", "v3-broken", "--data-dir", str(data))
        deadline = time.time() + 60
        while time.time() < deadline:
            m = httpx.get(srv.url + "/v1/models", headers={"Authorization": f"Bearer {admin}"}).json()
            if m["registry"]["last_swap_error"]:
                break
            time.sleep(0.5)
        assert "v3-broken" in m["registry"]["last_swap_error"] and m["active"]["registry_version"] == "v2"
        assert httpx.post(srv.url + "/v1/detect", headers=hdr, content=img, timeout=60).status_code == 200
        out = json.loads(xfd("models", "rollback", "--data-dir", str(data)))
        assert out["active"] == "v2"
        out = json.loads(xfd("models", "rollback", "--data-dir", str(data)))
        assert out["active"] == "v1"
        wait_version(srv, admin, "v1")
        assert httpx.post(srv.url + "/v1/detect", headers=hdr, content=img, timeout=60).json()["model"]["version"] == "v1"
    finally:
        srv.stop()


def test_self_test_covers_the_decoder(model_dir, monkeypatch):
    """The pre-serving self-test sends its scan through the PNG decoder too: a deployment whose
    decoder returns wrong pixels never reports ready."""
    import numpy as np

    from detector import imaging
    from detector.engine import Engine
    from serve import app as service

    eng = Engine(model_dir, concurrency=1)
    service.self_test(eng)  # the shipped model and decoder pass
    real = imaging.decode

    def shifted(data, *a, **k):
        d = real(data, *a, **k)
        d.rgb = np.roll(d.rgb, 1, axis=1)
        return d

    monkeypatch.setattr(imaging, "decode", shifted)
    with pytest.raises(ValueError, match="decode"):
        service.self_test(eng)


def test_compare_lines_up_threats_found_by_kind():
    """compare's per-kind table pairs the old and new model's counts on the same kinds, in the new
    report's order; a kind one report lacks (too few objects) is left out, as are reports on
    imported data without a manifest."""
    from training.compare import _found_by_kind

    def rep(*rows):
        return {"threats_found_by": {"kind": [{"class": c, "kind": k, "objects": n, "found": f} for c, k, n, f in rows]}}

    old = rep(("gun", "revolver", 18, 7), ("ammunition", "loose_cartridges", 11, 0), ("frame", "smg_receiver", 3, 0))
    new = rep(("gun", "revolver", 18, 9), ("ammunition", "loose_cartridges", 11, 2), ("magazine", "rifle_magazine", 9, 1))
    assert _found_by_kind(old, new) == [
        {"class": "gun", "kind": "revolver", "objects": 18, "old": 7, "new": 9},
        {"class": "ammunition", "kind": "loose_cartridges", "objects": 11, "old": 0, "new": 2}]
    assert _found_by_kind({}, new) == [] and _found_by_kind(old, {"threats_found_by": {}}) == []
