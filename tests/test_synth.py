"""The simulator's scans, labels and dataset files."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from detector import taxonomy
from detector.synth import shapes
from detector.synth import threats as threat_mod
from detector.synth.dataset import SynthError, parse_split, write_dataset
from detector.synth.scene import Canvas, SceneConfig, simulate
from detector.synth.threats import make_threat
from detector.xray import physics


def test_taxonomy_has_seven_classes_with_descriptions_and_colours():
    cls = taxonomy.classes()
    assert [c.name for c in cls] == ["gun", "barrel", "slide", "frame", "magazine", "printed_part", "ammunition"]
    for c in cls:
        assert len(c.description) > 20 and c.color.startswith("#") and len(c.color) == 7


def test_projection_conserves_mass_and_stacks_additively():
    rng = np.random.default_rng(0)
    o = shapes.Obj([]).add(shapes.box(40, 20, 10, 0.5), "steel", 0.5)
    cv = Canvas(200, 200, 1.0, rng, np.ones(physics.N_BASIS, np.float32))
    cv.project(o, 100, 100, np.eye(3), 1.0, 0.5)
    # areal density (g/cm^2) summed over pixels (cm^2) = mass (g): 4*2*1 cm^3 of steel
    coeff = np.array(physics.basis_coeffs("steel"))
    mass = float(cv.maps[0].sum() / coeff[0] * 0.01)
    assert mass == pytest.approx(8 * physics.density("steel"), rel=0.02)
    before = cv.maps.copy()
    cv.project(o, 100, 100, np.eye(3), 1.0, 0.5)
    assert np.allclose(cv.maps, 2 * before, rtol=1e-4, atol=1e-6)


def test_rotation_changes_projection_not_mass():
    rng = np.random.default_rng(1)
    o = make_threat(rng, 0.8, "barrel")
    flat = Canvas(400, 400, 1.0, np.random.default_rng(2), np.ones(physics.N_BASIS, np.float32))
    end = Canvas(400, 400, 1.0, np.random.default_rng(2), np.ones(physics.N_BASIS, np.float32))
    a_flat, *_ = flat.project(o, 200, 200, np.eye(3), 1.0, 0.8)
    a_end, *_ = end.project(o, 200, 200, shapes.rot_y(np.pi / 2), 1.0, 0.8)
    assert flat.maps.sum() == pytest.approx(end.maps.sum(), rel=0.01)
    assert (a_end > 0.03).sum() < 0.5 * (a_flat > 0.03).sum()  # end-on: a small disc
    assert a_end.max() > 2 * a_flat.max()  # ... but much denser


def _assert_boxes_tight(s) -> int:
    """Each label box is exactly the bounding box of its threat's visible pixels inside the
    image (a scan made with keep_raw); returns how many boxes were checked."""
    for b, (att, y0, x0) in zip(s.boxes, s.extras["threat_maps"], strict=True):
        ys, xs = np.nonzero(att > 0.03)
        gx, gy = xs + x0, ys + y0
        ok = (gx >= 0) & (gx < s.meta["width"]) & (gy >= 0) & (gy < s.meta["height"])
        x1, y1, x2, y2 = b["box"]
        assert gx[ok].min() == x1 and gy[ok].min() == y1 and gx[ok].max() + 1 == x2 and gy[ok].max() + 1 == y2
    return len(s.boxes)


def test_boxes_enclose_visible_pixels_tightly():
    seen = 0
    for i in range(12):
        s = simulate(7, i, keep_raw=True)
        assert len(s.extras["threat_maps"]) == len(s.boxes)
        seen += _assert_boxes_tight(s)
    assert seen >= 4


def test_scan_metadata_and_threat_variety():
    kinds, labels, modes, vis = set(), set(), set(), []
    for i in range(30):
        s = simulate(11, i)
        assert s.image.dtype == np.uint8
        assert s.image.shape[:2] == (s.meta["height"], s.meta["width"])
        for b in s.boxes:
            kinds.add(b["kind"])
            labels.add(b["label"])
            modes.add(b["orientation"])
            assert b["difficulty"] in ("easy", "hard", "concealed")
            assert 0.0 <= b["visibility"] <= 1.0
            vis.append(b["visibility"])
    assert len(labels) >= 5 and len(kinds) >= 8 and len(modes) >= 3
    assert np.mean(vis) > 0.5 and max(vis) == 1.0  # most threats show; the measure is not constant


def test_visibility_is_what_the_screen_can_show():
    """A threat's visibility: the share of its footprint where it darkens the displayed value by
    >= 4 grey levels. Bare steel or plastic shows everywhere; the same under 5 cm of steel
    (effective attenuation ~8) shows nowhere; a faint film on an empty belt barely does."""
    from detector.synth.scene import visibility

    steel = np.full(100, 1.5)  # a slide, seen flat
    plastic = np.full(100, 0.15)  # a printed grip
    assert visibility(steel, np.zeros(100)) == 1.0 and visibility(plastic, np.zeros(100)) == 1.0
    assert visibility(steel, np.full(100, 8.0)) == 0.0 and visibility(plastic, np.full(100, 4.0)) == 0.0
    half = np.r_[np.zeros(50), np.full(50, 8.0)]
    assert visibility(steel, half) == 0.5
    assert visibility(np.full(10, 0.005), np.zeros(10)) == 0.0 and visibility(np.zeros(0), np.zeros(0)) == 0.0


def test_same_seed_same_bytes_and_clean_scans_have_empty_labels(tmp_path):
    a = write_dataset(tmp_path / "a", 6, seed=5, split="train=0.5,test=0.5", workers=1, sheet=False)
    write_dataset(tmp_path / "b", 6, seed=5, split="train=0.5,test=0.5", workers=2, sheet=False)
    files = sorted((tmp_path / "a" / "images").rglob("*.png"))
    assert len(files) == 6
    for f in files:
        g = tmp_path / "b" / f.relative_to(tmp_path / "a")
        assert f.read_bytes() == g.read_bytes()
    clean = [r for r in a["scans"] if not r["objects"]]
    threat = [r for r in a["scans"] if r["objects"]]
    assert clean and threat, "seed 5 should give both clean and threat scans"
    for r in clean:
        lab = tmp_path / "a" / r["file"].replace("images/", "labels/").replace(".png", ".txt")
        assert lab.read_text() == ""
    for r in threat:
        lab = tmp_path / "a" / r["file"].replace("images/", "labels/").replace(".png", ".txt")
        rows = [ln.split() for ln in lab.read_text().splitlines()]
        assert len(rows) == len(r["objects"])
        for row in rows:
            c, x, y, w, h = map(float, row)
            assert 0 <= c < 7 and 0 < w <= 1 and 0 < h <= 1 and 0 <= x <= 1 and 0 <= y <= 1
    d = yaml.safe_load((tmp_path / "a" / "data.yaml").read_text())
    assert Path(d["path"]).is_absolute() and "download" not in d
    assert d["names"][0] == "gun"
    m = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert m["seed"] == 5 and m["generator"] and sum(m["counts"]["scans"].values()) == 6
    coco = json.loads((tmp_path / "a" / "coco_train.json").read_text())
    assert len(coco["categories"]) == 7 and len(coco["images"]) == 3


def test_contact_sheet_written(tmp_path):
    write_dataset(tmp_path, 4, seed=3, split="train=1", workers=1)
    assert (tmp_path / "contact_sheet.png").stat().st_size > 10_000


def test_bad_parameters_give_clear_errors(tmp_path):
    with pytest.raises(SynthError, match="positive"):
        write_dataset(tmp_path, -3)
    with pytest.raises(SynthError, match="unknown split"):
        parse_split("train=0.8,holdout=0.2")
    with pytest.raises(SynthError, match="not a number"):
        parse_split("train=abc")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SynthError, match="not writable"):
        write_dataset(blocker / "sub", 2)


def test_cli_reports_bad_parameters():
    r = subprocess.run([sys.executable, "-m", "detector.cli", "synth", "--out", "/tmp/xfd-never", "--n", "-1"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "positive" in r.stderr
    r = subprocess.run([sys.executable, "-m", "detector.cli", "synth", "--out", "/tmp/xfd-never", "--n", "2", "--split", "a=1"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "unknown split" in r.stderr
    r = subprocess.run([sys.executable, "-m", "detector.cli", "synth", "--out", "/tmp/xfd-never", "--n", "2",
                        "--display-effects", "1.5"], capture_output=True, text=True)
    assert r.returncode == 2 and "--display-effects must be between 0 and 1" in r.stderr
    r = subprocess.run([sys.executable, "-m", "detector.cli", "synth", "--out", "/tmp/xfd-never", "--n", "2",
                        "--wide", "--shifted"], capture_output=True, text=True)
    assert r.returncode == 2 and "--shifted and --wide" in r.stderr
    r = subprocess.run([sys.executable, "-m", "detector.cli", "synth", "--out", "/tmp/xfd-never", "--n", "2",
                        "--fan-beam", "-0.1"], capture_output=True, text=True)
    assert r.returncode == 2 and "--fan-beam must be between 0 and 1" in r.stderr
    r = subprocess.run([sys.executable, "-m", "detector.cli", "synth", "--out", "/tmp/xfd-never", "--n", "2",
                        "--belt-stretch", "2"], capture_output=True, text=True)
    assert r.returncode == 2 and "--belt-stretch must be between 0 and 1" in r.stderr
    assert not Path("/tmp/xfd-never").exists()


def test_wide_config_randomises_beyond_the_defaults():
    """SceneConfig.wide() (xfd synth --wide): pixel pitch, hue anchors, blur and noise vary over
    wider ranges than the defaults, per scan; the default ranges draw nothing extra."""
    d, w = SceneConfig(), SceneConfig.wide()
    assert w.mm_per_px[0] < d.mm_per_px[0] and w.mm_per_px[1] > d.mm_per_px[1]
    assert w.blur_sigma[0] < d.blur_sigma[0] < d.blur_sigma[1] < w.blur_sigma[1]
    assert w.log10_i0[0] < d.log10_i0[0] < d.log10_i0[1] < w.log10_i0[1]
    metas = [simulate(4243, i, w).meta for i in range(10)]
    mm = [m["mm_per_px"] for m in metas]
    assert min(mm) < d.mm_per_px[0] or max(mm) > d.mm_per_px[1]  # 10 draws from 0.6-1.8: P(all in 0.8-1.35) < 1e-3
    assert all(w.mm_per_px[0] <= x for x in mm)
    assert all(w.blur_sigma[0] <= m["blur_sigma"] <= w.blur_sigma[1] for m in metas)
    assert all(10 ** w.log10_i0[0] <= m["noise_i0"] <= 10 ** w.log10_i0[1] for m in metas)
    # the hue jitter moves all three anchors of the palette the scan would have had by one offset
    plain = SceneConfig(palette_jitter=0.0, p_gray=0.0)
    jit = SceneConfig(palette_jitter=15.0, p_gray=0.0)
    shifts = []
    for i in range(4):
        a, b = simulate(4244, i, plain).meta["render"], simulate(4244, i, jit).meta["render"]
        k = [b[h] - a[h] for h in ("hue_organic", "hue_mixed", "hue_metal")]
        assert max(k) - min(k) < 1e-9 and abs(k[0]) <= 15.0
        shifts.append(k[0])
    assert len({round(x, 6) for x in shifts}) == 4 and all(x != 0 for x in shifts)


def test_shifted_config_differs():
    s = SceneConfig.shifted()
    assert s.mm_per_px[0] > SceneConfig().mm_per_px[1] - 0.1 and s.palette_shift != 0


def test_display_jitter_changes_the_display_not_the_scan():
    from detector.xray import render

    seen = set()
    for i in range(12):  # (generator 5.0.0: the first hue turn on a colour scan is scan 8's)
        plain = simulate(12, i)
        off = simulate(12, i, SceneConfig(p_display_jitter=0.0))
        shown = simulate(12, i, SceneConfig(p_display_jitter=1.0))
        assert (off.image == plain.image).all() and "display_jitter" not in off.meta  # 0: 3.3.0's images
        assert [b["box"] for b in plain.boxes] == [b["box"] for b in shown.boxes]  # own random stream
        assert shown.image.shape == plain.image.shape and shown.image.dtype == np.uint8
        seen.update(shown.meta["display_jitter"] or {})
    assert {"hue_deg", "gamma"} <= seen, seen
    # each change does what it says, on colour and grey scans
    img = simulate(11, 0, SceneConfig(p_gray=0.0)).image
    rng = np.random.default_rng(3)
    kinds = set()
    for _ in range(200):
        out, applied = render.display_jitter(img, rng)
        assert out.shape == img.shape and out.dtype == np.uint8
        if applied == {"negative": True}:
            assert (out == 255 - img).all()
        if set(applied) == {"luma"}:
            assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
        if set(applied) == {"gamma"} and applied["gamma"] > 1.2:
            assert out.mean() < img.mean()
        kinds.update(applied)
    assert kinds == {"hue_deg", "luma", "gamma", "blur_sigma", "unsharp", "negative"}, kinds
    grey = img.mean(axis=2).astype(np.uint8)
    out, applied = render.display_jitter(grey, np.random.default_rng(5))
    assert out.shape == grey.shape and "hue_deg" not in applied and "luma" not in applied


def test_belt_stretch_resamples_along_the_belt_only():
    """Non-square pixels (SceneConfig.p_belt_stretch, xfd synth --belt-stretch): the same scan with
    everything along the belt (x) f times as many pixels; rows, palette, JPEG and labels' rows as
    without it; boxes scaled; the mean transmission (the detector's line integrals) kept."""
    for i in range(4):
        plain = simulate(21, i, keep_raw=True)
        off = simulate(21, i, SceneConfig(p_belt_stretch=0.0))
        assert (off.image == plain.image).all() and "belt_stretch" not in off.meta  # 0: 3.5.0's images
        for f in (0.75, 1.3):
            s = simulate(21, i, SceneConfig(p_belt_stretch=1.0, belt_stretch=(f, f)), keep_raw=True)
            h, w = plain.image.shape[:2]
            assert s.image.shape[:2] == (h, round(w * f)) and s.meta["width"] == round(w * f)
            assert s.meta["belt_stretch"] == f and abs(s.meta["mm_per_px_along_belt"] - plain.meta["mm_per_px"] / f) < 2e-4
            for k in ("render", "jpeg_quality", "grayscale", "mm_per_px", "height", "n_threats", "clutter"):
                assert s.meta[k] == plain.meta[k], k  # the stretch is the only difference
            assert len(s.boxes) == len(plain.boxes)
            for a, b in zip(plain.boxes, s.boxes, strict=True):
                assert (a["label"], a["box"][1], a["box"][3]) == (b["label"], b["box"][1], b["box"][3])
                assert abs(b["box"][0] - a["box"][0] * f) <= 1 and abs(b["box"][2] - a["box"][2] * f) <= 1
                assert 0 <= b["box"][0] < b["box"][2] <= s.image.shape[1]
            # the detector reads each line's mean transmission: each row's mean is kept (up to the new
            # reading's gain error, up to 6 %), not scaled, and the rows are the same rows
            rows_plain, rows = plain.t_high.mean(axis=1), s.t_high.mean(axis=1)
            assert np.corrcoef(rows_plain, rows)[0, 1] > 0.99 and abs(float(rows.mean() - rows_plain.mean())) < 0.04
    # about the share asked for, from its own stream, and both views of a parcel share one factor
    drawn = [simulate(22, i, SceneConfig(p_belt_stretch=0.5)).meta["belt_stretch"] for i in range(24)]
    assert 6 <= sum(d is not None for d in drawn) <= 18
    assert all(0.75 <= d <= 1.33 for d in drawn if d is not None)
    both = simulate(22, next(i for i, d in enumerate(drawn) if d is not None), SceneConfig(p_belt_stretch=0.5, side_view=True))
    assert both.side.meta["belt_stretch"] == both.meta["belt_stretch"] is not None
    assert both.side.image.shape[1] == both.image.shape[1]
    assert all(0 <= b["box"][0] < b["box"][2] <= both.side.image.shape[1] for b in both.side.boxes)


def test_display_effects_change_pixels_not_labels():
    import cv2

    from detector.xray import render

    seen = set()
    for i in range(6):
        plain = simulate(11, i)
        shown = simulate(11, i, SceneConfig(p_display=1.0))
        assert "display" not in plain.meta and "display" in shown.meta
        assert [b["box"] for b in plain.boxes] == [b["box"] for b in shown.boxes]  # own random stream
        assert shown.image.shape == plain.image.shape
        seen.update(shown.meta["display"])
        for b in shown.boxes:  # burnt-in text never covers a labelled object
            t = shown.meta["display"].get("text")
            if t:
                x1, y1, x2, y2 = b["box"]
                assert t[2] <= x1 or x2 <= t[0] or t[3] <= y1 or y2 <= t[1]
    assert seen, "six scans at p_display=1 applied no effect at all"
    # unsharp masking raises high-frequency energy
    img = simulate(11, 0).image
    rng = np.random.default_rng(0)
    while True:
        out, applied = render.display_effects(img, rng)
        if "unsharp" in applied and "stretch" not in applied and "text" not in applied:
            break
    lap = lambda a: cv2.Laplacian(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY) if a.ndim == 3 else a, cv2.CV_32F).var()  # noqa: E731
    assert lap(out) > 1.2 * lap(img)


def test_soft_contents_add_irregular_organic_mass_not_labels():
    from detector.xray import render

    for i in range(4):
        plain = simulate(12, i, keep_raw=True)
        soft = simulate(12, i, SceneConfig(p_soft=1.0), keep_raw=True)
        assert [b["box"] for b in plain.boxes] == [b["box"] for b in soft.boxes]  # own random stream
        assert "soft" not in plain.meta and soft.meta["soft"]
        # more matter in the beam (the noise draws are the same: they come from the main stream)
        assert soft.t_high.mean() < plain.t_high.mean() - 1e-4
    # soft goods are organic: a garment-only scene renders in the organic hue
    from detector.synth import organic

    rng = np.random.default_rng(3)
    _, areal = organic.soft_item(rng, 1.0, "garment")
    assert areal.max() > 0.1 and 0.1 < (areal > 0.01).mean() < 0.95  # irregular outline inside its frame
    spectrum = physics.Spectrum.make(150.0)
    c = np.asarray(physics.basis_coeffs("textile"), np.float32)
    t_low, t_high = physics.transmissions(c[:, None, None] * areal[None], spectrum)
    z = render.zeff_axis(t_low, t_high, spectrum)
    thick = areal > 0.5
    assert thick.any() and np.median(z[thick]) < 0.34  # organic third of the step-wedge axis


def _full_grid_splat(u, v, w, shape):
    """Generator 1.0.0's splat over the object's whole grid: the reference splat_window must match."""
    h, wd = shape
    uu = (u + 0.5).astype(np.int32)
    vv = (v + 0.5).astype(np.int32)
    ok = (uu >= 0) & (uu < wd) & (vv >= 0) & (vv < h)
    ww = w[ok] if np.ndim(w) else None
    out = np.bincount(vv[ok] * wd + uu[ok], weights=ww, minlength=h * wd)
    if ww is None:
        out = out * float(w)
    return out.reshape(h, wd).astype(np.float32)


def test_splat_window_equals_the_full_grid_bit_for_bit():
    """The simulator splats each part only into its own rectangle: inside it the values must
    be the full-grid splat's to the bit (generated datasets stay byte-identical), outside it zero."""
    rng = np.random.default_rng(5)
    for trial in range(20):
        h, w = int(rng.integers(5, 80)), int(rng.integers(5, 80))
        n = int(rng.integers(1, 3000))
        u = (rng.random(n, dtype=np.float32) * w * 0.4 + rng.uniform(-5, w * 0.7)).astype(np.float32)
        v = (rng.random(n, dtype=np.float32) * h * 0.4 + rng.uniform(-5, h * 0.7)).astype(np.float32)
        mass = rng.random(n).astype(np.float32) if trial % 2 else np.float32(0.37)
        full = _full_grid_splat(u, v, mass, (h, w))
        win = shapes.splat_window(u, v, mass, (h, w))
        if win is None:
            assert not full.any()
            continue
        a, r0, c0 = win
        inner = full[r0 : r0 + a.shape[0], c0 : c0 + a.shape[1]]
        assert a.dtype == full.dtype and np.array_equal(a.view(np.uint32), inner.view(np.uint32))
        rest = full.copy()
        rest[r0 : r0 + a.shape[0], c0 : c0 + a.shape[1]] = 0
        assert not rest.any()
    assert shapes.splat_window(np.array([-3.0, 200.0], np.float32), np.array([1.0, 1.0], np.float32), np.float32(1), (4, 4)) is None


def _fan(yc=0.0):
    from detector.synth.scene import FanBeam

    return FanBeam(yc_mm=yc, s0_mm=500.0, z_ref_mm=0.0, room_mm=0.0, rng=np.random.default_rng(0))


def test_fan_beam_scales_rows_by_height_and_keeps_line_integrals():
    """Through the fan, a 40x40x2 mm steel plate 250 mm above the belt shows 500/750 of its
    rows, moved towards the central ray; its columns (along the belt) and its line integral
    (what a ray crosses: 2 mm of steel) stay; its mass lands on fewer pixels."""
    o = shapes.Obj([]).add(shapes.box(40, 40, 2, 0.5), "steel", 0.5)
    out = {}
    for base in (0.0, 250.0):
        cv = Canvas(400, 300, 1.0, np.random.default_rng(3), np.ones(physics.N_BASIS, np.float32), _fan())
        att, y0, x0 = cv.project(o, 150, 200, np.eye(3), 1.0, 0.5, base_mm=base)
        ys, xs = np.nonzero(att > 0.5 * att.max())
        out[base] = {"rows": ys.max() - ys.min() + 1, "cols": xs.max() - xs.min() + 1, "centre": y0 + ys.mean(),
                     "core": float(np.median(att[att > 0.5 * att.max()])), "sum": float(att.sum())}
    m = 500.0 / 750.0
    lo, hi = out[0.0], out[250.0]
    assert abs(lo["rows"] - 40) <= 2 and abs(hi["rows"] - 40 * m) <= 2
    assert abs(lo["cols"] - hi["cols"]) <= 1
    assert abs(lo["centre"] - 200) <= 1.5 and abs(hi["centre"] - 200 * m) <= 1.5
    assert hi["core"] == pytest.approx(lo["core"], rel=0.06)
    assert hi["sum"] / lo["sum"] == pytest.approx(m, rel=0.03)


def test_fan_beam_turns_walls_into_continuous_bands():
    """A parcel wall seen edge-on (one row of the rim at 300 mm from the central ray, 200 mm
    tall) covers the rows between its foot (300) and its top (300 * 500/700 = 214), without gaps,
    and keeps its mass."""
    cv = Canvas(400, 200, 1.0, np.random.default_rng(0), np.ones(physics.N_BASIS, np.float32), _fan())
    rim = np.zeros((400, 200), np.float32)
    rim[300, 50:150] = 2.0
    cv.add_wall("cellulose", rim, 200.0)
    rows = np.nonzero(cv.maps[0].sum(1) > 0)[0]
    assert abs(rows.min() - 214) <= 1 and abs(rows.max() - 300) <= 1
    assert len(rows) == rows.max() - rows.min() + 1  # continuous
    c = physics.basis_coeffs("cellulose")[0]
    assert cv.maps[0].sum() / c == pytest.approx(rim.sum(), rel=1e-4)


def test_fan_beam_scans_hold_the_same_things_with_tight_labels():
    plain, fan = SceneConfig(), SceneConfig(p_fan=1.0)
    assert SceneConfig.wide().p_fan > 0 and plain.p_fan == 0
    seen = 0
    for i in range(8):
        a, b = simulate(11, i, plain), simulate(11, i, fan, keep_raw=True)
        assert "fan_beam" not in a.meta and b.meta["fan_beam"]["source_below_belt_mm"] >= 400
        # the fan has its own random stream: the parcel's contents are the same draws
        assert a.meta["clutter"] == b.meta["clutter"] and a.meta["container"] == b.meta["container"]
        assert a.image.shape == b.image.shape and not np.array_equal(a.image, b.image)
        seen += _assert_boxes_tight(b)
    assert seen >= 3


def test_magnification_keeps_line_integrals():
    """A plate magnified 1.15x across the belt covers 15% more rows and crosses the same 2 mm of
    steel on every ray (generator 2.0.0 fixed a division that made it 1.15^2 lighter)."""
    o = shapes.Obj([]).add(shapes.box(40, 40, 2, 0.5), "steel", 0.5)
    core = {}
    for m in (1.0, 1.15):
        cv = Canvas(300, 300, 1.0, np.random.default_rng(3), np.ones(physics.N_BASIS, np.float32))
        att, *_ = cv.project(o, 150, 150, np.eye(3), m, 0.5)
        ys, _ = np.nonzero(att > 0.5 * att.max())
        core[m] = (float(np.median(att[att > 0.5 * att.max()])), ys.max() - ys.min() + 1)
    assert core[1.15][0] == pytest.approx(core[1.0][0], rel=0.05)
    assert abs(core[1.15][1] - 1.15 * core[1.0][1]) <= 2


def test_magazine_parts_stay_inside_the_magazine_and_the_grip():
    """Springs, follower and rounds lie inside the magazine body; an inserted magazine tilts
    with the grip (its base moves rearwards, +x, like the grip's)."""
    from detector.synth import threats

    for k in range(6):
        rng = np.random.default_rng(500 + k)
        m = threats.magazine(rng, 0.6, kind="rifle" if k % 2 else "pistol")
        body_lo, body_hi = m.parts[0].pts.min(0), m.parts[0].pts.max(0)
        for part in m.parts[1:]:
            lo, hi = part.pts.min(0), part.pts.max(0)
            assert lo[0] >= body_lo[0] - 3 and hi[0] <= body_hi[0] + 3, (k, part.material, lo, hi, body_lo, body_hi)
            assert lo[1] >= body_lo[1] - 8 and hi[1] <= body_hi[1] + 3
    for k in range(4):
        rng = np.random.default_rng(600 + k)
        d = threats.pistol_design(rng)
        g = shapes.Obj([])
        threats._insert_magazine(g, d, rng, 0.6)
        pts = np.concatenate([p.pts for p in g.parts])
        top, bottom = pts[pts[:, 1] > np.percentile(pts[:, 1], 95)], pts[pts[:, 1] < np.percentile(pts[:, 1], 5)]
        assert bottom[:, 0].mean() > top[:, 0].mean()  # base further back than the lips, as the grip


def test_printed_frame_grip_keeps_its_side_walls():
    """The magazine well of a printed frame is open between the grip's side walls, not cut
    through them: seen flat, the grip is a filled outline, not two strips."""
    from detector.synth import threats

    rng = np.random.default_rng(7)
    d = threats.pistol_design(rng)
    f, well = threats.pistol_frame(d, 0.6, "pla", rng, printed=True, infill=0.3, pattern="grid")
    pts = np.concatenate([p.pts for p in f.parts if p.material == "pla"])
    inwell = threats._points_in_poly(pts[:, :2], well)
    assert inwell.sum() > 100  # the side walls cover the well's outline
    assert np.all(np.abs(pts[inwell, 2]) >= d["wf"] / 2 - 2.5 - 1e-3)  # ... and nothing between them


def test_gun_shaped_tools_change_pixels_not_labels():
    """--tools: glue, caulking, staple and paint spray guns, never labelled, from their own random
    stream: the same parcel's threats keep their boxes; the image changes where a tool lands."""
    from detector.synth import clutter

    for kind, make in clutter.GUN_SHAPED_TOOLS.items():
        o = make(np.random.default_rng(3), 0.8)
        assert o.label is None and "steel" in o.materials() and sum(o.materials().values()) > 20, kind
    plain, tools = SceneConfig(), SceneConfig(p_tools=1.0)
    assert SceneConfig.wide().p_tools > 0 and plain.p_tools == 0
    seen = set()
    for i in range(6):
        a, b = simulate(21, i, plain), simulate(21, i, tools)
        assert "tools" not in a.meta and isinstance(b.meta["tools"], list)
        assert [x["box"] for x in a.boxes] == [x["box"] for x in b.boxes] and a.meta["clutter"] == b.meta["clutter"]
        if b.meta["tools"]:
            assert not np.array_equal(a.image, b.image)
        seen |= set(b.meta["tools"])
    assert len(seen) >= 2
    r = subprocess.run([sys.executable, "-m", "detector.cli", "synth", "--out", "/tmp/xfd-never", "--n", "2",
                        "--tools", "2"], capture_output=True, text=True)
    assert r.returncode == 2 and "--tools must be between 0 and 1" in r.stderr


def test_wrapped_clutter_changes_pixels_not_labels():
    """--wrap-clutter: items of clutter wrapped in foil or cloth as threats are (15 % of them), from their
    own random stream: the same scene and boxes, darker round the wrapped items, in both views; off, the
    scans are what they were (xfd cues found the shipped model reading a foil wrap as a threat's)."""
    plain, wrapped = SceneConfig(side_view=True), SceneConfig(side_view=True, p_wrap_clutter=0.5)
    assert SceneConfig().p_wrap_clutter == 0 and SceneConfig.wide().p_wrap_clutter == 0
    kinds = set()
    for i in range(4):
        a, b = simulate(23, i, plain), simulate(23, i, wrapped)
        assert "wrapped_clutter" not in a.meta and b.meta["wrapped_clutter"] == sum("wrapped" in c for c in b.meta["clutter"])
        assert [x["box"] for x in a.boxes] == [x["box"] for x in b.boxes]
        assert [x["box"] for x in a.side.boxes] == [x["box"] for x in b.side.boxes]
        assert [{k: v for k, v in c.items() if k != "wrapped"} for c in b.meta["clutter"]] == a.meta["clutter"]
        if b.meta["wrapped_clutter"]:
            for x, y in ((a.image, b.image), (a.side.image, b.side.image)):  # a wrap only ever attenuates
                assert x.shape == y.shape and not np.array_equal(x, y)
                assert y.astype(float).mean() < x.astype(float).mean()
        kinds |= {c["wrapped"] for c in b.meta["clutter"] if "wrapped" in c}
    assert kinds == {"aluminium", "textile"}
    r = subprocess.run([sys.executable, "-m", "detector.cli", "synth", "--out", "/tmp/xfd-never", "--n", "2",
                        "--wrap-clutter", "1.5"], capture_output=True, text=True)
    assert r.returncode == 2 and "--wrap-clutter must be between 0 and 1" in r.stderr


def test_a_map_wholly_past_the_canvas_edge_adds_nothing():
    """A map placed past the bottom or right edge (a wrap's padding round clutter at the edge) adds
    nothing and raises nothing: a stop index below the start used to wrap round to the map's far end
    and stopped a 1,000-scan chunk on the lent GPU (seed 401, scan 997, --wrap-clutter 0.15)."""
    cv = Canvas(50, 60, 1.0, np.random.default_rng(0), np.ones(physics.N_BASIS, np.float32))
    areal = np.ones((20, 30), np.float32)
    for y0, x0 in ((50, 10), (70, 10), (10, 60), (10, 95), (-20, 10), (10, -30), (55, 65)):
        cv.add_areal("steel", areal, y0, x0)
    assert not cv.maps.any()
    cv.add_areal("steel", areal, 40, 50)  # overlapping the corner: only its 10 x 10 inside
    assert (cv.maps[0] > 0).sum() == 100 and cv.maps[0, 40:, 50:].all()
    cfg = SceneConfig(p_display=0.3, p_soft=0.5, fit_contents=True, p_display_jitter=0.3, p_belt_stretch=0.3,
                      p_tools=0.3, p_gray=0.3, p_wrap_clutter=0.15, side_view=True, clutter=(10, 50),
                      threat_mix=threat_mod.parse_threat_mix("gun=0.22,barrel=0.12,slide=0.08,frame=0.16,"
                                                             "magazine=0.14,printed_part=0.14,ammunition=0.14"))
    s = simulate(401, 997, cfg)
    assert s.image.size and s.side is not None and s.meta["wrapped_clutter"] >= 1


def test_threat_mix_reweights_the_classes_drawn(tmp_path):
    """--threat-mix: only the listed classes are drawn, in about their proportions; the default
    (None) draws exactly the scans it drew before; the manifest records the mix; bad mixes are
    refused with the reason."""
    assert SceneConfig().threat_mix is None
    for i in range(4):  # None is the default mix: same images and boxes
        a, b = simulate(5, i), simulate(5, i, SceneConfig(threat_mix=dict(threat_mod.THREAT_MIX)))
        assert np.array_equal(a.image, b.image) and [x["box"] for x in a.boxes] == [x["box"] for x in b.boxes]
    rng = np.random.default_rng(0)
    drawn = [make_threat(rng, 1.0, mix={"frame": 3, "ammunition": 1}).label for _ in range(80)]
    assert set(drawn) == {"frame", "ammunition"} and 0.6 < drawn.count("frame") / 80 < 0.9
    m = write_dataset(tmp_path / "mix", 12, 4, "train=1", 1, SceneConfig(p_threat=1.0, threat_mix={"magazine": 1}))
    assert set(m["config"]["threat_mix"]) == {"magazine"}
    assert m["counts"]["objects"]["magazine"] >= 12 and sum(m["counts"]["objects"].values()) == m["counts"]["objects"]["magazine"]
    assert threat_mod.parse_threat_mix("gun=1, frame=2.5") == {"gun": 1.0, "frame": 2.5}
    for bad, why in [("gun", "is not CLASS=WEIGHT"), ("pistol=1", "unknown class 'pistol'"), ("gun=-1", ">= 0"),
                     ("gun=inf", ">= 0"), ("gun=x", "is not a number"), ("gun=0,frame=0", "above 0"),
                     ("gun=1,gun=2", "given twice")]:
        r = subprocess.run([sys.executable, "-m", "detector.cli", "synth", "--out", str(tmp_path / "never"), "--n", "2",
                            "--threat-mix", bad], capture_output=True, text=True)
        assert r.returncode == 2 and why in r.stderr, (bad, r.stderr)
        assert not (tmp_path / "never").exists()



def test_pitch_clutter_and_palette_flags_set_the_ranges_drawn(tmp_path):
    """--mm-per-px, --clutter and --palette-shift (to match a scanner, or to take the shifted set
    apart one setting at a time) and --fit-contents reach every scan and the manifest; bad ranges are refused with the
    reason before anything is written, from the CLI and from a library caller's SceneConfig."""
    out = tmp_path / "dense"
    r = subprocess.run([sys.executable, "-m", "detector.cli", "synth", "--out", str(out), "--n", "4", "--seed", "9",
                        "--split", "test=1", "--workers", "1", "--mm-per-px", "1.5", "--clutter", "40,40",
                        "--palette-shift", "20", "--gray", "0", "--fit-contents"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["config"]["fit_contents"] is True and all("fit" in s for s in m["scans"])
    assert m["config"]["mm_per_px"] == [1.5, 1.5] and m["config"]["clutter"] == [40, 40]
    assert m["config"]["palette_shift"] == 20
    # the pitch only ever grows (a parcel longer than the image allows); clutter shrinks with small parcels
    assert all(s["mm_per_px"] >= 1.5 for s in m["scans"])
    loose = tmp_path / "loose"  # --no-fit-contents: 5.0.0's parcels, where items may stick out
    r = subprocess.run([sys.executable, "-m", "detector.cli", "synth", "--out", str(loose), "--n", "1", "--seed", "9",
                        "--split", "test=1", "--workers", "1", "--no-fit-contents"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m_loose = json.loads((loose / "manifest.json").read_text())
    assert m_loose["config"]["fit_contents"] is False and not any("fit" in s for s in m_loose["scans"])
    plain = [simulate(9, i, SceneConfig(p_gray=0.0)) for i in range(4)]
    assert max(s["fit"]["clutter_drawn"] for s in m["scans"]) > max(p.meta["n_clutter"] for p in plain)
    for s in m["scans"]:
        if s["container"] != "envelope":
            assert s["fit"]["clutter_drawn"] >= 14  # 40 items scaled by at least 0.35 for the smallest parcels
    shifted = simulate(9, 0, SceneConfig(p_gray=0.0, palette_shift=20.0)).meta["render"]
    assert abs(shifted["hue_metal"] - plain[0].meta["render"]["hue_metal"] - 20.0) < 1e-9
    for flag, bad, why in [("--mm-per-px", "0.1,2", "0.3 <= LO <= HI <= 3.0"), ("--mm-per-px", "1.6,1.2", "LO <= HI"),
                           ("--mm-per-px", "1,2,3", "LO,HI or one value"), ("--clutter", "5,a", "whole numbers"),
                           ("--clutter", "10,99", "<= 80"), ("--palette-shift", "nan", "between -180 and 180")]:
        r = subprocess.run([sys.executable, "-m", "detector.cli", "synth", "--out", str(tmp_path / "never"), "--n", "2",
                            flag, bad], capture_output=True, text=True)
        assert r.returncode == 2 and why in r.stderr, (flag, bad, r.stderr)
    with pytest.raises(SynthError, match="--clutter"):
        write_dataset(tmp_path / "never", 2, cfg=SceneConfig(clutter=(30, 5)))
    assert not (tmp_path / "never").exists()

# ----------------------------------------------------------------- analytic solids (generator 3.0.0)
def _areal(cv, material):
    """An areal-density map (g/cm^2) of one material back from a canvas' first basis map."""
    return cv.maps[0] / physics.basis_coeffs(material)[0]


def test_solid_chords_are_exact_for_box_cylinder_and_ellipsoid():
    """Rays along z: through a 60x40x10 mm box lying flat every inner ray crosses 10 mm; through a
    radius-15 rod lying along x, 2*sqrt(15^2 - y^2); through a 30x20x8 ellipsoid, 16 mm at its
    centre; through a tube with 1 mm walls, 2 mm at its centre and the long chords at its rims."""
    ys, xs = np.arange(-25.0, 25.5, 0.5), np.array([0.0])
    box = shapes.solid_box(shapes.Obj([]), 60, 40, 10, "steel").solids[0]
    c = shapes.solid_chords(box, box.axes, box.centre, xs, ys)[:, 0]
    assert np.allclose(c[np.abs(ys) < 19.9], 10.0, atol=1e-4) and np.all(c[np.abs(ys) > 20.1] == 0)
    rod = shapes.solid_cylinder(shapes.Obj([]), 15, 100, "steel").solids[0]
    c = shapes.solid_chords(rod, rod.axes, rod.centre, xs, ys)[:, 0]
    assert np.allclose(c, 2 * np.sqrt(np.clip(15**2 - ys**2, 0, None)), atol=2e-3)
    ell = shapes.solid_ellipsoid(shapes.Obj([]), 30, 20, 8, "pla").solids[0]
    assert shapes.solid_chords(ell, ell.axes, ell.centre, [0.0], [0.0])[0, 0] == pytest.approx(16.0, abs=1e-4)
    tube = shapes.solid_cylinder(shapes.Obj([]), 15, 100, "steel", r_in=14).solids[0]
    c = shapes.solid_chords(tube, tube.axes, tube.centre, xs, ys)[:, 0]
    assert c[ys == 0][0] == pytest.approx(2.0, abs=1e-3)
    assert c[ys == 14.5][0] == pytest.approx(2 * np.sqrt(15**2 - 14.5**2), abs=2e-3)  # grazing the wall
    # a rod standing on end: every ray inside its disc crosses its full length
    stood = rod.moved(shapes.rot_y(np.pi / 2), (0, 0, 0))
    c = shapes.solid_chords(stood, stood.axes, stood.centre, [0.0, 10.0, 16.0], [0.0])
    assert c[0, 0] == pytest.approx(100.0, abs=1e-3) and c[0, 1] == pytest.approx(100.0, abs=1e-3) and c[0, 2] == 0


@pytest.mark.parametrize("rot", ["flat", "tilted", "edge"])
@pytest.mark.parametrize("fan", [False, True])
def test_solids_keep_mass_and_match_their_voxel_versions(rot, fan):
    """A hollow box, a capped tube and an ellipsoid shell projected analytically hold their exact
    mass (sum of areal density x pixel area, x the fan's row magnification), and look like the
    same shapes built from fine voxels: the same footprint, and the same mass to within what the
    voxels' rounding of thin walls to whole voxels allows."""
    r = {"flat": np.eye(3), "tilted": shapes.rot_x(0.5) @ shapes.rot_y(0.3), "edge": shapes.rot_x(np.pi / 2)}[rot]
    p = 0.4
    builds = [
        (lambda: shapes.Obj([]).add(shapes.box(120, 60, 30, p, wall=3), "abs", p),
         lambda: shapes.solid_box(shapes.Obj([]), 120, 60, 30, "abs", wall=3)),
        (lambda: shapes.Obj([]).add(shapes.cylinder(30, 150, p, r_in=27, closed_ends=3), "glass", p),
         lambda: shapes.solid_cylinder(shapes.Obj([]), 30, 150, "glass", r_in=27, closed_ends=3)),
        (lambda: shapes.Obj([]).add(shapes.ellipsoid(100, 40, 30, p, shell=3), "textile", p),
         lambda: shapes.solid_ellipsoid(shapes.Obj([]), 100, 40, 30, "textile", shell=3)),
    ]
    for voxels, solid in builds:
        maps = {}
        for name, make in (("voxels", voxels), ("solid", solid)):
            o = make().centred()
            mat = (o.parts or o.solids)[0].material
            cv = Canvas(500, 500, 0.8, np.random.default_rng(3), np.ones(physics.N_BASIS, np.float32),
                        _fan(100.0) if fan else None)
            cv.project(o, 200, 200, r, 1.0, p, base_mm=20.0 if fan else None)
            maps[name] = _areal(cv, mat)
            if name == "solid":
                exact = o.materials()[mat]
        a, b = maps["voxels"], maps["solid"]
        if not fan:  # g/cm^2 x cm^2 per pixel = g
            assert float(b.sum()) * 0.08**2 == pytest.approx(exact, rel=1e-3)
        assert b.sum() == pytest.approx(a.sum(), rel=0.08)  # voxels round a 3 mm wall to whole voxels
        fa, fb = a > 0.02 * a.max(), b > 0.02 * b.max()
        assert (fa & fb).sum() / (fa | fb).sum() > 0.85  # same footprint (IoU)
        blur = [_blur(x) for x in (a, b)]
        assert np.abs(blur[0] - blur[1]).sum() / blur[0].sum() < 0.15


def _blur(x):
    import cv2

    return cv2.GaussianBlur(x, (0, 0), 1.5)


def test_thin_sheet_on_edge_keeps_its_mass_and_shows():
    """A 0.5 mm aluminium sheet standing on edge is thinner than a pixel: it must still show as a
    line with the sheet's whole mass, wherever it falls between pixel centres."""
    for shift in (0.0, 0.3, 0.55):
        o = shapes.solid_sheet(shapes.Obj([]), -50, -40, 50, 40, 0, 0.5, "aluminium")
        cv = Canvas(300, 300, 1.0, np.random.default_rng(0), np.ones(physics.N_BASIS, np.float32))
        cv.project(o, 150 + shift, 150, shapes.rot_y(np.pi / 2), 1.0, 1.0)
        a = _areal(cv, "aluminium")
        assert float(a.sum()) * 0.01 == pytest.approx(o.materials()["aluminium"], rel=1e-3)
        cols = np.nonzero(a.sum(0) > 0.05 * a.sum(0).max())[0]
        assert 1 <= len(cols) <= 5 and cols.max() - cols.min() == len(cols) - 1


def test_cans_and_bottles_show_bright_rims_where_rays_graze_their_walls():
    """Seen from the side, a drink can's 0.1 mm aluminium wall crosses far more metal at its rims
    (tangent rays) than through its middle: the outline real scans show."""
    from detector.synth import clutter

    o = clutter.make_clutter(np.random.default_rng(4), 0.8, "can")
    shell = o.solids[0]
    assert shell.material in ("aluminium", "steel") and shell.half[0] - shell.inner[0] == pytest.approx(0.1)
    only = shapes.Obj([], solids=[shell])
    cv = Canvas(200, 300, 0.5, np.random.default_rng(0), np.ones(physics.N_BASIS, np.float32))
    cv.project(only, 75, 50, np.eye(3), 1.0, 0.8)
    a = _areal(cv, shell.material)
    cols = np.nonzero(a.sum(0))[0]
    prof = a[:, (cols.min() + cols.max()) // 2]  # across the can, halfway along it
    rows = np.nonzero(prof > 0)[0]
    middle = prof[(rows.min() + rows.max()) // 2]
    assert prof.max() > 5 * middle > 0


def test_attenuation_table_matches_xraydb():
    """The shipped table (read instead of importing xraydb in every worker) holds exactly what
    xraydb and the basis fit give, for every material; `python -m detector.xray.physics` rewrites it."""
    table = json.loads(physics.TABLE_PATH.read_text())
    fresh = physics.tabulate()
    assert table == fresh, "attenuation.json is stale: run python -m detector.xray.physics"
    assert set(table["basis_coeffs"]) == set(physics.MATERIALS)


def test_every_clutter_kind_builds_a_plausible_object():
    """Each of the clutter kinds (45 in 3.1.0), from a few seeds: centred, parcel-sized (1 cm to
    60 cm), between 1 g and 12 kg, only known materials, and drawn on a canvas with the same mass."""
    from detector.synth import clutter

    assert len(clutter.CLUTTER) >= 45
    for kind in clutter.CLUTTER:
        for seed in range(3):
            o = clutter.make_clutter(np.random.default_rng(seed), 0.8, kind)
            lo, hi = o.bounds()
            assert np.allclose((lo + hi) / 2, 0, atol=0.5), kind
            assert 10 <= float((hi - lo).max()) <= 600, (kind, hi - lo)
            mats = o.materials()
            assert set(mats) <= set(physics.MATERIALS), kind
            assert 1.0 <= sum(mats.values()) <= 12000, (kind, mats)
        cv = Canvas(900, 900, 1.0, np.random.default_rng(0), np.ones(physics.N_BASIS, np.float32))
        cv.project(o, 450, 450, shapes.random_rotation(np.random.default_rng(1)), 1.0, 0.8)
        expected = sum(mass * physics.basis_coeffs(m)[0] for m, mass in o.materials().items())
        assert float(cv.maps[0].sum()) * 0.01 == pytest.approx(expected, rel=0.01), kind


def test_fit_rotation_turns_lays_flat_or_refuses():
    """fit_rotation: an object that fits keeps its rotation; one too long across the parcel is
    turned about the vertical to lie along it; one standing taller than the parcel is laid flat;
    one bigger than the parcel fits no way."""
    from detector.synth.scene import fit_rotation
    from detector.synth.shapes import rot_x, rot_y, rot_z

    box = (400.0, 300.0, 150.0)  # L, W, H in mm
    small = np.array([200.0, 80.0, 40.0])
    tilt = rot_z(0.4) @ rot_x(0.1)
    assert fit_rotation(tilt, small, box, 0.0) is tilt
    long = np.array([350.0, 60.0, 40.0])
    across = rot_z(np.radians(90))  # long axis across the parcel: 350 mm in a 300 mm width
    turned = fit_rotation(across, long, box, 0.0)
    ext = np.abs(turned) @ long
    assert ext[0] <= 390 and ext[1] <= 290 and np.allclose(turned[2], across[2])  # turned about the vertical only
    standing = rot_y(np.radians(90))  # long axis vertical: 250 mm in a 150 mm tall parcel
    flat = fit_rotation(standing, np.array([250.0, 60.0, 30.0]), box, 0.3)
    assert flat is not None and (np.abs(flat) @ np.array([250.0, 60.0, 30.0]))[2] <= 145
    assert fit_rotation(tilt, np.array([600.0, 400.0, 50.0]), box, 0.0) is None


def test_fit_contents_keeps_clutter_inside_its_parcel(monkeypatch):
    """Fitted contents (the default since generator 6.0.0): every clutter item projected lies inside
    its container (within the walls' clearance), and so does every threat that fits some way;
    packing stays within FIT_FILL of the volume; the manifest says what was left out. Without it
    (--no-fit-contents) a good share of items stick out (what 3.2.0-5.0.0 drew by default)."""
    from detector.synth import scene
    from detector.synth.shapes import rot_z

    rec = []
    orig_dc, orig_proj = scene.draw_container, scene.Canvas.project

    def dc(cv, kind, cx, cy, L, W, H, ang, rng):
        rec.append({"L": L, "W": W, "H": H, "cx": cx, "cy": cy, "ang": ang, "out": [], "threats": []})
        return orig_dc(cv, kind, cx, cy, L, W, H, ang, rng)

    def proj(self, obj, x, y, rot, mag=1.0, pitch=1.0, base_mm=None):
        r = rec[-1] if rec else None
        # clutter until the first threat (what comes after it is the threats' own concealing items)
        if r is not None and (obj.label is not None or not r["threats"]):
            lo, hi = obj.bounds()
            m = rot_z(-r["ang"]) @ rot
            cen = m[:2] @ ((lo + hi) / 2) + rot_z(-r["ang"])[:2, :2] @ np.array([x - r["cx"], y - r["cy"]])
            half = np.abs(m) @ (hi - lo) / 2
            out = max(abs(cen[0]) + half[0] - r["L"] / 2, abs(cen[1]) + half[1] - r["W"] / 2, 2 * half[2] - r["H"])
            if obj.label is None:
                r["out"].append(out)
            elif scene.fit_rotation(rot, hi - lo, (r["L"], r["W"], r["H"]), r["ang"]) is not None:
                r["threats"].append(out)  # a threat that fits some way
            else:
                r["threats"].append(None)
        return orig_proj(self, obj, x, y, rot, mag, pitch, base_mm)

    monkeypatch.setattr(scene, "draw_container", dc)
    monkeypatch.setattr(scene.Canvas, "project", proj)
    cfg = SceneConfig(clutter=(30, 45), p_threat=1.0, fit_contents=False)
    for i in range(6):
        simulate(31, i, cfg)
    loose = [o for r in rec for o in r["out"]]
    assert np.mean(np.array(loose) > 20) > 0.1  # 3.2.0's parcels: items sticking out by 2 cm and more
    rec.clear()
    cfg.fit_contents = True
    metas = [simulate(31, i, cfg).meta for i in range(6)]
    fitted = [o for r in rec for o in r["out"]]
    assert fitted and max(fitted) <= 1.0, max(fitted)
    threats = [o for r in rec for o in r["threats"]]
    assert None not in threats  # the parcel was chosen to hold each threat (6.0.0)
    assert len(threats) >= 4 and max(threats) <= 1.0, threats  # turned, laid flat and placed wholly inside
    for m in metas:
        f = m["fit"]
        assert m["n_clutter"] == f["clutter_drawn"] - f["left_out_too_big"] - f["left_out_parcel_full"] == len(m["clutter"])
        assert f["packed_share"] <= scene.FIT_FILL
    assert sum(m["fit"]["left_out_too_big"] + m["fit"]["left_out_parcel_full"] for m in metas) > 0
    assert "fit" in simulate(31, 0, SceneConfig(clutter=(30, 45), p_threat=1.0)).meta  # the default since 6.0.0


def test_fitted_envelopes_are_not_sent_empty(monkeypatch):
    """Fitting contents (the default since 6.0.0) puts back an item that fits the parcel no way and
    draws another (FIT_TRIES), as a sender packs what fits: a padded envelope holds small things
    instead of going through empty, as 42 % of synth-test's envelopes did when every item drawn too
    big was simply left out (FIT_TRIES = 1)."""
    from detector.synth import scene

    cfg = SceneConfig(container_p=(0.0, 1.0, 0.0, 0.0), p_threat=0.0)  # envelopes only
    metas = [simulate(5, i, cfg).meta for i in range(16)]
    assert all(m["container"] == "envelope" for m in metas)
    assert sum(m["n_clutter"] == 0 for m in metas) <= 1
    monkeypatch.setattr(scene, "FIT_TRIES", 1)
    once = [simulate(5, i, cfg).meta for i in range(16)]
    assert sum(m["n_clutter"] == 0 for m in once) >= 4
    assert sum(m["fit"]["left_out_too_big"] for m in once) > 3 * sum(m["fit"]["left_out_too_big"] for m in metas)


def test_a_threat_gets_a_parcel_that_holds_it(monkeypatch):
    """Since 6.0.0 a scan's threats are drawn before its parcel, which is made large enough for each
    to lie flat in it (an envelope too small becomes a box): drawn after, 13 % of threats fitted
    their parcel no way (most carbines) and stuck out through its walls, the only things that did
    once clutter fitted. Loose parcels (--no-fit-contents) keep the old order, carbines sticking out."""
    from detector.synth import scene, threats

    rec, drawn = [], []
    orig_dc = scene.draw_container

    def dc(cv, kind, cx, cy, L, W, H, ang, rng):
        rec.append((kind, L, W, H))
        return orig_dc(cv, kind, cx, cy, L, W, H, ang, rng)

    def carbine(rng, pitch, mix=None):
        drawn.append(threats.carbine(rng, pitch))
        return drawn[-1]

    monkeypatch.setattr(scene, "draw_container", dc)
    monkeypatch.setattr(threats, "make_threat", carbine)
    longer = {True: 0, False: 0}
    for fit in (True, False):
        cfg = SceneConfig(p_threat=1.0, container_p=(0.25, 0.75, 0.0, 0.0), fit_contents=fit)  # mostly envelopes
        for i in range(5):
            drawn.clear()
            simulate(41, i, cfg)
            kind, L, W, H = rec[-1]
            for o in drawn:
                sx, sy, sz = o.bounds()[1] - o.bounds()[0]
                longer[fit] += max(sx, sy) > L
                if fit:  # a box (no envelope holds a carbine), large enough for it to lie flat inside the walls
                    assert kind == "box"
                    assert max(sx, sy) <= L - scene.FIT_CLEARANCE_MM[0] and min(sx, sy) <= W - scene.FIT_CLEARANCE_MM[1]
                    assert sz <= H - scene.FIT_CLEARANCE_MM[2]
    assert longer[True] == 0 and longer[False] >= 3


# ----------------------------------------------------------------- gun shapes (generator 4.0.0)
def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def test_fillet_rounds_corners_with_the_asked_radius():
    """A 40 x 20 rectangle with every corner rounded by r = 5 loses exactly (4 - pi) r^2 of area,
    stays inside the rectangle, and its arcs are r from their centres; a radius too big for an
    edge is shrunk to fit; `only` rounds just the corners named."""
    rect = np.array([(0, 0), (40, 0), (40, 20), (0, 20)], float)
    r = 5.0
    p = threat_mod.fillet(rect, r, n=64)
    assert abs(_area(p) - (800 - (4 - np.pi) * r * r)) < 0.05
    assert p[:, 0].min() >= -1e-9 and p[:, 0].max() <= 40 + 1e-9 and p[:, 1].max() <= 20 + 1e-9
    corner = p[(p[:, 0] > 30) & (p[:, 1] > 10)]  # the top-right arc: centre (35, 15)
    assert np.allclose(np.hypot(corner[:, 0] - 35, corner[:, 1] - 15), r, atol=1e-6)
    big = threat_mod.fillet(rect, 100.0, n=32)  # at most 45 % of the 20 mm edge: r = 9
    assert _area(big) > 800 - (4 - np.pi) * 9.0**2 - 0.5 and _area(big) < 800 - (4 - np.pi) * 8.9**2
    one = threat_mod.fillet(rect, r, n=64, only={2})
    assert abs(_area(one) - (800 - (1 - np.pi / 4) * r * r)) < 0.05
    assert len(threat_mod.fillet(rect, 0.0)) == 4


def test_a_ring_past_the_polygons_is_drawn_whole():
    """mask_prism's rings are drawn into the raster of its polygons; one reaching past their box
    (a wrench's ring eye beyond its shank) used to be clipped at the box's edge. Now each ring is
    a whole annulus, and one inside the box (a revolver's trigger guard) is drawn as before.
    (Checked to fail on generator 5.0.0's code; 600 revolvers built the same, point for point.)"""
    pitch = 0.5
    bar = [(0, -5), (40, -5), (40, 5), (0, 5)]
    alone, _ = threat_mod.mask_prism([bar], [], 0, 4, pitch)
    ring, _ = threat_mod.mask_prism([bar], [], 0, 4, pitch, rings=[(55, 0, 12, 6)])  # x 43-67, y -12..12
    area = (len(ring) - len(alone)) * pitch**2 / 4 * pitch  # voxels per mm of height: 4 mm tall
    assert abs(area - np.pi * (12**2 - 6**2)) / (np.pi * (12**2 - 6**2)) < 0.05, area
    assert ring[:, 0].max() > 66 and ring[:, 1].min() < -11 and ring[:, 1].max() > 11
    inside, _ = threat_mod.mask_prism([bar, [(0, -20), (80, -20), (80, 20), (0, 20)]], [], 0, 4, pitch)
    with_ring, _ = threat_mod.mask_prism([bar, [(0, -20), (80, -20), (80, 20), (0, 20)]], [], 0, 4, pitch,
                                         rings=[(55, 0, 12, 6)])
    # already solid there: the ring only opens its eye, on the same grid (nothing else moves)
    eye = (len(inside) - len(with_ring)) * pitch**2 / 4 * pitch
    assert abs(eye - np.pi * 6**2) / (np.pi * 6**2) < 0.1, eye  # a 12-pixel disc drawn by cv2: its rim counts
    kept = {tuple(p) for p in inside.tolist()}
    assert all(tuple(p) in kept for p in with_ring.tolist())


def test_round_edges_takes_the_quarter_rounds_off_a_slab():
    """A 60 x 30 x 16 mm block with its side-to-face edges rounded by r = 4 loses the volume of
    the quarter rounds, 2 x perimeter x (1 - pi/4) r^2 (within voxel error); seen along z its
    areal density now falls off over r at the outline instead of stepping, as a gun's does."""
    pitch = 0.5
    poly = [(0, 0), (60, 0), (60, 30), (0, 30)]
    pts = shapes.extrude(poly, -8, 8, pitch)
    keep = threat_mod.round_edges(pts, [poly], [], -8, 8, pitch, 4.0)
    lost = (len(pts) - keep.sum()) * pitch**3
    want = 2 * 180 * (1 - np.pi / 4) * 16.0
    assert abs(lost - want) / want < 0.15, (lost, want)
    kept = pts[keep]
    mid = kept[np.abs(kept[:, 1] - 15) < pitch]  # a row across the block at y = 15
    xs = np.unique(mid[:, 0])
    thick = np.array([np.sum(mid[:, 0] == x) for x in (xs[0], xs[2], xs[4], xs[len(xs) // 2])]) * pitch
    assert thick[0] < thick[1] < thick[2] < thick[3] == pytest.approx(16, abs=pitch)
    assert threat_mod.round_edges(pts, [poly], [], -8, 8, pitch, 0.0).all()


def test_guns_have_real_shapes_and_sizes():
    """Generator 4.0.0's pistols range from pocket to full size, have rounded grips (no corner of
    the grip outline sharper than its fillet) and oval or squared guards, some have an external
    hammer behind the slide; seen end-on, a slide is a bar with rounded shoulders (narrower at its
    top than across its middle)."""
    rng = np.random.default_rng(41)
    designs = [threat_mod.pistol_design(rng) for _ in range(200)]
    lengths = np.array([d["L"] for d in designs])
    assert lengths.min() < 135 and lengths.max() > 205
    assert {d["size"] for d in designs} == {"pocket", "compact", "full"}
    assert {d["guard"] for d in designs} == {"oval", "square"} and any(d["hammer"] for d in designs)
    grip = threat_mod._grip_outline(designs[0], np.random.default_rng(1))
    assert len(grip) > 20  # arcs, not a quadrilateral
    e = np.diff(np.vstack([grip, grip[:1]]), axis=0)
    cross = e[:-1, 0] * e[1:, 1] - e[:-1, 1] * e[1:, 0]
    turn = np.abs(np.degrees(np.arctan2(cross, np.einsum("ij,ij->i", e[:-1], e[1:]))))
    assert turn.max() < 60, turn.max()  # no sharp corner left
    d = dict(designs[0], style="block", edge_r=4.0)
    s = threat_mod.pistol_slide(d, 0.5)
    p = s.parts[0].pts
    rear = p[(p[:, 0] > d["L"] - 18) & (p[:, 0] < d["L"] - 17)]  # behind the ejection port, solid
    top = rear[rear[:, 1] > rear[:, 1].max() - 0.6]
    mid = rear[np.abs(rear[:, 1] - d["hs"] / 2) < 0.5]
    assert np.ptp(top[:, 2]) < np.ptp(mid[:, 2]) - 2  # the shoulders are rounded off


def test_toy_guns_are_moulded_to_a_real_pistol_outline():
    """A toy or airsoft replica has the same rounded grip and trigger guard (with its opening) as a
    real pistol of the same design: in generator 4.0.0 only the materials tell them apart, never
    the outline (a model that learnt 'rounded means real' would fail on every replica)."""
    from detector.synth import clutter

    for seed in range(5):
        r = np.random.default_rng(seed)
        d = threat_mod.pistol_design(r)
        rail, grip, guard, hole, _ = threat_mod.frame_outline(d, r)
        toy = clutter.toy_gun(np.random.default_rng(seed), 0.5)
        shell = toy.parts[0]
        assert shell.material == "abs"
        xy = shell.pts[:, :2]
        c = np.asarray(hole).mean(0)
        assert not (np.abs(xy - c) < 4).all(1).any()  # the guard is open
        assert threat_mod._points_in_poly(xy, hole).mean() < 0.002  # (its rasterised edge aside)
        ring = threat_mod._points_in_poly(xy, guard) & ~threat_mod._points_in_poly(xy, hole)
        assert ring.sum() > 50
        assert threat_mod._points_in_poly(xy, grip).sum() > 500


# ----------------------------------------------------------------- rounded tools (generator 5.0.0)
def test_hand_tools_are_rounded_like_the_guns():
    """Generator 5.0.0 rounds the tools that look most like guns and gun parts, as 4.0.0 rounded
    the guns: otherwise a soft edge or a rounded outline would tell a threat from a tool. A drill's
    housing has no sharp corner or edge left, a wrench is one outline with an open ring, and a
    hammer's wooden handle is oval in section."""
    from detector.synth import clutter

    drill = clutter.drill(np.random.default_rng(0), 0.8)
    abs_pts = np.concatenate([p.pts for p in drill.parts if p.material == "abs"])
    assert len(abs_pts) > 5000  # housing, grip and battery pack as rounded shells
    body = abs_pts[abs_pts[:, 1] > -29]
    assert not ((body[:, 0] > 84) & (body[:, 1] > 24)).any()  # its corners rounded (r = 22)
    assert not ((np.abs(body[:, 0]) < 70) & (body[:, 1] > 27) & (np.abs(body[:, 2]) > 32)).any()  # and its edges
    assert (abs_pts[:, 1] < -200).any()  # the battery pack under the grip

    rng = np.random.default_rng(3)
    L = rng.uniform(120, 300)
    w = L * rng.uniform(0.08, 0.12)
    t = rng.uniform(4, 8)
    head = w * 2.2
    wrench = clutter.wrench(np.random.default_rng(3), 0.8)
    assert len(wrench.parts) == 1  # one forged outline, not boxes pasted together
    xy = wrench.parts[0].pts[:, :2]
    assert not (np.hypot(xy[:, 0] - L, xy[:, 1]) < head * 0.2).any()  # the ring's eye is open
    assert (np.hypot(xy[:, 0] - L, xy[:, 1]) < head * 0.44).sum() > 100  # around it, the ring
    z = wrench.parts[0].pts[:, 2]
    assert np.abs(z).max() <= t / 2 + 0.5
    edge = np.abs(xy[:, 1]) > w / 2 - 0.6  # along the shank's sides the faces are rounded off
    shank = (xy[:, 0] > L * 0.4) & (xy[:, 0] < L * 0.6)
    assert np.ptp(z[shank & edge]) < np.ptp(z[shank & ~edge]) - 1.0

    for seed in range(20):
        h = clutter.hammer(np.random.default_rng(seed), 0.8)
        handle = [p for p in h.parts if p.material in ("wood", "pvc")]
        if handle:
            break
    pts = handle[0].pts
    mid = pts[np.abs(pts[:, 0]) < 1.0]  # a slice across the handle
    centre, side = mid[np.abs(mid[:, 1]) < 2], mid[np.abs(mid[:, 1]) > 11]
    assert np.ptp(side[:, 2]) < np.ptp(centre[:, 2]) - 4  # oval, not a square bar


def test_a_change_of_shape_moves_nothing_else(monkeypatch):
    """From generator 5.0.0 the projection's sub-voxel jitter has its own random stream: an object
    drawn with more or fewer voxels changes its own pixels, never the placement, palette, noise or
    labels of what is drawn after it (under 4.0.0 it shifted the scan's stream and with it the
    rest of the scan, so no change of shape could be compared scan for scan). Within the same
    extent: since 6.0.0 an object's size decides whether and how it fits its parcel."""
    from detector.synth import clutter

    before = [simulate(77, i) for i in range(4)]
    for kind, (make, weight) in list(clutter.CLUTTER.items()):
        def heavier(rng, p, make=make):
            o = make(rng, p)
            lo, hi = o.bounds()  # 37 more voxels at its middle: a change of shape within the same extent
            return o.add(np.tile((lo + hi) / 2, (37, 1)).astype(np.float32), "steel", p, 0.01)
        monkeypatch.setitem(clutter.CLUTTER, kind, (heavier, weight))
    after = [simulate(77, i) for i in range(4)]
    for a, b in zip(before, after, strict=True):
        for k in ("clutter", "render", "kvp", "noise_i0", "blur_sigma", "jpeg_quality", "mm_per_px", "container"):
            assert a.meta[k] == b.meta[k], k
        assert [(x["label"], x["kind"]) for x in a.boxes] == [(x["label"], x["kind"]) for x in b.boxes]
        # a box is the threat's visible extent, which the (changed) items over it may move by a pixel
        assert all(np.abs(np.subtract(x["box"], y["box"])).max() <= 1 for x, y in zip(a.boxes, b.boxes, strict=True))
    assert any(not np.array_equal(a.image, b.image) for a, b in zip(before, after, strict=True))
