"""`xfd keys create|list|revoke`: API keys in the service's data directory."""

from __future__ import annotations

import json
import sys

from .app import Settings
from .store import Store


def keys_cli(a) -> int:
    store = Store(a.data_dir or Settings().data_dir)
    if a.action == "create":
        if not a.role:
            print("xfd keys: error: --role integrator|operator|admin is required", file=sys.stderr)
            return 2
        lanes = [x.strip() for x in a.lanes.split(",") if x.strip()] if getattr(a, "lanes", None) else None
        try:
            kid, token = store.create_key(a.role, a.name, getattr(a, "expires_days", None), lanes)
        except ValueError as e:
            print(f"xfd keys: error: {e}", file=sys.stderr)
            return 2
        print(json.dumps({"id": kid, "role": a.role, "name": a.name, "key": token,
                          "expires": next(k["expires"] for k in store.list_keys() if k["id"] == kid), "lanes": lanes}))
        print("store this key now: it is shown once and kept only as a hash", file=sys.stderr)
        return 0
    if a.action == "list":
        for k in store.list_keys():
            print(json.dumps(k))
        return 0
    if not a.key_id:
        print("xfd keys: error: revoke needs a KEY_ID (see `xfd keys list`)", file=sys.stderr)
        return 2
    if not store.revoke_key(a.key_id):
        print(f"xfd keys: error: no active key {a.key_id}", file=sys.stderr)
        return 2
    print(json.dumps({"revoked": a.key_id}))
    return 0
