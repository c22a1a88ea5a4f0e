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
