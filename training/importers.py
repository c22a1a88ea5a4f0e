"""`xfd import`: bring seizure imagery and public X-ray sets into the YOLO layout.

Every importer yields records (image path or bytes, boxes with source class names,
source split). One writer then maps classes (configs/class_maps/*.yaml or --class-map),
validates (unreadable images, boxes outside the image or empty, unknown classes,
duplicates by content hash, leakage of one image across the source's splits), splits by
content hash (stable: the same image always lands in the same split) and writes
images/, labels/, data.yaml, manifest.json and a readable validation report.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml

from detector import dicos, imaging, taxonomy
from detector.offline import REPO_ROOT
from training.evaluate import IMG_EXT

CLASS_MAP_DIR = REPO_ROOT / "configs" / "class_maps"
FORMATS = ("yolo", "coco", "voc", "sixray", "pidray", "clcxray", "gdxray", "opixray", "hixray", "dicos", "reviews")


class ImportDataError(ValueError):
    pass


@dataclass
class Record:
    source: str  # path or id, for the report
    data: bytes | None
    boxes: list[tuple[str, float, float, float, float]]  # (class name, x1, y1, x2, y2) pixels
    split: str | None = None  # the source's own split, if any
    note: dict = field(default_factory=dict)


# ----------------------------------------------------------------- readers
def _read(p: Path) -> bytes | None:
    try:
        return p.read_bytes()
    except OSError:
        return None


def _find_image(root: Path, name: str) -> Path | None:
    for cand in (root / name, *(root / d / name for d in ("images", "JPEGImages", "Image", "img", ""))):
        if cand.exists():
            return cand
    stem = Path(name).stem
    for ext in IMG_EXT:
        for d in ("", "images", "JPEGImages", "Image"):
            c = root / d / f"{stem}{ext}"
            if c.exists():
                return c
    return None


def read_yolo(src: Path) -> Iterator[Record]:
    if src.is_file():
        d = yaml.safe_load(src.read_text())
        if "download" in d:
            raise ImportDataError(f"{src} has a 'download:' key; refusing (offline by design)")
        root = Path(d.get("path", src.parent))
        root = root if root.is_absolute() else (src.parent / root)
        names = d["names"]
        names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
        splits = {s: root / d[s] for s in ("train", "val", "test") if s in d}
    else:
        root = src
        ny = src / "classes.txt"
        names = ny.read_text().split() if ny.exists() else None
        splits = {s: src / "images" / s for s in ("train", "val", "test") if (src / "images" / s).is_dir()} or {None: src / "images"}
    for split, d_img in splits.items():
        for ip in sorted(Path(d_img).rglob("*")):
            if ip.suffix.lower() not in IMG_EXT:
                continue
            s = str(ip)
            i = s.rfind("/images/")
            lp = Path(s[:i] + "/labels/" + s[i + 8:]).with_suffix(".txt") if i >= 0 else ip.with_suffix(".txt")
            data = _read(ip)
            boxes = []
            if lp.exists() and data:
                try:
                    w, h = image_size(data)
                except Exception:
                    w = h = None
                for ln in lp.read_text().splitlines():
                    parts = ln.split()
                    if not parts:
                        continue
                    # a short or unparsable line becomes a NaN box: reported as degenerate, never silently lost
                    x, y, bw, bh = (_num(v) for v in (parts[1:5] + ["nan"] * 4)[:4])
                    c = _num(parts[0])  # "3", or "3.0" as some converters write it
                    if math.isfinite(c) and c >= 0 and c == int(c):
                        c = int(c)
                        name = names[c] if names and c < len(names) else str(c)
                    else:  # a word, a negative or fractional class: unknown, reported
                        name = parts[0]
                    if w:
                        boxes.append((name, (x - bw / 2) * w, (y - bh / 2) * h, (x + bw / 2) * w, (y + bh / 2) * h))
            yield Record(str(ip), data, boxes, split)


def image_size(data: bytes) -> tuple[int, int]:
    _, im = imaging.read_header(data, max_pixels=10**9)
    return im.size


def read_coco(src: Path, images_dir: Path | None = None) -> Iterator[Record]:
    files = [src] if src.is_file() else sorted(src.rglob("*.json"))
    for jf in files:
        try:
            d = json.loads(jf.read_text())
        except (json.JSONDecodeError, OSError) as e:
            raise ImportDataError(f"cannot read COCO JSON {jf}: {e}") from None
        try:
            cats = {c["id"]: c["name"] for c in d.get("categories", [])}
            anns = defaultdict(list)
            for a in d.get("annotations", []):
                anns[a["image_id"]].append(a)
            images = [(im["id"], str(im["file_name"])) for im in d.get("images", [])]
        except (KeyError, TypeError, AttributeError) as e:
            raise ImportDataError(f"{jf} is not COCO: its categories, annotations or images lack {e} "
                                  "(each image needs id and file_name, each annotation image_id)") from None
        split = next((s for s in ("train", "val", "test") if s in jf.stem.lower()), None)
        base = images_dir or jf.parent
        for im_id, name in images:
            p = _find_image(base, name) or _find_image(jf.parent.parent, name)
            boxes = []
            for a in anns.get(im_id, []):
                x, y, w, h = _coco_bbox(a.get("bbox"))  # a malformed one becomes NaN: reported and dropped
                cid = a.get("category_id")
                boxes.append((cats.get(cid, str(cid)), x, y, x + w, y + h))
            yield Record(str(p or name), _read(p) if p else None, boxes, split)


def _num(v) -> float:
    """An annotation's number, or NaN (a box holding one is reported as degenerate and dropped)."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _coco_bbox(b) -> tuple[float, float, float, float]:
    """COCO's [x, y, width, height] as floats; NaN for what is not a number, all four when it is not a list of four."""
    return tuple(_num(v) for v in b) if isinstance(b, (list, tuple)) and len(b) == 4 else (float("nan"),) * 4


def read_voc(src: Path) -> Iterator[Record]:
    xmls = sorted(src.rglob("*.xml"))
    if not xmls:
        raise ImportDataError(f"no VOC XML files under {src}")
    for xf in xmls:
        try:
            root = ET.parse(xf).getroot()
        except ET.ParseError as e:
            yield Record(str(xf), None, [], None, {"error": f"bad XML: {e}"})
            continue
        fn = root.findtext("filename") or xf.stem
        p = _find_image(xf.parent, fn) or _find_image(xf.parent.parent, fn) or _find_image(src, fn)
        boxes = []
        for o in root.iter("object"):
            bb = o.find("bndbox")  # an object without one, or with a non-number in it: a NaN box, reported
            vals = [_num(bb.findtext(k) if bb is not None else None) for k in ("xmin", "ymin", "xmax", "ymax")]
            boxes.append(((o.findtext("name") or "").strip(), *vals))
        split = next((s for s in ("train", "val", "test") if s in str(xf.parent).lower()), None)
        yield Record(str(p or fn), _read(p) if p else None, boxes, split)


def read_textlines(src: Path) -> Iterator[Record]:
    """OPIXray / HiXray: per-image .txt with lines `name class x1 y1 x2 y2`."""
    txts = [t for t in sorted(src.rglob("*.txt")) if t.name not in ("classes.txt",)]
    for tf in txts:
        boxes, name = [], None
        for ln in tf.read_text().splitlines():
            parts = ln.split()
            if len(parts) < 6:
                continue
            name = parts[0]
            boxes.append((parts[1], *map(_num, parts[2:6])))
        p = _find_image(tf.parent, name or tf.stem + ".jpg") or _find_image(tf.parent.parent, name or tf.stem + ".jpg") \
            or _find_image(src, name or tf.stem + ".jpg")
        split = next((s for s in ("train", "val", "test") if s in str(tf.parent).lower()), None)
        yield Record(str(p or name or tf), _read(p) if p else None, boxes, split)


def read_gdxray(src: Path, class_name: str = "handgun") -> Iterator[Record]:
    """GDXray baggage series: Bxxxx/ with Bxxxx_nnnn.png and ground_truth.txt (or
    BoundingBox.mat) rows [image, x1, x2, y1, y2]."""
    series = [d for d in sorted(src.iterdir()) if d.is_dir()] if src.is_dir() else []
    if not series and src.is_dir():
        series = [src]
    for sd in series:
        rows = _gdx_rows(sd)
        by_img = defaultdict(list)
        for r in rows:
            by_img[int(r[0])].append(r[1:])
        for ip in sorted(sd.glob("*.png")):
            try:
                idx = int(ip.stem.split("_")[-1])
            except ValueError:
                continue
            boxes = [(class_name, x1, y1, x2, y2) for (x1, x2, y1, y2) in by_img.get(idx, [])]
            yield Record(str(ip), _read(ip), boxes, None, {"series": sd.name})


def _gdx_rows(sd: Path) -> list[list[float]]:
    for name in ("ground_truth.txt", "BoundingBox.txt"):
        f = sd / name
        if f.exists():
            return [list(map(float, ln.split()[:5])) for ln in f.read_text().splitlines() if len(ln.split()) >= 5]
    mf = sd / "BoundingBox.mat"
    if mf.exists():
        from scipy.io import loadmat

        m = loadmat(str(mf))
        arr = next(v for k, v in m.items() if not k.startswith("__"))
        return np.asarray(arr, float).reshape(-1, 5).tolist()
    return []


DICOS_SUFFIXES = (".dcs", ".dcm", ".dicom", "")
HUMAN_TDR = ("GROUND_TRUTH", "OPERATOR")  # in order of preference; MACHINE reports are another detector's guesses


def read_dicos(src: Path) -> Iterator[Record]:
    """A DICOS archive: projection images (DX) and the Threat Detection Reports that refer to them.

    A ground-truth report (else an operator's) that references the image, else one of its
    study, gives its boxes (label: the threat category description), each threat going to the
    image its PTO references (or to the study's only image when it references none); a report
    that clears the parcel makes its images background. Machine reports are not ground truth
    and are not used; an image without a human report is skipped and reported, never imported
    as clean."""
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*")
                                               if p.is_file() and p.suffix.lower() in DICOS_SUFFIXES)
    images: list[tuple[Path, dict]] = []
    reports: dict[str, dict] = {}  # study UID -> the preferred human report
    by_image: dict[str, dict] = {}  # SOP instance UID -> the preferred human report that names it
    machine = 0
    for p in files:
        data = p.read_bytes()
        if not dicos.is_dicom(data):
            continue
        try:
            ids = dicos.read_ids(data)
        except dicos.DicosError as e:
            yield Record(str(p), None, [], None, {"error": str(e)})
            continue
        if ids.get("SOPClassUID") == dicos.DICOS_TDR:
            try:
                rep = dicos.read_tdr(data)
            except (dicos.DicosError, AttributeError, IndexError, ValueError) as e:
                yield Record(str(p), None, [], None, {"error": f"unreadable report: {e}"})
                continue
            if rep["type"] not in HUMAN_TDR:
                machine += 1
                continue
            rep = {**rep, "file": str(p)}
            for key, table in [(rep["study"], reports)] + [(uid, by_image) for uid in rep["references"]]:
                old = table.get(key)
                if old is None or HUMAN_TDR.index(rep["type"]) < HUMAN_TDR.index(old["type"]):
                    table[key] = rep
        else:
            images.append((p, ids))
    per_study = Counter(ids.get("StudyInstanceUID") for _, ids in images)
    for p, ids in images:
        study = ids.get("StudyInstanceUID")
        rep = by_image.get(ids.get("SOPInstanceUID")) or reports.get(study)
        if rep is None:
            data = p.read_bytes()
            try:  # an image that cannot be analysed at all says why first
                imaging.decode(data, max_pixels=200_000_000)
                why = "no ground-truth or operator report for its study" + (f" ({machine} machine report(s) ignored)" if machine else "")
            except imaging.ImageError as e:
                why = str(e)
            yield Record(str(p), None, [], None, {"error": why})
            continue
        boxes = []
        if rep["alarm"] != "CLEAR":
            for t in rep["threats"]:
                mine = ids.get("SOPInstanceUID") in t["references"] if t["references"] else per_study[study] == 1
                if mine:
                    b = t["box"]
                    boxes.append((t["label"] or t["category"], b["x1"], b["y1"], b["x2"], b["y2"]))
        yield Record(str(p), p.read_bytes(), boxes, None, {"tdr": rep["file"], "tdr_type": rep["type"],
                                                           "ooi": ids.get("PatientID")})


def read_reviews(data_dir: Path) -> Iterator[Record]:
    """The service's reviewed scans: confirmed ones with their (corrected) boxes, false
    alarms as background images (hard negatives)."""
    from serve.store import resolve_image  # the service's own rule for where a record's image is

    db = data_dir / "xfd.sqlite3"
    if not db.exists():
        raise ImportDataError(f"no service database in {data_dir}")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    for r in con.execute("SELECT * FROM scans WHERE review_state IN ('confirmed','false_alarm') ORDER BY created"):
        p = resolve_image(data_dir / "images", r["image_path"])  # where it is now, if the directory moved
        if r["review_state"] == "false_alarm":
            boxes = []
        elif r["review_boxes"]:
            boxes = [(b["label"], b["box"]["x1"], b["box"]["y1"], b["box"]["x2"], b["box"]["y2"]) for b in json.loads(r["review_boxes"])]
        else:
            boxes = [(d["label"], d["box"]["x1"], d["box"]["y1"], d["box"]["x2"], d["box"]["y2"])
                     for d in json.loads(r["detections"]) if d["alarm"]]
        note = {"review": r["review_state"], "lane": r["lane"]}
        for col in ("parcel", "view"):  # views of a parcel (dual-view scanners; a database from before has neither)
            if col in r.keys() and r[col] is not None:
                note[col] = r[col]
        if "pixel_mm" in r.keys() and r["pixel_mm"]:  # the pixel size the scan was sent with (or its DICOS header's)
            note["pixel_mm"] = json.loads(r["pixel_mm"])["declared"]
        if "purged" in r.keys() and r["purged"] is not None:  # reported as unreadable, with the reason
            note["error"] = "image deleted under the service's retention policy (XFD_RETAIN_DAYS)"
            yield Record(r["id"], None, boxes, None, note)
            continue
        yield Record(r["id"], _read(p), boxes, None, note)
    con.close()


# ----------------------------------------------------------------- class maps
def load_class_map(fmt: str, path: str | None) -> dict[str, str | None] | None:
    if path:
        p = Path(path)
        if not p.exists():
            raise ImportDataError(f"class map not found: {p}")
        m = yaml.safe_load(p.read_text()) or {}
    else:
        p = CLASS_MAP_DIR / f"{fmt}.yaml"
        if not p.exists():
            return None
        m = yaml.safe_load(p.read_text()) or {}
    bad = {k: v for k, v in m.items() if v is not None and v not in taxonomy.names()}
    if bad:
        raise ImportDataError(f"class map targets not in the taxonomy: {bad}; use one of {taxonomy.names()} or null")
    return {str(k).lower(): v for k, v in m.items()}


# ----------------------------------------------------------------- writer with validation
def hash_split(h: str, fractions=(("train", 0.8), ("val", 0.1), ("test", 0.1))) -> str:
    u = int(h[:12], 16) / float(16**12)
    acc = 0.0
    for name, f in fractions:
        acc += f
        if u < acc:
            return name
    return fractions[-1][0]


def import_dataset(fmt: str, source: str | Path | None, out: str | Path, class_map: str | None = None,
                   data_dir: str | None = None, pixel_mm: str | None = None) -> dict:
    """pixel_mm: the scanner's pixel size ('S' or 'ROW,COL' mm) for images whose file or record does
    not say (a DICOS header's or the service's record wins), kept in the manifest."""
    if fmt not in FORMATS:
        raise ImportDataError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    site_pixels = None
    if pixel_mm is not None:
        try:
            site_pixels = imaging.parse_pixel_mm(pixel_mm)
        except ValueError as e:
            raise ImportDataError(f"--pixel-mm: {e}") from None
    if fmt == "reviews":
        src = Path(data_dir or source or "")
        if not src.exists():
            raise ImportDataError(f"service data directory not found: {src}")
        records = read_reviews(src)
    else:
        if source is None:
            raise ImportDataError("SOURCE is required")
        src = Path(source)
        if not src.exists():
            raise ImportDataError(f"source not found: {src}")
        reader = {"yolo": read_yolo, "coco": read_coco, "pidray": read_coco, "clcxray": read_coco, "voc": read_voc,
                  "sixray": read_voc, "opixray": read_textlines, "hixray": read_textlines, "gdxray": read_gdxray,
                  "dicos": read_dicos}[fmt]
        records = reader(src)
    cmap = load_class_map(fmt, class_map)
    names = taxonomy.names()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ImportDataError(f"output directory {out} is not empty")
    for s in ("train", "val", "test"):
        (out / "images" / s).mkdir(parents=True, exist_ok=True)
        (out / "labels" / s).mkdir(parents=True, exist_ok=True)
    rep = {"unreadable": [], "empty_or_degenerate_boxes": [], "boxes_outside_image": [], "unknown_classes": Counter(),
           "background_boxes": Counter(), "duplicates": [], "leakage": [], "clipped_boxes": 0}
    seen: dict[str, str] = {}
    source_split_of: dict[str, set] = defaultdict(set)
    counts = Counter()
    per_split = Counter()
    manifest = []
    for r in records:
        if r.data is None or r.note.get("error"):
            rep["unreadable"].append({"source": r.source, "why": r.note.get("error", "image file missing or unreadable")})
            continue
        try:
            img = imaging.decode(r.data, max_pixels=200_000_000)
        except imaging.ImageError as e:
            rep["unreadable"].append({"source": r.source, "why": str(e)})
            continue
        h = hashlib.sha256(r.data).hexdigest()
        if r.split:
            source_split_of[h].add(r.split)
        if h in seen:
            rep["duplicates"].append({"source": r.source, "same_as": seen[h]})
            continue
        seen[h] = r.source
        W, H = img.width, img.height
        lines = []
        for (cname, x1, y1, x2, y2) in r.boxes:
            key = str(cname).strip()
            if cmap is not None and key.lower() in cmap:
                target = cmap[key.lower()]
            elif key in names:
                target = key
            else:
                target = "__unknown__"
            if target == "__unknown__":
                rep["unknown_classes"][key] += 1
                continue
            if target is None:
                rep["background_boxes"][key] += 1
                continue
            if not all(np.isfinite([x1, y1, x2, y2])) or x2 - x1 < 1 or y2 - y1 < 1:
                rep["empty_or_degenerate_boxes"].append({"source": r.source, "box": [x1, y1, x2, y2]})
                continue
            if x1 < -1 or y1 < -1 or x2 > W + 1 or y2 > H + 1:
                cx1, cy1, cx2, cy2 = max(0, x1), max(0, y1), min(W, x2), min(H, y2)
                if cx2 - cx1 < 1 or cy2 - cy1 < 1:
                    rep["boxes_outside_image"].append({"source": r.source, "box": [x1, y1, x2, y2], "image": [W, H], "action": "dropped"})
                    continue
                rep["boxes_outside_image"].append({"source": r.source, "box": [x1, y1, x2, y2], "image": [W, H], "action": "clipped"})
                rep["clipped_boxes"] += 1
                x1, y1, x2, y2 = cx1, cy1, cx2, cy2
            cid = names.index(target)
            counts[target] += 1
            lines.append(f"{cid} {(x1 + x2) / 2 / W:.6f} {(y1 + y2) / 2 / H:.6f} {(x2 - x1) / W:.6f} {(y2 - y1) / H:.6f}")
        # the views of one parcel share a split (a parcel's side view in training and its top view in
        # test would leak it); other images split by their content
        parcel = r.note.get("parcel")
        split = hash_split(hashlib.sha256(f"parcel:{parcel}".encode()).hexdigest() if parcel else h)
        per_split[split] += 1
        ext = imaging.EXTENSIONS[img.format]
        if img.bit_depth == 16 or img.format == "DICOM" or img.source_mode not in ("RGB", "L", "P"):
            # store what the model sees: 8-bit RGB
            ext = ".png"
            cv2.imwrite(str(out / "images" / split / f"{h[:16]}{ext}"), cv2.cvtColor(img.rgb, cv2.COLOR_RGB2BGR))
        else:
            (out / "images" / split / f"{h[:16]}{ext}").write_bytes(r.data)
        (out / "labels" / split / f"{h[:16]}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
        # the scanner's pixel size, for `xfd eval --declare-pixels`: what the service was told (it won
        # there too), else the file's DICOS header, else --pixel-mm
        pixels = r.note.pop("pixel_mm", None) or img.pixel_mm or site_pixels
        if pixels:
            r.note.update({"mm_per_px": round(float(pixels[0]), 4), "mm_per_px_along_belt": round(float(pixels[1]), 4)})
        manifest.append({"file": f"images/{split}/{h[:16]}{ext}", "split": split, "source": r.source, "sha256": h,
                         "source_split": r.split, "n_threats": len(lines), "width": W, "height": H, **r.note})
    for h, splits in source_split_of.items():
        if len(splits) > 1:
            rep["leakage"].append({"image": seen.get(h), "source_splits": sorted(splits)})
    data = {"path": str(out.resolve()), "names": dict(enumerate(names)), "train": "images/train", "val": "images/val", "test": "images/test"}
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    summary = {"format": fmt, "source": str(source or data_dir), "images": len(manifest), "per_split": dict(per_split),
               "objects": dict(counts), "background_images": sum(1 for m in manifest if m["n_threats"] == 0)}
    report = {**summary, **{k: (dict(v) if isinstance(v, Counter) else v) for k, v in rep.items()}}
    (out / "manifest.json").write_text(json.dumps({"summary": summary, "scans": manifest}, indent=1))
    (out / "validation.json").write_text(json.dumps(report, indent=1))
    (out / "validation.md").write_text(_report_md(report))
    return report


def _report_md(r: dict) -> str:
    lines = [f"# Import of {r['format']} from {r['source']}", "",
             f"{r['images']} images imported ({r['background_images']} background), split by content hash: {r['per_split']}.",
             f"Objects: {r['objects'] or 'none'}.", "", "| check | count | what was done |", "|---|---|---|",
             f"| unreadable images | {len(r['unreadable'])} | skipped |",
             f"| duplicate images (same bytes) | {len(r['duplicates'])} | kept once |",
             f"| leakage: one image in several source splits | {len(r['leakage'])} | kept once, one split by hash |",
             f"| boxes outside the image | {len(r['boxes_outside_image'])} | {r['clipped_boxes']} clipped, rest dropped |",
             f"| empty or degenerate boxes | {len(r['empty_or_degenerate_boxes'])} | dropped |",
             f"| unknown classes | {sum(r['unknown_classes'].values())} {dict(r['unknown_classes']) or ''} | dropped: add them to a class map |",
             f"| background classes (hard negatives) | {sum(r['background_boxes'].values())} | box dropped, image kept |", ""]
    for k in ("unreadable", "duplicates", "leakage", "boxes_outside_image", "empty_or_degenerate_boxes"):
        if r[k]:
            lines.append(f"## {k.replace('_', ' ')}")
            lines += [f"- {json.dumps(x)}" for x in r[k][:50]]
            lines.append("")
    return "\n".join(lines)


def import_cli(a) -> int:
    r = import_dataset(a.format, a.source, a.out, a.class_map, a.data_dir, getattr(a, "pixel_mm", None))
    print(json.dumps({k: r[k] for k in ("images", "per_split", "objects", "background_images")}))
    issues = len(r["unreadable"]) + len(r["duplicates"]) + len(r["leakage"]) + len(r["boxes_outside_image"]) + \
        len(r["empty_or_degenerate_boxes"]) + sum(r["unknown_classes"].values())
    print(f"validation: {issues} finding(s); see {Path(a.out) / 'validation.md'}")
    return 0

