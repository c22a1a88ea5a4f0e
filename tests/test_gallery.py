"""xfd gallery: the catalogue of what the simulator draws, one object a tile."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from detector import taxonomy
from detector.cli import main
from detector.synth.gallery import CONFUSER_ROWS, THREAT_ROWS, GalleryError, gallery


def test_threat_sheet_holds_every_class_in_every_orientation(tmp_path, capsys):
    out = tmp_path / "g" / "threats.png"
    assert main(["gallery", "--out", str(out), "--what", "threats", "--per-row", "5", "--tile", "120"]) == 0
    assert "11 rows x 5" in capsys.readouterr().out
    img = cv2.imread(str(out))
    assert img.shape == (len(THREAT_ROWS) * 120, 5 * 120, 3)
    meta = json.loads(out.with_suffix(".json").read_text())
    tiles = meta["tiles"]
    assert len(tiles) == len(THREAT_ROWS) * 5
    # every taxonomy class is drawn, each row holds what its title says, flat first then the other three
    assert {t["class"] for t in tiles} == {c.name for c in taxonomy.classes()}
    for t in tiles:
        assert t["title"] == t["class"] or t["title"].startswith("gun:")
    assert [t["orientation"] for t in tiles[:5]] == ["flat", "flat", "tilted", "edge", "end"]
    assert {t["kind"] for t in tiles if t["title"] == "gun: revolver"} == {"revolver"}
    # each tile shows its object: attenuating pixels (darker than air) inside it, air at its corners
    for t in tiles:
        y, x = t["row"] * 120, t["column"] * 120
        tile = img[y + 20 : y + 119, x + 1 : x + 119]  # under the caption, inside the frame
        assert (tile.min(2) < 150).mean() > 0.002, t
        assert img[y + 115, x + 4].min() > 200  # a corner: air
    # a carbine longer than the tile is drawn whole, shrunk, and says so
    carb = [t for t in tiles if t["kind"] == "carbine_smg"]
    assert carb and all(t["shrunk"] < 1 for t in carb) and all(max(t["size_mm"]) > 120 for t in carb)


def test_same_seed_same_sheet_and_confusers_unlabelled(tmp_path):
    a, b, c = (tmp_path / n for n in ("a.png", "b.png", "c.png"))
    gallery(a, what="confusers", per_row=2, tile=96, seed=4)
    gallery(b, what="confusers", per_row=2, tile=96, seed=4)
    gallery(c, what="confusers", per_row=2, tile=96, seed=5)
    assert a.read_bytes() == b.read_bytes() and a.read_bytes() != c.read_bytes()
    meta = json.loads(a.with_suffix(".json").read_text())
    assert len({t["row"] for t in meta["tiles"]}) == len(CONFUSER_ROWS)
    assert all(t["class"] is None for t in meta["tiles"])
    assert {"glue_gun", "toy_gun", "staple_gun", "drill"} <= {t["title"] for t in meta["tiles"]}
    # grayscale: one value in all three channels
    g = tmp_path / "g.png"
    gallery(g, what="threats", per_row=1, tile=96, gray=True)
    im = cv2.imread(str(g))
    assert np.array_equal(im[..., 0], im[..., 1]) and np.array_equal(im[..., 1], im[..., 2])


@pytest.mark.parametrize("kwargs, msg", [
    ({"what": "knives"}, "what must be one of"), ({"per_row": 0}, "per_row must be"), ({"mm_per_px": 5}, "mm_per_px must be"),
    ({"tile": 20}, "tile must be"),
])
def test_bad_settings_are_refused(tmp_path, kwargs, msg):
    with pytest.raises(GalleryError, match=msg):
        gallery(tmp_path / "x.png", **kwargs)
    assert not list(tmp_path.iterdir())


def test_cli_names_a_bad_output(tmp_path, capsys):
    assert main(["gallery", "--out", str(tmp_path / "sheet.gif")]) == 2
    assert "give a .png or .jpg path" in capsys.readouterr().err
