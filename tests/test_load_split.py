"""Evaluation and INT8 calibration read a split in every form ultralytics trains on: a folder,
a .txt list of images (what `xfd mix` writes, so the README's retraining walkthrough evaluates
and exports on a mixed set), or a list of folders. Each scan keeps its simulator record from
the manifest of the dataset it came from, and a list naming a missing image is a clear error."""

import json
import os
from pathlib import Path

import pytest

from detector.engine import Engine
from detector.synth.dataset import write_dataset
from training.evaluate import EvalError, evaluate, load_split
from training.mix import mix

QUIET = dict(workers=1, coco=False, sheet=False, progress=lambda *a: None)


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    write_dataset(root / "a", 4, seed=41, split="train=0.5,val=0.5", **QUIET)
    write_dataset(root / "b", 4, seed=42, split="train=0.5,val=0.5", **QUIET)
    return root


def test_mixed_split_keeps_each_scans_record(two_sets, tmp_path):
    mix([(str(two_sets / "a" / "data.yaml"), 1.0), (str(two_sets / "b" / "data.yaml"), 1.0)], tmp_path / "mix")
    items, names = load_split(tmp_path / "mix" / "data.yaml", "val")
    listed = [Path(s) for s in (tmp_path / "mix" / "val.txt").read_text().split()]
    assert [it["image"] for it in items] == listed and len(items) == 4
    assert names[0] == "gun"
    for it in items:
        assert it["label"].is_file()
        src = it["image"].parents[2]
        rec = {r["file"]: r for r in json.loads((src / "manifest.json").read_text())["scans"]}
        assert it["meta"] == rec[str(it["image"].relative_to(src))] and it["meta"]


def test_folder_lists_and_relative_lines(two_sets, tmp_path):
    d = tmp_path / "multi"
    d.mkdir()
    (d / "val.txt").write_text("".join(os.path.relpath(p, d) + "\n" for p in sorted((two_sets / "a" / "images" / "val").iterdir())))
    (d / "data.yaml").write_text(f"path: {d}\ntrain: val.txt\nval: val.txt\n"
                                 f"test: [{two_sets / 'a' / 'images' / 'val'}, {two_sets / 'b' / 'images' / 'val'}]\n"
                                 "names: {0: gun}\n")
    rel, _ = load_split(d / "data.yaml", "val")
    assert len(rel) == 2 and all(it["image"].is_file() and it["meta"] for it in rel)
    both, _ = load_split(d / "data.yaml", "test")
    assert len(both) == 4 and all(it["meta"] for it in both)


def test_bad_lists_are_clear_errors(two_sets, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    good = next((two_sets / "a" / "images" / "val").iterdir())
    (d / "val.txt").write_text(f"{good}\n{two_sets}/a/images/val/gone.png\n")
    (d / "data.yaml").write_text(f"path: {d}\ntrain: val.txt\nval: val.txt\ntest: nowhere\nnames: [gun]\n")
    with pytest.raises(EvalError, match=r"val\.txt:2: image not found: .*gone\.png"):
        load_split(d / "data.yaml", "val")
    with pytest.raises(EvalError, match="test images not found: .*nowhere"):
        load_split(d / "data.yaml", "test")
    (d / "empty.yaml").write_text(f"path: {d}\ntrain: val.txt\nval: val.txt\ntest:\nnames: [gun]\n")
    with pytest.raises(EvalError, match=r"has no 'test' split \(has: train, val\)"):
        load_split(d / "empty.yaml", "test")
    (d / "val.txt").write_text(f"{good}\n{two_sets}/a/manifest.json\n")
    with pytest.raises(EvalError, match="val.txt:2: not an image path"):
        load_split(d / "data.yaml", "val")


def test_evaluate_on_a_mixed_val_split(two_sets, tmp_path, model_dir):
    # the README's step 4: `xfd eval --data data/mix/data.yaml --split val`
    mix([(str(two_sets / "a" / "data.yaml"), 1.0), (str(two_sets / "b" / "data.yaml"), 1.0)], tmp_path / "mix")
    rep = evaluate(Engine(model_dir, concurrency=1), str(tmp_path / "mix" / "data.yaml"), "val", tmp_path / "rep")
    assert rep["scans"] == 4
    assert rep["threat_scans"] == sum(1 for it in load_split(tmp_path / "mix" / "data.yaml", "val")[0]
                                      if it["label"].read_text().strip())
    assert any(k.startswith("render=") for k in rep["strata"])  # the records reached the strata


def test_a_moved_dataset_is_not_read_from_its_old_place(two_sets, tmp_path):
    """Our data.yaml files carry an absolute path: (ultralytics needs it). A dataset copied (or
    moved) elsewhere while the original stays would be read from the original, silently: its
    evaluation, its training and its mixes would all be of other scans. Refused, naming both
    directories; with path: set to the copy it reads the copy."""
    import shutil

    import yaml

    from training.train import TrainError, check_dataset

    copy = tmp_path / "kept"
    shutil.copytree(two_sets / "a", copy)
    with pytest.raises(EvalError, match=r"path: is .*/a, but the YAML lies in .*kept.*Set path:"):
        load_split(copy / "data.yaml", "val")
    with pytest.raises(TrainError, match="holds a dataset of its own"):
        check_dataset(copy / "data.yaml")
    with pytest.raises(ValueError, match="holds a dataset of its own"):
        mix([(str(copy / "data.yaml"), 1.0)], tmp_path / "mix")
    d = yaml.safe_load((copy / "data.yaml").read_text())
    d["path"] = str(copy)
    (copy / "data.yaml").write_text(yaml.safe_dump(d))
    items, _ = load_split(copy / "data.yaml", "val")
    assert items and all(copy in it["image"].parents for it in items)
    # a YAML kept apart from its images (no dataset beside it) is read from its path: as before
    lone = tmp_path / "yamls"
    lone.mkdir()
    shutil.copy(two_sets / "b" / "data.yaml", lone / "b.yaml")
    items, _ = load_split(lone / "b.yaml", "val")
    assert items and all((two_sets / "b") in it["image"].parents for it in items)
