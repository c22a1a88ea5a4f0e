"""`xfd`: the project's one command-line tool."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


class CliError(Exception):
    pass


def _fmt(examples: str) -> str:
    return "examples:\n" + "\n".join("  " + line for line in examples.strip().splitlines())


def _flips_arg(p) -> None:
    """--flips, as xfd eval, detect and robustness take it (detector.engine.FLIPS)."""
    p.add_argument("--flips", type=int, default=None, choices=[1, 2, 4],
                   help="read each crop also mirrored: 1 (no), 2 (left-right) or 4 (and top-bottom, and both), scores "
                        "averaged over the readings (default: as the model's thresholds were calibrated)")


def _sub(sp, name, help_, examples):
    return sp.add_parser(name, help=help_, description=help_, epilog=_fmt(examples),
                         formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="xfd",
        description="X-ray firearm-component detector: simulate scans, train, evaluate, export, detect, serve.",
        epilog=_fmt("xfd synth --out data/synth --n 1000 --seed 1\nxfd train --data data/synth/data.yaml\n"
                    "xfd detect scan.png --json\nxfd serve"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sp = p.add_subparsers(dest="cmd", metavar="COMMAND")

    s = _sub(sp, "synth", "generate simulated dual-energy parcel scans with labelled firearm components", """
xfd synth --out data/synth --n 2000 --seed 1
xfd synth --out data/test --n 300 --seed 2 --split test=1
xfd synth --out data/shifted --n 200 --seed 3 --split test=1 --shifted --raw""")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--n", type=int, required=True, help="number of scans")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--split", default="train=0.8,val=0.1,test=0.1", help="fractions per split (train, val, test)")
    s.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    s.add_argument("--shifted", action="store_true", help="off-distribution settings (resolution, clutter, palette)")
    s.add_argument("--wide", action="store_true",
                   help="wider randomisation for training: 0.6-1.8 mm/px, 3-50 items, hue +-15, more blur and noise range, fan beam on 70%%, tools on 50%%")
    s.add_argument("--display-effects", type=float, default=None, metavar="P",
                   help="share of scans given a vendor's display processing: sharpening, contrast stretch, "
                        "negative, burnt-in text (default 0: none)")
    s.add_argument("--display-jitter", type=float, default=None, metavar="P",
                   help="share of scans whose display is varied wider than the palette: hue turned up to 35 deg, "
                        "colour shown in grey, gamma 0.5-2, blur, edge enhancement, negatives (what xfd robustness "
                        "found costly; default 0: none)")
    s.add_argument("--belt-stretch", type=float, default=None, metavar="P",
                   help="share of scans with non-square pixels: along the belt stretched or squashed by 0.75-1.33x, "
                        "as a belt speed or line rate off the vendor's setting does (default 0: square pixels)")
    s.add_argument("--fan-beam", type=float, default=None, metavar="P",
                   help="share of scans projected through a line scanner's fan beam (rows scale with height above "
                        "the belt; walls become bands). Default 0 (a parallel projection); --wide: 0.7")
    s.add_argument("--tools", type=float, default=None, metavar="P",
                   help="share of scans that also hold 1-2 gun-shaped hand tools (glue, caulking, staple, paint spray "
                        "guns; never labelled). Default 0; --wide: 0.5")
    s.add_argument("--soft-contents", type=float, default=None, metavar="P",
                   help="share of scans that also hold soft goods (folded clothing, food bags, paper and bubble-wrap "
                        "packing) and small metal confusers (pens with springs, underwires, buckles, hair pins); "
                        "default 0: none")
    s.add_argument("--wrap-clutter", type=float, default=None, metavar="P",
                   help="share of clutter items wrapped in foil or cloth round their outline, as 15 %% of threats are "
                        "(default 0: only threats are ever wrapped, a cue no real parcel offers; xfd cues)")
    s.add_argument("--threat-mix", default=None, metavar="CLASS=W,...",
                   help="weights of the threat classes drawn, e.g. gun=1,frame=2,magazine=2 (classes left out weigh 0; "
                        "default gun 0.36, each component about 0.11)")
    s.add_argument("--gray", type=float, default=None, help="share of grayscale scans (default 0.2)")
    s.add_argument("--fit-contents", action=argparse.BooleanOptionalAction, default=None,
                   help="only what fits in the parcel: clutter longer or taller than its container is turned or laid "
                        "flat to fit, else left out, and packing stops at 90%% of the container's volume (the default "
                        "since generator 6.0.0; --no-fit-contents draws 5.0.0's loose parcels, where items may stick "
                        "out through the walls and overfill)")
    s.add_argument("--side-view", action="store_true",
                   help="dual-view scanner: also write each parcel's side view (a horizontal beam across the belt, "
                        "same objects in the same poses) as NAME_side.png with its own labels; the manifest groups "
                        "the two views by parcel and xfd eval scores parcels as well as images")
    s.add_argument("--mm-per-px", default=None, metavar="LO,HI",
                   help="detector pitch drawn per scan, mm per pixel, e.g. your scanner's 1.5 (default 0.8,1.35; "
                        "--shifted 1.3,1.7; --wide 0.6,1.8)")
    s.add_argument("--clutter", default=None, metavar="LO,HI",
                   help="items of clutter per parcel before scaling by parcel size (default 5,30; --shifted 25,55; "
                        "--wide 3,50; envelopes hold 1-5)")
    s.add_argument("--palette-shift", type=float, default=None, metavar="DEG",
                   help="degrees added to every hue anchor of the colour palette (default 0; --shifted 12)")
    s.add_argument("--raw", action="store_true", help="also write raw 16-bit low/high energy images")

    g = _sub(sp, "gallery", "a catalogue of what the simulator draws: each threat class and gun-like confuser alone, "
                            "several instances in each orientation, rendered as scans (PNG or JPEG, and a JSON index beside it)", """
xfd gallery --out datasets/samples/gallery_threats.jpg --what threats --tile 180
xfd gallery --out /tmp/confusers.png --what confusers --gray
xfd gallery --out /tmp/fine.png --mm-per-px 0.6 --per-row 8 --seed 3""")
    g.add_argument("--out", required=True, help="the sheet, a .png or .jpg path (its index is written beside it as .json)")
    g.add_argument("--what", default="all", choices=["threats", "confusers", "all"],
                   help="threat classes (guns of five kinds, then each component class), gun-like confusers (toy guns, "
                        "tools, tubes, cartridge-sized metal, gun-shaped tools), or both (default)")
    g.add_argument("--per-row", type=int, default=6, help="instances per row, 1-12 (default 6: flat, flat, tilted, edge, end, flat)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--mm-per-px", type=float, default=1.0, help="detector pitch, 0.4-2.5 mm (default 1.0)")
    g.add_argument("--tile", type=int, default=280, help="tile side in pixels, 96-640 (default 280)")
    g.add_argument("--gray", action="store_true", help="single-energy grayscale display instead of pseudo-colour")

    t = _sub(sp, "train", "train a detector (ultralytics, offline, resumable)", """
xfd train --data data/synth/data.yaml
xfd train --data data/synth/data.yaml --model yolo26n-p2 --epochs 60 --imgsz 640
xfd train --data data/mix.yaml --weights models/default/model.pt --name finetune
xfd train --name default --resume""")
    t.add_argument("--data", help="dataset YAML")
    t.add_argument("--model", help="architecture: yolo26n (default), yolo11n, yolo26n-p2")
    t.add_argument("--weights", help="fine-tune from this checkpoint (ours)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--imgsz", type=int)
    t.add_argument("--batch", type=int)
    t.add_argument("--workers", type=int)
    t.add_argument("--device", default="cpu", help="cpu or a CUDA index like 0")
    t.add_argument("--project", default="runs/train")
    t.add_argument("--name", default="default")
    t.add_argument("--config", help="hyper-parameter YAML (default configs/train.yaml)")
    t.add_argument("--resume", action="store_true", help="resume the interrupted run --project/--name")
    t.add_argument("--fraction", type=float, default=1.0, help="use this share of the training images")
    t.add_argument("--hours", type=float, default=None,
                   help="train for this wall-clock time instead of --epochs (the LR schedule fits the time)")

    e = _sub(sp, "eval", "evaluate a model: mAP and screening Pd/Pfa, calibrate thresholds", """
xfd eval --model models/default --data data/test/data.yaml --split test --out reports/test
xfd eval --model runs/train/default/weights/best.pt --data data/synth/data.yaml --split val --calibrate --target-pfa 0.05""")
    e.add_argument("--model", required=True, help="model directory or .pt/.onnx/.xml file")
    e.add_argument("--data", required=True, help="dataset YAML")
    e.add_argument("--split", default="test")
    e.add_argument("--out", required=True, help="report directory")
    e.add_argument("--calibrate", action="store_true", help="choose per-class thresholds on this split (must not be test)")
    e.add_argument("--target-pfa", type=float, default=0.05)
    e.add_argument("--pfa-confidence", type=float, default=None, metavar="C",
                   help="with --calibrate: the Clopper-Pearson upper bound of Pfa at confidence C (e.g. 0.9) must meet "
                        "the target, not the calibration set's own Pfa (conservative; costs Pd)")
    e.add_argument("--min-gain", type=int, default=3, metavar="N",
                   help="with --calibrate: lower a class's threshold only where that detects at least N more threat "
                        "scans of the calibration set (default 3; 0: any gain)")
    e.add_argument("--backend", default=None, help="torch, onnx, openvino (default: best available)")
    e.add_argument("--tile", default="auto", choices=["auto", "on", "off"])
    _flips_arg(e)
    e.add_argument("--perturb", default=None, metavar="NAME[:P]",
                   help="alter every scan before the model, as another scanner might (scale:0.5, jpeg:25, blur:2, "
                        "noise:12, gamma:1.6, hue:30, gray, invert, sharpen:1.5, frame:0.1; see xfd robustness)")
    e.add_argument("--declare-pixels", action="store_true",
                   help="tell the engine each scan's pixel size from its manifest (mm_per_px, mm_per_px_along_belt; "
                        "altered with --perturb scale/stretch), as a scanner sending pixel_mm would")

    x = _sub(sp, "export", "export to ONNX and OpenVINO FP32/INT8, checked against PyTorch", """
xfd export --weights runs/train/default/weights/best.pt --out models/default --data data/synth/data.yaml""")
    x.add_argument("--weights", required=True)
    x.add_argument("--out", required=True, help="model directory to write")
    x.add_argument("--data", required=True, help="dataset YAML: its val images calibrate INT8 and check the exports")
    x.add_argument("--imgsz", type=int, default=None)
    x.add_argument("--formats", default="onnx,openvino,openvino-int8")
    x.add_argument("--name", default="xfd", help="model name in model.json and responses")
    x.add_argument("--version", default=None, help="model version (default: a timestamp)")
    x.add_argument("--compact", action="store_true", help="FP16-stored OpenVINO weights, no ONNX file: a few MB to ship")
    x.add_argument("--int8-max-drop", type=float, default=None, metavar="D",
                   help="INT8 with accuracy control: return layers to floating point until the val split's scan-level "
                        "Pd at Pfa <= 5%% is within D of FP32's (e.g. 0.005; slower)")

    d = _sub(sp, "detect", "detect firearm components in scan images (PNG, JPEG, TIFF, BMP, DICOS/DICOM)", """
xfd detect scan.png
xfd detect a.png b.jpg --model models/default --save-dir out/
xfd detect bag.dcm --tdr-dir reports/    # DICOS in, DICOS Threat Detection Reports out
xfd detect --raw-low low.png --raw-high high.png""")
    d.add_argument("images", nargs="*")
    d.add_argument("--model", default=None, help="model directory (default: models/default)")
    d.add_argument("--json", action="store_true", help="one JSON object per line (default: also human summary)")
    d.add_argument("--save-dir", default=None, help="write annotated PNGs here")
    d.add_argument("--tdr-dir", default=None, help="write each scan's DICOS Threat Detection Report here "
                   "(<name>_tdr.dcm; it references the DICOS image when the scan was one)")
    d.add_argument("--backend", default=None)
    d.add_argument("--tile", default="auto", choices=["auto", "on", "off"])
    _flips_arg(d)
    d.add_argument("--pixel-mm", default=None, metavar="S|ROW,COL",
                   help="the scanner's pixel size in mm ('1.0', or '1.0,0.8': between rows, between columns, i.e. "
                        "across and along the belt); non-square or untrained sizes are analysed resampled (DICOS: "
                        "read from PixelSpacing when not given)")
    d.add_argument("--raw-low", default=None, help="16-bit low-energy image of a raw dual-energy pair")
    d.add_argument("--raw-high", default=None, help="16-bit high-energy image of a raw dual-energy pair")

    v = _sub(sp, "serve", "run the HTTP inference service and operator console", """
xfd serve
xfd serve --host 0.0.0.0 --port 8080 --model models/default --data-dir /var/lib/xfd""")
    v.add_argument("--host", default=None)
    v.add_argument("--port", type=int, default=None)
    v.add_argument("--model", default=None)
    v.add_argument("--data-dir", default=None)

    i = _sub(sp, "import", "import a dataset (YOLO, COCO, VOC, public X-ray sets, service reviews)", """
xfd import coco path/to/annotations.json --out data/imported --class-map configs/class_maps/pidray.yaml
xfd import voc path/to/VOCdevkit --out data/voc
xfd import sixray path/to/SIXray --out data/sixray
xfd import gdxray path/to/GDXray/Baggage --out data/gdxray
xfd import dicos path/to/dicos-archive --out data/seized   # DX images + ground-truth/operator TDRs
xfd import reviews --data-dir var --out data/reviews""")
    i.add_argument("format", help="yolo, coco, voc, sixray, pidray, clcxray, gdxray, opixray, hixray, dicos, reviews")
    i.add_argument("source", nargs="?")
    i.add_argument("--out", required=True)
    i.add_argument("--class-map", default=None)
    i.add_argument("--data-dir", default=None)
    i.add_argument("--pixel-mm", default=None, metavar="S|ROW,COL",
                   help="the scanner's pixel size in mm for images whose file does not say (DICOS PixelSpacing and "
                        "the service's records win), kept in the manifest for xfd eval --declare-pixels")

    rb = _sub(sp, "robustness", "evaluate a model on held-out scans altered as other scanners alter them "
              "(pixel size, non-square pixels, JPEG, blur, noise, display curve, palette, grey, negative, edge enhancement)", """
xfd robustness --model models/default --data data/synth-test/data.yaml --split test --out reports/robustness
xfd robustness --model models/default --data data/synth-test/data.yaml --out reports/rb --perturbations scale:0.5,jpeg:25""")
    rb.add_argument("--model", default="models/default", help="model directory (default: models/default)")
    rb.add_argument("--data", required=True, help="dataset YAML")
    rb.add_argument("--split", default="test")
    rb.add_argument("--out", required=True, help="report directory: robustness.md / .json, one eval report per perturbation")
    rb.add_argument("--perturbations", default=None, metavar="P1,P2,...",
                    help="comma-separated NAME[:PARAM] (default: scale:0.5,0.75,1.5, stretch:0.8,1.25, jpeg:25, blur:2, noise:12, "
                         "gamma:0.6,1.6, hue:30, gray, invert, sharpen:1.5, frame:0.1)")
    rb.add_argument("--backend", default=None, help="default: the model's served backend")
    rb.add_argument("--declare-pixels", action="store_true",
                    help="tell the engine each scan's altered pixel size (from the manifest), as a scanner sending "
                         "pixel_mm would: what a site declaring its pixel size gets")
    rb.add_argument("--tile", default="auto", choices=["auto", "on", "off"])
    _flips_arg(rb)

    cu = _sub(sp, "cues", "does a model read what the simulator draws only round threats (finer voxels, foil or "
              "cloth wrapping)? Each threat and gun-like confuser alone on the belt, drawn with and without it", """
xfd cues --model models/default --out reports/cues
xfd cues --model artifacts/cand --out reports/cues-cand --per-row 20""")
    cu.add_argument("--model", default="models/default", help="model directory (default: models/default)")
    cu.add_argument("--out", required=True, help="report directory: cues.md and cues.json")
    cu.add_argument("--backend", default=None, help="default: the model's served backend")
    cu.add_argument("--per-row", type=int, default=None, help="instances of each threat and confuser kind (default 10)")
    cu.add_argument("--seed", type=int, default=0)
    cu.add_argument("--mm-per-px", type=float, default=1.0, help="the pixel size the objects are drawn at (default 1.0)")
    _flips_arg(cu)

    c = _sub(sp, "compare", "evaluate an old and a new model on the same held-out scans, side by side", """
xfd compare --old models/default --new models/candidate --data data/synth-test/data.yaml --split test --out reports/compare""")
    c.add_argument("--old", required=True)
    c.add_argument("--new", required=True)
    c.add_argument("--data", required=True)
    c.add_argument("--split", default="test")
    c.add_argument("--out", required=True)

    po = _sub(sp, "pool", "screening numbers pooled over several `xfd eval` reports, in scan counts", """
xfd pool reports/test reports/shifted reports/vendor reports/fan reports/tools --out reports/pooled.json
xfd pool new/test new/shifted --against old/test old/shifted   # paired: the difference and its interval""")
    po.add_argument("reports", nargs="+", help="`xfd eval --out` directories (or their report.json)")
    po.add_argument("--name", default="pooled", help="the row's name in the printed table")
    po.add_argument("--out", help="write the pooled numbers (and the pooled curve) as JSON")
    po.add_argument("--against", nargs="+", metavar="REPORT",
                    help="an older model's reports on the same sets: compare paired (bootstrap over the same scans)")
    po.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples for --against")

    mx = _sub(sp, "mix", "one training set from several datasets with weights", """
xfd mix --data data/synth-train/data.yaml=1 --data data/reviews/data.yaml=3 --out data/mix""")
    mx.add_argument("--data", action="append", required=True, help="YAML=WEIGHT (weight defaults to 1)")
    mx.add_argument("--out", required=True)
    mx.add_argument("--seed", type=int, default=0)

    m = _sub(sp, "models", "model registry of the service: list, add, promote (hot swap), rollback", """
xfd models add models/candidate --version 2026.12.01
xfd models promote 2026.12.01
xfd models rollback
xfd models list""")
    m.add_argument("action", choices=["list", "add", "promote", "rollback"])
    m.add_argument("target", nargs="?", help="model directory (add) or version (promote)")
    m.add_argument("--version", default=None, help="version name when adding (default: the model's own)")
    m.add_argument("--data-dir", default=None)

    b = _sub(sp, "bench", "benchmarks: engine latency per backend vs stock ultralytics, simulator speed", """
xfd bench
xfd bench --n 50 --model models/default""")
    b.add_argument("--model", default=None)
    b.add_argument("--n", type=int, default=30)
    b.add_argument("--out", default=None, help="write results JSON here")
    b.add_argument("--soak", type=int, default=0, help="extra requests to the service before reading its RSS growth")
    b.add_argument("--no-train", action="store_true", help="skip the training-throughput measurement")

    k = _sub(sp, "keys", "manage API keys of the service", """
xfd keys create --role integrator --name lane-3 --lanes lane-3 --expires-days 365
xfd keys list
xfd keys revoke KEY_ID""")
    k.add_argument("action", choices=["create", "list", "revoke"])
    k.add_argument("key_id", nargs="?")
    k.add_argument("--role", choices=["integrator", "operator", "admin"], default=None)
    k.add_argument("--name", default="")
    k.add_argument("--data-dir", default=None)
    k.add_argument("--expires-days", type=float, default=None, metavar="D",
                   help="create: the key is refused (401 key_expired) after D days (default: never)")
    k.add_argument("--lanes", default=None, metavar="LANE,...",
                   help="create: an integrator key that may send scans for these lanes only (403 otherwise)")

    ln = _sub(sp, "lanes", "each lane's alarm rate against the false-alarm rate the model was calibrated for, with the "
                           "operators' reviews (a lane far above it runs on images the model was not calibrated for)", """
xfd lanes --data-dir var --days 7
xfd lanes --data-dir var --json""")
    ln.add_argument("--data-dir", default=None, help="the service's data directory (default XFD_DATA_DIR or var/)")
    ln.add_argument("--days", type=float, default=None, help="only the last D days (default: every scan stored)")
    ln.add_argument("--model", default=None, help="the model whose calibration to compare with (default XFD_MODEL or models/default)")
    ln.add_argument("--min-scans", type=int, default=100, help="judge a lane against the calibration from this many scans (default 100)")
    ln.add_argument("--json", action="store_true", help="JSON instead of a table")

    st = _sub(sp, "storage", "the service's data directory: free space, images kept, retention purge, backup", """
xfd storage status
xfd storage purge --dry-run                    # what the retention policy would delete now
xfd storage purge --retain-clear-days 7        # images of clear, unreviewed scans older than a week
xfd storage purge --retain-days 365 --retain-clear-days 30
xfd storage backup --out /backup/xfd                # a consistent copy; again later copies only what is new""")
    st.add_argument("action", choices=["status", "purge", "backup"])
    st.add_argument("--data-dir", default=None)
    st.add_argument("--retain-days", default=None, metavar="D",
                    help="delete every scan's image older than D days (0: never; default XFD_RETAIN_DAYS, else 0)")
    st.add_argument("--retain-clear-days", default=None, metavar="D",
                    help="delete sooner the images of clear, unreviewed scans whose parcel has no alarm or review "
                         "(0: never; default XFD_RETAIN_CLEAR_DAYS, else 30)")
    st.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")
    st.add_argument("--out", default=None, metavar="DIR",
                    help="backup: where to (the database as a snapshot, images, registered models; "
                         "`xfd serve --data-dir DIR` runs on it)")
    st.add_argument("--no-images", action="store_true", help="backup: the database and models only")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.cmd:
        parser.print_help()
        return 0
    try:
        return int(COMMANDS[args.cmd](args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (CliError, ValueError, FileNotFoundError, PermissionError, KeyError) as e:
        msg = e.args[0] if e.args else str(e)
        print(f"xfd {args.cmd}: error: {msg}", file=sys.stderr)
        return 2


def cmd_synth(a) -> int:
    from .synth.dataset import parse_range, write_dataset
    from .synth.scene import SceneConfig

    if a.shifted and a.wide:
        raise CliError("--shifted and --wide are different configurations: choose one")
    cfg = SceneConfig.shifted() if a.shifted else SceneConfig.wide() if a.wide else SceneConfig()
    # shares of scans: flag -> SceneConfig field
    for flag, field in (("gray", "p_gray"), ("display_effects", "p_display"), ("display_jitter", "p_display_jitter"),
                        ("fan_beam", "p_fan"), ("belt_stretch", "p_belt_stretch"),
                        ("tools", "p_tools"), ("soft_contents", "p_soft"), ("wrap_clutter", "p_wrap_clutter")):
        value = getattr(a, flag)
        if value is None:
            continue
        if not 0 <= value <= 1:
            raise CliError(f"--{flag.replace('_', '-')} must be between 0 and 1, got {value}")
        setattr(cfg, field, value)
    if a.fit_contents is not None:
        cfg.fit_contents = a.fit_contents
    if a.side_view:
        cfg.side_view = True
    if a.mm_per_px is not None:
        cfg.mm_per_px = parse_range(a.mm_per_px, "--mm-per-px")
    if a.clutter is not None:
        cfg.clutter = parse_range(a.clutter, "--clutter", integer=True)
    if a.palette_shift is not None:
        cfg.palette_shift = a.palette_shift
    if a.threat_mix is not None:
        from .synth.threats import parse_threat_mix

        cfg.threat_mix = parse_threat_mix(a.threat_mix)
    if a.workers is not None and a.workers < 1:
        raise CliError(f"--workers must be >= 1, got {a.workers}")
    m = write_dataset(a.out, a.n, a.seed, a.split, a.workers, cfg, raw=a.raw)
    print(json.dumps({"out": str(Path(a.out).resolve()), "scans": m["counts"]["scans"], **({"parcels": m["counts"]["parcels"]} if a.side_view else {}),
                      "objects": m["counts"]["objects"],
                      "clean_scans": m["counts"]["clean_scans"], "scans_per_second": m["scans_per_second"]}))
    return 0


def cmd_train(a) -> int:
    from training.train import train

    if not a.resume and not a.data:
        raise CliError("--data is required (or --resume)")
    if a.hours is not None and a.hours <= 0:
        raise CliError(f"--hours must be positive, got {a.hours}")
    run = train(a.data, a.model, a.weights, a.epochs, a.imgsz, a.batch, a.workers, a.device, a.project, a.name,
                a.resume, a.config, a.fraction, time=a.hours)
    print(f"run directory: {run}")
    return 0


def cmd_eval(a) -> int:
    from training.evaluate import evaluate_cli

    return evaluate_cli(a)


def cmd_export(a) -> int:
    from training.export import export_cli

    return export_cli(a)


def cmd_detect(a) -> int:
    from .detect_cli import detect_cli

    return detect_cli(a)


def cmd_serve(a) -> int:
    from serve.app import run_server

    return run_server(a)


def cmd_import(a) -> int:
    from training.importers import import_cli

    return import_cli(a)


def cmd_robustness(a) -> int:
    from training.robustness import robustness_cli

    return robustness_cli(a)


def cmd_cues(a) -> int:
    from training.cues import cues_cli

    return cues_cli(a)


def cmd_compare(a) -> int:
    from training.compare import compare_cli

    return compare_cli(a)


def cmd_pool(a) -> int:
    from training.pool import pool_cli

    return pool_cli(a)


def cmd_mix(a) -> int:
    from training.mix import mix

    sources = []
    for item in a.data:
        path, _, w = item.partition("=")
        try:
            sources.append((path, float(w) if w else 1.0))
        except ValueError:
            raise CliError(f"bad weight in {item!r}: use PATH=NUMBER") from None
    print(json.dumps(mix(sources, a.out, a.seed), indent=1))
    return 0


def cmd_models(a) -> int:
    from serve.registry import models_cli

    return models_cli(a)


def cmd_bench(a) -> int:
    from .bench import bench_cli

    return bench_cli(a)


def cmd_gallery(a) -> int:
    from .synth.gallery import gallery

    meta = gallery(a.out, what=a.what, per_row=a.per_row, seed=a.seed, mm_per_px=a.mm_per_px, tile=a.tile, gray=a.gray)
    rows = len({t["row"] for t in meta["tiles"]})
    print(f"{a.out}: {rows} rows x {a.per_row} ({meta['size_px'][0]} x {meta['size_px'][1]} px); index "
          f"{Path(a.out).with_suffix('.json')}")
    return 0


def cmd_keys(a) -> int:
    from serve.keys_cli import keys_cli

    return keys_cli(a)


def cmd_lanes(a) -> int:
    from serve.lanes import lanes_cli

    return lanes_cli(a)


def cmd_storage(a) -> int:
    from serve.storage_cli import storage_cli

    return storage_cli(a)


COMMANDS = {"synth": cmd_synth, "gallery": cmd_gallery, "train": cmd_train, "eval": cmd_eval, "export": cmd_export, "detect": cmd_detect,
            "serve": cmd_serve, "import": cmd_import, "bench": cmd_bench, "keys": cmd_keys, "compare": cmd_compare,
            "robustness": cmd_robustness, "mix": cmd_mix, "pool": cmd_pool, "models": cmd_models,
            "storage": cmd_storage, "lanes": cmd_lanes, "cues": cmd_cues}

if __name__ == "__main__":
    sys.exit(main())
