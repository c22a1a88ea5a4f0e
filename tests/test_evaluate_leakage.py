"""`xfd eval` reports evaluated images that also occur, byte for byte, in the other splits
(a mistake peers' repositories keep making: validating on training images)."""

import shutil

from detector.engine import Engine
from detector.synth.dataset import write_dataset
from training.evaluate import evaluate


def test_leakage_is_found_and_reported(tmp_path, model_dir):
    write_dataset(tmp_path / "d", 4, seed=777, split="train=0.5,test=0.5", workers=1, coco=False, sheet=False,
                  progress=lambda *a: None)
    root = tmp_path / "d"
    eng = Engine(model_dir, concurrency=1)
    clean = evaluate(eng, str(root / "data.yaml"), "test", tmp_path / "r1")
    assert clean["leakage"]["overlap"] == 0 and clean["leakage"]["images_checked"] >= 2

    leaked = sorted((root / "images" / "train").glob("*.png"))[0]
    shutil.copy(leaked, root / "images" / "test" / "copied.png")
    shutil.copy(root / "labels" / "train" / (leaked.stem + ".txt"), root / "labels" / "test" / "copied.txt")
    rep = evaluate(eng, str(root / "data.yaml"), "test", tmp_path / "r2")
    assert rep["leakage"]["overlap"] == 1
    assert rep["leakage"]["examples"][0]["also_in"] == str(leaked)
    assert "metrics inflated" in (tmp_path / "r2" / "report.md").read_text()
