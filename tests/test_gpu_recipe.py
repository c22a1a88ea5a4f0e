"""training/gpu_recipe.sh, the script that trained the shipped model's GPU stage, runs end to
end here on the CPU at toy size: fresh scans in chunks, a fine-tune from our checkpoint, and
the weights, metrics and data summary copied out (what `make train-gpu` relies on)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from detector.taxonomy import REPO_ROOT


def test_gpu_recipe_runs_on_cpu_at_toy_size(tmp_path, model_dir):
    cfg = tmp_path / "cpu.yaml"  # gpu.yaml with what a CPU cannot do turned off (bf16 autocast needs CUDA)
    cfg.write_text(f"base: {REPO_ROOT / 'configs' / 'gpu.yaml'}\namp: false\nbatch: 4\nworkers: 0\ncache: false\nimgsz: 256\n")
    out, runs = tmp_path / "out", tmp_path / "runs"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           # relative paths, as `make train-gpu` passes them (an absolute-only recipe once broke there)
           "OUT": os.path.relpath(out, REPO_ROOT), "RUNS": os.path.relpath(runs, REPO_ROOT),
           "DATA": os.path.relpath(tmp_path / "data", REPO_ROOT), "DEVICE": "cpu", "CONFIG": str(cfg),
           "CHUNKS": "2", "CHUNK": "3", "WIDE": "1", "VAL_N": "2", "EPOCHS": "1", "SEED0": "900",
           "PLAIN_OPTS": "--clutter 40,40",
           "WEIGHTS": str(model_dir / "model.pt"), "XFD": f"{sys.executable} -m detector.cli"}
    r = subprocess.run(["bash", str(REPO_ROOT / "training" / "gpu_recipe.sh")], cwd=REPO_ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = json.loads((out / "data_summary.json").read_text())
    assert summary["train_scans"] == 6 and summary["val_scans"] == 2
    assert sorted(c["seed"] for c in summary["chunks"]) == [900, 901, 902]
    assert all(c["config"]["p_display"] == 0.3 and c["config"]["p_soft"] == 0.5 for c in summary["chunks"])
    wide = {c["seed"]: c["config"]["palette_jitter"] > 0 for c in summary["chunks"]}
    assert wide == {900: False, 901: False, 902: True}  # WIDE=1: every second training chunk
    clutter = {c["seed"]: c["config"]["clutter"] for c in summary["chunks"]}
    assert clutter == {900: [5, 30], 901: [40, 40], 902: [3, 50]}  # PLAIN_OPTS: the plain training chunks only
    for f in ("best.pt", "last.pt", "results.csv", "xfd_config.json", "recipe.log"):
        assert (out / f).stat().st_size > 0, f
    run = runs / "gpu"
    assert (run / "data_summary.json").read_text() == (out / "data_summary.json").read_text()
    xc = json.loads((run / "xfd_config.json").read_text())
    assert xc["hardware"].startswith("CPU, ") and xc["source"].startswith("fine-tune from")
    assert len((run / "results.csv").read_text().strip().splitlines()) == 2  # header + 1 epoch
    assert len(list((tmp_path / "data" / "all" / "images" / "train").iterdir())) == 6


def test_gpu_recipe_fails_when_training_fails(tmp_path):
    """A recipe whose training cannot start (no such checkpoint) exits non-zero with the
    trainer's message, instead of reporting success with nothing trained."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OUT": str(tmp_path / "out"), "RUNS": str(tmp_path / "runs"), "DATA": str(tmp_path / "data"),
           "DEVICE": "cpu", "CHUNKS": "1", "CHUNK": "1", "VAL_N": "1", "EPOCHS": "1", "SEED0": "910",
           "WEIGHTS": str(tmp_path / "missing.pt"), "XFD": f"{sys.executable} -m detector.cli"}
    r = subprocess.run(["bash", str(REPO_ROOT / "training" / "gpu_recipe.sh")], cwd=REPO_ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert "weights not found" in r.stdout + r.stderr
    assert "training exited with 2" in (tmp_path / "out" / "recipe.log").read_text()
