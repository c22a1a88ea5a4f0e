"""`xfd bench`: speed measured side by side in one run, printed as ratios.

1. Engine latency per scan (decode to verdict) on realistic simulator scans: stock
   ultralytics predict on the same weights (baseline) vs our engine on each backend.
2. Service throughput and latency with 1, 4 and 16 concurrent clients over loopback,
   the share of time spent outside the model, and the server's RSS growth.
3. Simulator scans per second.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from . import machine
from .engine import BACKENDS, DEFAULT_MODEL_DIR, Engine, load_model_info


def _pct(a, q):
    return round(float(np.percentile(a, q)), 2)


def sample_scans(n: int, seed: int = 31337) -> list[bytes]:
    from .synth.scene import simulate

    out = []
    for i in range(n):
        s = simulate(seed, i)
        img = s.image if s.image.ndim == 2 else cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR)
        out.append(cv2.imencode(".png", img)[1].tobytes())
    return out


def bench_engine(model_dir: Path, scans: list[bytes], repeat: int = 1) -> dict:
    from . import imaging, offline

    offline.configure()
    info = load_model_info(model_dir)
    res = {}
    # baseline: stock ultralytics predict on the same .pt (decode by cv2 as ultralytics users do).
    # Stock ultralytics runs torch on cpu_count-1 threads (its select_device sets NUM_THREADS):
    # one thread on this 2-core machine. The project lifts that to all cores; both are measured.
    import torch
    from ultralytics import YOLO
    from ultralytics.utils import torch_utils

    y = YOLO(info.files["torch"])
    first = cv2.imdecode(np.frombuffer(scans[0], np.uint8), cv2.IMREAD_COLOR)  # warm-up image
    ours = torch_utils.NUM_THREADS
    stock_threads = min(8, max(1, (os.cpu_count() or 1) - 1))  # ultralytics' own default
    variants = [(f"ultralytics predict, stock ({stock_threads} thread{'s' * (stock_threads > 1)})", stock_threads)]
    if ours != stock_threads:
        variants.append((f"ultralytics predict, {ours} threads", ours))
    for label, threads in variants:
        torch_utils.NUM_THREADS = threads
        try:
            y.predict(first, imgsz=info.imgsz, verbose=False, device="cpu")
            assert torch.get_num_threads() == threads
            times = []
            for _ in range(repeat):
                for b in scans:
                    t0 = time.perf_counter()
                    a = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)
                    y.predict(a, imgsz=info.imgsz, verbose=False, device="cpu", conf=0.25)
                    times.append((time.perf_counter() - t0) * 1e3)
        finally:
            torch_utils.NUM_THREADS = ours
            torch.set_num_threads(ours)
        res[label] = {"p50_ms": _pct(times, 50), "p95_ms": _pct(times, 95)}
    with_onnx = model_dir
    if "onnx" not in info.files:  # not shipped (size): exported here, from the same .pt, for this run
        from training.export import copy_with_onnx

        with_onnx = copy_with_onnx(model_dir, Path(tempfile.mkdtemp(prefix="xfd-bench-onnx-")) / "m")
    files = load_model_info(with_onnx).files
    def timed(e: Engine, **kw) -> dict:
        times = []
        for _ in range(repeat):
            for data in scans:
                t0 = time.perf_counter()
                e.detect(imaging.decode(data), tile="off", **kw)
                times.append((time.perf_counter() - t0) * 1e3)
        return {"p50_ms": _pct(times, 50), "p95_ms": _pct(times, 95)}

    for b in BACKENDS[::-1]:
        if b not in files:
            continue
        # one reading, every scan by the main network: each backend's own speed
        e = Engine(with_onnx, backend=b, concurrency=1, flips=1, grey_network=False)
        res[f"engine {b}"] = timed(e)
    # the last path measured (INT8 when there is one) told the scanner's pixels are 1.0 mm
    # across the belt and 0.8 along it: each scan is resampled to square pixels before the model
    res[f"engine {e.backend}, pixel_mm 1.0,0.8 (resampled)"] = timed(e, pixel_mm=(1.0, 0.8))
    # the served path reading every scan four times, mirrored (XFD_FLIPS=4; a model calibrated with
    # xfd eval --flips 4 is served so), grey scans by the grey network where the model has one: as served
    served = load_model_info(with_onnx).meta.get("default_backend") or e.backend
    res[f"engine {served}, flips 4 (four mirrored readings)"] = timed(Engine(with_onnx, backend=served, concurrency=1, flips=4))
    if with_onnx != model_dir:
        shutil.rmtree(with_onnx.parent, ignore_errors=True)
    base = next(v for k, v in res.items() if "stock" in k)["p50_ms"]
    for v in res.values():
        v["speedup_vs_baseline"] = round(base / v["p50_ms"], 2)
    return res


def _rss_kb(pid: int) -> tuple[int, int]:
    st = Path(f"/proc/{pid}/status").read_text()
    get = lambda k: int(next(line.split()[1] for line in st.splitlines() if line.startswith(k)))  # noqa: E731
    return get("VmRSS:"), get("VmHWM:")


def _load(url: str, hdr: dict, scans: list[bytes], n: int, per_client: int):
    """n concurrent clients, each sending per_client scans; returns latencies (ms),
    the server's timing_ms of each answer, error count, wall seconds."""
    import httpx

    lat, inside, errors = [], [], [0]
    lock = threading.Lock()

    def worker(k):
        with httpx.Client(timeout=120) as c:
            for i in range(per_client):
                data = scans[(k * per_client + i) % len(scans)]
                t0 = time.perf_counter()
                resp = c.post(url + "/v1/detect", headers=hdr, content=data)
                dt = (time.perf_counter() - t0) * 1e3
                with lock:
                    if resp.status_code == 200:
                        lat.append(dt)
                        inside.append(resp.json()["timing_ms"])
                    else:
                        errors[0] += 1

    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    return lat, inside, errors[0], time.perf_counter() - t0


def bench_service(model_dir: Path, scans: list[bytes], clients=(1, 4, 16), per_client: int = 12, soak: int = 0) -> dict:
    import httpx

    d = Path(tempfile.mkdtemp(prefix="xfd-bench-"))
    r = subprocess.run([sys.executable, "-m", "detector.cli", "keys", "create", "--role", "integrator", "--data-dir", str(d)],
                       capture_output=True, text=True, check=True)
    key = json.loads(r.stdout)["key"]
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "XFD_QUEUE": "64"}
    proc = subprocess.Popen([sys.executable, "-m", "detector.cli", "serve", "--port", str(port), "--model", str(model_dir),
                             "--data-dir", str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            preexec_fn=_die_with_parent)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        hdr = {"Authorization": f"Bearer {key}", "Content-Type": "image/png"}
        out = {}
        per_level = {n: max(per_client, -(-60 // n)) for n in clients}  # >= 60 requests a level: 12 gave a noisy median
        rss0 = _rss_kb(proc.pid)[0]
        for n in clients:
            lat, timings, errors, wall = _load(url, hdr, scans, n, per_level[n])
            model_ms = [t["inference"] for t in timings]
            row = {"scans_per_s": round(len(lat) / wall, 2), "p50_ms": _pct(lat, 50), "p95_ms": _pct(lat, 95),
                   "outside_model_share": round(1 - sum(model_ms) / max(sum(lat), 1e-9), 3) if n == 1 else None,
                   "errors": errors}
            if n == 1 and timings:  # where one scan's time goes: the server's stages, and the rest (HTTP both ends)
                stages = {k: _pct([t.get(k, 0.0) for t in timings], 50) for k in timings[0] if k != "total"}
                server = [t["total"] for t in timings]
                row["median_ms"] = {**stages, "server_total": _pct(server, 50),
                                    "http_and_client": _pct([a - b for a, b in zip(lat, server, strict=True)], 50)}
                row["outside_model_share_server"] = round(1 - sum(model_ms) / max(sum(server), 1e-9), 3)
            out[f"{n} clients"] = row
        if soak:
            with httpx.Client(timeout=120) as c:
                for i in range(soak):
                    c.post(url + "/v1/detect", headers=hdr, content=scans[i % len(scans)])
        rss1, hwm = _rss_kb(proc.pid)
        out["memory"] = {"rss_start_mb": round(rss0 / 1024, 1), "rss_end_mb": round(rss1 / 1024, 1),
                         "peak_rss_mb": round(hwm / 1024, 1), "growth_mb": round((rss1 - rss0) / 1024, 1),
                         "requests": sum(n * k for n, k in per_level.items()) + soak}
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _die_with_parent() -> None:
    """In the service child before exec: Linux sends it SIGTERM when the bench process dies, so
    an interrupted `make bench` leaves no server running (one did, and skewed the next run)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def bench_synth(n: int = 40) -> dict:
    """Scans per second with one worker per core: at the training settings (0.8-1.35 mm/px,
    median scan ~600x540 px) and at a finer detector pitch (0.5-0.65 mm/px, ~1000x800 px,
    the size the simulator issue names)."""
    from .synth.dataset import write_dataset
    from .synth.scene import SceneConfig

    out = {"workers": os.cpu_count()}
    for key, cfg in (("training_settings", SceneConfig()), ("fine_pitch", SceneConfig(mm_per_px=(0.5, 0.65)))):
        with tempfile.TemporaryDirectory() as d:
            m = write_dataset(d, n, seed=5, split="train=1", workers=os.cpu_count(), cfg=cfg, coco=False, sheet=False,
                              progress=lambda *a: None)
        px = [r["width"] * r["height"] for r in m["scans"]]
        i = int(np.argsort(px)[len(px) // 2])
        out[key] = {"scans": n, "scans_per_s": m["scans_per_second"],
                    "median_size": [m["scans"][i]["width"], m["scans"][i]["height"]]}
    return out


def bench_train(model_dir: Path, n: int = 48, batch: int = 16) -> dict:
    """Training images per second: one epoch of the shipped model's architecture at its
    image size and the training config's batch, on freshly simulated scans (CPU)."""
    from ultralytics import YOLO

    from training.train import ARCH_DIR, load_config

    from .synth.dataset import write_dataset

    info = load_model_info(model_dir)
    cfg = load_config()
    arch = cfg.get("model", "yolo26n")
    with tempfile.TemporaryDirectory() as d:
        write_dataset(Path(d) / "data", n, seed=6, split="train=1", coco=False, sheet=False, progress=lambda *a: None)
        y = YOLO(str(ARCH_DIR / f"{arch}.yaml"))
        marks: dict[str, float] = {}
        y.add_callback("on_train_epoch_start", lambda t: marks.setdefault("start", time.perf_counter()))
        y.add_callback("on_train_epoch_end", lambda t: marks.setdefault("end", time.perf_counter()))
        y.train(data=str(Path(d) / "data" / "data.yaml"), epochs=1, imgsz=info.imgsz, batch=batch, device="cpu",
                val=False, plots=False, workers=0, project=d, name="bench", verbose=False, cache="ram",
                pretrained=False, amp=False)
    sec = marks["end"] - marks["start"]
    return {"architecture": arch, "imgsz": info.imgsz, "batch": batch, "images": n,
            "images_per_s": round(n / sec, 2), "seconds_per_epoch_of_1620": round(1620 * sec / n)}


def bench_cli(a) -> int:
    model = Path(a.model) if a.model else DEFAULT_MODEL_DIR
    host = machine.summary()
    print(f"machine: {host}", flush=True)
    scans = sample_scans(a.n)
    results = {"machine": host, "model": str(model), "scans": a.n}
    print("engine latency per scan (decode to verdict), same weights and scans:", flush=True)
    results["engine"] = bench_engine(model, scans)
    for k, v in results["engine"].items():
        print(f"  {k:34s} p50 {v['p50_ms']:8.1f} ms  p95 {v['p95_ms']:8.1f} ms  x{v['speedup_vs_baseline']:.2f}", flush=True)
    print("service over loopback:", flush=True)
    results["service"] = bench_service(model, scans, soak=a.soak)
    for k, v in results["service"].items():
        print(f"  {k:12s} {v}", flush=True)
    results["simulator"] = bench_synth()
    sim = results["simulator"]
    for k in ("training_settings", "fine_pitch"):
        v = sim[k]
        print(f"simulator, {k.replace('_', ' ')}: {v['scans_per_s']} scans/s ({sim['workers']} workers, "
              f"median scan {v['median_size'][0]}x{v['median_size'][1]} px)", flush=True)
    int8 = load_model_info(model).meta.get("int8_check")
    if int8:
        results["int8_accuracy"] = int8
        where = (f"pooled over {', '.join(int8['sets'])}, each path at its own thresholds" if int8.get("sets")
                 else "synth-test")  # model.json written by the rule before 2026-11-30: synth-test alone
        pfa = (f"{int8['pfa_fp32']:.3f} -> {int8['pfa_int8']:.3f}" if int8.get("pfa_fp32") is not None else "n/a")
        print(f"accuracy cost of INT8 (from `make eval`, {where}): "
              f"mAP50 {int8['map50_fp32']:.3f} -> {int8['map50_int8']:.3f}, Pd {int8['pd_fp32']:.3f} -> {int8['pd_int8']:.3f}, "
              f"Pfa {pfa}; INT8 accepted: {int8['int8_accepted']}", flush=True)
    if not a.no_train:
        results["training"] = bench_train(model)
        tr = results["training"]
        print(f"training: {tr['images_per_s']} images/s ({tr['architecture']} at {tr['imgsz']} px, batch {tr['batch']}, CPU)", flush=True)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(results, indent=1))
    return 0
