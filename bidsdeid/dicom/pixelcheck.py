"""Is a file's pixel data element what its header says it is?

Pixel data is copied without being read (it cannot hold header text, and scanning
megabytes of voxels for names would find them by chance). That is only safe if the
element really is the image: a damaged file whose tag or length field turned header
elements into "pixel data" would carry them to the output unchecked (found by
fuzzing). So before pixel data is copied:

* native (uncompressed) pixel data must be exactly Rows x Columns x SamplesPerPixel x
  NumberOfFrames x BitsAllocated / 8 bytes (plus one padding byte; YBR_FULL_422 has
  two samples per pixel where SamplesPerPixel says three);
* encapsulated pixel data must be a sequence of items, nothing else.

A file that fails is damaged: it is refused (:class:`~bidsdeid.errors.DataError`).
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments

GEOMETRY_TAGS = {0x00280002: "SamplesPerPixel", 0x00280008: "NumberOfFrames",
                 0x00280010: "Rows", 0x00280011: "Columns", 0x00280100: "BitsAllocated"}
"""Top-level attributes the size of native pixel data follows from."""
_BITS = {0x7FE00008: 32, 0x7FE00009: 64}  # FloatPixelData, DoubleFloatPixelData


def _int(value: Any, default: int | None) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def raw_geometry_value(tag: int, value: bytes) -> int | None:
    """A geometry attribute from its encoded value (US binary; NumberOfFrames IS text)."""
    if tag == 0x00280008:
        try:
            return int(value.decode("ascii").strip(" \x00"))
        except (UnicodeDecodeError, ValueError):
            return None
    return int.from_bytes(value[:2], "little") if len(value) >= 2 else None


def native_problem(tag: int, length: int, geometry: dict[str, Any]) -> str | None:
    """Why ``length`` bytes cannot be the native pixel data ``geometry`` describes."""
    rows, cols = _int(geometry.get("Rows"), None), _int(geometry.get("Columns"), None)
    samples = _int(geometry.get("SamplesPerPixel"), 1) or 1
    frames = _int(geometry.get("NumberOfFrames"), 1) or 1
    bits = _BITS.get(tag) or _int(geometry.get("BitsAllocated"), None)
    if rows is None or cols is None or bits is None:
        return "pixel data without Rows, Columns or BitsAllocated"
    expected = (rows * cols * samples * frames * bits + 7) // 8
    allowed = {expected, expected + 1}
    if samples == 3:  # native YBR_FULL_422 carries two samples per pixel, not three
        subsampled = (rows * cols * 2 * frames * bits + 7) // 8
        allowed |= {subsampled, subsampled + 1}
    if length not in allowed:
        return f"pixel data of {length} bytes where the header says {expected}"
    return None


def encapsulated_problem(value: bytes) -> str | None:
    """Why ``value`` is not a well-formed encapsulated pixel data sequence."""
    try:
        for _fragment in generate_fragments(value):
            pass
    except (ValueError, TypeError, EOFError) as exc:
        return f"encapsulated pixel data that is not a sequence of items ({type(exc).__name__})"
    return None


def dataset_problem(ds: Dataset) -> str | None:
    """The check for a dataset read by pydicom (the pydicom engine's path)."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009):
        if tag not in ds:
            continue
        raw = ds.get_item(tag)
        value = getattr(raw, "value", None)
        if not isinstance(value, bytes):
            return "pixel data that cannot be read as bytes"
        if tag == 0x7FE00010 and ts is not None and ts.is_encapsulated:
            problem = encapsulated_problem(value)
        else:
            geometry = {name: ds.get(name) for name in GEOMETRY_TAGS.values()}
            problem = native_problem(tag, len(value), geometry)
        if problem:
            return problem
    return None
