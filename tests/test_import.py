"""Dataset import: each format from fixtures written here, with planted errors."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest
import yaml

from training.importers import ImportDataError, hash_split, import_dataset


def _img(path, seed, w=320, h=240):
    rng = np.random.default_rng(seed)
    a = np.full((h, w, 3), 255, np.uint8)
    cv2.rectangle(a, (int(rng.integers(10, 100)), int(rng.integers(10, 80))), (int(rng.integers(150, 300)), int(rng.integers(120, 230))),
                  tuple(int(v) for v in rng.integers(0, 200, 3)), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), a)
    return path


def _labels(out):
    return {p.name: p.read_text() for p in out.rglob("labels/*/*.txt")}


def test_coco_with_planted_errors(tmp_path):
    src = tmp_path / "pidray"
    for i in range(6):
        _img(src / "images" / f"{i}.jpg", i)
    (src / "images" / "dup.jpg").write_bytes((src / "images" / "0.jpg").read_bytes())  # duplicate content
    (src / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    cats = [{"id": 1, "name": "gun"}, {"id": 2, "name": "bullet"}, {"id": 3, "name": "knife"}, {"id": 4, "name": "zeppelin"}]
    def coco(names, anns):
        return {"images": [{"id": i, "file_name": n, "width": 320, "height": 240} for i, n in enumerate(names)],
                "annotations": anns, "categories": cats}
    train = coco(["0.jpg", "1.jpg", "2.jpg", "dup.jpg", "broken.jpg", "5.jpg"], [
        {"id": 1, "image_id": 0, "category_id": 1, "bbox": [10, 10, 50, 40]},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [300, 200, 100, 100]},   # partly outside: clipped
        {"id": 3, "image_id": 2, "category_id": 3, "bbox": [20, 20, 30, 30]},       # knife: background
        {"id": 4, "image_id": 2, "category_id": 4, "bbox": [20, 20, 30, 30]},       # unknown class
        {"id": 5, "image_id": 1, "category_id": 1, "bbox": [500, 500, 20, 20]},     # fully outside: dropped
        {"id": 6, "image_id": 0, "category_id": 1, "bbox": [10, 10, 0, 20]},        # empty
        {"id": 7, "image_id": 0, "category_id": 1, "bbox": [10, 10, "wide", 20]},   # malformed: reported, not a crash
        {"id": 8, "image_id": 0, "category_id": 1, "bbox": [10, 10]},
    ])
    test = coco(["3.jpg", "4.jpg", "5.jpg"], [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [5, 5, 60, 60]}])  # 5.jpg leaks
    (src / "annotations").mkdir()
    (src / "annotations" / "train.json").write_text(json.dumps(train))
    (src / "annotations" / "test.json").write_text(json.dumps(test))
    (src / "images").rename(src / "annotations" / "images")
    r = import_dataset("pidray", src / "annotations", tmp_path / "out")
    assert r["images"] == 6  # 0..5; dup and broken not imported
    assert len(r["duplicates"]) == 2 and len(r["unreadable"]) == 1  # dup.jpg, and 5.jpg again
    assert len(r["leakage"]) == 1 and r["leakage"][0]["source_splits"] == ["test", "train"]
    assert r["clipped_boxes"] == 1 and any(b["action"] == "dropped" for b in r["boxes_outside_image"])
    assert r["unknown_classes"] == {"zeppelin": 1} and r["background_boxes"] == {"knife": 1}
    assert len(r["empty_or_degenerate_boxes"]) == 3
    assert r["objects"] == {"gun": 2, "ammunition": 1}
    md = (tmp_path / "out" / "validation.md").read_text()
    assert "leakage" in md and "zeppelin" in md
    d = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())
    assert d["names"][6] == "ammunition"
    for line in "".join(_labels(tmp_path / "out").values()).split("\n"):
        if line:
            c, x, y, w, h = map(float, line.split())
            assert 0 <= x - w / 2 + 1e-6 and x + w / 2 <= 1 + 1e-6


def test_coco_without_its_keys_is_a_clear_error(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"images": [{"file_name": "0.jpg"}], "annotations": [], "categories": []}))
    with pytest.raises(ImportDataError, match="is not COCO.*'id'"):
        import_dataset("coco", tmp_path / "a.json", tmp_path / "out")


def test_voc_sixray_and_stable_hash_splits(tmp_path):
    src = tmp_path / "sixray"
    for i in range(4):
        _img(src / "JPEGImages" / f"P{i:05d}.jpg", 10 + i)
        (src / "Annotations").mkdir(parents=True, exist_ok=True)
        (src / "Annotations" / f"P{i:05d}.xml").write_text(
            f"<annotation><filename>P{i:05d}.jpg</filename><object><name>{'Gun' if i % 2 else 'Knife'}</name>"
            "<bndbox><xmin>10</xmin><ymin>20</ymin><xmax>110</xmax><ymax>90</ymax></bndbox></object></annotation>")
    (src / "Annotations" / "bad.xml").write_text("<annotation><filename>")
    (src / "Annotations" / "P00001.xml").write_text(  # a second gun without its box, a third with a word in it
        "<annotation><filename>P00001.jpg</filename><object><name>Gun</name><bndbox><xmin>10</xmin><ymin>20</ymin>"
        "<xmax>110</xmax><ymax>90</ymax></bndbox></object><object><name>Gun</name></object><object><name>Gun</name>"
        "<bndbox><xmin>ten</xmin><ymin>20</ymin><xmax>110</xmax><ymax>90</ymax></bndbox></object></annotation>")
    cm = tmp_path / "map.yaml"
    cm.write_text("Gun: gun\nKnife: null\n")
    r = import_dataset("sixray", src, tmp_path / "a", class_map=str(cm))
    assert r["images"] == 4 and r["objects"] == {"gun": 2} and r["background_images"] == 2
    assert len(r["unreadable"]) == 1 and len(r["empty_or_degenerate_boxes"]) == 2
    r2 = import_dataset("sixray", src, tmp_path / "b", class_map=str(cm))
    assert r2["per_split"] == r["per_split"]
    assert sorted(p.name for p in (tmp_path / "a").rglob("images/*/*")) == sorted(p.name for p in (tmp_path / "b").rglob("images/*/*"))
    assert hash_split("0" * 64) == "train" and hash_split("f" * 64) == "test"


def test_yolo_textlines_gdxray(tmp_path):
    y = tmp_path / "y"
    _img(y / "images" / "train" / "a.png", 1)
    (y / "labels" / "train").mkdir(parents=True)
    # with lines a tool mangled: each is reported (a NaN box, or an unknown class), none crashes or vanishes
    (y / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n4 0.2 0.2 0.1 0.1\n0 0.5\na b c d e\n-1 0.5 0.5 0.2 0.2\n0.0 0.5 0.5 0.3 0.3\ninf 0.5 0.5 0.2 0.2\n")
    (y / "data.yaml").write_text(yaml.safe_dump({"path": str(y), "train": "images/train", "val": "images/train",
                                                 "names": ["gun", "barrel", "slide", "frame", "magazine"]}))
    r = import_dataset("yolo", y / "data.yaml", tmp_path / "yo")
    assert r["objects"] == {"gun": 2, "magazine": 1}
    assert len(r["empty_or_degenerate_boxes"]) == 1 and r["unknown_classes"] == {"a": 1, "-1": 1, "inf": 1}
    t = tmp_path / "opix"
    _img(t / "img" / "009.jpg", 2)
    (t / "ann").mkdir()
    (t / "ann" / "009.txt").write_text("009.jpg Folding_Knife 10 10 80 60\n")
    r = import_dataset("opixray", t, tmp_path / "op")
    assert r["images"] == 1 and r["background_boxes"] == {"Folding_Knife": 1}
    g = tmp_path / "gdx" / "B0049"
    for i in (1, 2):
        _img(g / f"B0049_{i:04d}.png", 20 + i)
    (g / "ground_truth.txt").write_text("1 10 110 20 90\n2 30 130 40 100\n")
    r = import_dataset("gdxray", tmp_path / "gdx", tmp_path / "gd")
    assert r["objects"] == {"gun": 2}
    # a set whose files do not say their pixel size: --pixel-mm records the scanner's for xfd eval --declare-pixels
    r = import_dataset("gdxray", tmp_path / "gdx", tmp_path / "gd-mm", pixel_mm="0.9,0.75")
    assert {(m["mm_per_px"], m["mm_per_px_along_belt"]) for m in
            json.loads((tmp_path / "gd-mm" / "manifest.json").read_text())["scans"]} == {(0.9, 0.75)}
    assert "mm_per_px" not in json.loads((tmp_path / "gd" / "manifest.json").read_text())["scans"][0]
    with pytest.raises(ImportDataError, match="--pixel-mm"):
        import_dataset("gdxray", tmp_path / "gdx", tmp_path / "gd-bad", pixel_mm="wide")
    assert not (tmp_path / "gd-bad").exists()
    with pytest.raises(ImportDataError, match="not empty"):
        import_dataset("gdxray", tmp_path / "gdx", tmp_path / "gd")
    with pytest.raises(ImportDataError, match="unknown format"):
        import_dataset("tiff-soup", tmp_path, tmp_path / "x")


def test_reviews_export(tmp_path):
    from serve.store import Store

    st = Store(tmp_path / "svc")
    kid, _ = st.create_key("operator")
    ids = []
    for i, state in enumerate(("confirmed", "false_alarm", "pending")):
        sid = st.new_id()
        p = _img(tmp_path / f"r{i}.png", 40 + i)
        path = st.save_image(sid, p.read_bytes(), ".png")
        det = [{"label": "gun", "class_id": 0, "confidence": 0.8, "box": {"x1": 10, "y1": 10, "x2": 60, "y2": 50}, "alarm": True}]
        st.insert_scan({"scan_id": sid, "created": time.time(), "lane": "l1", "verdict": "alarm", "reasons": ["assembled firearm"],
                        "detections": det, "image": {"width": 320, "height": 240},
                        "model": {"name": "m", "version": "1", "sha256": "x"}, "image_path": str(path),
                        **({"pixel_mm": {"declared": [1.2, 1.0], "resampled": True, "analysed_mm": 1.0,
                                         "analysed_size": [320, 288]}} if i == 0 else {})})
        if state != "pending":
            boxes = [{"label": "frame", "box": {"x1": 5, "y1": 5, "x2": 100, "y2": 90}}] if state == "confirmed" else None
            st.review(sid, state, "n", boxes, kid)
        ids.append(sid)
    r = import_dataset("reviews", None, tmp_path / "out", data_dir=str(tmp_path / "svc"))
    assert r["images"] == 2 and r["objects"] == {"frame": 1} and r["background_images"] == 1
    m = {x["source"]: x for x in json.loads((tmp_path / "out" / "manifest.json").read_text())["scans"]}
    assert (m[ids[0]]["mm_per_px"], m[ids[0]]["mm_per_px_along_belt"]) == (1.2, 1.0)  # the pixel size it was sent with
    assert "mm_per_px" not in m[ids[1]] and "pixel_mm" not in m[ids[0]]
    # the false alarm's image deleted under the retention policy: reported, not a silent gap
    assert st.purge(retain_days=1, now=time.time() + 2 * 86400)["scans"] == 3
    r = import_dataset("reviews", None, tmp_path / "out2", data_dir=str(tmp_path / "svc"))
    assert r["images"] == 0 and len(r["unreadable"]) == 2 and all("retention" in u["why"] for u in r["unreadable"])
