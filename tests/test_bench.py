"""The benchmark's service child dies with the benchmark: an interrupted `make bench` once left
a server running that skewed the next run's numbers."""

import os
import signal
import subprocess
import sys
import time


def _alive(pid: int) -> bool:
    """Running, not a zombie (an orphan's zombie waits for whatever reaps orphans here)."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_service_child_dies_with_the_bench_process(tmp_path):
    pidfile = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time\n"
        "from detector.bench import _die_with_parent\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], preexec_fn=_die_with_parent)\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text():
            break
        time.sleep(0.05)
    child = int(pidfile.read_text())
    assert _alive(child)  # alive while the parent lives
    parent.send_signal(signal.SIGKILL)  # no finally block runs: only the kernel can clean up
    parent.wait()
    for _ in range(100):
        if not _alive(child):
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the child outlived its parent")


def test_service_bench_reports_where_one_scans_time_goes(model_dir, scans):
    """A real service child on the shipped model: every level answered without errors, and the
    one-client breakdown adds up (the server's stages within its total, the total within what
    the client saw)."""
    from detector.bench import bench_service

    from .conftest import png_bytes

    data = [png_bytes(s.image) for s in scans["threat"][:2] + scans["clean"][:2]]
    out = bench_service(model_dir, data, clients=(1, 2), per_client=2)
    one, two = out["1 clients"], out["2 clients"]
    assert one["errors"] == 0 and two["errors"] == 0 and one["scans_per_s"] > 0 and two["scans_per_s"] > 0
    m = one["median_ms"]
    assert {"decode", "inference", "store", "server_total", "http_and_client"} <= set(m)
    assert 0 < m["inference"] < m["server_total"] and m["http_and_client"] > 0
    assert 0 < one["outside_model_share_server"] < one["outside_model_share"] < 1
    assert out["memory"]["requests"] == 60 + 60 and out["memory"]["rss_end_mb"] > 0
