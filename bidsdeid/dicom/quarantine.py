"""DICOM objects that are refused, not shared: the quarantine.

Header de-identification cannot clean pixels. Objects whose pixels may show a name,
a face photograph or a screen, and objects that are not images at all, are copied
to ``PRIVATE_DIR/quarantine/sub-<input label>/`` (same relative paths as under
``sourcedata/sub-<label>/``) for a person to review, and left out of every output.

:func:`quarantine_reason` refuses (first reason that applies):

* BurnedInAnnotation = YES, RecognizableVisualFeatures = YES;
* secondary captures, encapsulated documents (PDF, CDA, STL, ...), structured
  reports, presentation states, raw data, spectroscopy and other non-image SOP
  classes: anything outside :data:`IMAGE_SOP_CLASSES` (cross-sectional images:
  MR, CT, PET, NM and their enhanced and legacy-converted forms);
* ImageType containing SCREEN SAVE, SCREENSHOT or SCREEN SHOT;
* no pixel data.

Reasons name the attribute or SOP class, never a header value that could identify.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID_dictionary

from bidsdeid.context import ParticipantContext
from bidsdeid.dicom.index import DicomSeries
from bidsdeid.dicom.layout import audit_name, series_dirnames, series_key
from bidsdeid.utils.atomic import copy_file, write_json

IMAGE_SOP_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image
    "1.2.840.10008.5.1.4.1.1.4.3",  # Enhanced MR Color Image
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR Image
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.128",  # PET Image
    "1.2.840.10008.5.1.4.1.1.128.1",  # Legacy Converted Enhanced PET Image
    "1.2.840.10008.5.1.4.1.1.130",  # Enhanced PET Image
    "1.2.840.10008.5.1.4.1.1.20",  # NM Image
    "1.2.840.10008.5.1.4.1.1.30",  # Parametric Map
})
"""SOP classes that are shared: cross-sectional images, whose pixels hold anatomy."""

_KIND_BY_PREFIX = (
    ("1.2.840.10008.5.1.4.1.1.7", "secondary capture"),
    ("1.2.840.10008.5.1.4.1.1.104", "encapsulated document"),
    ("1.2.840.10008.5.1.4.1.1.88", "structured report"),
    ("1.2.840.10008.5.1.4.1.1.11", "presentation state"),
    ("1.2.840.10008.5.1.4.1.1.66", "raw data or non-image object"),
    ("1.2.840.10008.5.1.4.1.1.4.2", "MR spectroscopy (not an image)"),
    ("1.2.840.10008.5.1.4.1.1.9", "waveform"),
    ("1.2.840.10008.5.1.4.1.1.481", "radiotherapy object"),
)
SCREEN_TYPES = ("SCREEN SAVE", "SCREENSHOT", "SCREEN SHOT")
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _text(value: Any) -> str:
    return str(value or "").strip().upper()


def quarantine_reason(header: Dataset, has_pixels: bool | None = None) -> str | None:
    """Why this object must not be shared, or None (see module docstring).

    ``has_pixels``: whether the file has pixel data; when None (a header read without
    pixels), inferred from PixelData or Rows and Columns in the header.
    """
    if _text(header.get("BurnedInAnnotation")) == "YES":
        return "BurnedInAnnotation is YES (text burned into the pixels)"
    if _text(header.get("RecognizableVisualFeatures")) == "YES":
        return "RecognizableVisualFeatures is YES"
    sop_class = str(header.get("SOPClassUID", "") or "").strip()
    if sop_class not in IMAGE_SOP_CLASSES:
        kind = next((k for p, k in _KIND_BY_PREFIX
                     if sop_class == p or sop_class.startswith(p + ".")), None)
        name = UID_dictionary[sop_class][0] if sop_class in UID_dictionary else None
        if kind is None:
            kind = "a SOP class bidsdeid does not share"
        return f"{kind} ({name})" if name else f"{kind} (private or unknown SOP class)"
    image_type = header.get("ImageType")
    if image_type is None:
        values = []
    elif isinstance(image_type, str):
        values = [_text(v) for v in image_type.split("\\")]
    else:
        values = [_text(v) for v in image_type]
    if any(v in SCREEN_TYPES for v in values):
        return "ImageType says SCREEN SAVE (a screen capture)"
    if has_pixels is None:
        has_pixels = any(k in header for k in _PIXEL_KEYWORDS) or (
            "Rows" in header and "Columns" in header)
    if not has_pixels:
        return "no pixel data"
    return None


def quarantined(ctx: ParticipantContext) -> dict[str, str]:
    """Series UID -> reason, for every series already quarantined for ``ctx``."""
    result: dict[str, str] = ctx.results.setdefault("quarantined", {})
    return result


def quarantine_files(ctx: ParticipantContext, series: DicomSeries, files: list[int],
                     reason: str) -> str:
    """Copy ``series.files[i]`` for ``i`` in ``files`` into the quarantine; audit it.

    Returns the quarantine folder, relative to the private dir.
    """
    assert ctx.dicom is not None
    root = ctx.dicom.root
    dest_root = ctx.config.quarantine_dir / f"sub-{ctx.input_label}"
    for i in files:
        src = series.files[i].path
        rel = src.relative_to(root) if src.is_relative_to(root) else src.name
        copy_file(src, dest_root / rel, perms=0o600)
    dirname = series_dirnames(ctx.dicom)[series_key(series)]
    name = audit_name(series, dirname)
    folder = str(dest_root.relative_to(ctx.config.private_dir))
    record = {
        "series": dirname, "session": series.session, "action": "quarantined",
        "reason": reason, "files": len(files), "files_in_series": series.n_files,
        "quarantine": folder,
    }
    write_json(ctx.audit_dir / "quarantine" / f"{name}.json", record, perms=0o600)
    return folder


def quarantine_series(ctx: ParticipantContext, series: DicomSeries, reason: str) -> None:
    """Quarantine every file of ``series`` (atomic copies) and record why.

    Idempotent: a series already quarantined for ``ctx`` is not copied again.
    """
    done = quarantined(ctx)
    if series.series_uid in done:
        return
    quarantine_files(ctx, series, list(range(series.n_files)), reason)
    done[series.series_uid] = reason
    ctx.warn("quarantine", f"series {series.series_number}", f"not shared: {reason}")
