"""`xfd storage status|purge|backup`: the service's data directory, its free space, retention and backups."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .app import Settings, parse_days
from .store import Store


def storage_cli(a) -> int:
    try:
        s = Settings()  # XFD_RETAIN_DAYS, XFD_RETAIN_CLEAR_DAYS, XFD_MIN_FREE_MB as the service reads them
        retain = parse_days("--retain-days")(a.retain_days) if a.retain_days is not None else s.retain_days
        clear = parse_days("--retain-clear-days")(a.retain_clear_days) if a.retain_clear_days is not None else s.retain_clear_days
    except ValueError as e:
        print(f"xfd storage: error: {e}", file=sys.stderr)
        return 2
    root = Path(a.data_dir or s.data_dir)
    if not (root / "xfd.sqlite3").exists():  # a mistyped directory is not created and reported empty
        print(f"xfd storage: error: no service database in {root} (xfd.sqlite3); pass the service's --data-dir",
              file=sys.stderr)
        return 2
    store = Store(root)
    if a.action == "status":
        st = store.storage_status()
        st.update({"min_free_bytes": s.min_free_bytes, "retain_days": retain, "retain_clear_days": clear,
                   "below_floor": st["disk_free_bytes"] < s.min_free_bytes})
        print(json.dumps(st, indent=1))
        return 0
    if a.action == "backup":
        if not a.out:
            print("xfd storage: error: backup needs --out DIR", file=sys.stderr)
            return 2
        try:
            done = store.backup(a.out, images=not a.no_images)
        except (ValueError, OSError) as e:
            print(f"xfd storage: error: backup failed: {e}", file=sys.stderr)
            return 1
        store.audit(None, "storage.backup", str(done["out"]), {k: v for k, v in done.items() if k not in ("out", "missing")}
                    | {"missing": len(done["missing"]), "by": "cli"})
        print(json.dumps({k: v for k, v in done.items() if k != "missing"} | {"missing": len(done["missing"])}))
        print(f"backed up {done['scans']} scans into {done['out']}: {done['files_copied']} files copied "
              f"({done['bytes_copied'] / 2**20:.1f} MB), {done['files_present']} already there"
              + (f"; {len(done['missing'])} scans had no image file (listed in backup.json)" if done["missing"] else ""),
              file=sys.stderr)
        return 0
    if not (retain or clear):
        print("xfd storage: nothing to purge: both retentions are 0 (keep for ever); set --retain-days or "
              "--retain-clear-days (or XFD_RETAIN_DAYS / XFD_RETAIN_CLEAR_DAYS)", file=sys.stderr)
        return 2
    done = store.purge(retain, clear, dry_run=a.dry_run)
    if done["scans"] and not a.dry_run:
        store.audit(None, "storage.purge", None, {**done, "retain_days": retain, "retain_clear_days": clear, "by": "cli"})
    print(json.dumps({**done, "retain_days": retain, "retain_clear_days": clear}))
    verb = "would delete" if a.dry_run else "deleted"
    print(f"{verb} the images of {done['scans']} scans ({done['files']} files, {done['bytes'] / 2**20:.1f} MB); "
          "their records stay", file=sys.stderr)
    return 0
