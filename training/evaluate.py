"""`xfd eval`: detection metrics, screening Pd/Pfa, stratified results, plots,
and operating-point calibration (never on the test split)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

from detector import machine, offline
from detector.imaging import ImageError
from training import metrics as M
from training.data_yaml import dataset_root

IMG_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class EvalError(ValueError):
    pass


def _list_lines(src: Path):
    """(line number, text, image path) for each line of a .txt list of images (what `xfd mix`
    writes); a relative line is taken from the list's own folder."""
    for n, line in enumerate(src.read_text().splitlines(), 1):
        line = line.strip()
        if line:
            yield n, line, Path(line) if Path(line).is_absolute() else (src.parent / line).resolve()


def _split_images(root: Path, entry) -> list[Path]:
    """A split's images in the forms ultralytics reads: a directory, a .txt list of image paths
    (what `xfd mix` writes; relative lines are taken from the list's own folder), or a list of them."""
    entries = entry if isinstance(entry, list) else [entry]
    images: list[Path] = []
    for e in entries:
        src = root / str(e)
        if src.is_dir():
            images += [ip for ip in sorted(src.iterdir()) if ip.suffix.lower() in IMG_EXT]
        elif src.is_file() and src.suffix.lower() == ".txt":
            for n, line, ip in _list_lines(src):
                if ip.suffix.lower() not in IMG_EXT:
                    raise EvalError(f"{src}:{n}: not an image path: {line}")
                if not ip.is_file():
                    raise EvalError(f"{src}:{n}: image not found: {ip}")
                images.append(ip)
        else:
            raise EvalError(f"images not found: {src} (a directory or a .txt list of images)")
    return images


def _manifest_meta(image: Path, root: Path, cache: dict[Path, dict]) -> dict:
    """The simulator's record of one scan, from the manifest.json of the dataset the image lives in
    (the YAML's own root, or for a mixed set's list the source dataset's root)."""
    for base in [root, *list(image.parents)[1:4]]:
        if base not in cache:
            mf = base / "manifest.json"
            cache[base] = {}
            if mf.is_file():
                try:
                    cache[base] = {r["file"]: r for r in json.loads(mf.read_text()).get("scans", [])}
                except (OSError, ValueError, KeyError, TypeError):
                    cache[base] = {}
        try:
            rel = str(image.relative_to(base))
        except ValueError:
            continue
        if rel in cache[base]:
            return cache[base][rel]
    return {}


def load_split(data_yaml: str | Path, split: str) -> tuple[list[dict], list[str]]:
    p = Path(data_yaml)
    if not p.exists():
        raise EvalError(f"dataset YAML not found: {p}")
    offline.refuse_download_key(p)
    d = yaml.safe_load(p.read_text())
    if not d.get(split):
        raise EvalError(f"dataset {p} has no '{split}' split (has: {', '.join(k for k in ('train', 'val', 'test') if d.get(k))})")
    root = dataset_root(p, d, EvalError)
    try:
        images = _split_images(root, d[split])
    except EvalError as e:
        raise EvalError(f"{split} {e}") from None
    names = d["names"]
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    cache: dict[Path, dict] = {}
    items = [{"image": ip, "label": img2label(ip), "meta": _manifest_meta(ip, root, cache)} for ip in images]
    if not items:
        raise EvalError(f"no images in the {split} split of {p}")
    return items, names


def _image_hashes(d: Path) -> dict[str, str]:
    """Content hashes of a split's images: a directory, or a .txt list of image paths (xfd mix)."""
    if d.is_file():
        files = [ip for _, _, ip in _list_lines(d)]
    else:
        files = sorted(d.rglob("*"))
    return {hashlib.sha256(f.read_bytes()).hexdigest(): str(f) for f in files
            if f.suffix.lower() in IMG_EXT and f.is_file()}


def _split_dirs(data_yaml: Path, skip: str | None = None) -> list[Path]:
    """A dataset YAML's split sources: image directories, or .txt lists of images (xfd mix)."""
    try:
        d = yaml.safe_load(data_yaml.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    root = dataset_root(data_yaml, d)  # ValueError for a moved dataset: the caller says what it could not check
    out = []
    for s in ("train", "val", "test"):
        if s == skip:
            continue
        for e in d.get(s) if isinstance(d.get(s), list) else [d.get(s)]:
            if isinstance(e, str) and ((root / e).is_dir() or ((root / e).suffix == ".txt" and (root / e).is_file())):
                out.append(root / e)
    return out


def leakage_check(items: list[dict], data: str | Path, split: str, engine) -> dict:
    """Content-hash the evaluated images against the images the model was trained on (the
    dataset named in the checkpoint's train_args, when present here) and the other splits of
    the same dataset YAML. Peers' repositories keep validating on training images by mistake."""
    dirs = _split_dirs(Path(data), skip=split)
    missing: list[str] = []
    torch_file = engine.info.files.get("torch")
    if torch_file and Path(torch_file).exists():
        try:
            import torch

            ck = torch.load(torch_file, map_location="cpu", weights_only=False)
            trained_on = Path(str((ck.get("train_args") or {}).get("data", "")))
            if trained_on.is_file():
                try:
                    dirs += [d for d in _split_dirs(trained_on) if d not in dirs]
                except ValueError:  # its YAML is there but names a moved dataset: not checked, and said so
                    missing.append(str(trained_on))
            elif str(trained_on) not in ("", "."):  # trained elsewhere (a GPU machine): say it was not checked
                missing.append(str(trained_on))
        except Exception:  # an unreadable checkpoint is the engine's business, not this check's
            pass
    evaluated = {hashlib.sha256(it["image"].read_bytes()).hexdigest(): str(it["image"]) for it in items}
    seen: dict[str, str] = {}
    for d in dirs:
        if d.is_dir() and d.resolve() == items[0]["image"].parent.resolve():
            continue
        seen.update(_image_hashes(d))
    overlap = sorted(set(evaluated) & set(seen))
    return {"checked_against": [str(d) for d in dirs], "images_checked": len(seen), "overlap": len(overlap),
            "not_found": missing,
            "examples": [{"evaluated": evaluated[h], "also_in": seen[h]} for h in overlap[:5]]}


def img2label(ip: Path) -> Path:
    """YOLO convention: the last /images/ in the path becomes /labels/, suffix .txt."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    s = str(ip)
    i = s.rfind(sa)
    return Path((s[:i] + sb + s[i + len(sa):]) if i >= 0 else s).with_suffix(".txt")


def read_gt(label: Path, w: int, h: int) -> np.ndarray:
    if not label.exists():
        return np.zeros((0, 5), np.float32)
    rows = [list(map(float, ln.split()[:5])) for ln in label.read_text().splitlines() if ln.strip()]
    if not rows:
        return np.zeros((0, 5), np.float32)
    a = np.array(rows, np.float32)
    c, x, y, bw, bh = a.T
    return np.stack([c, (x - bw / 2) * w, (y - bh / 2) * h, (x + bw / 2) * w, (y + bh / 2) * h], 1)


def predict(engine, items: list[dict], tile: str = "auto", conf: float = 0.001, progress: bool = True, perturb=None,
            pixel_mm: list | None = None, refused: list | None = None, networks: list | None = None):
    """perturb: a function (rgb, index) -> rgb applied before the model (training.robustness);
    when it resizes, the labelled boxes are scaled with it, and when it has a `shift` (a frame
    around the scan) they move by it. pixel_mm: per scan, the pixel size
    declared to the engine (Engine.detect), or None. refused: a list to collect the scans the engine
    refuses to analyse (ImageError: a scan dark throughout, ...) as {index, code}, each with no
    detections; without it a refusal is an error. networks: a list to collect which network read
    each scan ("main", or "grey" where the model routes grey scans to its grey network)."""
    preds, gts, times = [], [], []
    t0 = time.time()
    for i, it in enumerate(items):
        img = cv2.imread(str(it["image"]), cv2.IMREAD_COLOR)
        if img is None:
            raise EvalError(f"unreadable image: {it['image']}")
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        gt = read_gt(it["label"], rgb.shape[1], rgb.shape[0])
        if perturb is not None:
            h0, w0 = rgb.shape[:2]
            rgb = np.ascontiguousarray(perturb(rgb, i))
            if hasattr(perturb, "shift"):
                dx, dy = perturb.shift(h0, w0)
                gt = gt + np.array([0, dx, dy, dx, dy], np.float32)
            elif rgb.shape[:2] != (h0, w0):
                gt = gt * np.array([1, rgb.shape[1] / w0, rgb.shape[0] / h0, rgb.shape[1] / w0, rgb.shape[0] / h0], np.float32)
        try:
            res = engine.detect(rgb, tile=tile, conf=conf, **({"pixel_mm": pixel_mm[i]} if pixel_mm else {}))
        except ImageError as e:
            if refused is None:
                raise
            refused.append({"index": i, "code": e.code})
            p = np.zeros((0, 6), np.float32)
            if networks is not None:
                networks.append("main")
        else:
            if networks is not None:
                networks.append(res.extra.get("network", "main"))
            times.append(res.timing_ms["total"])
            p = np.array([[d.box.x1, d.box.y1, d.box.x2, d.box.y2, d.confidence, d.class_id] for d in res.detections],
                         np.float32).reshape(-1, 6)
        preds.append(p)
        gts.append(gt)
        if progress and (i + 1) % max(1, len(items) // 10) == 0:
            el = time.time() - t0
            print(f"eval {i + 1}/{len(items)}  ETA {el / (i + 1) * (len(items) - i - 1):.0f}s", flush=True)
    return preds, gts, times


HIDDEN_BELOW = 0.1  # visibility under which a simulated threat counts as hidden (see strata)
# parcel fullness strata by items of clutter placed: (name, least, most)
CLUTTER_BANDS = (("0-9", 0, 9), ("10-24", 10, 24), ("25+", 25, 10**6))


def strata(items: list[dict]) -> dict[str, np.ndarray]:
    """Boolean masks over scans for each stratum the manifest supports."""
    out: dict[str, np.ndarray] = {}
    metas = [it["meta"] for it in items]
    if not any(metas):
        return out
    diff = np.array([m.get("difficulty", "") for m in metas])
    for d in ("easy", "hard", "concealed"):
        out[f"difficulty={d}"] = diff == d
    printed = np.array([bool(m.get("printed")) for m in metas])
    has = np.array([m.get("n_threats", 0) > 0 for m in metas])
    out["threat=printed"] = printed & has
    out["threat=metal"] = ~printed & has
    vis = [[o.get("visibility") for o in m.get("objects", [])] for m in metas]
    if any(v is not None for vs in vis for v in vs):  # generator >= 3.1.1
        # hidden: every threat in the scan lies where it changes the screen by < 4 grey levels on
        # at least 90% of its footprint (under steel, say): no screener could see it either
        hidden = np.array([bool(vs) and all(v is not None and v < HIDDEN_BELOW for v in vs) for vs in vis])
        out["visibility=hidden"] = hidden & has
        out["visibility=visible"] = ~hidden & has
    if all("n_clutter" in m for m in metas):
        # items of clutter placed in the parcel (soft contents not counted): the shifted set's
        # dense parcels (25-55 items) are what costs this model most (models/HISTORY.md, what the shifted set's loss is)
        n = np.array([int(m["n_clutter"]) for m in metas])
        for name, lo, hi in CLUTTER_BANDS:
            out[f"clutter={name}"] = (n >= lo) & (n <= hi)
    gray = np.array([bool(m.get("grayscale")) for m in metas])
    out["render=grayscale"] = gray
    out["render=colour"] = ~gray
    view = np.array([m.get("view") or "" for m in metas])
    for v in sorted(set(view) - {""}):  # views of parcels (xfd synth --side-view): each view's own images
        out[f"view={v}"] = view == v
    return out


def parcel_groups(items: list[dict]) -> list[np.ndarray] | None:
    """Each parcel's rows when the scans are views of parcels (a manifest's `parcel`, written by
    `xfd synth --side-view`), in order of first appearance; None when no scan names a parcel. A
    scan without one is a parcel of its own."""
    keys = [(it.get("meta") or {}).get("parcel") for it in items]
    if all(k is None for k in keys):
        return None
    rows: dict = {}
    for i, k in enumerate(keys):
        rows.setdefault(("parcel", k) if k is not None else ("scan", i), []).append(i)
    return [np.array(r) for r in rows.values()]


def parcel_rows(pc: dict) -> list[tuple[str, dict]]:
    """A report's `parcels` as table rows: all views, then each view alone."""
    return [("all views", pc["all_views"])] + [(f"{v} alone", x) for v, x in pc["each_view_alone"].items()]


def caught_in_one_view(pc: dict) -> str | None:
    """'side 8, top 28': threat parcels only one view caught, when there were two views."""
    only = pc.get("threat_parcels_caught_only_in")
    return ", ".join(f"{v} {k}" for v, k in only.items()) if only else None


def parcel_report(items: list[dict], any_max, hit_max, threat, theta, groups: list[np.ndarray]) -> dict:
    """Screening per parcel over all its views, against each view alone on the same parcels
    (what a single-view scanner would show of them), at the same thresholds. A parcel holds a
    threat when any view labels one, for every row alike (a threat out of one view's frame is
    still in the parcel)."""
    views = [(it.get("meta") or {}).get("view") or "single" for it in items]
    pa, ph, pt = M.parcel_tables(any_max, hit_max, threat, groups)
    if np.ndim(theta) == 2:  # each scan its network's thresholds: a parcel's views are one rendering, one network
        theta = np.stack([np.asarray(theta)[g[0]] for g in groups])
    both = M.screening(pa, ph, pt, theta)
    out = {"parcels": len(groups), "threat_parcels": int(pt.sum()), "views": sorted(set(views)),
           "all_views": {k: v for k, v in both.items() if k not in ("detected", "alarmed")}, "each_view_alone": {}}
    caught = {}
    for v in out["views"]:
        sub = [g[[views[i] == v for i in g]] for g in groups]
        if not all(len(x) for x in sub):  # a view some parcels lack: no like-for-like comparison
            continue
        va, vh, _ = M.parcel_tables(any_max, hit_max, threat, sub)
        one = M.screening(va, vh, pt, theta)
        caught[v] = one["detected"] & pt
        out["each_view_alone"][v] = {k: x for k, x in one.items() if k not in ("detected", "alarmed")}
    if len(caught) == 2:
        a, b = sorted(caught)
        out["threat_parcels_caught_only_in"] = {a: int((caught[a] & ~caught[b]).sum()), b: int((caught[b] & ~caught[a]).sum())}
    return out


OBJECT_FIELDS = ("kind", "orientation", "concealment")  # manifest fields each threat is broken down by


def threats_found_by(items: list[dict], preds: list[np.ndarray], theta: np.ndarray, names: list[str] | None = None,
                     iou_thr: float = 0.5, min_objects: int = 3) -> dict[str, list[dict]]:
    """Object-level recall at the operating point, broken down by what the simulator's manifest says
    of each threat: its kind (pistol_polymer, revolver, loose_cartridges, ...), its orientation
    (flat, edge, end, tilted) and its concealment. An object is found when an alarming detection of
    any class overlaps its box (IoU >= iou_thr), which is what Pd counts per scan. Groups of fewer
    than min_objects are left out; within a field, by class (in `names` order) and within a class
    least often found first."""
    theta = np.asarray(theta, np.float32)
    tally: dict[str, dict[tuple[str, str], list[int]]] = {f: {} for f in OBJECT_FIELDS}
    for i, (it, p) in enumerate(zip(items, preds, strict=True)):
        objs = [o for o in (it["meta"] or {}).get("objects", []) if isinstance(o, dict) and "box" in o]
        if not objs:
            continue
        alarm = p[p[:, 4] >= M.scan_theta(theta, i)[p[:, 5].astype(int)]] if len(p) else p
        boxes = np.array([o["box"] for o in objs], np.float32).reshape(-1, 4)
        found = (M.box_iou(boxes, alarm[:, :4]).max(1) >= iou_thr) if len(alarm) else np.zeros(len(objs), bool)
        for o, f in zip(objs, found, strict=True):
            for field in OBJECT_FIELDS:
                if o.get(field) is None:
                    continue
                t = tally[field].setdefault((str(o.get("label", "?")), str(o[field])), [0, 0])
                t[0] += int(f)
                t[1] += 1
    out = {}
    for field, groups in tally.items():
        rows = []
        for (label, value), (k, n) in groups.items():
            if n < min_objects:
                continue
            iv = M.rate_interval(k, n)
            rows.append({"class": label, field: value, "objects": n, "found": k, "recall": round(k / n, 4),
                         "recall_ci95": None if iv is None else [round(iv[0], 4), round(iv[1], 4)]})
        if rows:
            order = {n: i for i, n in enumerate(names or [])}
            out[field] = sorted(rows, key=lambda r: (order.get(r["class"], len(order)), r["class"], r["recall"], -r["objects"]))
    return out


def false_alarms_by_content(items: list[dict], threat: np.ndarray, alarmed: np.ndarray, min_scans: int = 5) -> list[dict]:
    """Which parcel contents the false alarms come with: for each clutter kind (and gun-shaped tool)
    the manifest lists, the clean scans holding it and the share of them that alarm, against the
    Pfa of all clean scans. Kinds in fewer than min_scans clean scans are left out; most
    alarm-prone first. A kind can only be blamed statistically: a scan holds many things."""
    kinds: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        if threat[i]:
            continue
        m = it["meta"]
        have = {c["kind"] for c in m.get("clutter", []) if isinstance(c, dict) and "kind" in c}
        have |= {f"tool:{t}" for t in (m.get("tools") or [])}
        for k in have:
            kinds.setdefault(k, []).append(i)
    clean = int((~threat).sum())
    base = float(alarmed[~threat].mean()) if clean else float("nan")
    rows = []
    for k, idx in kinds.items():
        if len(idx) < min_scans:
            continue
        a = int(alarmed[idx].sum())
        iv = M.rate_interval(a, len(idx))
        rows.append({"kind": k, "clean_scans": len(idx), "alarmed": a, "pfa": round(a / len(idx), 4),
                     "pfa_ci95": None if iv is None else [round(iv[0], 4), round(iv[1], 4)],
                     "vs_all_clean": None if not base else round(a / len(idx) / base, 2)})
    rows.sort(key=lambda r: (-r["pfa"], -r["clean_scans"], r["kind"]))  # ties by name: the same report every run
    return rows


MAP_RESAMPLES = 200


def evaluate(engine, data: str, split: str, out: str | Path, calibrate: bool = False, target_pfa: float = 0.05,
             tile: str = "auto", pfa_confidence: float | None = None, min_gain: int = 3, perturb: str | None = None,
             plots_too: bool = True, declare_pixels: bool = False, return_predictions: bool = False) -> dict:
    if calibrate and split == "test":
        raise EvalError("refusing to calibrate thresholds on the test split: use --split val")
    if calibrate and getattr(engine, "grey", None) is not None:
        # thresholds are a network's: the main network's are chosen with it reading every scan (as before there
        # was a grey network); the grey network's on grey scans, as a model of its own (--model DIR/grey)
        print("note: calibrating the main network, reading every scan (grey ones too); the grey network is calibrated "
              "on its own: xfd eval --model DIR/grey --calibrate on grey scans", file=sys.stderr, flush=True)
        engine = engine.without_grey()
    if calibrate and perturb:
        raise EvalError("refusing to calibrate thresholds on perturbed scans: calibrate on the scans as they are")
    transform = None
    if perturb:
        from training import robustness

        try:
            transform = robustness.make(perturb)
        except robustness.PerturbError as e:
            raise EvalError(str(e)) from None
    if pfa_confidence is not None and not 0.5 <= pfa_confidence < 1:
        raise EvalError(f"--pfa-confidence must be in [0.5, 1), got {pfa_confidence}")
    if min_gain < 0:
        raise EvalError(f"--min-gain must be >= 0, got {min_gain}")
    items, names = load_split(data, split)
    if names != engine.names:
        raise EvalError(f"dataset classes {names} differ from the model's {engine.names}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    leak = leakage_check(items, data, split, engine)
    if leak["overlap"]:
        print(f"WARNING: {leak['overlap']} of the {len(items)} evaluated images also appear (same bytes) in "
              f"{', '.join(leak['checked_against'])}: these metrics are inflated", file=sys.stderr, flush=True)
    if leak["not_found"]:
        print(f"note: the model's training set {', '.join(leak['not_found'])} is not on this machine: "
              "no leakage check against it", file=sys.stderr, flush=True)
    declared = None
    if declare_pixels:
        from training import robustness

        declared = [robustness.declared_pixels(perturb, it["meta"]) for it in items]
        if any(d is None for d in declared):
            raise EvalError(f"--declare-pixels: {sum(d is None for d in declared)} of the {len(items)} scans have no "
                            "mm_per_px in their manifest to declare")
    if calibrate:  # before minutes of inference: an operating point needs clean scans and threat scans
        labelled = sum(1 for it in items if it["label"].exists() and it["label"].read_text().strip())
        if labelled in (0, len(items)):
            raise EvalError(f"cannot calibrate on {data} ({split}): its {len(items)} scans hold "
                            f"{'no' if labelled == 0 else 'only'} threat scans; thresholds for a false-alarm rate "
                            "need clean scans and threat scans")
    refused: list[dict] = []
    nets: list[str] = []
    preds, gts, times = predict(engine, items, tile, perturb=transform, pixel_mm=declared, refused=refused, networks=nets)
    if not times:
        raise EvalError(f"the engine refused every scan of {data} ({split}): {refused[0]['code']}")
    nc = len(names)
    any_max, hit_max, threat = M.scan_tables(preds, gts, nc)
    groups = parcel_groups(items)
    if calibrate:
        # views of parcels (a dual-view scanner): the target is a parcel's false-alarm rate, which
        # two chances to alarm raise above an image's
        tables = (any_max, hit_max, threat) if groups is None else M.parcel_tables(any_max, hit_max, threat, groups)
        theta, cpd, cpfa = M.calibrate_thresholds(*tables, target_pfa, confidence=pfa_confidence, min_gain=min_gain)
        thresholds = {n: float(t) for n, t in zip(names, theta, strict=True)}
    else:
        thresholds = {n: float(engine.info.thresholds.get(n, 0.25)) for n in names}
        theta = np.array([thresholds[n] for n in names])
    grey = getattr(engine, "grey", None)
    read_grey = np.array([n == "grey" for n in nets], bool)
    if grey is not None:  # each scan at the thresholds of the network that read it
        theta_grey = np.array([float(grey.info.thresholds.get(n, 0.25)) for n in names])
        theta = np.where(read_grey[:, None], theta_grey[None, :], theta[None, :])
    det = M.detection_metrics(preds, gts, names, thresholds, scan_thresholds=theta if grey is not None else None)
    # what mAP50 these scans can tell apart: 200 image-bootstrap resamples (seed 0)
    boot = M.map50_resampled(preds, gts, nc, M.bootstrap_weights(len(items), MAP_RESAMPLES))
    iv = M.interval95(boot) if len(items) > 1 else None
    map50_ci = [round(x, 4) for x in iv] if iv else None
    curve = M.pd_pfa_curve(any_max, hit_max, threat)
    # Pd, Pfa, their intervals and Pd at fixed Pfa from the single-threshold curve (for comparisons
    # across models)
    scr = M.screening(any_max, hit_max, threat, theta, curve)
    pd, pfa, detected, alarmed = scr.pop("pd"), scr.pop("pfa"), scr.pop("detected"), scr.pop("alarmed")
    strat = {}
    for k, m in strata(items).items():
        if not m.any():
            continue
        spd, spfa = M.pd_pfa(any_max[m], hit_max[m], threat[m], theta[m] if theta.ndim == 2 else theta)
        strat[k] = {"scans": int(m.sum()), "threat_scans": int(threat[m].sum()),
                    "pd": None if np.isnan(spd) else round(spd, 4), "pfa": None if np.isnan(spfa) else round(spfa, 4)}
    conf = M.confusion(preds, gts, nc, theta)
    # each scan's best score on a labelled threat and best score of all (one threshold for every class):
    # what `xfd pool --against` resamples to compare two models on the same scans
    hit_score, alarm_score = hit_max.max(1), any_max.max(1)
    per_scan = [{"file": str(it["image"]), "threat": bool(t), "detected": bool(d), "alarm": bool(a),
                 "hit_score": round(float(h), 6), "alarm_score": round(float(m), 6)}
                for it, t, d, a, h, m in zip(items, threat, detected, alarmed, hit_score, alarm_score, strict=True)]
    for r in refused:
        per_scan[r["index"]]["refused"] = r["code"]
    if grey is not None:
        for ps, g in zip(per_scan, read_grey, strict=True):
            ps["network"] = "grey" if g else "main"
    report = {
        "model": engine.info.public(), "backend": engine.backend, "precision": engine.precision, "flips": engine.flips, "data": str(Path(data).resolve()), "split": split,
        "perturbation": perturb, "declared_pixels": declare_pixels, "scans": len(items), "threat_scans": int(threat.sum()), "clean_scans": int((~threat).sum()),
        "map50": det["map50"], "map50_ci95": map50_ci, "map50_95": det["map50_95"], "per_class": det["per_class"],
        "pd": pd, "pfa": pfa, **scr, "thresholds": thresholds,
        "grey_network": None if grey is None else {**engine.networks()["grey"], "scans": int(read_grey.sum()),
                                                   "threat_scans": int((read_grey & threat).sum())},
        "parcels": None if groups is None else parcel_report(items, any_max, hit_max, threat, theta, groups),
        "calibrated_here": calibrate, "calibrated_on": ("parcels" if groups is not None else "scans") if calibrate else None,
        "target_pfa": target_pfa if calibrate else None,
        "pfa_confidence": pfa_confidence if calibrate else None,
        "min_gain": min_gain if calibrate else None,
        "strata": strat, "threats_found_by": threats_found_by(items, preds, theta, names),
        "false_alarms_by_content": false_alarms_by_content(items, threat, alarmed), "pd_pfa_curve": curve, "confusion": {"labels": names + ["background"], "matrix": conf.tolist()},
        "latency_ms": {"p50": round(float(np.percentile(times, 50)), 1), "p95": round(float(np.percentile(times, 95)), 1)},
        "refused": [{"file": per_scan[r["index"]]["file"], "threat": per_scan[r["index"]]["threat"], "code": r["code"]} for r in refused],
        "per_scan": per_scan, "leakage": leak, "machine": machine.describe(),
        "definitions": "Pd: share of threat scans with an alarming detection overlapping a labelled threat (IoU>=0.5, any class). "
                       "Pfa: share of clean scans with any alarming detection. Alarm: score >= the class threshold.",
    }
    (out / "report.json").write_text(json.dumps(report, indent=1, allow_nan=False))  # strict JSON: a NaN is a bug
    (out / "report.md").write_text(markdown(report))
    if plots_too:
        plots(out, preds, gts, names, curve, conf, pd, pfa)
    if return_predictions:  # for xfd compare's paired mAP (never written to the report)
        report = {**report, "_predictions": (preds, gts)}
    return report


def _ci(iv) -> str:
    return "" if not iv else f" (95% CI {iv[0]:.3f}-{iv[1]:.3f})"


def grey_line(g: dict) -> str:
    th = g["thresholds"]
    common = max(set(th.values()), key=list(th.values()).count)
    odd = ", ".join(f"{k} {v:.2f}" for k, v in th.items() if v != common)
    return (f"**{g['scans']} grey scans ({g['threat_scans']} with threats) read by the grey network** {g['name']} "
            f"{g['version']} ({g['backend']}, {g['flips']} readings) at its own thresholds ({common:.2f}"
            + (f"; {odd}" if odd else "") + "); every other scan by the main network at the thresholds below.")


def markdown(r: dict) -> str:
    lines = [f"# Evaluation: {r['model']['name']} {r['model']['version']} on {Path(r['data']).parent.name}/{r['split']}", "",
             f"{r['scans']} scans ({r['threat_scans']} with threats, {r['clean_scans']} clean), backend {r['backend']}"
             + (f" computing in {r['precision']}" if r.get("precision") else "") + ", "
             + (f"{r['flips']} readings a scan." if r.get("flips", 1) > 1 else "one reading a scan.")
             + (f" **Each scan altered: {r['perturbation']}** (training/robustness.py)." if r.get("perturbation") else "")
             + (" Each scan's pixel size declared to the engine (--declare-pixels)." if r.get("declared_pixels") else "")
             + (f" **{len(r['refused'])} scan(s) refused by the engine** ({', '.join(sorted({x['code'] for x in r['refused']}))}; "
                f"{sum(x['threat'] for x in r['refused'])} with threats): the service answers such a scan with an error and never "
                "clears it, but here it counts as a scan without detections (missed if it holds a threat, not a false alarm)."
                if r.get("refused") else ""),
             *([f"Measured on {machine.summary(r['machine'])}.", ""] if r.get("machine") else [""]),
             *([grey_line(r["grey_network"]), ""] if r.get("grey_network") else []),
             "| metric | value |", "|---|---|",
             f"| mAP50 | {r['map50']:.3f}{_ci(r.get('map50_ci95'))} |", f"| mAP50-95 | {r['map50_95']:.3f} |",
             f"| **Pd at the operating point** | **{M.fmt_rate(r['pd'], 'threat')}**{_ci(r.get('pd_ci95'))} |",
             f"| **Pfa at the operating point** | **{M.fmt_rate(r['pfa'], 'clean')}**{_ci(r.get('pfa_ci95'))} |",
             f"| Pd at Pfa<=0.01 (single threshold) | {M.fmt_rate(r['pd_at_pfa_0.01'], 'clean')} |",
             f"| Pd at Pfa<=0.05 (single threshold) | {M.fmt_rate(r['pd_at_pfa_0.05'], 'clean')} |",
             f"| Pd at Pfa<=0.10 (single threshold) | {M.fmt_rate(r['pd_at_pfa_0.10'], 'clean')} |",
             f"| latency p50 / p95 (ms) | {r['latency_ms']['p50']} / {r['latency_ms']['p95']} |", "",
             "## Per class (IoU 0.5; precision/recall at the class threshold)", "",
             "| class | AP50 | AP50-95 | precision | recall | instances | threshold |", "|---|---|---|---|---|---|---|"]
    for n, c in r["per_class"].items():
        ap = "n/a" if c["ap50"] is None else f"{c['ap50']:.3f}"
        ap2 = "n/a" if c["ap50_95"] is None else f"{c['ap50_95']:.3f}"
        lines.append(f"| {n} | {ap} | {ap2} | {c['precision']:.3f} | {c['recall']:.3f} | {c['instances']} | {c['threshold']:.2f} |")
    if r["strata"]:
        lines += ["", "## Strata (scan level)", "", "| stratum | scans | threat scans | Pd | Pfa |", "|---|---|---|---|---|"]
        for k, s in r["strata"].items():
            lines.append(f"| {k} | {s['scans']} | {s['threat_scans']} | {s['pd'] if s['pd'] is not None else 'n/a'} | "
                         f"{s['pfa'] if s['pfa'] is not None else 'n/a'} |")
    pc = r.get("parcels")
    if pc:
        lines += ["", "## Parcels (all views together against each view alone, same thresholds)", "",
                  f"{pc['parcels']} parcels ({pc['threat_parcels']} with threats), views: {', '.join(pc['views'])}. "
                  "A parcel alarms when any of its views alarms; it is detected when an alarm in any view lies on a "
                  "labelled threat. Two views give two chances to false-alarm: compare Pd at the same Pfa.", "",
                  "| views | Pd | Pfa | Pd at Pfa<=0.05 | Pd at Pfa<=0.10 |", "|---|---|---|---|---|"]
        for name, x in parcel_rows(pc):
            lines.append(f"| {name} | {M.fmt_rate(x['pd'], 'threat')}{_ci(x.get('pd_ci95'))} | {M.fmt_rate(x['pfa'], 'clean')}"
                         f"{_ci(x.get('pfa_ci95'))} | {M.fmt_rate(x['pd_at_pfa_0.05'], 'clean')} | {M.fmt_rate(x['pd_at_pfa_0.10'], 'clean')} |")
        if only := caught_in_one_view(pc):
            lines += ["", f"Threat parcels caught in one view only: {only}."]
    found = r.get("threats_found_by") or {}
    for field, rows in found.items():
        lines += ["", f"## Threats found, by {field} (object level, at the operating point; per class, least often found first)", "",
                  f"| class | {field} | objects | found | recall (95% CI) |", "|---|---|---|---|---|"]
        for x in rows:
            iv = x["recall_ci95"]
            lines.append(f"| {x['class']} | {x[field]} | {x['objects']} | {x['found']} | {x['recall']:.2f}"
                         f"{f' ({iv[0]:.2f}-{iv[1]:.2f})' if iv else ''} |")
    fa = r.get("false_alarms_by_content") or []
    if fa:
        lines += ["", "## False alarms by parcel content (clean scans holding each kind; most alarm-prone first)", "",
                  f"All clean scans: Pfa {r['pfa']:.3f}. A scan holds many things, so this points at suspects, not causes.", "",
                  "| content | clean scans | alarmed | Pfa (95% CI) | x all clean |", "|---|---|---|---|---|"]
        for f in fa[:12]:
            iv = f["pfa_ci95"]
            lines.append(f"| {f['kind']} | {f['clean_scans']} | {f['alarmed']} | {f['pfa']:.2f}"
                         f"{f' ({iv[0]:.2f}-{iv[1]:.2f})' if iv else ''} | {f['vs_all_clean'] if f['vs_all_clean'] is not None else 'n/a'} |")
    lk = r.get("leakage")
    if lk:
        verdict = (f"**{lk['overlap']} evaluated images also occur in the checked sets: metrics inflated.**" if lk["overlap"]
                   else "none of the evaluated images occurs in them.")
        lines += ["", f"Leakage check (SHA-256 of file bytes) against {lk['images_checked']} images in "
                  f"{', '.join(lk['checked_against']) or 'no other split'}: {verdict}"]
        if lk.get("not_found"):
            lines.append(f"Not checked: the training set named in the checkpoint ({', '.join(lk['not_found'])}) "
                         "is not on this machine.")
    lines += ["", r["definitions"], "", "Plots: pd_pfa.png, pr_curves.png, confusion.png."]
    return "\n".join(lines) + "\n"


def plots(out: Path, preds, gts, names, curve, conf, pd, pfa) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot(curve["pfa"], curve["pd"], lw=2, label="single threshold")
    if pd is not None and pfa is not None:  # a set without clean (or threat) scans has no operating point to draw
        ax.scatter([pfa], [pd], color="red", zorder=3, label=f"operating point (Pd {pd:.3f}, Pfa {pfa:.3f})")
    ax.set_xlabel("Pfa (clean scans that alarm)")
    ax.set_ylabel("Pd (threat scans caught)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Scan-level screening: Pd vs Pfa")
    fig.tight_layout()
    fig.savefig(out / "pd_pfa.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 5))
    for c, n in enumerate(names):
        s, t, ng = M.match_class(preds, gts, c, 0.5)
        if ng == 0:
            continue
        r, p, _ = M.pr_curve(s, t, ng)
        ax.plot(r, p, label=f"{n} (AP50 {M._ap101(r, p):.2f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("Precision-recall per class (IoU 0.5)")
    fig.tight_layout()
    fig.savefig(out / "pr_curves.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    labels = names + ["background"]
    ax.imshow(conf, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if conf[i, j]:
                ax.text(j, i, str(conf[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if conf[i, j] > conf.max() / 2 else "black")
    ax.set_xlabel("predicted (background = missed)")
    ax.set_ylabel("true (background = false detection)")
    ax.set_title("Confusion at the operating point")
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=110)
    plt.close(fig)


def evaluate_cli(a) -> int:
    from detector.engine import Engine

    engine = Engine(a.model, backend=a.backend, flips=a.flips)
    r = evaluate(engine, a.data, a.split, a.out, a.calibrate, a.target_pfa, a.tile, a.pfa_confidence, a.min_gain,
                 a.perturb, declare_pixels=getattr(a, "declare_pixels", False))
    if a.calibrate:
        store_thresholds(a.model, r)
    print(json.dumps({k: r[k] for k in ("map50", "map50_95", "pd", "pfa", "pd_at_pfa_0.05", "thresholds")}, indent=1))
    print(f"report: {Path(a.out) / 'report.md'}")
    if a.calibrate:  # the model now answers at these thresholds wherever it is served
        m = Path(a.model)
        where = m / "model.json" if (m / "model.json").exists() else m.parent / "thresholds.json"
        print(f"thresholds stored in {where} ({engine.backend}, calibrated on {a.data} {a.split})")
    return 0


# backends whose scores differ from FP32's enough to need their own operating point
OWN_OPERATING_POINT = ("openvino-int8",)


def simulated_by(data: str | Path) -> tuple[str, int | None] | None:
    """(generator version, seed) of a simulated dataset from the manifest beside its data.yaml, when
    it is on this machine and was simulated here; None otherwise (an imported set)."""
    try:
        man = json.loads((Path(data).parent / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return (str(man["generator"]), man.get("seed")) if isinstance(man, dict) and "generator" in man else None


def _portable(path: str) -> str:
    """A path inside the working directory as a relative one: model.json ships to other machines,
    where this one's absolute paths mean nothing."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def store_thresholds(model: str, report: dict) -> None:
    """Write calibrated thresholds into a model directory's model.json."""
    p = Path(model)
    if not (p.is_dir() and (p / "model.json").exists()):  # bare weights: thresholds beside them
        (p.parent / "thresholds.json").write_text(json.dumps(report["thresholds"], indent=1))
        return
    meta = json.loads((p / "model.json").read_text())
    cal = {"data": _portable(report["data"]), "split": report["split"], "target_pfa": report["target_pfa"],
           "pfa_confidence": report.get("pfa_confidence"), "min_gain": report.get("min_gain"),
           "pd": report["pd"], "pfa": report["pfa"], "scans": report["scans"],
           "clean_scans": report["clean_scans"], "backend": report["backend"], "flips": report.get("flips", 1),
           "precision": report.get("precision")}
    if made := simulated_by(report["data"]):  # which simulator drew the scans the thresholds were chosen on
        cal["generator"], cal["seed"] = made
    if report.get("calibrated_on") == "parcels":  # the operating point holds per parcel, over its views
        pc = report["parcels"]
        cal.update({"per": "parcel", "pd": pc["all_views"]["pd"], "pfa": pc["all_views"]["pfa"], "parcels": pc["parcels"],
                    "clean_parcels": pc["parcels"] - pc["threat_parcels"]})
    if report["backend"] in OWN_OPERATING_POINT:
        # INT8 gets its own thresholds beside the FP32 ones (which every FP32 path shares)
        meta.setdefault("backend_thresholds", {})[report["backend"]] = report["thresholds"]
        meta.setdefault("backend_calibration", {})[report["backend"]] = cal
    else:
        meta["thresholds"] = report["thresholds"]
        meta["calibration"] = cal
    (p / "model.json").write_text(json.dumps(meta, indent=1))
