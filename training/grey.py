"""A grey network inside a model directory: grey scans are read by a network trained on grey scans.

Grey scans (single-energy scanners, or dual-energy ones shown in grey) carry no material colour; one
network for both renderings gave up some of each. `make grey-network` exports weights fine-tuned on
grey scans only into MODEL/grey and attaches it here: MODEL's model.json then names it
(`grey_network`), and the engine (detector.engine.Engine) routes each scan imaging.is_grey finds grey
to it, at its own thresholds (calibrated on grey scans by `make eval`), every other scan to the main
network, as before.

    python -m training.grey MODEL_DIR            # attach MODEL_DIR/grey (an `xfd export` directory)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RULE = ("a scan whose channels agree (imaging.is_grey: of its pixels that show something, under 2 % have channels more "
        "than 12 levels apart) is read by the grey network at its own thresholds; every other scan by the main network")


class GreyError(ValueError):
    pass


def attach(model_dir: str | Path, sub: str = "grey") -> dict:
    """Name MODEL_DIR/sub as the model's grey network: its OpenVINO IR is what is served (its PyTorch
    weights are dropped to keep the directory small; their sha256 stays in its model.json), named and
    versioned as the model it belongs to. Returns the model's model.json."""
    from detector.engine import ModelError, load_model_info
    from training.export import write_sha256sums

    root = Path(model_dir)
    g = root / sub
    try:
        main, grey = load_model_info(root), load_model_info(g)
    except ModelError as e:
        raise GreyError(str(e)) from None
    if grey.names != main.names:
        raise GreyError(f"{g} has classes {grey.names}, {root} has {main.names}: a grey network must answer in the same classes")
    gm = json.loads((g / "model.json").read_text())
    if "openvino" not in gm.get("files", {}):
        raise GreyError(f"{g} has no OpenVINO FP32 IR (export it with --formats openvino)")
    if (g / "model.pt").exists():
        (g / "model.pt").unlink()
    gm["files"] = {"openvino": gm["files"]["openvino"]}
    gm.update({"name": f"{main.name}-grey", "version": main.version, "default_backend": "openvino",
               "reads": f"grey scans, routed to it by the model directory above ({RULE})"})
    (g / "model.json").write_text(json.dumps(gm, indent=1))
    meta = json.loads((root / "model.json").read_text())
    meta["grey_network"] = {"dir": sub, "rule": RULE}
    (root / "model.json").write_text(json.dumps(meta, indent=1))
    write_sha256sums(g)
    write_sha256sums(root)
    return meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.grey", description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir")
    p.add_argument("--dir", default="grey", help="the grey network's directory inside model_dir")
    a = p.parse_args(argv)
    try:
        meta = attach(a.model_dir, a.dir)
    except GreyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{a.model_dir}: grey scans now read by {a.dir}/ ({meta['grey_network']['rule']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
