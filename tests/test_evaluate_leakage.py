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

    # a split given as a .txt list of images (what `xfd mix` writes) is checked too
    import yaml

    (root / "list.txt").write_text(str(leaked) + "\n")
    y = yaml.safe_load((root / "data.yaml").read_text())
    y["train"] = y["val"] = "list.txt"  # a train-only set names its train images as val too
    (root / "mix.yaml").write_text(yaml.safe_dump(y))
    rep = evaluate(eng, str(root / "mix.yaml"), "test", tmp_path / "r3")
    assert str(root / "list.txt") in rep["leakage"]["checked_against"]
    assert str(root / "images" / "train") not in rep["leakage"]["checked_against"]
    assert rep["leakage"]["overlap"] == 1 and rep["leakage"]["examples"][0]["also_in"] == str(leaked)


def test_training_set_not_on_this_machine_is_reported(tmp_path, model_dir):
    """A model trained elsewhere (the shipped one: on a GPU machine) names a training set that
    is not here: the report says that check was not made instead of implying it was."""
    from pathlib import Path

    import torch

    write_dataset(tmp_path / "d", 2, seed=778, split="test=1", workers=1, coco=False, sheet=False, progress=lambda *a: None)
    eng = Engine(model_dir, concurrency=1)
    ck = torch.load(eng.info.files["torch"], map_location="cpu", weights_only=False)
    trained_on = Path(str(ck["train_args"]["data"]))
    rep = evaluate(eng, str(tmp_path / "d" / "data.yaml"), "test", tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text()
    if trained_on.is_file():
        assert rep["leakage"]["not_found"] == [] and "Not checked" not in md
        assert any(str(trained_on.parent) in d for d in rep["leakage"]["checked_against"])
    else:
        assert rep["leakage"]["not_found"] == [str(trained_on)]
        assert f"Not checked: the training set named in the checkpoint ({trained_on})" in md
