"""Deface the pixels of one DICOM file: frame geometry, pixel formats, patched frames.

A defaced BIDS image and the DICOM series it was converted from hold the same voxels
on the same world grid (dcm2niix only reorders the axes). For every frame this module
computes the world position of each pixel centre from the DICOM geometry (classic:
ImagePositionPatient, ImageOrientationPatient, PixelSpacing; enhanced multi-frame:
PlanePositionSequence, PlaneOrientationSequence, PixelMeasuresSequence of each
frame's functional groups, per-frame or shared), converts it from the patient system
of DICOM (LPS) to RAS, and asks the series' :class:`~bidsdeid.dicom.facemask.SeriesFace`
whether the image lost that point. A removed pixel gets the stored value whose
rescaled value is 0 (RescaleSlope/Intercept, or the frame's
PixelValueTransformationSequence; stored 0 without rescale), clipped to the range
BitsStored and PixelRepresentation allow, or, for refacing, the refaced image's value
there (see :mod:`bidsdeid.dicom.facemask`). Every other byte is kept as it was.

Only monochrome integer or float pixel data is defaced. Whatever this module cannot
deface with certainty (colour, 1-bit, frames without a position, pixel data shorter
than its frames, pixels outside the converted image) raises :class:`PixelRefused`,
and the caller refuses the whole series: un-defaced pixels are never written.
Frames are handled one at a time, in blocks of rows, so memory does not grow with
the file or the frame size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from bidsdeid.dicom.facemask import SeriesFace

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
BLOCK_PIXELS = 1 << 18
"""Pixels sampled at once (bounds the temporary arrays: ~40 bytes per pixel)."""
PIXEL_DATA, FLOAT_PIXEL_DATA, DOUBLE_PIXEL_DATA = 0x7FE00010, 0x7FE00008, 0x7FE00009


class PixelRefused(Exception):
    """The pixels of this file cannot be defaced with certainty (PHI-free reason)."""


@dataclass(frozen=True)
class Frame:
    """Where one frame's pixels are (RAS mm) and how its stored values are scaled."""

    origin: np.ndarray  # centre of pixel (row 0, column 0)
    per_column: np.ndarray  # step for column index + 1 (ImageOrientation[0:3] * spacing)
    per_row: np.ndarray  # step for row index + 1 (ImageOrientation[3:6] * spacing)
    slope: float = 1.0
    intercept: float = 0.0

    def points(self, first_row: int, n_rows: int, columns: int) -> np.ndarray:
        """RAS positions (3, n_rows * columns) of pixel centres, in storage order."""
        rows = np.arange(first_row, first_row + n_rows, dtype=np.float64)
        cols = np.arange(columns, dtype=np.float64)
        pts = (self.origin[:, None, None] + self.per_row[:, None, None] * rows[None, :, None]
               + self.per_column[:, None, None] * cols[None, None, :])
        return pts.reshape(3, -1)


@dataclass(frozen=True)
class PixelFormat:
    """How the frames of one file are stored (native encoding)."""

    rows: int
    columns: int
    frames: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    is_float: bool
    big_endian: bool = False

    @property
    def dtype(self) -> np.dtype:
        kind = "f" if self.is_float else ("i" if self.signed else "u")
        return np.dtype(f"{'>' if self.big_endian else '<'}{kind}{self.bits_allocated // 8}")

    @property
    def frame_bytes(self) -> int:
        return self.rows * self.columns * self.bits_allocated // 8

    def stored_range(self) -> tuple[float, float]:
        if self.is_float:
            info = np.finfo(self.dtype)
            return float(info.min), float(info.max)
        bits = self.bits_stored
        if self.signed:
            return float(-(1 << (bits - 1))), float((1 << (bits - 1)) - 1)
        return 0.0, float((1 << bits) - 1)

    def to_stored(self, physical: np.ndarray, slope: float, intercept: float) -> np.ndarray:
        """Rescaled values -> stored values (rounded, clipped to the stored range)."""
        lo, hi = self.stored_range()
        v = (np.asarray(physical, dtype=np.float64) - intercept) / slope
        if not self.is_float:
            v = np.rint(v)
        return np.clip(v, lo, hi).astype(self.dtype)

    def clip_stored(self, stored: np.ndarray) -> np.ndarray:
        lo, hi = self.stored_range()
        v = np.asarray(stored, dtype=np.float64)
        return np.clip(v if self.is_float else np.rint(v), lo, hi).astype(self.dtype)


# -- reading the layout of a file ---------------------------------------------------------
def _floats(value: Any, n: int, what: str) -> np.ndarray:
    values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    try:
        arr = np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PixelRefused(f"{what} is not numeric") from exc
    if arr.size != n or not np.all(np.isfinite(arr)):
        raise PixelRefused(f"{what} does not have {n} finite values")
    return arr


def _scale_value(value: Any, default: float) -> float:
    if value is None or value == "" or (isinstance(value, list | MultiValue) and not value):
        return default
    if isinstance(value, list | MultiValue):
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise PixelRefused("RescaleSlope/RescaleIntercept is not numeric") from exc


def frame_from_values(values: dict[str, Any], where: str) -> Frame:
    """A :class:`Frame` from the attribute values of one frame (keyword -> value)."""
    position = values.get("ImagePositionPatient")
    orientation = values.get("ImageOrientationPatient")
    spacing = values.get("PixelSpacing")
    if position is None or orientation is None or spacing is None:
        raise PixelRefused(f"{where} has no plane position, orientation or pixel spacing")
    ipp = _floats(position, 3, "ImagePositionPatient")
    iop = _floats(orientation, 6, "ImageOrientationPatient")
    ps = _floats(spacing, 2, "PixelSpacing")
    slope = _scale_value(values.get("RescaleSlope"), 1.0)
    inter = _scale_value(values.get("RescaleIntercept"), 0.0)
    if not np.isfinite(slope) or slope == 0 or not np.isfinite(inter):
        raise PixelRefused("RescaleSlope/RescaleIntercept is not usable")
    row_dir, col_dir = iop[:3], iop[3:]
    if abs(np.linalg.norm(row_dir) - 1) > 0.01 or abs(np.linalg.norm(col_dir) - 1) > 0.01 \
            or abs(float(row_dir @ col_dir)) > 0.01 or np.any(ps <= 0):
        raise PixelRefused(f"{where} has an invalid orientation or pixel spacing")
    # PixelSpacing is (between rows, between columns); ImageOrientationPatient[0:3] is
    # the direction in which the column index grows
    return Frame(LPS_TO_RAS @ ipp, LPS_TO_RAS @ (row_dir * ps[1]),
                 LPS_TO_RAS @ (col_dir * ps[0]), slope, inter)


_FRAME_KEYWORDS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                   "RescaleSlope", "RescaleIntercept")


def _values(*items: Dataset | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if item is not None:
            out.update({k: item.get(k) for k in _FRAME_KEYWORDS if k in item})
    return out


def _first(item: Dataset | None, sequence: str) -> Dataset | None:
    if item is None or sequence not in item:
        return None
    seq = item[sequence].value
    return seq[0] if seq else None


def _group(per_frame: Dataset | None, shared: Dataset | None, sequence: str) -> Dataset | None:
    """A functional group macro of one frame: its own item, else the shared one."""
    item = _first(per_frame, sequence)
    return item if item is not None else _first(shared, sequence)


def frames_of(header: Dataset, n_frames: int) -> Iterator[Frame]:
    """The geometry of every frame of ``header`` (classic or enhanced multi-frame), for
    a dataset in memory (the pydicom engine; :mod:`bidsdeid.dicom.geometry` reads the
    same from the encoded bytes)."""
    if "PerFrameFunctionalGroupsSequence" in header:
        per = header.PerFrameFunctionalGroupsSequence
        shared_seq = header.get("SharedFunctionalGroupsSequence")
        shared = shared_seq[0] if shared_seq else None
        if len(per) != n_frames:
            raise PixelRefused("the per-frame functional groups do not match NumberOfFrames")
        groups = ("PlanePositionSequence", "PlaneOrientationSequence", "PixelMeasuresSequence",
                  "PixelValueTransformationSequence")
        for k, item in enumerate(per):
            yield frame_from_values(_values(*(_group(item, shared, g) for g in groups)),
                                    f"frame {k + 1}")
        return
    if n_frames != 1:
        raise PixelRefused("multi-frame image without per-frame plane positions")
    yield frame_from_values(_values(header), "the image")


def pixel_format(header: Dataset, pixel_tag: int, big_endian: bool = False) -> PixelFormat:
    """The stored format of the file's frames; refuses what is not defaced here."""
    samples = int(header.get("SamplesPerPixel", 1) or 1)
    photometric = str(header.get("PhotometricInterpretation", "MONOCHROME2") or "").strip()
    if samples != 1 or not photometric.startswith("MONOCHROME"):
        raise PixelRefused("pixel defacing handles monochrome images only")
    rows, cols = int(header.get("Rows", 0) or 0), int(header.get("Columns", 0) or 0)
    frames = int(header.get("NumberOfFrames", 1) or 1)
    if rows <= 0 or cols <= 0 or frames <= 0:
        raise PixelRefused("Rows, Columns or NumberOfFrames is missing")
    if pixel_tag == FLOAT_PIXEL_DATA:
        return PixelFormat(rows, cols, frames, 32, 32, True, True, big_endian)
    if pixel_tag == DOUBLE_PIXEL_DATA:
        return PixelFormat(rows, cols, frames, 64, 64, True, True, big_endian)
    allocated = int(header.get("BitsAllocated", 0) or 0)
    stored = int(header.get("BitsStored", allocated) or allocated)
    if allocated not in (8, 16, 32) or not 1 <= stored <= allocated:
        raise PixelRefused(f"BitsAllocated {allocated} is not defaced here")
    signed = int(header.get("PixelRepresentation", 0) or 0) == 1
    return PixelFormat(rows, cols, frames, allocated, stored, signed, False, big_endian)


# -- defacing frames ----------------------------------------------------------------------
@dataclass
class PixelCounts:
    """What happened to the pixels of one file (PHI-free numbers)."""

    removed: int = 0
    total: int = 0
    zeroed_not_refaced: int = 0  # refacing asked, zeros written (scaling differs)


class FileFace:
    """The removed region of a series applied to the frames of one file."""

    def __init__(self, face: SeriesFace, fmt: PixelFormat, frames: list[Frame]) -> None:
        if len(frames) != fmt.frames:
            raise PixelRefused("the frame geometry does not match NumberOfFrames")
        self.face = face
        self.fmt = fmt
        self.frames = frames
        self.counts = PixelCounts()

    @classmethod
    def of(cls, face: SeriesFace, header: Dataset, pixel_tag: int,
           big_endian: bool = False) -> FileFace:
        fmt = pixel_format(header, pixel_tag, big_endian)
        return cls(face, fmt, list(frames_of(header, fmt.frames)))

    def deface(self, index: int, stored: np.ndarray) -> np.ndarray:
        """Frame ``index`` (stored values, flat, in storage order) with the face removed."""
        fmt, frame = self.fmt, self.frames[index]
        out = np.array(stored, dtype=fmt.dtype, copy=True).reshape(-1)
        if out.size != fmt.rows * fmt.columns:
            raise PixelRefused("a frame does not have Rows x Columns pixels")
        zero = fmt.to_stored(np.zeros(1), frame.slope, frame.intercept)[0]
        same_scale = self.face.same_scaling(frame.slope, frame.intercept)
        step = max(1, BLOCK_PIXELS // fmt.columns)
        for first in range(0, fmt.rows, step):
            n = min(step, fmt.rows - first)
            sample = self.face.sample_block(frame.origin + first * frame.per_row,
                                            frame.per_row, frame.per_column, n, fmt.columns)
            if not sample.inside.all():
                raise PixelRefused("pixels lie outside the converted image: the DICOM and "
                                   "the image it became do not share a grid")
            hit = np.flatnonzero(sample.removed)
            if not hit.size:
                continue
            block = out[first * fmt.columns:(first + n) * fmt.columns]
            block[hit] = zero
            if sample.values is not None:
                values = sample.values[hit]
                known = ~np.isnan(values)
                if same_scale:
                    block[hit[known]] = fmt.clip_stored(values[known])
                    self.counts.zeroed_not_refaced += int((~known).sum())
                else:
                    self.counts.zeroed_not_refaced += int(hit.size)
            self.counts.removed += int(hit.size)
        self.counts.total += out.size
        return out

    def deface_bytes(self, index: int, data: bytes) -> bytes:
        if len(data) != self.fmt.frame_bytes:
            raise PixelRefused("the pixel data is shorter than its frames")
        return self.deface(index, np.frombuffer(data, dtype=self.fmt.dtype)).tobytes()
