"""DICOS (NEMA IIC 1): DICOS/DICOM projection scans in, Threat Detection Reports out.

The DICOS files here are written with pydicom directly, as a scanner's software would, not
with our own writer, so reading them tests our reader against the standard's encoding."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import cv2
import httpx
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, RLELossless, generate_uid

from detector import dicos, imaging

from .conftest import REPO, png_bytes

DX = dicos.DICOS_DX[1]


def _dataset(sop=DX, modality="DX", rows=64, cols=96) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop, meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID = "PARCEL-0042"  # DICOS: the object of inspection
    ds.Rows, ds.Columns = rows, cols
    return ds


def _save(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def dx_grey(values: np.ndarray, photometric="MONOCHROME2", sign=None, bits=16, rle=False, window=None) -> bytes:
    ds = _dataset(rows=values.shape[0], cols=values.shape[1])
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16 if bits > 8 else 8, bits, bits - 1, 0
    ds.PresentationIntentType = "FOR PROCESSING"
    if sign is not None:
        ds.PixelIntensityRelationship, ds.PixelIntensityRelationshipSign = "LIN", sign
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = values.astype(np.uint16 if bits > 8 else np.uint8).tobytes()
    if rle:
        ds.compress(RLELossless)
    return _save(ds)


def dx_rgb(rgb: np.ndarray, jpeg: bool = False) -> bytes:
    ds = _dataset(rows=rgb.shape[0], cols=rgb.shape[1])
    ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if jpeg:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.PixelData = encapsulate([buf.tobytes()])
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompression = "01"
    else:
        ds.PhotometricInterpretation = "RGB"
        ds.PixelData = np.ascontiguousarray(rgb).tobytes()
    return _save(ds)


def _transmission():
    """A simulated scan's high-energy transmission (air 1) as 14-bit detector counts."""
    from detector.synth.scene import SceneConfig, simulate

    s = simulate(31, 3, SceneConfig(p_jpeg=0.0), keep_raw=True)
    return np.round(s.t_high * 16383).astype(np.uint16), s


# ----------------------------------------------------------------- reading
def test_grey_dicos_dx_reads_with_air_white_whichever_way_it_is_encoded():
    counts, _ = _transmission()
    want = np.clip(counts.astype(np.float32) * (255 / 16383) + 0.5, 0, 255).astype(np.uint8)
    inverted = 16383 - counts
    cases = {
        "MONOCHROME2": dx_grey(counts, bits=14),
        "MONOCHROME2, sign +1, RLE": dx_grey(counts, sign=1, bits=14, rle=True),
        "MONOCHROME1 (air stored low)": dx_grey(inverted, "MONOCHROME1", bits=14),
        "MONOCHROME2 with sign -1 (air stored low)": dx_grey(inverted, sign=-1, bits=14),
        "MONOCHROME1 with sign +1 (air stored high)": dx_grey(counts, "MONOCHROME1", sign=1, bits=14),
    }
    for name, data in cases.items():
        d = imaging.decode(data)
        assert d.format == "DICOM" and d.bit_depth == 14, name
        assert d.rgb.shape == (*counts.shape, 3) and d.rgb.dtype == np.uint8, name
        assert np.abs(d.rgb[..., 0].astype(int) - want).max() <= 1, name
        assert (d.rgb[..., 0] == d.rgb[..., 2]).all(), name
        assert d.rgb[0, 0, 0] == 255, f"{name}: air must be white"
        assert d.ids["PatientID"] == "PARCEL-0042" and d.ids["SOPClassUID"] == DX, name


def test_window_and_8_bit_grey():
    v = np.tile(np.arange(0, 4000, 40, dtype=np.uint16), (40, 1))  # 40 rows: a scan is at least 32 px each way
    d = imaging.decode(dx_grey(v, bits=12, window=(2000, 2000)))
    row = d.rgb[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and row[25] == 0 and row[75] == 255  # 1000..3000 spans black to white
    assert 120 <= row[50] <= 135
    g = (np.arange(96, dtype=np.uint8)[None, :] * 2).repeat(64, 0)
    assert (imaging.decode(dx_grey(g, bits=8)).rgb[..., 1] == g).all()


def test_colour_dicos_dx_uncompressed_and_jpeg(scans):
    rgb = scans["threat"][0].image
    d = imaging.decode(dx_rgb(rgb))
    assert (d.rgb == rgb).all()
    j = imaging.decode(dx_rgb(rgb, jpeg=True))
    assert j.rgb.shape == rgb.shape and np.abs(j.rgb.astype(int) - rgb.astype(int)).mean() < 4


def test_the_model_sees_a_dicos_scan_as_it_sees_the_same_pixels_in_png(scans, model_dir):
    from detector.engine import Engine

    eng = Engine(model_dir, concurrency=1)
    for s in scans["threat"][:2]:
        a = eng.detect(imaging.decode(dx_rgb(s.image))).to_dict()
        b = eng.detect(imaging.decode(png_bytes(s.image))).to_dict()
        assert a["detections"] == b["detections"] and a["verdict"] == b["verdict"]


def test_bad_dicom_inputs_get_clear_errors():
    counts, _ = _transmission()
    good = dx_grey(counts, bits=14)

    def err(data):
        with pytest.raises(imaging.ImageError) as e:
            imaging.decode(data)
        return e.value

    e = err(good[: len(good) - 5000])
    assert e.code == "truncated" and "truncated" in str(e)
    e = err(good[:300])
    assert e.code in ("truncated", "bad_image")
    e = err(b"\0" * 128 + b"DICM" + b"\x07" * 50)
    assert e.code in ("truncated", "bad_image")
    # a 3D CT volume, a multi-frame image, a report, no pixels, 32-bit pixels, too many pixels
    ct = _dataset(dicos.DICOS_CT, "CT")
    e = err(_save(ct))
    assert e.code == "unsupported_format" and "3D" in str(e)
    mf = _dataset(rows=8, cols=8)
    mf.NumberOfFrames, mf.SamplesPerPixel, mf.PhotometricInterpretation = 2, 1, "MONOCHROME2"
    mf.BitsAllocated, mf.BitsStored, mf.HighBit, mf.PixelRepresentation = 8, 8, 7, 0
    mf.PixelData = bytes(128)
    assert "multi-frame" in str(err(_save(mf)))
    tdr = _dataset(dicos.DICOS_TDR, "TDR")
    assert "Threat Detection Report" in str(err(_save(tdr)))
    nopix = _dataset()
    e = err(_save(nopix))
    assert e.code == "bad_image" and "no image" in str(e)
    deep = _dataset(rows=4, cols=4)
    deep.SamplesPerPixel, deep.PhotometricInterpretation = 1, "MONOCHROME2"
    deep.BitsAllocated, deep.BitsStored, deep.HighBit, deep.PixelRepresentation = 32, 32, 31, 0
    deep.PixelData = bytes(64)
    assert err(_save(deep)).code == "unsupported_depth"
    huge = _dataset(rows=60000, cols=60000)
    huge.SamplesPerPixel, huge.PhotometricInterpretation = 1, "MONOCHROME2"
    huge.BitsAllocated, huge.BitsStored, huge.HighBit, huge.PixelRepresentation = 16, 16, 15, 0
    huge.PixelData = bytes(16)  # declared 3.6 GP: refused from the header, nothing decoded
    e = err(_save(huge))
    assert e.code == "too_large" and "3600.0 MP" in str(e)


# ----------------------------------------------------------------- writing reports
def _record(verdict="alarm"):
    dets = [{"label": "gun", "class_id": 0, "confidence": 0.81, "box": {"x1": 10.5, "y1": 20.0, "x2": 110.0, "y2": 80.0}, "alarm": True},
            {"label": "magazine", "class_id": 4, "confidence": 0.12, "box": {"x1": 5.0, "y1": 5.0, "x2": 30.0, "y2": 40.0}, "alarm": False}]
    if verdict == "clear":
        dets = dets[1:]
    return {"scan_id": "3f1c7a52-8d7e-4a36-9d47-5b1f0f3c2a10", "model": {"name": "xfd-default", "version": "2026.11.29.11", "sha256": "ab"},
            "image": {"width": 300, "height": 200}, "verdict": verdict, "reasons": [], "detections": dets,
            "timing_ms": {"total": 31.5}, "created": 1795830000.25,
            "review": {"state": "pending", "note": None, "boxes": None, "reviewed_at": None, "reviewed_by": None}}


def test_machine_report_holds_the_alarm_and_its_boxes_and_points_at_the_image():
    counts, _ = _transmission()
    src = imaging.decode(dx_grey(counts, bits=14)).ids
    data = dicos.write_tdr(_record(), src)
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.file_meta.MediaStorageSOPClassUID == dicos.DICOS_TDR == ds.SOPClassUID
    assert ds.Modality == "TDR" and ds.TDRType == "MACHINE" and ds.AlarmDecision == "ALARM"
    assert list(ds.ThreatDetectionAlgorithmAndVersion) == ["xfd-default", "2026.11.29.11"]
    assert ds.NumberOfAlarmObjects == ds.NumberOfTotalObjects == 1 == len(ds.ThreatSequence)  # the alarming box only
    assert ds.StudyInstanceUID == src["StudyInstanceUID"] and ds.PatientID == "PARCEL-0042"
    t = ds.ThreatSequence[0]
    pto, ass = t.PTORepresentationSequence[0], t.ATDAssessmentSequence[0]
    assert pto.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == src["SOPInstanceUID"]
    assert [round(v, 3) for v in pto.BoundingPolygon] == [10.5, 20.0, 0.0, 110.0, 80.0, 0.0]
    roi = pto.ThreatROIVoxelSequence[0]
    assert list(roi.ThreatROIBase)[:2] == [10.5, 20.0] and list(roi.ThreatROIExtents)[:2] == [99.5, 60.0]
    assert ass.ThreatCategory == "PI" and ass.ThreatCategoryDescription == "gun" and ass.ATDAssessmentFlag == "THREAT"
    assert abs(ass.ATDAssessmentProbability - 0.81) < 1e-6
    assert ds.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == src["SOPInstanceUID"]  # the report as a whole
    assert dicos.write_tdr(_record(), src) == data  # same scan, same report, same UIDs
    clear = pydicom.dcmread(io.BytesIO(dicos.write_tdr(_record("clear"))))
    assert clear.AlarmDecision == "CLEAR" and clear.NumberOfAlarmObjects == 0 and len(clear.ThreatSequence) == 0
    assert clear.PatientID == _record()["scan_id"]  # not a DICOS scan: the scan id stands for the object


def test_operator_report_follows_the_review():
    rec = _record()
    with pytest.raises(ValueError, match="not been reviewed"):
        dicos.write_tdr(rec, kind="OPERATOR")
    rec["review"] = {"state": "false_alarm", "reviewed_at": 1795830100.0, "boxes": None}
    r = dicos.read_tdr(dicos.write_tdr(rec, kind="OPERATOR"))
    assert r["type"] == "OPERATOR" and r["alarm"] == "CLEAR" and r["threats"] == []
    drawn = {"x1": 1.0, "y1": 2.0, "x2": 50.0, "y2": 60.0}
    rec["review"] = {"state": "confirmed", "reviewed_at": 1795830100.0, "boxes": [{"label": "frame", "box": drawn}]}
    r = dicos.read_tdr(dicos.write_tdr(rec, kind="OPERATOR"))
    assert r["alarm"] == "ALARM" and [(t["label"], t["box"]) for t in r["threats"]] == [("frame", drawn)]
    assert r["threats"][0]["probability"] is None


def test_cli_detect_reads_dicos_and_writes_reports(tmp_path, scans, model_dir):
    f = tmp_path / "bag.dcm"
    f.write_bytes(dx_rgb(scans["threat"][0].image))
    bad = tmp_path / "ct.dcm"
    bad.write_bytes(_save(_dataset(dicos.DICOS_CT, "CT")))
    r = subprocess.run([sys.executable, "-m", "detector.cli", "detect", str(f), str(bad), "--model", str(model_dir),
                        "--json", "--tdr-dir", str(tmp_path / "tdr")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 1, r.stderr  # one of the two failed
    ok, failed = (json.loads(line) for line in r.stdout.splitlines())
    assert failed["verdict"] == "error" and "3D" in failed["error"]
    rep = dicos.read_tdr((tmp_path / "tdr" / "bag_tdr.dcm").read_bytes())
    assert rep["alarm"] == ("ALARM" if ok["verdict"] == "alarm" else "CLEAR")
    assert len(rep["threats"]) == sum(d["alarm"] for d in ok["detections"])
    assert not (tmp_path / "tdr" / "ct_tdr.dcm").exists()


# ----------------------------------------------------------------- the service
def H(key, **extra):
    return {"Authorization": f"Bearer {key}", **extra}


def test_service_takes_dicos_and_answers_with_reports(server, scans):
    k, o = server.keys["integrator"], server.keys["operator"]
    s = scans["threat"][0]
    data = dx_rgb(s.image)
    j = httpx.post(server.url + "/v1/detect?lane=dicos-1", headers=H(k, **{"Content-Type": "application/dicom"}),
                   content=data, timeout=60)
    assert j.status_code == 200, j.text
    j = j.json()
    p = httpx.post(server.url + "/v1/detect", headers=H(k, **{"Content-Type": "image/png"}), content=png_bytes(s.image),
                   timeout=60).json()
    assert j["detections"] == p["detections"] and j["image"] == {"width": s.image.shape[1], "height": s.image.shape[0]}
    sid = j["scan_id"]
    # multipart with a .dcm file works the same
    m = httpx.post(server.url + "/v1/detect", headers=H(k), files={"image": ("bag.dcm", data, "application/dicom")}, timeout=60)
    assert m.status_code == 200 and m.json()["detections"] == j["detections"]
    # the original is kept byte for byte; browsers get a PNG of it
    img = httpx.get(server.url + f"/v1/scans/{sid}/image", headers=H(o))
    assert img.headers["content-type"] == "application/dicom" and img.content == data
    png = httpx.get(server.url + f"/v1/scans/{sid}/image?format=png", headers=H(o))
    assert png.headers["content-type"] == "image/png"
    assert (imaging.decode(png.content).rgb == s.image).all()
    # the machine report, for integrators and operators
    for key in (k, o):
        r = httpx.get(server.url + f"/v1/scans/{sid}/tdr", headers=H(key))
        assert r.status_code == 200 and r.headers["content-type"] == "application/dicom"
    rep = dicos.read_tdr(r.content)
    src = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    assert rep["type"] == "MACHINE" and rep["alarm"] == ("ALARM" if j["verdict"] == "alarm" else "CLEAR")
    alarms = [d for d in j["detections"] if d["alarm"]]
    assert [(t["label"], t["box"]) for t in rep["threats"]] == [(d["label"], d["box"]) for d in alarms]
    assert all(t["references"] == [str(src.SOPInstanceUID)] for t in rep["threats"])
    assert rep["patient_id"] == "PARCEL-0042" and rep["study"] == str(src.StudyInstanceUID)
    # the operator report exists once the scan is reviewed
    r = httpx.get(server.url + f"/v1/scans/{sid}/tdr?type=operator", headers=H(o))
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_reviewed"
    httpx.post(server.url + f"/v1/scans/{sid}/review", headers=H(o), json={"decision": "false_alarm"}).raise_for_status()
    rep = dicos.read_tdr(httpx.get(server.url + f"/v1/scans/{sid}/tdr?type=operator", headers=H(o)).content)
    assert rep["type"] == "OPERATOR" and rep["alarm"] == "CLEAR"
    assert httpx.get(server.url + "/v1/scans/nope/tdr", headers=H(o)).status_code == 404
    # reviewed DICOS scans go back into training like any other (as the PNG the model saw)
    from training.importers import import_dataset

    out = server.data_dir.parent / "reviews-import"
    rep_import = import_dataset("reviews", None, out, data_dir=str(server.data_dir))
    mine = [m for m in json.loads((out / "manifest.json").read_text())["scans"] if m["source"] == sid]
    assert len(mine) == 1 and mine[0]["file"].endswith(".png") and mine[0]["n_threats"] == 0, rep_import["unreadable"]
    assert httpx.get(server.url + f"/v1/scans/{sid}/tdr?type=ground", headers=H(o)).status_code == 422
    # Accept: application/dicom gets the report straight back from /v1/detect
    r = httpx.post(server.url + "/v1/detect", headers=H(k, **{"Content-Type": "application/dicom", "Accept": "application/dicom"}),
                   content=data, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "application/dicom"
    stored = httpx.get(server.url + f"/v1/scans/{r.headers['x-scan-id']}", headers=H(o)).json()
    assert dicos.read_tdr(r.content)["alarm"] == ("ALARM" if stored["verdict"] == "alarm" else "CLEAR")


def test_service_refuses_bad_dicos_as_json(server):
    k = server.keys["integrator"]
    counts, _ = _transmission()
    good = dx_grey(counts, bits=14)
    for data, status, code in ((good[:-4000], 400, "truncated"), (_save(_dataset(dicos.DICOS_CT, "CT")), 415, "unsupported_format"),
                               (_save(_dataset()), 400, "bad_image")):
        r = httpx.post(server.url + "/v1/detect", headers=H(k, **{"Content-Type": "application/dicom"}), content=data, timeout=60)
        assert r.status_code == status and r.json()["error"]["code"] == code, r.text


def test_grey_dicos_through_the_service_matches_the_tiff_of_the_same_counts(server):
    """A 16-bit single-energy scan sent as DICOS and as TIFF is one scan to the model."""
    k = server.keys["integrator"]
    counts, _ = _transmission()
    ok, tif = cv2.imencode(".tif", counts)
    a = httpx.post(server.url + "/v1/detect", headers=H(k, **{"Content-Type": "application/dicom"}),
                   content=dx_grey(counts, bits=14), timeout=60).json()
    b = httpx.post(server.url + "/v1/detect", headers=H(k, **{"Content-Type": "image/tiff"}), content=tif.tobytes(), timeout=60).json()
    assert a["detections"] == b["detections"] and a["verdict"] == b["verdict"]
    png = httpx.get(server.url + f"/v1/scans/{b['scan_id']}/image?format=png", headers=H(server.keys["operator"]))
    assert png.headers["content-type"] == "image/png" and imaging.decode(png.content).width == counts.shape[1]


# ----------------------------------------------------------------- importing a DICOS archive
def _tdr(kind: str, study: str, alarm: str, threats: list[tuple[str, tuple, str | None]]) -> bytes:
    """A report as another system writes it: threats = (label, (x1, y1, x2, y2), referenced SOP instance)."""
    ds = _dataset(dicos.DICOS_TDR, "TDR")
    for k in ("Rows", "Columns"):
        delattr(ds, k)
    ds.StudyInstanceUID = study
    ds.TDRType, ds.AlarmDecision = kind, alarm
    ds.ThreatDetectionAlgorithmAndVersion = ["vendor-atr", "7.1"]
    items = []
    for i, (label, (x1, y1, x2, y2), ref) in enumerate(threats):
        pto = Dataset()
        if ref:
            r = Dataset()
            r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID = DX, ref
            pto.ReferencedInstanceSequence = [r]
        pto.BoundingPolygon = [x1, y1, 0.0, x2, y2, 0.0]
        ass = Dataset()
        ass.ThreatCategory, ass.ThreatCategoryDescription, ass.ATDAssessmentFlag = "PI", label, "THREAT"
        it = Dataset()
        it.PotentialThreatObjectID = i
        it.PTORepresentationSequence, it.ATDAssessmentSequence = [pto], [ass]
        items.append(it)
    ds.ThreatSequence = items
    return _save(ds)


def test_import_dicos_archive_uses_human_reports_only(tmp_path, scans):
    from training.importers import import_dataset

    src = tmp_path / "archive"
    src.mkdir()

    def image(name, s, study=None, spacing=None):
        data = dx_rgb(s.image)
        ds = pydicom.dcmread(io.BytesIO(data))
        if study:
            ds.StudyInstanceUID = study
        if spacing:
            ds.PixelSpacing = spacing
        (src / name).write_bytes(_save(ds))
        return ds

    a = image("a.dcs", scans["threat"][0], spacing=[1.0, 0.8])
    (src / "a_truth.dcs").write_bytes(_tdr("GROUND_TRUTH", a.StudyInstanceUID, "ALARM",
                                           [("Handgun", (20, 30, 120, 90), a.SOPInstanceUID)]))
    (src / "a_atr.dcs").write_bytes(_tdr("MACHINE", a.StudyInstanceUID, "ALARM", [("gun", (0, 0, 9, 9), a.SOPInstanceUID)]))
    top = image("b_top.dcs", scans["threat"][1])
    side = image("b_side.dcs", scans["threat"][2], study=top.StudyInstanceUID)  # a dual-view scanner: two images, one study
    (src / "b_op.dcs").write_bytes(_tdr("OPERATOR", top.StudyInstanceUID, "ALARM",
                                        [("magazine", (5, 5, 60, 40), side.SOPInstanceUID)]))
    c = image("c.dcs", scans["clean"][0])
    (src / "c_op.dcs").write_bytes(_tdr("OPERATOR", c.StudyInstanceUID, "CLEAR", []))
    image("d_unreported.dcs", scans["clean"][1])
    e = image("e.dcs", scans["clean"][2])
    other_study = generate_uid()  # a report filed under another study, naming the image itself
    clear = pydicom.dcmread(io.BytesIO(_tdr("GROUND_TRUTH", other_study, "CLEAR", [])))
    r = Dataset()
    r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID = DX, e.SOPInstanceUID
    clear.ReferencedInstanceSequence = [r]
    (src / "e_truth.dcs").write_bytes(_save(clear))
    (src / "volume.dcs").write_bytes(_save(_dataset(dicos.DICOS_CT, "CT")))
    (src / "notes.txt").write_text("not DICOM")
    r = import_dataset("dicos", src, tmp_path / "out")
    assert r["images"] == 5 and r["background_images"] == 3  # a, b_top (bg), b_side, c (bg), e (bg)
    assert r["objects"] == {"gun": 1, "magazine": 1}  # Handgun via the class map; the machine report's box is not used
    why = {u["source"].split("/")[-1]: u["why"] for u in r["unreadable"]}
    assert set(why) == {"d_unreported.dcs", "volume.dcs"}
    assert "no ground-truth or operator report" in why["d_unreported.dcs"] and "3D" in why["volume.dcs"]
    m = {x["source"].split("/")[-1]: x for x in json.loads((tmp_path / "out" / "manifest.json").read_text())["scans"]}
    assert m["a.dcs"]["tdr_type"] == "GROUND_TRUTH" and m["a.dcs"]["n_threats"] == 1 and m["b_top.dcs"]["n_threats"] == 0
    lab = (tmp_path / "out" / m["a.dcs"]["file"].replace("images/", "labels/").rsplit(".", 1)[0]).with_suffix(".txt").read_text().split()
    w, h = m["a.dcs"]["width"], m["a.dcs"]["height"]
    assert lab[0] == "0" and abs(float(lab[1]) - 70 / w) < 1e-4 and abs(float(lab[4]) - 60 / h) < 1e-4
    assert m["a.dcs"]["file"].endswith(".png")  # stored as what the model sees
    # the pixel size its header declares goes with it (xfd eval --declare-pixels); none where none is said
    assert (m["a.dcs"]["mm_per_px"], m["a.dcs"]["mm_per_px_along_belt"]) == (1.0, 0.8) and "mm_per_px" not in m["c.dcs"]
