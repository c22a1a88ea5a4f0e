"""The model card names every training stage with its hardware and its own data: CPU stages
trained on a dataset here (its manifest), a GPU stage on scans made on the GPU machine
(the data_summary.json training/gpu_recipe.sh leaves in the run directory)."""

import json
import shutil

import pytest

from detector.engine import Engine
from detector.synth.dataset import write_dataset
from training import card
from training.evaluate import evaluate


def _run(d, cfg, epochs):
    d.mkdir(parents=True)
    (d / "xfd_config.json").write_text(json.dumps(cfg))
    (d / "results.csv").write_text("epoch,time\n" + "".join(f"{i + 1},{(i + 1) * 1800.0}\n" for i in range(epochs)))
    return d


def test_card_lists_stages_hardware_and_data(tmp_path, model_dir):
    ds = tmp_path / "ds"
    write_dataset(ds, 3, seed=779, split="train=0.34,test=0.66", workers=1, coco=False, sheet=False, progress=lambda *a: None)
    rep = tmp_path / "rep"
    evaluate(Engine(model_dir, concurrency=1), str(ds / "data.yaml"), "test", rep)
    md = tmp_path / "model"
    md.mkdir()
    shutil.copy(model_dir / "model.json", md / "model.json")
    common = {"imgsz": 512, "optimizer": "AdamW", "architecture": "yolo26n"}
    r1 = _run(tmp_path / "r1", {**common, "batch": 16, "lr0": 0.002, "device": "cpu", "source": "from scratch (yolo26n)",
                                "data": str(ds / "data.yaml")}, 3)
    r2 = _run(tmp_path / "r2", {**common, "batch": 128, "lr0": 0.002, "device": "0", "source": "fine-tune from x.pt",
                                "hardware": "NVIDIA H100 80GB HBM3, 16 CPU cores", "data": "/nowhere/all/data.yaml"}, 2)
    chunk = {"generator": "1.1.0", "n": 10, "config": {"p_display": 0.3, "p_soft": 0.5}, "split": {"train": 1.0},
             "counts": {"scans": {"train": 10}, "objects": {"gun": 4}, "clean_scans": 4}, "seconds": 1.0, "scans_per_second": 10.0}
    (r2 / "data_summary.json").write_text(json.dumps({
        "chunks": [{**chunk, "seed": 101}, {**chunk, "seed": 102}], "train_scans": 20, "val_scans": 0,
        "objects": {"gun": 8}, "clean_scans": 8}))
    assert card.main([str(md), "--report", f"test={rep}", "--run", str(r1), "--run", str(r2)]) == 0
    text = (md / "card.md").read_text()
    assert "3 epochs at 512 px, batch 16, AdamW lr0 0.002, 0.00 h" not in text  # times come from results.csv
    # the machine the numbers were measured on (what moves them between machines: AVX512-BF16/AMX, VNNI)
    m = json.loads((rep / "report.json").read_text())["machine"]
    assert m["cores"] >= 1 and m["cpu"] and isinstance(m["isa"], list) and set(m["isa"]) <= {"avx2", "avx512", "avx512_bf16", "amx_bf16", "vnni"}
    from detector import machine

    assert f"Measured on {machine.summary(m)}." in text and f"Measured on {machine.summary(m)}." in (rep / "report.md").read_text()
    assert "3 epochs at 512 px, batch 16, AdamW lr0 0.002, 1.50 h on a 2-core CPU, data 1 (from scratch)" in text
    assert ("2 epochs at 512 px, batch 128, AdamW lr0 0.002, 1.00 h on NVIDIA H100 80GB HBM3, 16 CPU cores, data 2 "
            "(fine-tuned from the previous stage)") in text
    assert "Data 1: 3 scans simulated by generator" in text and "(seed 779)" in text
    assert "Data 2: 20 scans simulated by generator 1.1.0 (seeds 101, 102; display effects 0.3, soft contents 0.5)" in text
    assert "SHA256SUMS" not in json.loads((md / "model.json").read_text())
    assert "card.md" in (md / "SHA256SUMS").read_text()
    assert "then `make train-gpu` (the GPU stage" in text
    assert f"Targets on the synthetic test set, served path ({json.loads((rep / 'report.json').read_text())['backend']}):" in text
    from detector.synth.scene import GENERATOR_VERSION

    assert f"Generator of each test set (from its manifest): test {GENERATOR_VERSION} (seed 779)." in text

    # a fine-tune of this model on a machine without its runs: the card keeps the earlier stages
    # and data (from model.json, or read back from an older card), then adds the new stage
    md2 = tmp_path / "model2"
    shutil.copytree(md, md2)
    r3 = _run(tmp_path / "r3", {**common, "batch": 16, "lr0": 0.0002, "device": "cpu", "source": "fine-tune from m.pt",
                                "data": str(ds / "data.yaml")}, 4)
    # validation mAP50-95 by epoch: best.pt is epoch 2, and the card says so
    (r3 / "results.csv").write_text("epoch,time,metrics/mAP50-95(B)\n" + "".join(
        f"{i + 1},{(i + 1) * 1800.0},{m}\n" for i, m in enumerate((0.10, 0.12, 0.11, 0.09))))
    for prior in (md, _card_only(md, tmp_path / "old")):
        assert card.main([str(md2), "--report", f"test={rep}", "--from-model", str(prior), "--run", str(r3),
                          "--reproduce", "`make train-cpu-ft`"]) == 0
        t2 = (md2 / "card.md").read_text()
        assert ("data 2 (fine-tuned from the previous stage); then 4 epochs (epoch 2 kept: best validation mAP50-95) at 512 px, "
                "batch 16, AdamW lr0 0.0002, 2.00 h on "
                "a 2-core CPU, data 1 (fine-tuned from the previous stage). Reproduce: `make train-cpu-ft`.") in t2
        assert t2.count("- Data 1: ") == 1 and "- Data 2: 20 scans" in t2 and "- Data 3" not in t2
        assert len(json.loads((md2 / "model.json").read_text())["training"]["stages"]) == 3
    # a stage trained on an `xfd mix` of simulated sets: the card names each source from its manifest
    from training.mix import mix

    mix([(str(ds / "data.yaml"), 2.0)], tmp_path / "mixed")
    r4 = _run(tmp_path / "r4", {**common, "batch": 16, "lr0": 0.0002, "device": "cpu", "source": "fine-tune from m.pt",
                                "data": str(tmp_path / "mixed" / "data.yaml")}, 1)
    assert card.main([str(md2), "--report", f"test={rep}", "--run", str(r4)]) == 0
    assert "- Data 1: a mix of 1 sets (2 training, 0 validation images): 3 scans simulated by generator" in \
        (md2 / "card.md").read_text() and "(seed 779): " in (md2 / "card.md").read_text()
    assert "weight 2.0." in (md2 / "card.md").read_text()
    with pytest.raises(SystemExit, match="not found"):
        card.main([str(md2), "--report", f"test={rep}", "--run", str(tmp_path / "nowhere")])

    # an INT8 path calibrated on its own: the card states its thresholds and where they came from
    meta = json.loads((md / "model.json").read_text())
    meta["backend_thresholds"] = {"openvino-int8": {n: 0.31 for n in meta["names"]}}
    meta["backend_calibration"] = {"openvino-int8": {**meta["calibration"], "backend": "openvino-int8"}}
    (md / "model.json").write_text(json.dumps(meta))
    assert card.main([str(md), "--report", f"test={rep}", "--run", str(r1)]) == 0
    text = (md / "card.md").read_text()
    assert '- INT8 operating point: its own thresholds {"gun": 0.31, "barrel": 0.31' in text
    assert "the test-int8 row is measured there" in text

    # the first report's threats found by kind, and whole guns by orientation, go into the card
    rj = json.loads((rep / "report.json").read_text())
    rj["threats_found_by"] = {
        "kind": [{"class": "gun", "kind": "revolver", "objects": 5, "found": 2, "recall": 0.4},
                 {"class": "ammunition", "kind": "loose_cartridges", "objects": 6, "found": 0, "recall": 0.0}],
        "orientation": [{"class": "gun", "orientation": "end", "objects": 4, "found": 0, "recall": 0.0},
                        {"class": "frame", "orientation": "flat", "objects": 3, "found": 1, "recall": 0.33},
                        {"class": "gun", "orientation": "flat", "objects": 9, "found": 6, "recall": 0.67}]}
    (rep / "report.json").write_text(json.dumps(rj))
    assert card.main([str(md), "--report", f"test={rep}", "--run", str(r1)]) == 0
    text = (md / "card.md").read_text()
    assert "| gun | revolver | 2 / 5 |" in text and "| ammunition | loose_cartridges | 0 / 6 |" in text
    assert "Whole guns by orientation to the beam: end 0 / 4, flat 6 / 9." in text


def _card_only(md, d):
    """A model directory as cards were before model.json recorded the training stages."""
    shutil.copytree(md, d)
    meta = json.loads((d / "model.json").read_text())
    meta.pop("training")
    (d / "model.json").write_text(json.dumps(meta))
    return d


def _report(d, **kw):
    d.mkdir(parents=True)
    (d / "report.json").write_text(json.dumps({"map50_95": 0.1, "pd_at_pfa_0.05": 0.2, **kw}))
    return d


def _scans(d, data, hits, alarms, map50):
    """An `xfd eval` report on set `data`, scan by scan: hits[i] whether threat scan i is detected,
    alarms[j] whether clean scan j alarms (hand-made, so every count is known)."""
    per_scan = [{"file": f"{data}/t{i}.png", "threat": True, "detected": h, "alarm": h, "hit_score": 0.8 if h else 0.1,
                 "alarm_score": 0.8 if h else 0.1} for i, h in enumerate(hits)]
    per_scan += [{"file": f"{data}/c{j}.png", "threat": False, "detected": False, "alarm": a, "hit_score": 0.0,
                  "alarm_score": 0.8 if a else 0.1} for j, a in enumerate(alarms)]
    pd, pfa = sum(hits) / len(hits), sum(alarms) / len(alarms)
    return _report(d, data=f"/data/{data}/data.yaml", split="test", per_scan=per_scan, threat_scans=len(hits),
                   clean_scans=len(alarms), map50=map50, pd=pd, pfa=pfa,
                   pd_pfa_curve={"thresholds": [0.5], "pd": [pd], "pfa": [pfa]})


def test_int8_served_only_when_ahead_beyond_noise_pooled_over_the_sets(tmp_path):
    """The served path is decided paired on the same scans, pooled over every set measured on both
    paths: INT8 only when it detects more threat scans or alarms on fewer clean ones beyond noise
    (95 % paired-bootstrap interval clear of 0) and is behind in neither, with mAP50 within a point.
    A tie goes to FP32, so one scan more on synth-test (what the older rule served INT8 on) no longer
    flips it."""
    md = tmp_path / "m"
    md.mkdir()
    (md / "model.json").write_text(json.dumps({"calibration": {"target_pfa": 0.05}}))
    n = 150
    base = {"a": ([i < 45 for i in range(n)], [j < 6 for j in range(n)]),
            "b": ([i < 40 for i in range(n)], [j < 5 for j in range(n)])}
    fp = [_scans(tmp_path / f"fp-{s}", s, h, a, 0.30) for s, (h, a) in base.items()]

    def int8(name, gain=(0, 0), fewer_alarms=(0, 0), more_alarms=(0, 0), swap=0, map50=0.30):
        """INT8's reports: per set, `gain` more threat scans detected (negative: fewer), clean
        alarms removed or added, and `swap` detections traded each way (a tie, scan for scan)."""
        out = []
        for k, (s, (h, a)) in enumerate(base.items()):
            h, a = list(h), list(a)
            first = h.index(False)
            for i in range(first, first + gain[k]) if gain[k] > 0 else range(first + gain[k], first):
                h[i] = gain[k] > 0
            for i in range(swap):  # lose the first `swap` detections, gain as many misses
                h[i], h[first + 30 + i] = False, True
            for j in range(fewer_alarms[k]):
                a[j] = False
            for j in range(more_alarms[k]):
                a[50 + j] = True
            out.append(_scans(tmp_path / f"{name}-{s}", s, h, a, map50))
        return out

    cases = {
        "one scan more, on one set": (int8("one", gain=(1, 0)), "openvino"),
        "a tie, scan for scan": (int8("tie", swap=3, fewer_alarms=(1, 0)), "openvino"),
        "more threat scans detected": (int8("more", gain=(10, 10)), "openvino-int8"),
        "fewer false alarms": (int8("fewer", fewer_alarms=(6, 5)), "openvino-int8"),
        "more detected, more false alarms": (int8("both", gain=(10, 10), more_alarms=(8, 8)), "openvino"),
        "more detected, boxes worse": (int8("boxes", gain=(10, 10), map50=0.285), "openvino"),
        "ahead on one set, behind on the other": (int8("split", gain=(10, -10)), "openvino"),
    }
    for name, (q, want) in cases.items():
        assert card.choose_backend(md, fp, q) == want, name
        meta = json.loads((md / "model.json").read_text())
        chk = meta["int8_check"]
        assert meta["default_backend"] == want and chk["int8_accepted"] == (want == "openvino-int8"), name
        assert chk["sets"] == ["a", "b"] and (chk["threat_scans"], chk["clean_scans"]) == (300, 300), name
        # the test metrics integrators read in /v1/models are the served path's, on the first set
        served = json.loads(((q if want == "openvino-int8" else fp)[0] / "report.json").read_text())
        assert meta["metrics"]["test"] == {**{k: served[k] for k in ("map50", "map50_95", "pd", "pfa", "pd_at_pfa_0.05")},
                                           "backend": want}, name
    chk = json.loads((md / "model.json").read_text())["int8_check"]  # the last case: +10 on a, -10 on b
    assert chk["pd_diff"] == 0 and chk["threat_scans_only_int8_detects"] == 10 == chk["threat_scans_only_fp32_detects"]
    assert chk["pd_diff_ci95"][0] < 0 < chk["pd_diff_ci95"][1] and chk["pfa_diff"] == 0
    assert "ahead of FP32 beyond noise" in card.int8_check_line(chk)

    # `make eval` chooses the served path from every pair (NAME, NAME-int8) before measuring the other sets on it
    q = int8("cli", gain=(10, 10))
    args = [str(md), "--report", f"test={fp[0]}", "--report", f"test-int8={q[0]}", "--report", f"b={fp[1]}",
            "--report", f"b-int8={q[1]}", "--backend-only"]
    assert card.main(args) == 0
    assert json.loads((md / "model.json").read_text())["int8_check"]["sets"] == ["a", "b"]
    assert json.loads((md / "model.json").read_text())["default_backend"] == "openvino-int8" and not (md / "card.md").exists()
    # the card shows each set once, on the served path, and synth-test on both paths
    both = {"test": "T", "test-int8": "Tq", "b": "B", "b-int8": "Bq", "fit": "F"}
    assert card.card_rows(both, "openvino-int8") == ({"test": "T", "test-int8": "Tq", "b": "Bq", "fit": "F"}, "test-int8")
    assert card.card_rows(both, "openvino") == ({"test": "T", "test-int8": "Tq", "b": "B", "fit": "F"}, "test")
    with pytest.raises(SystemExit):  # no synth-test pair
        card.main([str(md), "--report", f"test={fp[0]}", "--report", f"b={fp[1]}", "--report", f"b-int8={q[1]}", "--backend-only"])
    with pytest.raises(SystemExit, match="did not score the same scans"):  # INT8 measured on other scans of the set
        card.choose_backend(md, fp[:1], [_scans(tmp_path / "other", "a", [True] * 10, [False] * 10, 0.3)])


def _altered(root, data, alterations):
    """An `xfd robustness` directory by hand: robustness.json and one report per alteration,
    alterations = {"blur:2": (hits, alarms), ...} (as _scans)."""
    root.mkdir(parents=True)
    rows = [{"perturbation": "none"}]
    for spec, (hits, alarms) in alterations.items():
        d = _scans(root / spec.replace(":", "_"), data, hits, alarms, 0.3)
        r = json.loads((d / "report.json").read_text())
        (d / "report.json").write_text(json.dumps({**r, "perturbation": spec}))
        rows.append({"perturbation": spec})
    (root / "robustness.json").write_text(json.dumps({"rows": rows}))
    return root


def test_int8_ahead_on_the_test_sets_is_checked_on_altered_scans(tmp_path):
    """INT8 ahead beyond noise on the test sets is served only if it is not behind on the same scans
    altered as other scanners alter them (xfd robustness, both paths, alteration by alteration):
    its ranges are fitted to simulated calibration scans. Without those reports the choice is
    provisional and says so; make eval then measures them."""
    md = tmp_path / "m"
    md.mkdir()
    (md / "model.json").write_text(json.dumps({"calibration": {"target_pfa": 0.05}}))
    n = 150
    fp = [_scans(tmp_path / "fp-a", "a", [i < 45 for i in range(n)], [j < 6 for j in range(n)], 0.30)]
    q = [_scans(tmp_path / "q-a", "a", [i < 60 for i in range(n)], [j < 6 for j in range(n)], 0.30)]  # 15 more
    assert card.choose_backend(md, fp, q) == "openvino-int8"
    assert json.loads((md / "model.json").read_text())["int8_check"]["altered"] == "not measured"

    def both(name, int8_hits):
        f = _altered(tmp_path / f"{name}-fp", "a", {s: ([i < 40 for i in range(n)], [j < 5 for j in range(n)])
                                                    for s in ("blur:2", "gray")})
        g = _altered(tmp_path / f"{name}-q", "a", {s: ([i < int8_hits for i in range(n)], [j < 5 for j in range(n)])
                                                   for s in ("blur:2", "gray")})
        return card.altered_reports([f]), card.altered_reports([g])

    f, g = both("worse", 25)  # 15 fewer threat scans under each alteration
    assert card.choose_backend(md, fp, q, altered_fp32=f, altered_int8=g) == "openvino"
    alt = json.loads((md / "model.json").read_text())["int8_check"]["altered"]
    assert alt["int8_behind"] and alt["reports"] == 2 and alt["threat_scans"] == 2 * n and alt["pd_diff_ci95"][1] < 0
    f, g = both("same", 41)  # one more: not behind
    assert card.choose_backend(md, fp, q, altered_fp32=f, altered_int8=g) == "openvino-int8"
    chk = json.loads((md / "model.json").read_text())["int8_check"]
    assert chk["altered"]["int8_behind"] is False
    assert "on altered scans (2 xfd robustness reports, 300 threat scans), Pd +0.007" in card.int8_check_line(chk)
    # through the CLI, as make eval calls it; a directory that is not xfd robustness's is refused
    args = [str(md), "--report", f"test={fp[0]}", "--report", f"test-int8={q[0]}", "--backend-only"]
    assert card.main(args + ["--altered", f"{tmp_path / 'worse-fp'}={tmp_path / 'worse-q'}"]) == 0
    assert json.loads((md / "model.json").read_text())["default_backend"] == "openvino"
    with pytest.raises(SystemExit, match="not an `xfd robustness` report directory"):
        card.main(args + ["--altered", f"{fp[0]}={q[0]}"])


def test_card_without_runs_here_says_so(tmp_path, model_dir, monkeypatch):
    """`make eval` on a model whose training runs are elsewhere still writes a card, and the card
    says the training is not recorded instead of inventing '0 epochs'."""
    md = tmp_path / "m"
    md.mkdir()
    shutil.copy(model_dir / "model.json", md / "model.json")
    rep = _report(tmp_path / "rep", map50=0.2, map50_ci95=[0.12, 0.31], pd=0.2, pfa=0.04, scans=10, threat_scans=5,
                  per_class={n: {"ap50": 0.1, "precision": 0.5, "recall": 0.5, "instances": 3}
                             for n in json.loads((md / "model.json").read_text())["names"]})
    monkeypatch.chdir(tmp_path)  # no runs/train here
    assert card.main([str(md), "--report", f"test={rep}"]) == 0
    text = (md / "card.md").read_text()
    assert "Data 1: not recorded: the training runs are not on this machine" in text and "0 epochs" not in text
    assert "| 0.200 [0.12, 0.31] |" in text  # mAP50 with its interval, when the report has one


def test_calibration_data_is_stored_relative_to_the_working_directory(tmp_path, monkeypatch):
    """model.json ships to other machines: a calibration set inside the working directory is
    recorded by its relative path, one outside it as given."""
    from training.evaluate import store_thresholds

    md = tmp_path / "repo" / "models" / "m"
    md.mkdir(parents=True)
    (md / "model.json").write_text(json.dumps({"names": ["gun"]}))
    report = {"data": str(tmp_path / "repo" / "data" / "cal" / "data.yaml"), "split": "val", "target_pfa": 0.05,
              "pd": 0.5, "pfa": 0.04, "scans": 10, "clean_scans": 5, "backend": "openvino", "thresholds": {"gun": 0.3}}
    monkeypatch.chdir(tmp_path / "repo")
    store_thresholds(str(md), report)
    meta = json.loads((md / "model.json").read_text())
    assert meta["calibration"]["data"] == "data/cal/data.yaml" and meta["thresholds"] == {"gun": 0.3}
    monkeypatch.chdir(md)
    store_thresholds(str(md), report)
    assert json.loads((md / "model.json").read_text())["calibration"]["data"] == report["data"]


def test_card_names_a_reweighted_threat_mix():
    """A training set drawn with `xfd synth --threat-mix` says so in the card's data line; one
    without it (every set before generator 3.2.0) does not."""
    man = {"n": 2400, "generator": "3.2.0", "seed": 306, "counts": {"scans": {"train": 2160}},
           "config": {"p_display": 0.3, "threat_mix": {"gun": 0.22, "frame": 0.16, "ammunition": 0.14}}}
    text = card._manifest_desc(man)
    assert "(seed 306; display effects 0.3, threat mix gun 0.22, frame 0.16, ammunition 0.14)" in text
    man["config"]["threat_mix"] = None
    assert "threat mix" not in card._manifest_desc(man)


def test_card_names_pitch_and_clutter_ranges_and_packed_parcels():
    """A training set drawn with --clutter / --mm-per-px / --palette-shift says so in its data
    line (default and --wide ranges are not named, nor fitted contents where they are the
    generator's default); the known limits give Pd on packed parcels
    against sparse ones from the reports' clutter strata, once there are enough threat scans."""
    from detector.synth.scene import SceneConfig

    man = {"n": 2400, "generator": "3.2.0", "seed": 308, "counts": {"scans": {"train": 2160}},
           "config": {"p_display": 0.3, "clutter": [20, 60], "mm_per_px": [0.8, 1.35], "palette_shift": 0.0}}
    assert "(seed 308; display effects 0.3, clutter 20-60 items)" in card._manifest_desc(man)
    wide = {k: list(v) if isinstance(v, tuple) else v for k, v in SceneConfig.wide().__dict__.items()}
    assert "clutter" not in card._manifest_desc({**man, "config": wide})
    assert "pitch 1.5 mm/px, palette shift 12 degrees, contents fitted to their parcels" in card._manifest_desc(
        {**man, "config": {"mm_per_px": [1.5, 1.5], "palette_shift": 12.0, "fit_contents": True}})
    # from generator 6.0.0 fitted contents are the default: named only when switched off
    six = {**man, "generator": "6.0.0"}
    assert "fitted" not in card._manifest_desc({**six, "config": {"fit_contents": True}})
    assert "contents not fitted to their parcels" in card._manifest_desc({**six, "config": {"fit_contents": False}})
    assert "fitted" not in card._manifest_desc({**man, "config": {"fit_contents": False}})

    def rep(sparse, dense):
        return {"strata": {"clutter=0-9": {"threat_scans": sparse[1], "pd": sparse[0] / sparse[1]},
                           "clutter=25+": {"threat_scans": dense[1], "pd": dense[0] / dense[1]}}}

    note = card.fullness_note({"test": rep((12, 40), (1, 10)), "shifted": rep((3, 10), (4, 30))})
    assert note == ("Packed parcels are detected less often: pooled over the sets above, Pd 0.12 (5 of 40 threat scans) "
                    "with 25 or more items of clutter against 0.30 (15 of 50) with under 10: see the clutter strata.")
    assert card.fullness_note({"test": rep((12, 40), (1, 10))}) is None  # 10 packed threat scans: too few to say
    assert card.fullness_note({"old": {"strata": {"difficulty=easy": {"threat_scans": 50, "pd": 0.2}}}}) is None


def test_rendering_note_pools_grey_and_colour_strata_over_the_sets():
    def rep(grey, colour):  # (detected, threat scans, alarmed, clean scans) per rendering
        return {"strata": {f"render={k}": {"threat_scans": v[1], "pd": v[0] / v[1], "scans": v[1] + v[3],
                                           "pfa": v[2] / v[3] if v[3] else None}
                           for k, v in (("grayscale", grey), ("colour", colour))}}

    note = card.rendering_note({"test": rep((5, 40, 1, 20), (40, 100, 3, 80)), "shifted": rep((3, 20, 0, 10), (20, 60, 2, 40))})
    assert note.startswith("Grey (single-energy) scans are detected less often than colour ones: pooled over the sets above")
    assert "Pd 0.13 (8 of 60; 0.06-0.25) at Pfa 0.033 (1 of 30 clean) in grey" in note
    assert "against 0.38 (60 of 160; 0.30-0.45) at Pfa 0.042 (5 of 120 clean) in colour (Fisher's exact test on Pd, p = 0.00051;" in note
    # one set where grey happens to do better, and intervals that overlap: no claim either way
    assert card.rendering_note({"test": rep((14, 36, 1, 24), (51, 148, 2, 92))}).startswith(
        "Grey (single-energy) and colour scans are detected about as often: ")
    assert card.rendering_note({"test": rep((5, 19, 1, 20), (30, 100, 3, 80))}) is None  # 19 grey threat scans: too few


def test_card_quotes_robustness_of_this_model_at_its_thresholds_only(tmp_path, model_dir, routed_model_dir, capsys):
    meta = json.loads((model_dir / "model.json").read_text())
    thr = card._served_thresholds(meta)
    rows = [{"perturbation": p, "pd": pd, "d_pd": round(pd - 0.30, 4)} for p, pd in
            (("none", 0.30), ("blur:2", 0.20), ("gray", 0.10), ("jpeg:25", 0.29), ("scale:0.5", 0.28), ("invert", 0.30))]

    def report(d, **model):
        d.mkdir()
        (d / "robustness.json").write_text(json.dumps({"model": {"sha256": meta["sha256"], "version": meta["version"], **model},
                                                       "data": "/x/synth-test/data.yaml", "thresholds": thr, "rows": rows}))
        return str(d)

    note = card.robustness_note(model_dir, [report(tmp_path / "ok")])
    assert note.startswith("Scans altered as other scanners alter them")
    assert "on synth-test (Pd 0.300 as simulated) the largest losses were gray 0.100, blur:2 0.200" in note
    assert card.robustness_note(model_dir, [report(tmp_path / "other", sha256="0" * 64)]) is None
    assert "another model" in capsys.readouterr().err
    assert card.robustness_note(model_dir, [str(tmp_path / "missing")]) is None
    moved = tmp_path / "moved"
    report(moved)
    r = json.loads((moved / "robustness.json").read_text())
    r["thresholds"] = {k: v + 0.1 for k, v in thr.items()}
    (moved / "robustness.json").write_text(json.dumps(r))
    assert card.robustness_note(model_dir, [str(moved)]) is None and "other thresholds" in capsys.readouterr().err
    # grey scans read by a grey network: quoted only at the grey network's present thresholds
    assert card.grey_meta(model_dir) is None  # the shipped model has none since 2026.12.01.20
    grey = card.grey_meta(routed_model_dir)
    assert grey and grey["thresholds"] != thr
    for name, g in (("grey-ok", grey["thresholds"]), ("grey-other", {k: v + 0.05 for k, v in grey["thresholds"].items()})):
        report(tmp_path / name)
        r = json.loads((tmp_path / name / "robustness.json").read_text())
        r["grey_network"] = {"thresholds": g}
        (tmp_path / name / "robustness.json").write_text(json.dumps(r))
    assert card.robustness_note(routed_model_dir, [str(tmp_path / "grey-ok")]).startswith("Scans altered")
    assert card.robustness_note(routed_model_dir, [str(tmp_path / "grey-other")]) is None
    assert "with another grey network" in capsys.readouterr().err
    assert card.robustness_note(model_dir, [str(tmp_path / "grey-ok")]) is None  # measured with one, the model has none
    assert "or with none" in capsys.readouterr().err


def test_calibration_records_the_simulator_that_drew_its_scans(tmp_path):
    """Thresholds are only as good as the scans they were chosen on: a simulated calibration set's
    generator version and seed (from its manifest) are stored with the thresholds and named by the
    card, so a model calibrated under an older generator says so; an imported set (no manifest)
    records none."""
    from training import card
    from training.evaluate import store_thresholds

    md = tmp_path / "m"
    md.mkdir()
    (md / "model.json").write_text(json.dumps({"names": ["gun"]}))
    ds = tmp_path / "calset"
    ds.mkdir()
    (ds / "manifest.json").write_text(json.dumps({"generator": "3.6.0", "seed": 10, "n": 12}))
    report = {"data": str(ds / "data.yaml"), "split": "val", "target_pfa": 0.05, "pd": 0.5, "pfa": 0.04,
              "scans": 12, "clean_scans": 5, "backend": "openvino", "thresholds": {"gun": 0.3}}
    store_thresholds(str(md), report)
    cal = json.loads((md / "model.json").read_text())["calibration"]
    assert (cal["generator"], cal["seed"]) == ("3.6.0", 10)
    assert card._calibration_desc(cal).startswith("the 'val' split of calset (generator 3.6.0, seed 10; 12 scans, 5 clean")
    (ds / "manifest.json").unlink()
    store_thresholds(str(md), report)
    cal = json.loads((md / "model.json").read_text())["calibration"]
    assert "generator" not in cal and "generator" not in card._calibration_desc(cal)
