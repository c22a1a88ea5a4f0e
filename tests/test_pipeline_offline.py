"""The whole research pipeline with the network blocked: simulate, train one epoch,
validate, calibrate, evaluate, export (ONNX, OpenVINO FP32 and INT8), predict."""

from __future__ import annotations

import json
import socket

import pytest

pytestmark = pytest.mark.slow


class NetworkBlocked(RuntimeError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise NetworkBlocked(f"network access attempted: {address}")
        return real_connect(self, address)

    def blocked(*a, **k):
        raise NetworkBlocked(f"network access attempted: {a[:1]}")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", blocked)
    monkeypatch.setattr(socket, "create_connection", blocked)
    monkeypatch.setattr(socket, "getaddrinfo", blocked)
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("127.0.0.1", 9))


def _max_param_gap(a, b) -> float:
    import torch

    def params(p):
        ck = torch.load(p, map_location="cpu", weights_only=False)
        return dict((ck.get("ema") or ck["model"]).float().named_parameters())

    pa, pb = params(a), params(b)
    assert pa.keys() == pb.keys()
    return max(float((pa[k] - pb[k]).abs().max()) for k in pa)


def test_offline_train_eval_export_predict(no_network, tmp_path):
    from detector.engine import Engine
    from detector.synth.dataset import write_dataset
    from training.evaluate import EvalError, evaluate, store_thresholds
    from training.export import export_model
    from training.train import train

    write_dataset(tmp_path / "data", 24, seed=9, split="train=0.5,val=0.25,test=0.25", workers=1, sheet=False)
    data = tmp_path / "data" / "data.yaml"
    run = train(str(data), epochs=1, imgsz=96, batch=4, workers=0, project=str(tmp_path / "runs"), name="tiny", plots=False)
    assert (run / "weights" / "best.pt").exists() and (run / "results.csv").exists()
    assert json.loads((run / "xfd_config.json").read_text())["architecture"] == "yolo26n"

    # fine-tuning starts from the checkpoint's weights (ultralytics silently rebuilds from the YAML otherwise):
    # with a vanishing learning rate the fine-tuned weights must equal the starting ones
    ft = train(str(data), weights=str(run / "weights" / "best.pt"), epochs=1, imgsz=96, batch=4, workers=0,
               project=str(tmp_path / "runs"), name="ft", plots=False, lr0=1e-12, warmup_epochs=0)
    assert _max_param_gap(run / "weights" / "best.pt", ft / "weights" / "best.pt") < 1e-3
    scratch = train(str(data), epochs=1, imgsz=96, batch=4, workers=0, project=str(tmp_path / "runs"),
                    name="scratch", plots=False, lr0=1e-12, warmup_epochs=0, seed=1)
    assert _max_param_gap(run / "weights" / "best.pt", scratch / "weights" / "best.pt") > 1e-2  # the check can fail

    model_dir = tmp_path / "model"
    meta = export_model(run / "weights" / "best.pt", model_dir, data, check_images=4)
    assert set(meta["files"]) == {"torch", "onnx", "openvino", "openvino-int8"}
    # INT8 keeps the detection head in floating point
    assert meta["int8_quantisation"]["floating_point_scope"] == "model.23" and meta["int8_quantisation"]["floating_point_ops"] > 50
    assert (model_dir / "SHA256SUMS").exists()

    for backend in ("torch", "onnx", "openvino", "openvino-int8"):
        e = Engine(model_dir, backend=backend, concurrency=1)
        res = e.detect_bytes((tmp_path / "data" / "images" / "test").glob("*.png").__next__().read_bytes())
        assert res.verdict in ("alarm", "clear") and res.width > 0

    e = Engine(model_dir, backend="openvino", concurrency=1)
    rep = evaluate(e, str(data), "val", tmp_path / "rep_val", calibrate=True, target_pfa=0.05)
    for k in ("map50", "map50_95", "per_class", "pd", "pfa", "thresholds"):
        assert k in rep
    assert rep["pd_ci95"][0] <= rep["pd"] <= rep["pd_ci95"][1] and rep["pfa_ci95"][0] <= rep["pfa"] <= rep["pfa_ci95"][1]
    assert set(rep["per_class"]["gun"]) >= {"ap50", "precision", "recall"}
    assert rep["pfa"] <= 0.05 + 1e-9
    for f in ("report.json", "report.md", "pd_pfa.png", "pr_curves.png", "confusion.png"):
        assert (tmp_path / "rep_val" / f).exists(), f
    with pytest.raises(EvalError, match="test split"):
        evaluate(e, str(data), "test", tmp_path / "rep_bad", calibrate=True)
    rep = evaluate(e, str(data), "test", tmp_path / "rep_test")
    assert rep["split"] == "test" and rep["scans"] == 6 and set(rep["strata"]) >= {"render=colour"}

    # FP32 and INT8 each get their own operating point for the same target Pfa: calibrating INT8
    # writes backend_thresholds beside the FP32 thresholds, which stay as they were
    store_thresholds(str(model_dir), evaluate(e, str(data), "val", tmp_path / "rep_fp", calibrate=True, target_pfa=0.05))
    fp32 = json.loads((model_dir / "model.json").read_text())["thresholds"]
    e8 = Engine(model_dir, backend="openvino-int8", concurrency=1)
    rep8 = evaluate(e8, str(data), "val", tmp_path / "rep_int8", calibrate=True, target_pfa=0.05)
    store_thresholds(str(model_dir), rep8)
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["thresholds"] == fp32 and meta["backend_thresholds"]["openvino-int8"] == rep8["thresholds"]
    assert meta["backend_calibration"]["openvino-int8"]["backend"] == "openvino-int8"
    assert Engine(model_dir, backend="openvino-int8", concurrency=1, warmup=False).info.thresholds == rep8["thresholds"]
    assert Engine(model_dir, backend="openvino", concurrency=1, warmup=False).info.thresholds == fp32
    # a re-export makes a new INT8 graph: its old thresholds are not carried over
    # (with NNCF's accuracy control on the val split's screening metric)
    meta = export_model(run / "weights" / "best.pt", model_dir, data, formats=("openvino", "openvino-int8"), check_images=2,
                        int8_max_drop=0.0)
    assert "backend_thresholds" not in meta and meta["thresholds"] == fp32
    ac = meta["int8_quantisation"]["accuracy_control"]
    assert ac["validation_scans"] == 6 and ac["max_drop"] == 0.0 and ac["convolutions_in_floating_point"] >= 0
