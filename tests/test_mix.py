"""`xfd mix` joins validation sets, but never a train-only set's training images: such a set's
data.yaml names its train images as val (ultralytics needs a val entry), and validating the
mixed set on them would pick the best epoch on training images."""

from pathlib import Path

from detector.synth.dataset import write_dataset
from training.mix import mix


def test_mix_does_not_validate_on_a_train_only_set(tmp_path):
    quiet = dict(workers=1, coco=False, sheet=False, progress=lambda *a: None)
    write_dataset(tmp_path / "a", 3, seed=31, split="train=1", **quiet)
    write_dataset(tmp_path / "b", 4, seed=32, split="train=0.5,val=0.5", **quiet)
    m = mix([(str(tmp_path / "a" / "data.yaml"), 1.0), (str(tmp_path / "b" / "data.yaml"), 1.0)], tmp_path / "mix")
    val = Path(tmp_path / "mix" / "val.txt").read_text().split()
    assert m["train_images"] == 5 and m["val_images"] == 2
    assert all("/b/images/val/" in v for v in val)
