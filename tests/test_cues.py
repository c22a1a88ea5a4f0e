"""`xfd cues`: the shipped model on objects drawn with and without what the simulator draws only
round threats (finer voxels, a foil or cloth wrap), and what the card says of it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from detector.engine import Engine
from detector.synth import gallery, threats
from detector.synth.shapes import orientation_rotation
from training import card
from training import cues as C


def _alone(pitch, wrap=None, seed=5):
    obj = threats.pistol(np.random.default_rng(seed), pitch).centred()
    rot = orientation_rotation(np.random.default_rng(seed + 1), "flat")
    return gallery.alone_on_belt(obj, rot, 1.0, np.random.default_rng(seed + 2), pitch=pitch, margin_mm=80.0, size=320,
                                 wrap=wrap, wrap_rng=np.random.default_rng(seed + 3))


def test_the_drawings_differ_only_in_the_cue():
    bare = _alone(0.7)
    assert (bare == _alone(0.7)).all()  # the same instance and noise: the same bytes
    foil, cloth, coarse = _alone(0.7, "aluminium"), _alone(0.7, "textile"), _alone(1.0)
    assert foil.shape == cloth.shape == bare.shape and abs(coarse.shape[0] - bare.shape[0]) <= 2
    for other in (foil, cloth):
        # a wrap attenuates round the pistol: darker there, and only there (the belt far from it as it was)
        diff = np.abs(other.astype(int) - bare.astype(int)).max(2)
        assert other.mean() < bare.mean() and (diff > 8).mean() > 0.005
        assert diff[:8].max() == 0 and diff[:, :8].max() == 0
    # the same pistol from coarser voxels (its outline a voxel wider or narrower): its mass is conserved, so
    # the belt's darkening by it is the same within a few per cent
    dark_bare = (255 - bare.astype(float)).sum()
    dark_coarse = (255 - coarse.astype(float)).sum()
    assert abs(dark_coarse / dark_bare - 1) < 0.05 and not np.array_equal(coarse[:323, :323], bare[:323, :323])
    with pytest.raises(ValueError, match="aluminium or textile"):
        _alone(0.7, "lead")


def test_shift_summary_and_verdict_on_known_differences():
    g = np.random.default_rng(0)
    clear = C.shift_summary(0.05 + g.normal(0, 0.02, 120))
    assert clear["objects"] == 120 and 0.045 < clear["mean"] < 0.056 and clear["ci95"][0] > 0.04 and clear["higher_in"] > 0.95
    assert C.used(clear) is True
    noise = C.shift_summary(g.normal(0, 0.05, 120))
    assert noise["ci95"][0] < 0 < noise["ci95"][1] and C.used(noise) is False
    tiny = C.shift_summary(0.01 + g.normal(0, 0.002, 120))  # beyond noise, but too small to move an alarm
    assert tiny["ci95"][0] > 0 and C.used(tiny) is False
    assert C.used(C.shift_summary(0.05 + g.normal(0, 0.02, 20))) is None  # too few objects to tell
    assert C.shift_summary([]) == {"objects": 0, "mean": None, "ci95": None, "higher_in": None}
    # a shift too small on average can still tip objects near the thresholds over them: 14 objects alarm only
    # with the cue, 1 only without (as foil did to the shipped model's confusers) is a cue used
    with_cue, without = [True] * 14 + [False] + [True] * 20 + [False] * 85, [False] * 14 + [True] + [True] * 20 + [False] * 85
    flips = C.alarm_flips(with_cue, without)
    assert flips["only_with"] == 14 and flips["only_without"] == 1 and flips["p"] == pytest.approx(0.00098, abs=1e-5)
    assert C.used({**tiny, "alarm_flips": flips}) is True
    assert C.used({**tiny, "alarm_flips": C.alarm_flips(without, with_cue)}) is False  # fewer alarms with it: no cue
    even = C.alarm_flips([True] * 9 + [False] * 7, [False] * 9 + [True] * 7)
    assert even["p"] > 0.5 and C.used({**tiny, "alarm_flips": even}) is False
    assert C.alarm_flips([False] * 3, [False] * 3) == {"only_with": 0, "only_without": 0, "p": 1.0}


@pytest.fixture(scope="module")
def small_report(model_dir):
    engine = Engine(model_dir, backend="openvino", flips=1, concurrency=1)
    rows = [gallery.THREAT_ROWS[0], gallery.CONFUSER_ROWS[0]]  # pistols and toy guns
    return C.probe(engine, per_row=3, seed=1, progress=False, rows=rows), engine, rows


def test_probe_scores_each_object_every_way(small_report):
    rep, engine, rows = small_report
    assert rep["objects"] == 6 and rep["model"]["version"] == engine.info.version and rep["flips"] == 1
    pistols = [o for o in rep["per_object"] if o["class"] == "gun"]
    toys = [o for o in rep["per_object"] if o["class"] is None]
    assert len(pistols) == len(toys) == 3
    # a threat's own drawing is from fine voxels, a confuser's from coarse ones
    assert set(pistols[0]["scores"]) == {"fine/bare", "coarse/bare", "fine/aluminium", "fine/textile"}
    assert set(toys[0]["scores"]) == {"fine/bare", "coarse/bare", "coarse/aluminium", "coarse/textile"}
    assert all(0 <= v <= 1 for o in rep["per_object"] for v in o["scores"].values())
    # the summaries are the per-object differences
    d = [o["scores"]["fine/aluminium"] - o["scores"]["fine/bare"] for o in pistols]
    assert rep["cues"]["foil wrap"]["threats"]["mean"] == pytest.approx(np.mean(d), abs=1e-4)
    d = [o["scores"]["fine/bare"] - o["scores"]["coarse/bare"] for o in toys]
    assert rep["cues"]["voxel pitch"]["confusers"]["mean"] == pytest.approx(np.mean(d), abs=1e-4)
    # three objects a group: too few to tell, never a verdict either way
    assert all(c["used"] is None for c in rep["cues"].values()) and not rep["any_used"]
    assert "too few to tell" in C.markdown(rep)
    # the same probe again: the same numbers (every drawing from its own seeds)
    again = C.probe(engine, per_row=3, seed=1, progress=False, rows=rows)
    assert again["per_object"] == rep["per_object"]


def test_cli_checks_its_arguments_before_loading_a_model(tmp_path):
    for args, msg in ((["--per-row", "0"], "--per-row must be 1 to 50"), (["--mm-per-px", "5"], "--mm-per-px must be 0.5 to 2"),
                      (["--model", str(tmp_path / "none")], "model not found")):
        p = subprocess.run([sys.executable, "-m", "detector.cli", "cues", "--out", str(tmp_path / "o"), *args],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 2 and msg in p.stderr, p.stderr
        assert not (tmp_path / "o").exists()


def test_card_states_the_cues_of_this_model_only(small_report, model_dir, tmp_path):
    rep, _, _ = small_report
    md = tmp_path / "model"
    shutil.copytree(model_dir, md, ignore=shutil.ignore_patterns("eval", "openvino*", "model.pt"))
    # the reports of the shipped model's own card (its first test set), and a cues report as make eval writes it
    rep_dir = tmp_path / "rep"
    rep_dir.mkdir()
    test_md = json.loads((md / "model.json").read_text())
    base = {"map50": 0.3, "map50_95": 0.2, "pd": 0.35, "pfa": 0.03, "pd_at_pfa_0.05": 0.4, "scans": 10, "threat_scans": 6, "clean_scans": 4, "per_class": {},
            "backend": "openvino", "model": {"version": test_md["version"]}}
    (rep_dir / "report.json").write_text(json.dumps(base))
    used = json.loads(json.dumps(rep))
    used["objects"], used["per_row"] = 540, 20
    used["cues"]["foil wrap"]["confusers"] = {**used["cues"]["foil wrap"]["confusers"], "objects": 320, "mean": 0.06,
                                               "ci95": [0.04, 0.08], "used": True}
    used["cues"]["foil wrap"]["used"] = True
    cues_dir = tmp_path / "cues"
    cues_dir.mkdir()
    (cues_dir / "cues.json").write_text(json.dumps(used))
    assert card.main([str(md), "--report", f"test={rep_dir}", "--cues", str(cues_dir)]) == 0
    text = (md / "card.md").read_text()
    assert "## Simulator-only cues" in text and "| foil wrap | own/aluminium vs own/bare |" in text
    row = next(line for line in text.splitlines() if line.startswith("| foil wrap |"))
    al = used["cues"]["foil wrap"]["confusers"]["alarms"]
    assert f"+0.060 [+0.040, +0.080] of 320 | {al[0]} / {al[1]} (" in row and row.endswith("| **yes** |")
    assert "This model reads what only the simulator draws round threats as a sign of a threat (foil wrap;" in text
    assert "should draw wraps on clutter too (xfd synth --wrap-clutter" in text  # its training never wrapped clutter
    # the remedy follows the training data: a model whose data wrapped clutter is not told to do it again
    trained = card.cues_note(used, ["6500 scans simulated by generator 6.1.0 (seeds 400; wrapped clutter 0.15)"])
    assert "--wrap-clutter" not in trained and "already drew clutter wrapped" in trained
    pitch = json.loads(json.dumps(used))
    pitch["cues"]["voxel pitch"]["used"] = True
    assert "scene.voxel_pitches" in card.cues_note(pitch, []) and card.cues_note(rep, []) is None
    # another model's report (or one at other thresholds) is left out, with a warning
    used["model"]["version"] = "0.0.1"
    (cues_dir / "cues.json").write_text(json.dumps(used))
    assert card.main([str(md), "--report", f"test={rep_dir}", "--cues", str(cues_dir)]) == 0
    assert "## Simulator-only cues" not in (md / "card.md").read_text()
