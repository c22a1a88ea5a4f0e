"""Offline switches, imported before ultralytics anywhere in the project.

Ultralytics phones home in several places: it downloads fonts (check_font ignores
YOLO_OFFLINE), weights named by bare file name, AMP-check weights, pip-installs
missing export packages, syncs settings and starts experiment trackers. This module
turns all of that off, gives ultralytics a project-local config directory holding a
bundled permissive font (DejaVu Sans, under the names ultralytics looks for), and
sets the CPU thread count (ultralytics drops torch to cpu_count-1 = 1 thread on a
2-core machine; 2 threads measured ~1.6x faster for inference here).

Call configure() (idempotent) before importing ultralytics; `import detector` does.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

_DONE = False
REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).resolve().parent / "assets"


def default_threads() -> int:
    env = os.environ.get("XFD_THREADS")
    if env:
        return max(1, int(env))
    return max(1, os.cpu_count() or 1)


def config_dir() -> Path:
    return Path(os.environ.get("XFD_CACHE_DIR", REPO_ROOT / ".cache")) / "ultralytics"


_ENV_DONE = False


def set_env() -> None:
    """The cheap part, run by `import detector` (and so by training/ and serve/): the
    environment ultralytics reads at import time, and its config dir with our font.
    Unpickling a checkpoint imports ultralytics, so this must come first."""
    global _ENV_DONE
    if _ENV_DONE:
        return
    threads = default_threads()
    os.environ["YOLO_OFFLINE"] = "true"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("YOLO_VERBOSE", "false")
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    for var in ("WANDB_MODE", "COMET_MODE", "CLEARML_OFFLINE_MODE"):
        os.environ.setdefault(var, "offline" if var != "CLEARML_OFFLINE_MODE" else "1")
    os.environ["MLFLOW_TRACKING_URI"] = ""
    os.environ["HF_HUB_OFFLINE"] = "1"
    cfg = config_dir()
    os.environ["YOLO_CONFIG_DIR"] = str(cfg)
    fonts = cfg / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = fonts / name
        if not target.exists():
            shutil.copyfile(ASSETS / "DejaVuSans.ttf", target)
    _ENV_DONE = True


def configure() -> None:
    """set_env() plus ultralytics settings (sync and trackers off) and thread counts."""
    global _DONE
    set_env()
    if _DONE:
        return
    _DONE = True
    _patch_ultralytics(default_threads())


def _patch_ultralytics(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from ultralytics import settings
    from ultralytics.utils import torch_utils

    torch_utils.NUM_THREADS = threads  # select_device() resets torch threads to this
    off = {k: False for k in ("sync", "hub", "clearml", "comet", "dvc", "mlflow", "neptune", "raytune", "tensorboard", "wandb") if k in settings}
    if any(settings.get(k) for k in off):
        settings.update(off)


def refuse_download_key(data_yaml: str | Path) -> None:
    """Ultralytics executes a dataset YAML's `download:` key. We never run it."""
    import yaml

    p = Path(data_yaml)
    try:
        d = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"dataset YAML not found: {p}") from None
    except yaml.YAMLError as e:
        raise ValueError(f"dataset YAML {p} is not valid YAML: {e}") from None
    if not isinstance(d, dict):
        raise ValueError(f"dataset YAML {p} is not a mapping")
    if "download" in d:
        raise ValueError(
            f"dataset YAML {p} has a 'download:' key; this project runs offline and refuses to execute it. "
            "Remove the key and point 'path' at data already on disk."
        )
