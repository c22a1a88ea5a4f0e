"""DICOS (NEMA IIC 1, the DICOM-based standard of security imaging): scans in, Threat
Detection Reports out.

Reading: a DICOS Digital X-Ray image (or any 2D DICOM image: DX, CR, secondary capture),
grey or colour, 8-16 bits, uncompressed, RLE, deflated or JPEG-compressed, becomes the
8-bit RGB scan the model sees, with air white (DICOS' Pixel Intensity Relationship Sign,
else the photometric interpretation, says which way round the values are). Its size is
checked from the header before any pixel is decoded. 3D CT volumes, multi-frame images
and reports are refused with a reason, never analysed half-way.

Writing: a Threat Detection Report (SOP class 1.2.840.10008.5.1.4.1.1.501.3) for one
analysed scan: the alarm decision, the algorithm and its version, and one potential threat
object per alarming box (category PI, prohibited item; its label, probability and box in
image pixels), referencing the DICOS image it came from when the scan was one.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

import numpy as np

DICOS_CT = "1.2.840.10008.5.1.4.1.1.501.1"
DICOS_DX = ("1.2.840.10008.5.1.4.1.1.501.2.1", "1.2.840.10008.5.1.4.1.1.501.2.2")
DICOS_TDR = "1.2.840.10008.5.1.4.1.1.501.3"
CT_IMAGE = ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1")
# Our TDRs' UIDs are derived from the scan id under pydicom's UID root (1.2.826.0.1.3680043.8.498),
# so the report of a scan has the same UIDs however often it is fetched.
MEDIA_TYPE = "application/dicom"


class DicosError(ValueError):
    """A DICOM file that cannot be analysed; `code` is imaging.ImageError's."""

    def __init__(self, message: str, code: str = "bad_image"):
        super().__init__(message)
        self.code = code


@dataclass
class DicosImage:
    array: np.ndarray  # HxWx3 uint8 RGB, air white
    bit_depth: int
    mode: str  # e.g. "DX MONOCHROME1", "RGB"
    ids: dict = field(default_factory=dict)  # the UIDs and OOI id a report refers back to
    pixel_mm: tuple[float, float] | None = None  # (between rows, between columns) from the header, if it says


# pixel sizes (mm) taken as a scanner's: a header, a request or a setting outside them is not one
PIXEL_MM_LIMITS = (0.05, 10.0)


def pixel_spacing(ds) -> tuple[float, float] | None:
    """The detector pixel size in mm the header declares, (row spacing, column spacing) as DICOM
    orders it: PixelSpacing, else ImagerPixelSpacing (the DX detector's own). None when neither is
    present or usable (the scan is then analysed as it comes)."""
    lo, hi = PIXEL_MM_LIMITS
    for k in ("PixelSpacing", "ImagerPixelSpacing"):
        v = ds.get(k)
        if v is None:
            continue
        try:
            row, col = (float(x) for x in v)
        except (TypeError, ValueError):
            continue
        if lo <= row <= hi and lo <= col <= hi:
            return row, col
    return None


def is_dicom(data: bytes) -> bool:
    """A DICOM Part 10 file: 128 bytes of preamble, then 'DICM'."""
    return len(data) >= 132 and data[128:132] == b"DICM"


def _read(data: bytes, stop_before_pixels: bool = False):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as e:
        raise DicosError(f"not a readable DICOM file: {e}") from None
    except Exception as e:  # truncated headers end in EOFError, struct.error, ValueError, ...
        raise DicosError(f"DICOM file is truncated or corrupt: {e}", "truncated") from None


def identifiers(ds) -> dict:
    """What a report needs to point back at this image."""
    out = {}
    for k in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "PatientID",
              "OOIType", "Modality", "Manufacturer", "StationName"):
        v = ds.get(k)
        if v not in (None, ""):
            out[k] = str(v)
    return out


def read_ids(data: bytes) -> dict:
    """Identifiers of a stored DICOM scan, without decoding its pixels."""
    return identifiers(_read(data, stop_before_pixels=True))


def _check_kind(ds) -> None:
    sop = str(ds.get("SOPClassUID", ""))
    modality = str(ds.get("Modality", ""))
    if sop == DICOS_TDR or modality == "TDR":
        raise DicosError("this DICOS file is a Threat Detection Report, not an image", "unsupported_format")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if sop == DICOS_CT or sop in CT_IMAGE or modality == "CT":
        raise DicosError("DICOS CT is a 3D volume (slices of a CT scanner); this detector analyses 2D projection "
                         "scans (DICOS DX, line-scan X-ray): send the scanner's projection view", "unsupported_format")
    if frames > 1:
        raise DicosError(f"multi-frame DICOM ({frames} frames): send one view per request", "unsupported_format")
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DicosError("DICOM file holds no image (no Pixel Data element)", "bad_image")
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise DicosError("floating-point DICOM pixels are not supported; use 8- or 16-bit integer images",
                         "unsupported_depth")


def _check_size(ds, max_pixels: int) -> None:
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits = int(ds.BitsAllocated)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
    except (AttributeError, TypeError, ValueError) as e:
        raise DicosError(f"DICOM image header is incomplete: {e}") from None
    if rows <= 0 or cols <= 0:
        raise DicosError(f"DICOM declares an empty size {cols}x{rows}")
    if rows * cols > max_pixels:
        raise DicosError(f"image is {cols}x{rows} = {rows * cols / 1e6:.1f} MP, over the limit of {max_pixels / 1e6:.1f} MP",
                         "too_large")
    if bits not in (8, 16) or spp not in (1, 3):
        raise DicosError(f"unsupported DICOM pixels: {bits} bits allocated, {spp} samples per pixel "
                         "(use 8- or 16-bit grey or RGB)", "unsupported_depth")
    if not ds.file_meta.TransferSyntaxUID.is_compressed:
        need = rows * cols * spp * bits // 8
        have = len(ds.PixelData)
        if have < need:
            raise DicosError(f"DICOM pixel data is truncated: {have} of {need} bytes", "truncated")


def _grey_to_air_white(a: np.ndarray, ds) -> np.ndarray:
    """Grey samples -> float 0..1 with air (most transmission) at 1."""
    from pydicom.multival import MultiValue

    a = a.astype(np.float32)
    stored = int(ds.get("BitsStored", ds.BitsAllocated) or ds.BitsAllocated)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    lo, hi = (-(2.0 ** (stored - 1)), 2.0 ** (stored - 1) - 1) if signed else (0.0, 2.0 ** stored - 1)
    centre, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centre is not None and width is not None:
        # a presentation window is given in rescaled (modality) units
        c = float(centre[0] if isinstance(centre, MultiValue) else centre)  # several windows: the first
        w = float(width[0] if isinstance(width, MultiValue) else width)
        slope, icpt = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
        if w > 1:
            a = a * slope + icpt
            lo, hi = c - w / 2.0, c + w / 2.0
    v = np.clip((a - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    sign = ds.get("PixelIntensityRelationshipSign")
    if sign is not None:
        # +1: lower values are less beam intensity (more attenuation), so air is high already
        air_high = int(sign) >= 0
    else:
        air_high = str(ds.get("PhotometricInterpretation", "MONOCHROME2")) != "MONOCHROME1"
    return v if air_high else 1.0 - v


def decode(data: bytes, max_pixels: int) -> DicosImage:
    ds = _read(data)
    try:
        return _decode(ds, max_pixels)
    except DicosError:
        raise
    except Exception as e:  # pydicom parses elements lazily: a corrupt header surfaces on first access
        raise DicosError(f"DICOM file is corrupt: {type(e).__name__}: {e}") from None


def _decode(ds, max_pixels: int) -> DicosImage:
    _check_kind(ds)
    _check_size(ds, max_pixels)
    photometric = str(ds.get("PhotometricInterpretation", ""))
    try:
        arr = ds.pixel_array  # pydicom 3 turns YCbCr (JPEG) into RGB
    except NotImplementedError as e:
        raise DicosError(f"DICOM compression not supported here ({ds.file_meta.TransferSyntaxUID.name}): {e}",
                         "unsupported_format") from None
    except Exception as e:
        raise DicosError(f"cannot decode DICOM pixels: {e}") from None
    if arr.ndim == 2:
        v = _grey_to_air_white(arr, ds)
        g = np.clip(v * 255.0 + 0.5, 0, 255).astype(np.uint8)
        rgb = np.repeat(g[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 3:
        if arr.dtype == np.uint16:
            stored = int(ds.get("BitsStored", 16) or 16)
            arr = np.clip(arr.astype(np.float32) * (255.0 / (2**stored - 1)) + 0.5, 0, 255).astype(np.uint8)
        rgb = arr.astype(np.uint8)
    else:
        raise DicosError(f"unexpected DICOM pixel array of shape {arr.shape}", "unsupported_format")
    mode = " ".join(x for x in (str(ds.get("Modality", "")), photometric) if x)
    return DicosImage(np.ascontiguousarray(rgb), int(ds.get("BitsStored", 8) or 8), mode, identifiers(ds), pixel_spacing(ds))


# ----------------------------------------------------------------- writing
def _uid(*parts: str) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=[str(p) for p in parts])


def _dt(t: float) -> tuple[str, str, str]:
    tm = time.gmtime(t)
    frac = f"{t % 1:.6f}"[1:]
    return time.strftime("%Y%m%d", tm), time.strftime("%H%M%S", tm) + frac, time.strftime("%Y%m%d%H%M%S", tm) + frac + "+0000"


def write_tdr(rec: dict, source_ids: dict | None = None, kind: str = "MACHINE") -> bytes:
    """The Threat Detection Report of one analysed scan, as DICOM Part 10 bytes.

    rec: a scan record as /v1/detect returns it (scan_id, model, image, verdict, detections,
    timing_ms, created; with kind OPERATOR also review). source_ids: identifiers() of the
    DICOS image the scan was, if it was one. MACHINE reports the detector's alarming boxes;
    OPERATOR reports the screener's decision and, when confirmed, the boxes they kept or drew."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    if kind not in ("MACHINE", "OPERATOR"):
        raise ValueError(f"TDR type must be MACHINE or OPERATOR, not {kind!r}")
    src = source_ids or {}
    scan_id = str(rec["scan_id"])
    model = rec.get("model") or {}
    created = float(rec.get("created") or time.time())
    if kind == "OPERATOR":
        review = rec.get("review") or {}
        state = review.get("state", "pending")
        if state == "pending":
            raise ValueError("the scan has not been reviewed: there is no operator report yet")
        boxes = review.get("boxes")
        if boxes is None:  # the operator kept the detector's alarming boxes
            boxes = [d for d in rec.get("detections", []) if d.get("alarm")]
        boxes = boxes if state == "confirmed" else []
        alarm = state == "confirmed"
        when = float(review.get("reviewed_at") or created)
    else:
        boxes = [d for d in rec.get("detections", []) if d.get("alarm")]
        alarm = rec.get("verdict") == "alarm"
        when = created

    date, tm, dt = _dt(when)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DICOS_TDR
    meta.MediaStorageSOPInstanceUID = _uid("xfd-tdr", scan_id, kind)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = DICOS_TDR
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "TDR"
    ds.Manufacturer = "xray-firearm-detector"
    ds.StudyInstanceUID = src.get("StudyInstanceUID") or _uid("xfd-study", scan_id)
    ds.SeriesInstanceUID = _uid("xfd-tdr-series", scan_id, kind)
    ds.InstanceNumber = 1 if kind == "MACHINE" else 2
    ds.PatientID = src.get("PatientID") or scan_id  # DICOS: the object of inspection's id
    if "OOIType" in src:
        ds.OOIType = src["OOIType"]
    ds.StudyDescription = f"xfd scan {scan_id}"[:64]
    ds.StudyDate = ds.ContentDate = ds.InstanceCreationDate = date
    ds.StudyTime = ds.ContentTime = ds.InstanceCreationTime = tm
    ds.TDRType = kind
    ds.ThreatDetectionAlgorithmAndVersion = [str(model.get("name", "xfd")), str(model.get("version", ""))]
    ds.AlarmDecision = "ALARM" if alarm else "CLEAR"
    ds.AlarmDecisionTime = dt
    ds.AbortFlag = "SUCCESS"
    total_ms = (rec.get("timing_ms") or {}).get("total")
    if kind == "MACHINE" and total_ms is not None:
        ds.TotalProcessingTime = float(total_ms)
    ds.NumberOfTotalObjects = len(boxes)
    ds.NumberOfAlarmObjects = len(boxes)
    ref = None
    if src.get("SOPInstanceUID") and src.get("SOPClassUID"):
        ref = Dataset()
        ref.ReferencedSOPClassUID = src["SOPClassUID"]
        ref.ReferencedSOPInstanceUID = src["SOPInstanceUID"]
    if ref is not None:  # the report as a whole points at the scan, threats or not (a clear report too)
        ds.ReferencedInstanceSequence = Sequence([ref])
    threats = []
    for i, d in enumerate(boxes):
        b = d["box"]
        x1, y1, x2, y2 = (float(b[k]) for k in ("x1", "y1", "x2", "y2"))
        roi = Dataset()
        roi.ThreatROIBase = [x1, y1, 0.0]  # image pixels: column, row, (no depth in a projection)
        roi.ThreatROIExtents = [x2 - x1, y2 - y1, 1.0]
        pto = Dataset()
        if ref is not None:
            pto.ReferencedInstanceSequence = Sequence([ref])
        pto.ThreatROIVoxelSequence = Sequence([roi])
        pto.BoundingPolygon = [x1, y1, 0.0, x2, y2, 0.0]
        ass = Dataset()
        ass.ThreatCategory = "PI"  # prohibited item
        ass.ThreatCategoryDescription = str(d["label"])
        ass.ATDAbilityAssessment = "NO_INTERFERENCE"
        ass.ATDAssessmentFlag = "THREAT"
        if d.get("confidence") is not None:
            ass.ATDAssessmentProbability = float(d["confidence"])
        item = Dataset()
        item.PotentialThreatObjectID = i
        item.PTORepresentationSequence = Sequence([pto])
        item.ATDAssessmentSequence = Sequence([ass])
        threats.append(item)
    ds.ThreatSequence = Sequence(threats)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def read_tdr(data: bytes) -> dict:
    """A TDR's decision and threat boxes (ours or another system's), for tests and imports."""
    ds = _read(data)
    if str(ds.get("SOPClassUID", "")) != DICOS_TDR:
        raise DicosError("not a DICOS Threat Detection Report", "unsupported_format")
    threats = []
    for item in ds.get("ThreatSequence", []):
        pto = item.PTORepresentationSequence[0]
        ass = item.ATDAssessmentSequence[0] if "ATDAssessmentSequence" in item else None
        if "BoundingPolygon" in pto and len(pto.BoundingPolygon) >= 6:
            p = [round(float(v), 2) for v in pto.BoundingPolygon]  # FL is float32: 94.2 reads 94.19999
            xs, ys = p[0::3], p[1::3]
            box = {"x1": min(xs), "y1": min(ys), "x2": max(xs), "y2": max(ys)}
        else:
            roi = pto.ThreatROIVoxelSequence[0]
            bx, by = float(roi.ThreatROIBase[0]), float(roi.ThreatROIBase[1])
            ex, ey = float(roi.ThreatROIExtents[0]), float(roi.ThreatROIExtents[1])
            box = {"x1": round(bx, 2), "y1": round(by, 2), "x2": round(bx + ex, 2), "y2": round(by + ey, 2)}
        refs = [str(r.ReferencedSOPInstanceUID) for r in pto.get("ReferencedInstanceSequence", [])]
        threats.append({"id": int(item.PotentialThreatObjectID),
                        "label": str(ass.ThreatCategoryDescription) if ass is not None else "",
                        "category": str(ass.ThreatCategory) if ass is not None else "",
                        "probability": float(ass.ATDAssessmentProbability)
                        if ass is not None and "ATDAssessmentProbability" in ass else None,
                        "box": box, "references": refs})
    algo = ds.get("ThreatDetectionAlgorithmAndVersion")
    algorithm = [] if algo is None else [str(algo)] if isinstance(algo, str) else [str(a) for a in algo]
    return {"type": str(ds.get("TDRType", "")), "alarm": str(ds.get("AlarmDecision", "")), "algorithm": algorithm,
            "patient_id": str(ds.get("PatientID", "")), "study": str(ds.get("StudyInstanceUID", "")),
            "references": [str(r.ReferencedSOPInstanceUID) for r in ds.get("ReferencedInstanceSequence", [])],
            "threats": threats}
