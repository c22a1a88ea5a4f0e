"""Where a dataset YAML's images are: its `path:`, or the YAML's own directory.

Our datasets (simulated, imported, mixed) write an absolute `path:`, as ultralytics needs. A
dataset directory moved or copied elsewhere keeps the old `path:`, and would silently read the
other directory's scans (session 19 evaluated a kept copy of old test sets that way, against the
new ones): that is refused, naming both directories.
"""

from __future__ import annotations

from pathlib import Path


def dataset_root(p: Path, d: dict, error: type[Exception] = ValueError) -> Path:
    """The root the splits of dataset YAML p (parsed: d) are relative to; `error` when its `path:`
    names another directory while the YAML's own directory holds a dataset of its own."""
    here = p.parent.resolve()
    root = Path(d.get("path") or here)
    root = root if root.is_absolute() else (here / root).resolve()
    if root.resolve() != here:
        entries = [e for s in ("train", "val", "test") if d.get(s)
                   for e in (d[s] if isinstance(d[s], list) else [d[s]])]
        own = [str(e) for e in entries if isinstance(e, str) and not Path(e).is_absolute() and (here / e).exists()]
        if own and ((here / "manifest.json").exists() or not all((root / e).exists() for e in own)):
            raise error(f"{p}: its path: is {root}, but the YAML lies in {here}, which holds a dataset of its own "
                        f"({', '.join(own)}): a moved or copied dataset would be read from the old place. "
                        f"Set path: {here} in it")
    return root
