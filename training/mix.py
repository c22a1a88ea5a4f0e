"""`xfd mix`: one training set from several datasets with weights (e.g. synthetic 1.0 +
imported seizure imagery 3.0). A weight w repeats each image floor(w) times and once
more with probability w - floor(w); validation sets are joined unweighted. Test sets
stay separate: compare models on each held-out set on its own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from detector import offline, taxonomy
from training.data_yaml import dataset_root
from training.evaluate import IMG_EXT


def _split_images(data_yaml: Path, split: str) -> list[str]:
    d = yaml.safe_load(data_yaml.read_text())
    if split not in d:
        return []
    root = dataset_root(data_yaml, d)
    entries = d[split] if isinstance(d[split], list) else [d[split]]
    out = []
    for e in entries:
        p = root / e
        if p.is_dir():
            out += [str(x) for x in sorted(p.rglob("*")) if x.suffix.lower() in IMG_EXT]
        elif p.suffix == ".txt" and p.exists():
            out += [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
    return out


def mix(sources: list[tuple[str, float]], out: str | Path, seed: int = 0) -> dict:
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    train, val, counts = [], [], {}
    for path, w in sources:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"dataset YAML not found: {p}")
        if w < 0:
            raise ValueError(f"weight of {p} is negative: {w}")
        offline.refuse_download_key(p)
        d = yaml.safe_load(p.read_text())
        names = d["names"]
        names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
        if names != taxonomy.names()[: len(names)]:
            raise ValueError(f"{p} classes {names} differ from the taxonomy; import it with `xfd import` first")
        imgs = _split_images(p, "train")
        rep = int(np.floor(w))
        chosen = imgs * rep + [x for x in imgs if rng.random() < w - rep]
        train += chosen
        if d.get("val") != d.get("train"):  # a train-only set names its train images as val: never validate on them
            val += _split_images(p, "val")
        counts[str(p)] = {"weight": w, "images": len(imgs), "in_mix": len(chosen)}
    if not train:
        raise ValueError("the mix has no training images")
    (out / "train.txt").write_text("\n".join(train) + "\n")
    (out / "val.txt").write_text("\n".join(val or train[:50]) + "\n")
    data = {"path": str(out), "train": "train.txt", "val": "val.txt", "names": dict(enumerate(taxonomy.names()))}
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    summary = {"data": str(out / "data.yaml"), "sources": counts, "train_images": len(train), "val_images": len(val)}
    (out / "mix.json").write_text(json.dumps(summary, indent=1))  # what a model card says the mix was made of
    return summary
