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


# ----------------------------------------------------------------- paired comparison (xfd pool --against)
THS = [0.25, 0.5, 0.75]


def _scored(path, hit, alarm, data="sets/a.yaml", files=None, thresholds=(0.25,)):
    """A report with per-scan scores (threat scans' hit scores, clean scans' alarm scores), its curve
    made from them, as `xfd eval` makes it."""
    files = files or [f"t{i}.png" for i in range(len(hit))] + [f"c{i}.png" for i in range(len(alarm))]
    th = thresholds[0]
    per_scan = [{"file": f, "threat": True, "detected": h >= th and h > 0, "alarm": h >= th and h > 0, "hit_score": h,
                 "alarm_score": h} for f, h in zip(files, hit, strict=False)]
    per_scan += [{"file": f, "threat": False, "detected": False, "alarm": a >= th and a > 0, "hit_score": 0.0,
                  "alarm_score": a} for f, a in zip(files[len(hit):], alarm, strict=True)]
    pd = [sum(h >= t and h > 0 for h in hit) / len(hit) for t in THS]
    pfa = [sum(a >= t and a > 0 for a in alarm) / len(alarm) for t in THS]
    r = {"per_scan": per_scan, "threat_scans": len(hit), "clean_scans": len(alarm), "map50": 0.1, "data": data,
         "split": "test", "pd_pfa_curve": {"thresholds": THS, "pd": pd, "pfa": pfa}}
    path.mkdir(parents=True)
    (path / "report.json").write_text(json.dumps(r))
    return path


def test_paired_comparison_of_two_models_on_the_same_scans(tmp_path):
    from training.pool import paired

    clean = [0.0] * 19 + [0.6]  # one clean scan alarms for both models up to 0.6: Pfa 0.05 below it, 0 above
    old = _scored(tmp_path / "old", [0.3] * 10, clean)
    new = _scored(tmp_path / "new", [0.8] * 5 + [0.3] * 5, clean)
    c = paired([load(new)], [load(old)], resamples=1000)
    r = c["rows"]
    # at Pfa <= 1% only the 0.75 threshold qualifies: old finds none there, new half
    assert (r["pd_at_pfa_0.01"]["old"], r["pd_at_pfa_0.01"]["new"]) == (0.0, 0.5)
    # resamples without the alarming clean scan (about (19/20)^20 = 36 % of them) let both models use 0.25 and
    # find everything: there the difference is 0; never is new behind
    lo, hi = r["pd_at_pfa_0.01"]["diff_ci95"]
    assert lo == 0.0 and 0.5 < hi <= 1
    assert 0.55 < r["pd_at_pfa_0.01"]["new_ahead"] < 0.72 and r["pd_at_pfa_0.01"]["new_behind"] == 0
    # at Pfa <= 5% both find every threat at 0.25 (no difference as the scans are); resamples that draw the
    # alarming clean scan twice push both to 0.75, where new is ahead. New scores every scan at least as
    # high as old, so in no resample is it behind
    assert r["pd_at_pfa_0.05"]["diff"] == 0 and r["pd_at_pfa_0.05"]["diff_ci95"][0] == 0.0
    assert all(r[f"pd_at_pfa_{x}"]["new_behind"] == 0 for x in ("0.01", "0.02", "0.03", "0.05", "0.10"))
    # the paired point estimates are the pooled curve's
    for x in ("0.01", "0.05", "0.10"):
        assert r[f"pd_at_pfa_{x}"]["new"] == pytest.approx(pool([load(new)])["pd_at_pfa"][x])
    assert (c["threat_scans_only_new_detects"], c["threat_scans_only_old_detects"]) == (0, 0)  # both detect all at 0.25
    same = paired([load(old)], [load(old)], resamples=200)
    assert all(v["diff"] == 0 and v["diff_ci95"] == [0.0, 0.0] for v in same["rows"].values())


def test_paired_alterations_of_one_set_are_resampled_together(tmp_path):
    """xfd robustness writes one report per alteration of the same scans; compared paired, those reports
    are matched alteration by alteration and a scan's alterations are drawn together in each resample.
    Two alterations that score alike then give exactly one alteration's interval, not a narrower one (the
    same scans counted twice as if they were new ones); two different sets do narrow it."""
    from training.pool import paired

    hit_old, hit_new = [0.3] * 12 + [0.0] * 8, [0.3] * 16 + [0.0] * 4
    clean = [0.0] * 20

    def pair(name, data, pert):
        out = []
        for side, hit in (("new", hit_new), ("old", hit_old)):
            d = _scored(tmp_path / f"{name}-{side}", hit, clean, data=data)
            r = json.loads((d / "report.json").read_text())
            (d / "report.json").write_text(json.dumps({**r, "perturbation": pert}))
            out.append(load(d))
        return out

    one = paired(*[[x] for x in pair("blur", "sets/a.yaml", "blur:2")], resamples=500)["rows"]["pd"]
    n1, o1 = pair("blur2", "sets/a.yaml", "blur:2")
    n2, o2 = pair("gray", "sets/a.yaml", "gray")
    two = paired([n1, n2], [o2, o1], resamples=500)["rows"]["pd"]  # matched by alteration, not by order
    assert two["diff"] == one["diff"] == pytest.approx(0.2) and two["diff_ci95"] == one["diff_ci95"]
    n3, o3 = pair("other", "sets/b.yaml", None)
    apart = paired([n1, n3], [o1, o3], resamples=500)["rows"]["pd"]
    assert apart["diff_ci95"][1] - apart["diff_ci95"][0] < one["diff_ci95"][1] - one["diff_ci95"][0]


def test_paired_comparison_refuses_what_is_not_paired(tmp_path):
    from training.pool import paired

    a = load(_scored(tmp_path / "a", [0.3, 0.6], [0.1, 0.0]))
    other_files = load(_scored(tmp_path / "b", [0.3, 0.6], [0.1, 0.0], files=["x.png", "t1.png", "c0.png", "c1.png"]))
    other_set = load(_scored(tmp_path / "c", [0.3, 0.6], [0.1, 0.0], data="sets/b.yaml"))
    with pytest.raises(PoolError, match="same scans"):
        paired([a], [other_files])
    with pytest.raises(PoolError, match="no old report"):
        paired([a], [other_set])
    with pytest.raises(PoolError, match="same sets"):
        paired([a, other_set], [a])
    legacy = json.loads((tmp_path / "a" / "report.json").read_text())
    for s in legacy["per_scan"]:
        del s["hit_score"]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "report.json").write_text(json.dumps(legacy))
    with pytest.raises(PoolError, match="again"):
        paired([a], [load(tmp_path / "d")])


def test_pool_against_from_the_command_line(tmp_path):
    old = _scored(tmp_path / "old", [0.3] * 10, [0.0] * 19 + [0.6])
    new = _scored(tmp_path / "new", [0.8] * 5 + [0.3] * 5, [0.0] * 19 + [0.6])
    r = subprocess.run([sys.executable, "-m", "detector.cli", "pool", str(new), "--against", str(old), "--resamples", "300",
                        "--out", str(tmp_path / "p.json")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "| Pd at Pfa≤1% (one threshold) | 0.000 | 0.500 | +0.500 |" in r.stdout and "95% interval" in r.stdout
    assert json.loads((tmp_path / "p.json").read_text())["paired"]["rows"]["pd_at_pfa_0.01"]["new"] == 0.5


def test_paired_comparison_says_when_the_two_sides_were_not_measured_alike(tmp_path):
    """The same model's scores in bf16 on one machine and f32 on another differ (2026.11.29.17: 6 or 8
    false alarms of 116): a paired difference across precisions or machines holds that too, and says so."""
    from training.pool import measured_unlike, paired, paired_markdown

    def tagged(name, precision, cpu, isa):
        p = _scored(tmp_path / name, [0.3, 0.6], [0.1, 0.0])
        r = json.loads((p / "report.json").read_text())
        r.update({"backend": "openvino", "precision": precision, "flips": 4,
                  "machine": {"cpu": cpu, "isa": isa, "cores": 2, "openvino": "2026.4.1", "python": "3.11.7"}})
        (p / "report.json").write_text(json.dumps(r))
        return load(p)

    old = tagged("old", "bf16", "AMD EPYC", ["avx2", "avx512", "avx512_bf16"])
    new = tagged("new", "f32", "Intel Xeon", ["avx2", "avx512"])
    same = tagged("same", "f32", "Intel Xeon", ["avx2", "avx512"])
    unlike = measured_unlike([new], [old])
    assert unlike[0] == "precision: new f32, old bf16" and unlike[1].startswith("CPU: new Intel Xeon (avx2, avx512), old AMD EPYC")
    c = paired([new], [old], resamples=50)
    assert c["measured_unlike"] == unlike and "**Not measured alike**" in paired_markdown(c)
    c = paired([new], [same], resamples=50)
    assert c["measured_unlike"] == [] and "Not measured alike" not in paired_markdown(c)
    # reports from before precision and machine were recorded: nothing to say, not a difference
    assert measured_unlike([new], [load(_scored(tmp_path / "legacy", [0.3, 0.6], [0.1, 0.0]))]) == []
