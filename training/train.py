"""`xfd train`: train a detector with ultralytics, offline, resumable.

The architecture comes from models/architectures/<name>.yaml (never a download);
fine-tuning starts from one of our own checkpoints. A run directory holds the
resolved configuration (xfd_config.json and ultralytics' args.yaml), per-epoch
metrics (results.csv), weights/best.pt and weights/last.pt.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from detector import offline
from detector.taxonomy import REPO_ROOT, names
from training.data_yaml import dataset_root

ARCH_DIR = REPO_ROOT / "models" / "architectures"
DEFAULT_CONFIG = REPO_ROOT / "configs" / "train.yaml"
ARCHITECTURES = ("yolo26n", "yolo11n", "yolo26n-p2")


class TrainError(ValueError):
    pass


def load_config(path: str | Path | None = None) -> dict:
    p = Path(path) if path else DEFAULT_CONFIG
    if not p.exists():
        raise TrainError(f"training config not found: {p}")
    cfg = yaml.safe_load(p.read_text()) or {}
    base = cfg.pop("base", None)  # a config may extend another one: `base: train.yaml`
    if base:
        if Path(base).name == p.name:
            raise TrainError(f"training config {p} names itself as its base")
        merged = load_config(p.parent / base)
        merged.update(cfg)
        return merged
    return cfg


def check_dataset(data: str | Path) -> dict:
    """Validate a dataset YAML before ultralytics sees it: exists, no download key,
    images present, class names known to our taxonomy."""
    p = Path(data)
    if not p.exists():
        raise TrainError(f"dataset YAML not found: {p}")
    offline.refuse_download_key(p)
    d = yaml.safe_load(p.read_text())
    root = dataset_root(p, d, TrainError)
    for split in ("train", "val"):
        if split not in d:
            raise TrainError(f"dataset YAML {p} has no '{split}' entry")
        for e in d[split] if isinstance(d[split], list) else [d[split]]:  # a folder, a .txt list, or a list of them
            sp = root / str(e)
            if not sp.exists():
                raise TrainError(f"{split} images not found: {sp}")
    dn = d.get("names")
    dn = list(dn.values()) if isinstance(dn, dict) else list(dn or [])
    unknown = [n for n in dn if n not in names()]
    if unknown:
        raise TrainError(f"dataset classes not in configs/classes.yaml: {unknown}; map them with `xfd import --class-map`")
    if dn != names()[: len(dn)]:
        raise TrainError(f"dataset class order {dn} differs from the taxonomy {names()}; re-import it")
    return d


def train(data: str, model: str | None = None, weights: str | None = None, epochs: int | None = None,
          imgsz: int | None = None, batch: int | None = None, workers: int | None = None,
          device: str = "cpu", project: str = "runs/train", name: str = "default", resume: bool = False,
          config: str | None = None, fraction: float = 1.0, **overrides) -> Path:
    offline.configure()
    import logging

    import ultralytics.utils as ul_utils
    from ultralytics import YOLO

    # training shows per-epoch progress bars and ETA (the rest of the project keeps ultralytics quiet)
    ul_utils.VERBOSE = True
    ul_utils.LOGGER.setLevel(logging.INFO)
    for h in ul_utils.LOGGER.handlers:
        h.setLevel(logging.INFO)
    cfg = load_config(config)
    arch = model or cfg.pop("model", "yolo26n")
    cfg.pop("model", None)
    for k, v in (("epochs", epochs), ("imgsz", imgsz), ("batch", batch), ("workers", workers)):
        if v is not None:
            cfg[k] = v
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    run_dir = (Path(project) / name).resolve()
    last = run_dir / "weights" / "last.pt"
    if resume:
        if not last.exists():
            raise TrainError(f"nothing to resume: {last} does not exist")
        print(f"resuming {last}", flush=True)
        YOLO(str(last)).train(resume=True)
        return run_dir
    check_dataset(data)
    if weights:
        wp = Path(weights)
        if not wp.exists():
            raise TrainError(f"weights not found: {wp}")
        yolo = _load_checkpoint(wp)
        source = f"fine-tune from {wp}"
        # ultralytics rebuilds the model from its YAML and drops the loaded weights when pretrained is False:
        # name the checkpoint explicitly so its weights are transferred
        pretrained: bool | str = str(wp.resolve())
    else:
        if arch not in ARCHITECTURES:
            raise TrainError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        yolo = YOLO(str(ARCH_DIR / f"{arch}.yaml"))
        source = f"from scratch ({arch})"
        pretrained = False
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = {"data": str(Path(data).resolve()), "architecture": arch, "source": source, "device": device,
                "hardware": hardware(device), "fraction": fraction, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **cfg}
    (run_dir / "xfd_config.json").write_text(json.dumps(resolved, indent=2))
    print(f"training {source} on {data} -> {run_dir}", flush=True)
    yolo.train(data=str(Path(data).resolve()), project=str(run_dir.parent), name=run_dir.name, exist_ok=True,
               device=device, pretrained=pretrained, fraction=fraction, verbose=True, **cfg)
    return run_dir


def hardware(device: str) -> str:
    """What the run trains on, in words, for the model card: 'NVIDIA H100 80GB HBM3, 16 CPU cores'."""
    import os

    cores = f"{os.cpu_count()} CPU cores"
    if str(device) != "cpu":
        try:
            import torch

            idx = int(str(device).split(",")[0]) if str(device).split(",")[0].isdigit() else 0
            return f"{torch.cuda.get_device_name(idx)}, {cores}"
        except Exception:  # no CUDA here: say what was asked for
            return f"device {device}, {cores}"
    return f"CPU, {cores}"


def _load_checkpoint(path: Path):
    from ultralytics import YOLO

    try:
        return YOLO(str(path))
    except Exception as e:  # corrupt or foreign file: say so plainly
        raise TrainError(f"cannot load weights {path}: {type(e).__name__}: {e}") from None
