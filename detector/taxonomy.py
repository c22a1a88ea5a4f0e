"""The class taxonomy (configs/classes.yaml): names, descriptions, display colours."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
CLASSES_FILE = REPO_ROOT / "configs" / "classes.yaml"


@dataclass(frozen=True)
class ThreatClass:
    id: int
    name: str
    description: str
    color: str  # "#rrggbb"

    @property
    def bgr(self) -> tuple[int, int, int]:
        h = self.color.lstrip("#")
        r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
        return (b, g, r)


@functools.lru_cache(maxsize=1)
def classes() -> tuple[ThreatClass, ...]:
    data = yaml.safe_load(CLASSES_FILE.read_text())
    return tuple(
        ThreatClass(i, c["name"], c["description"], c["color"]) for i, c in enumerate(data["classes"])
    )


def names() -> list[str]:
    return [c.name for c in classes()]


def class_id(name: str) -> int:
    for c in classes():
        if c.name == name:
            return c.id
    raise KeyError(f"unknown class {name!r}; known: {', '.join(names())}")
