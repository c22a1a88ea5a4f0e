"""`xfd pool`: screening numbers over several held-out sets, pooled in scan counts (hand-made reports,
known answers), and clear errors for what cannot be pooled."""

import json
import subprocess
import sys

import pytest

from training.pool import PoolError, load, pool


def _report(path, threats, clean, pd, pfa, map50, ths=(0.5, 1.0)):
    """threats/clean: lists of detected/alarmed flags per scan; pd/pfa: the curve at ths."""
    per_scan = [{"file": f"t{i}.png", "threat": True, "detected": d, "alarm": d} for i, d in enumerate(threats)]
    per_scan += [{"file": f"c{i}.png", "threat": False, "detected": False, "alarm": a} for i, a in enumerate(clean)]
    r = {"per_scan": per_scan, "threat_scans": len(threats), "clean_scans": len(clean), "map50": map50,
         "pd_pfa_curve": {"thresholds": list(ths), "pd": pd, "pfa": pfa}}
    path.mkdir(parents=True)
    (path / "report.json").write_text(json.dumps(r))
    return path


def test_pool_counts_not_rates(tmp_path):
    a = _report(tmp_path / "a", [True, False], [True] + [False] * 9, [1.0, 0.5], [0.2, 0.0], 0.4)
    # a set without clean scans: its Pfa is None all along and adds no clean scan
    b = _report(tmp_path / "b", [True, True, True, False], [], [1.0, 0.25], [None, None], 0.2)
    p = pool([load(a), load(b / "report.json")])
    assert (p["threat_scans"], p["clean_scans"], p["detected"], p["alarmed_clean"]) == (6, 10, 4, 1)
    assert p["pd"] == pytest.approx(4 / 6) and p["pfa"] == pytest.approx(0.1)
    # the curve in counts: hits 2+4 and 1+1 of 6 (averaging the rates would say 0.375 at 1.0), alarms 2 and 0 of 10
    assert p["curve"]["pd"] == pytest.approx([1.0, 2 / 6]) and p["curve"]["pfa"] == pytest.approx([0.2, 0.0])
    assert p["pd_at_pfa"]["0.05"] == pytest.approx(2 / 6) and p["pd_at_pfa"]["0.10"] == pytest.approx(2 / 6)
    assert p["mean_map50"] == pytest.approx(0.3)
    lo, hi = p["pd_interval"]
    assert lo < 4 / 6 < hi


def test_pool_refuses_what_it_cannot_pool(tmp_path):
    a = _report(tmp_path / "a", [True], [False], [1.0, 0.0], [0.0, 0.0], 0.5)
    b = _report(tmp_path / "b", [True], [False], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], 0.5, ths=(0.3, 0.6, 1.0))
    with pytest.raises(PoolError, match="other curve thresholds"):
        pool([load(a), load(b)])
    (tmp_path / "x.json").write_text(json.dumps({"map50": 0.1}))
    with pytest.raises(PoolError, match="not an `xfd eval` report"):
        load(tmp_path / "x.json")
    (tmp_path / "bad.json").write_text("{trunc")
    with pytest.raises(PoolError, match="not JSON"):
        load(tmp_path / "bad.json")
    with pytest.raises(PoolError, match="no report"):
        load(tmp_path / "missing")
    with pytest.raises(PoolError, match="nothing to pool"):
        pool([])


def test_pool_cli(tmp_path):
    a = _report(tmp_path / "a", [True, False], [False, True], [1.0, 0.5], [0.5, 0.0], 0.4)
    out = tmp_path / "p" / "pooled.json"
    r = subprocess.run([sys.executable, "-m", "detector.cli", "pool", str(a), "--name", "cand", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "| cand | 1 | 1 / 2 | 1 / 2 | 0.500 | 0.500 |" in r.stdout
    assert json.loads(out.read_text())["detected"] == 1
    r = subprocess.run([sys.executable, "-m", "detector.cli", "pool", str(tmp_path / "nope")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "no report at" in r.stderr
