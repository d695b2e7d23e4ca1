"""Is a file's pixel data element what its header says it is?

Pixel data is copied without being read (it cannot hold header text, and scanning
megabytes of voxels for names would find them by chance). That is only safe if the
element really is the image: a damaged file whose tag or length field turned header
elements into "pixel data" would carry them to the output unchecked (found by
fuzzing). So before pixel data is copied:

* native (uncompressed) pixel data must be exactly Rows x Columns x SamplesPerPixel x
  NumberOfFrames x BitsAllocated / 8 bytes (plus one padding byte; YBR_FULL_422 has
  two samples per pixel where SamplesPerPixel says three);
* encapsulated pixel data must be a sequence of items, nothing else; and the
  compressed frames must carry nothing beside the image (:func:`encapsulated_text`):
  a JPEG comment or application segment can hold the name and birth date a PACS
  stamped into it, and is copied with the pixels.

A file that fails is refused (:class:`~bidsdeid.errors.DataError`).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
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


_ITEM, _SEQ_DELIM = 0xFFFEE000, 0xFFFEE0DD
_JPEG_TEXT_MARKER = re.compile(rb"\xff[\xe0-\xef\xfe]")
"""APP0-APP15 and COM: in entropy-coded JPEG data 0xFF is followed only by 0x00 or a
restart marker (JPEG-LS: by a byte below 0x80), so these bytes are always segments."""
_PLAIN_APP = {0xE0: (b"JFIF\x00", b"JFXX\x00"), 0xEE: (b"Adobe",)}
"""Application segments that hold only decoding parameters (and, for JFXX, a thumbnail
of the image itself)."""
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


def _items(value: bytes | memoryview) -> Iterator[memoryview]:
    """The values of the items of encapsulated pixel data (the offset table first)."""
    view = memoryview(value)
    pos = 0
    while pos + 8 <= len(view):
        tag_group, tag_elem, length = struct.unpack_from("<HHI", view, pos)
        tag = tag_group << 16 | tag_elem
        if tag == _SEQ_DELIM:
            return
        if tag != _ITEM:
            raise ValueError("not an item")
        yield view[pos + 8:pos + 8 + length]
        pos += 8 + length


def _jpeg_text(fragment: memoryview) -> str | None:
    for m in _JPEG_TEXT_MARKER.finditer(fragment):  # type: ignore[call-overload]
        marker = m.group(0)[1]
        if marker == 0xFE:
            return "a JPEG comment (COM segment) in the compressed pixel data"
        ident = bytes(fragment[m.start() + 4:m.start() + 10])
        if not any(ident.startswith(a) for a in _PLAIN_APP.get(marker, ())):
            return (f"a JPEG application segment (APP{marker - 0xE0}) in the compressed "
                    "pixel data")
    return None


def _j2k_text(fragment: memoryview) -> str | None:
    """A comment (COM) in the main or a tile-part header of a JPEG 2000 codestream."""
    pos, n = 2, len(fragment)
    while pos + 4 <= n:
        marker, length = struct.unpack_from(">HH", fragment, pos)
        if marker == 0xFF64:
            return "a JPEG 2000 comment (COM segment) in the compressed pixel data"
        if marker == 0xFF90:  # SOT: a tile-part header, then its data up to Psot
            tile_start = pos
            psot = struct.unpack_from(">I", fragment, pos + 6)[0] if pos + 10 <= n else 0
            pos += 2 + length
            while pos + 4 <= n:
                marker, length = struct.unpack_from(">HH", fragment, pos)
                if marker == 0xFF64:
                    return "a JPEG 2000 comment (COM segment) in the compressed pixel data"
                if marker == 0xFF93:  # SOD: the tile's data
                    break
                pos += 2 + length
            if psot == 0:
                return None
            pos = tile_start + psot
            continue
        if marker >> 8 != 0xFF or length < 2:
            return None  # not a header any more: the rest is coded data
        pos += 2 + length
    return None


def encapsulated_text(value: bytes | memoryview) -> str | None:
    """Why compressed frames may carry text beside the image, or None: a JPEG comment or
    application segment other than JFIF and Adobe, a JPEG 2000 comment or JP2 wrapper
    (whose boxes hold metadata), an offset table that is not one, or bytes after the end
    of a frame."""
    try:
        items = list(_items(value))
    except (ValueError, struct.error):
        return "encapsulated pixel data that is not a sequence of items"
    if not items:
        return None
    table = items[0]
    if len(table) % 4:
        return "a basic offset table whose length is not a multiple of 4"
    offsets = struct.unpack_from(f"<{len(table) // 4}I", table)
    if offsets and (offsets[0] != 0 or list(offsets) != sorted(offsets)):
        return "a basic offset table that holds no offsets"
    kind, ended = None, False
    for fragment in items[1:]:
        head = bytes(fragment[:12])
        if head.startswith(b"\xff\xd8"):
            kind, ended = "jpeg", False
        elif head.startswith(b"\xff\x4f\xff\x51"):
            kind, ended = "j2k", False
            problem = _j2k_text(fragment)
            if problem:
                return problem
        elif head == _JP2_SIGNATURE:
            return "JPEG 2000 in a JP2 wrapper (metadata boxes) in the pixel data"
        elif ended:
            return "bytes after the end of a compressed frame"
        if kind == "jpeg":
            problem = _jpeg_text(fragment)
            if problem:
                return problem
        tail = bytes(fragment[-3:])
        ended = kind is not None and (tail.endswith(b"\xff\xd9") or tail == b"\xff\xd9\x00")
    return None


def dataset_text(ds: Dataset) -> str | None:
    """:func:`encapsulated_text` of a dataset read by pydicom (None: native pixels)."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    value = getattr(ds.get_item(0x7FE00010), "value", None) if 0x7FE00010 in ds else None
    if ts is None or not ts.is_encapsulated or not isinstance(value, bytes):
        return None
    return encapsulated_text(value)


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
