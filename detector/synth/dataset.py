"""Write a simulated dataset: YOLO layout, manifest, COCO JSON, contact sheet."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import yaml
from threadpoolctl import threadpool_limits

from .. import taxonomy
from ..xray import render
from . import threats as threat_mod
from .scene import GENERATOR_VERSION, SceneConfig, simulate

SPLIT_NAMES = ("train", "val", "test")


class SynthError(ValueError):
    """Bad synthesis parameters (shown to the user as a one-line error)."""


def parse_split(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in text.split(","):
        if "=" not in item:
            raise SynthError(f"bad split item {item!r}: expected NAME=FRACTION, e.g. train=0.8,val=0.1,test=0.1")
        name, val = item.split("=", 1)
        name = name.strip()
        if name not in SPLIT_NAMES:
            raise SynthError(f"unknown split name {name!r}: use train, val and/or test")
        try:
            f = float(val)
        except ValueError:
            raise SynthError(f"split fraction for {name!r} is not a number: {val!r}") from None
        if f < 0:
            raise SynthError(f"split fraction for {name!r} is negative: {f}")
        out[name] = f
    total = sum(out.values())
    if total <= 0:
        raise SynthError("split fractions sum to zero")
    return {k: v / total for k, v in out.items()}


def parse_range(text: str, flag: str, integer: bool = False) -> tuple:
    """'LO,HI' or a single value 'X' (= X,X) for a --mm-per-px / --clutter flag."""
    parts = [t.strip() for t in str(text).split(",")]
    if len(parts) not in (1, 2) or not all(parts):
        raise SynthError(f"{flag} takes LO,HI or one value, got {text!r}")
    try:
        vals = [int(t) if integer else float(t) for t in parts]
    except ValueError:
        kind = "whole numbers" if integer else "numbers"
        raise SynthError(f"{flag} takes {kind}, got {text!r}") from None
    return (vals[0], vals[-1])


def check_config(cfg: SceneConfig) -> None:
    """Ranges a scan can be drawn from, checked before anything is written (the CLI's flags and a
    library caller's SceneConfig alike)."""
    lo, hi = cfg.mm_per_px
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.3 <= lo <= hi <= 3.0):
        raise SynthError(f"--mm-per-px must satisfy 0.3 <= LO <= HI <= 3.0 (mm per pixel), got {lo},{hi}")
    lo, hi = cfg.clutter
    if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi <= 80):
        raise SynthError(f"--clutter must satisfy 0 <= LO <= HI <= 80 items, got {lo},{hi}")
    if not (math.isfinite(cfg.palette_shift) and -180 <= cfg.palette_shift <= 180):
        raise SynthError(f"--palette-shift must be between -180 and 180 degrees, got {cfg.palette_shift}")
    if cfg.threat_mix is not None:
        try:
            threat_mod.check_threat_mix(cfg.threat_mix)
        except ValueError as e:
            raise SynthError(str(e)) from None


def assign_splits(n: int, fractions: dict[str, float]) -> list[str]:
    """Deterministic split per index: contiguous counts by largest remainder, so the
    same n and fractions always give the same assignment."""
    names = [s for s in SPLIT_NAMES if s in fractions]
    raw = [fractions[s] * n for s in names]
    counts = [int(np.floor(r)) for r in raw]
    rem = n - sum(counts)
    for i in np.argsort([-(r - np.floor(r)) for r in raw])[:rem]:
        counts[i] += 1
    out: list[str] = []
    for s, c in zip(names, counts, strict=True):
        out += [s] * c
    return out


def _render_one(args) -> list[dict]:
    """One parcel's manifest records: its scan, and its side view after it when there is one."""
    seed, index, split, out, cfg_dict, raw = args
    cfg = SceneConfig(**cfg_dict)
    scan = simulate(seed, index, cfg, keep_raw=raw)
    name = f"{seed}_{index:06d}"
    records = [_write_view(scan, name, split, out, raw)]
    if scan.side is not None:
        records[0]["parcel"] = name
        records.append({**_write_view(scan.side, f"{name}_side", split, out, False), "parcel": name})
    return records


def _write_view(scan, name: str, split: str, out: str, raw: bool) -> dict:
    img_path = Path(out) / "images" / split / f"{name}.png"
    img = scan.image if scan.image.ndim == 2 else scan.image[..., ::-1]
    cv2.imwrite(str(img_path), img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    h, w = scan.image.shape[:2]
    lines = []
    for b in scan.boxes:
        x1, y1, x2, y2 = b["box"]
        lines.append(f"{b['class_id']} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
    (Path(out) / "labels" / split / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    if raw:
        rd = Path(out) / "raw" / split
        cv2.imwrite(str(rd / f"{name}_low.png"), render.to_raw16(scan.t_low))
        cv2.imwrite(str(rd / f"{name}_high.png"), render.to_raw16(scan.t_high))
    return {"file": f"images/{split}/{name}.png", "split": split, **scan.meta, "objects": scan.boxes}


def _check_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_text("x")
        probe.unlink()
    except OSError as e:
        raise SynthError(f"output directory {out} is not writable: {e.strerror or e}") from None


@contextlib.contextmanager
def _one_thread_each():
    """One BLAS and OpenCV thread per process while scans are rendered. The projections are
    (n, 3) x (3, 2) matrix products: a multi-threaded BLAS only adds synchronisation there, and
    with one worker per core its threads oversubscribe the machine (measured 2.5x slower per
    scan). Set in the parent before the workers fork, never inside a forked child (changing
    OpenBLAS' thread count after fork can deadlock). Results are identical."""
    cv_threads = cv2.getNumThreads()
    with threadpool_limits(1, user_api="blas"):
        cv2.setNumThreads(1)
        try:
            yield
        finally:
            cv2.setNumThreads(cv_threads)


def write_dataset(out: str | Path, n: int, seed: int = 0, split: str = "train=0.8,val=0.1,test=0.1",
                  workers: int | None = None, cfg: SceneConfig | None = None, raw: bool = False,
                  coco: bool = True, sheet: bool = True, progress=None) -> dict:
    if not isinstance(n, int) or n < 1:
        raise SynthError(f"--n must be a positive number of scans, got {n}")
    if seed < 0:
        raise SynthError(f"--seed must be >= 0, got {seed}")
    fractions = parse_split(split)
    cfg = cfg or SceneConfig()
    check_config(cfg)
    out = Path(out).resolve()
    _check_out(out)
    splits = assign_splits(n, fractions)
    for s in set(splits):
        (out / "images" / s).mkdir(parents=True, exist_ok=True)
        (out / "labels" / s).mkdir(parents=True, exist_ok=True)
        if raw:
            (out / "raw" / s).mkdir(parents=True, exist_ok=True)
    workers = workers or max(1, os.cpu_count() or 1)
    jobs = [(seed, i, splits[i], str(out), asdict(cfg), raw) for i in range(n)]
    records: list[dict] = []
    t0 = time.time()
    progress = progress or _print_progress
    with _one_thread_each():
        if workers == 1:
            for done, recs in enumerate(map(_render_one, jobs), 1):
                records += recs
                progress(done, n, t0)
        else:
            with ProcessPoolExecutor(workers) as ex:
                for done, recs in enumerate(ex.map(_render_one, jobs, chunksize=4), 1):
                    records += recs
                    progress(done, n, t0)
    elapsed = time.time() - t0
    names = taxonomy.names()
    image_splits = [r["split"] for r in records]
    counts = {c: 0 for c in names}
    for r in records:
        for b in r["objects"]:
            counts[b["label"]] += 1
    manifest = {
        "generator": GENERATOR_VERSION, "seed": seed, "n": n, "split": fractions,
        "config": asdict(cfg), "classes": names,
        "counts": {"scans": {s: image_splits.count(s) for s in fractions}, "objects": counts,
                   "clean_scans": sum(1 for r in records if not r["objects"]),
                   **({"parcels": {s: splits.count(s) for s in fractions}} if cfg.side_view else {})},
        "seconds": round(elapsed, 2), "scans_per_second": round(n / max(elapsed, 1e-9), 2),
        "scans": records,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    data = {"path": str(out), "names": {i: nm for i, nm in enumerate(names)}}
    for s in SPLIT_NAMES:
        if s in fractions:
            data[s] = f"images/{s}"
    if "val" not in data and "train" in data:
        data["val"] = data["train"]
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    if coco:
        write_coco(out, records)
    if sheet:
        contact_sheet(out, records[:24], out / "contact_sheet.png")
    return manifest


def write_coco(out: Path, records: list[dict]) -> None:
    cats = [{"id": c.id, "name": c.name, "supercategory": "firearm"} for c in taxonomy.classes()]
    for split in sorted({r["split"] for r in records}):
        images, anns = [], []
        for i, r in enumerate(x for x in records if x["split"] == split):
            images.append({"id": i, "file_name": r["file"], "width": r["width"], "height": r["height"]})
            for b in r["objects"]:
                x1, y1, x2, y2 = b["box"]
                anns.append({"id": len(anns), "image_id": i, "category_id": b["class_id"], "bbox": [x1, y1, x2 - x1, y2 - y1],
                             "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
                             "attributes": {k: b[k] for k in ("difficulty", "orientation", "concealment", "printed", "occlusion", "visibility")}})
        (out / f"coco_{split}.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))


def contact_sheet(root: Path, records: list[dict], path: Path, cols: int = 6, cell: int = 320) -> None:
    cls = taxonomy.classes()
    tiles = []
    for r in records:
        img = cv2.imread(str(root / r["file"]), cv2.IMREAD_COLOR)
        h, w = img.shape[:2]
        s = cell / max(h, w)
        img = cv2.resize(img, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA)
        for b in r["objects"]:
            x1, y1, x2, y2 = (int(v * s) for v in b["box"])
            c = cls[b["class_id"]].bgr
            cv2.rectangle(img, (x1, y1), (x2, y2), (0, 0, 0), 3)
            cv2.rectangle(img, (x1, y1), (x2, y2), c, 1)
            cv2.putText(img, b["label"], (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3)
            cv2.putText(img, b["label"], (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, c, 1)
        tile = np.full((cell, cell, 3), 40, np.uint8)
        tile[: img.shape[0], : img.shape[1]] = img
        tiles.append(tile)
    while len(tiles) % cols:
        tiles.append(np.full((cell, cell, 3), 40, np.uint8))
    rows = [np.hstack(tiles[i : i + cols]) for i in range(0, len(tiles), cols)]
    if rows:
        cv2.imwrite(str(path), np.vstack(rows))


def _print_progress(done: int, total: int, t0: float) -> None:
    if done == total or done % max(1, total // 20) == 0:
        el = time.time() - t0
        rate = done / max(el, 1e-9)
        eta = (total - done) / max(rate, 1e-9)
        print(f"synth {done}/{total} scans  {rate:.1f}/s  ETA {eta:.0f}s", file=sys.stderr, flush=True)
