"""Model registry in the service's data directory: versions with their cards, metrics
and hashes; which one is active; promote and rollback.

Layout: DATA_DIR/models/<version>/ (a model directory) and DATA_DIR/models/registry.json
{"active": version, "history": [versions promoted, oldest first]}. The running service
watches registry.json and swaps models without downtime: load, warm, self-test, then
an atomic swap; if any step fails the old model keeps serving.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from detector.engine import load_model_info


class RegistryError(ValueError):
    pass


class Registry:
    def __init__(self, data_dir: str | Path):
        self.root = Path(data_dir) / "models"
        self.root.mkdir(parents=True, exist_ok=True)
        self.file = self.root / "registry.json"

    def state(self) -> dict:
        if not self.file.exists():
            return {"active": None, "history": [], "events": []}
        return json.loads(self.file.read_text())

    def _write(self, st: dict) -> None:
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(st, indent=1))
        os.replace(tmp, self.file)

    def versions(self) -> list[dict]:
        out = []
        active = self.state().get("active")
        for d in sorted(p for p in self.root.iterdir() if p.is_dir()):
            try:
                info = load_model_info(d)
            except Exception as e:  # a broken entry is listed as such
                out.append({"version": d.name, "error": str(e)})
                continue
            out.append({"version": d.name, "name": info.name, "sha256": info.sha256, "active": d.name == active,
                        "metrics": info.meta.get("metrics"), "calibration": info.meta.get("calibration"),
                        "created": info.meta.get("created"), "grey_network": bool(info.meta.get("grey_network"))})
        return out

    def path(self, version: str) -> Path:
        p = self.root / version
        if not p.is_dir():
            raise RegistryError(f"no model version {version!r} in {self.root} (have: {', '.join(v['version'] for v in self.versions()) or 'none'})")
        return p

    def add(self, model_dir: str | Path, version: str | None = None) -> str:
        src = Path(model_dir)
        info = load_model_info(src)  # refuses what cannot load
        if not src.is_dir():
            raise RegistryError("add a model directory (with model.json), not a bare weights file")
        version = version or info.version
        dst = self.root / version
        if dst.exists():
            raise RegistryError(f"version {version!r} already in the registry")
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".export_tmp"))
        meta = json.loads((dst / "model.json").read_text())
        meta["version"] = version
        (dst / "model.json").write_text(json.dumps(meta, indent=1))
        return version

    def promote(self, version: str) -> dict:
        self.path(version)
        st = self.state()
        st.setdefault("history", []).append(version)
        st["active"] = version
        st.setdefault("events", []).append({"ts": time.time(), "action": "promote", "version": version})
        self._write(st)
        return st

    def rollback(self) -> dict:
        st = self.state()
        hist = st.get("history", [])
        if len(hist) < 2:
            raise RegistryError("nothing to roll back to: fewer than two promotions in the history")
        hist.pop()
        st["active"] = hist[-1]
        st.setdefault("events", []).append({"ts": time.time(), "action": "rollback", "version": st["active"]})
        self._write(st)
        return st

    def active_path(self) -> Path | None:
        v = self.state().get("active")
        return self.path(v) if v else None


def models_cli(a) -> int:
    from serve.app import Settings

    reg = Registry(a.data_dir or Settings().data_dir)
    if a.action == "list":
        for v in reg.versions():
            print(json.dumps(v))
        return 0
    if a.action == "add":
        if not a.target:
            raise RegistryError("add needs a model directory")
        v = reg.add(a.target, a.version)
        print(json.dumps({"added": v}))
        return 0
    if a.action == "promote":
        if not a.target:
            raise RegistryError("promote needs a VERSION (see `xfd models list`)")
        st = reg.promote(a.target)
        print(json.dumps({"active": st["active"]}))
        print("a running service swaps to it within seconds (load, warm, self-test, swap); see /v1/models", flush=True)
        return 0
    if a.action == "rollback":
        st = reg.rollback()
        print(json.dumps({"active": st["active"]}))
        return 0
    raise RegistryError(f"unknown action {a.action}")
