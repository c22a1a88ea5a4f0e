"""How the engine's negative-display test (detector.imaging.negative_display) fares on a dataset:
`python -m training.negatives data/synth-test data/synth-cal ...`.

Each scan is judged as stored, framed in black (a screen grab), negated (the display's inverse key)
and negated in a black frame, altered as `xfd robustness` alters it (frame:0.1, invert). A scan the simulator drew as a negative display (the manifest's
`display.negative`, vendor-look sets) counts the other way round. No model is run: this is the
decision alone, which sends a scan to be read turned back or as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2

from detector import imaging
from training.robustness import make

# the alterations as `xfd robustness` makes them: a black frame a tenth of the shorter side wide, a negative
frame, invert = make("frame:0.1"), make("invert")


def check(dataset: Path) -> dict:
    """Counts for one dataset directory (with manifest.json): negatives missed of those shown, and
    scans shown as they are that were called negatives, with the files of each."""
    man = json.loads((dataset / "manifest.json").read_text())
    out = {"scans": 0, "negatives": 0, "missed": [], "positives": 0, "called": []}
    for s in man["scans"]:
        f = dataset / s["file"]
        bgr = cv2.imread(str(f))
        if bgr is None:
            raise SystemExit(f"{f}: not an image")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        stored_negative = bool((s.get("display") or {}).get("negative"))
        out["scans"] += 1
        i = s.get("index", 0)
        for name, im, neg in (("as stored", rgb, stored_negative), ("framed", frame(rgb, i), stored_negative),
                              ("negated", invert(rgb, i), not stored_negative),
                              ("negated, framed", frame(invert(rgb, i), i), not stored_negative)):
            called = imaging.negative_display(im)[0]
            if neg:
                out["negatives"] += 1
                if not called:
                    out["missed"].append(f"{s['file']} ({name})")
            else:
                out["positives"] += 1
                if called:
                    out["called"].append(f"{s['file']} ({name})")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.negatives", description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="+", type=Path, help="dataset directories (each with manifest.json)")
    a = ap.parse_args(argv)
    tot = {"negatives": 0, "missed": 0, "positives": 0, "called": 0}
    for d in a.datasets:
        if not (d / "manifest.json").is_file():
            print(f"{d}: no manifest.json (a dataset `xfd synth` wrote)", file=sys.stderr)
            return 2
        r = check(d)
        print(f"{d}: {r['scans']} scans; negatives missed {len(r['missed'])} of {r['negatives']}, "
              f"others called negative {len(r['called'])} of {r['positives']}")
        for f in r["missed"][:5] + r["called"][:5]:
            print(f"  {f}")
        for k in ("negatives", "positives"):
            tot[k] += r[k]
        tot["missed"] += len(r["missed"])
        tot["called"] += len(r["called"])
    print(f"all: negatives missed {tot['missed']} of {tot['negatives']}, others called negative {tot['called']} of {tot['positives']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
