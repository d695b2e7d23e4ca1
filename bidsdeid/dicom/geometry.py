"""Read what pixel defacing needs from a file's encoded bytes, without building a Dataset.

pydicom builds a Dataset for every item of an enhanced file's
PerFrameFunctionalGroupsSequence, and for every functional group macro in it: for
tens of thousands of frames that is gigabytes. :func:`read_layout` walks the
little-endian encoding once (explicit or implicit VR, defined or undefined lengths)
up to the pixel data and keeps only:

* the top-level Image Pixel attributes (a small :class:`pydicom.Dataset`, for
  :func:`bidsdeid.dicom.pixels.pixel_format`), classic ImagePositionPatient,
  ImageOrientationPatient, PixelSpacing and rescale;
* per frame, from its own functional groups or the shared ones: PlanePosition,
  PlaneOrientation, PixelMeasures and PixelValueTransformation.

Every other element is skipped by its length. A structure it cannot follow raises
:class:`~bidsdeid.dicom.pixels.PixelRefused`; the caller never guesses.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from bidsdeid.dicom.pixels import (
    DOUBLE_PIXEL_DATA,
    FLOAT_PIXEL_DATA,
    PIXEL_DATA,
    Frame,
    PixelFormat,
    PixelRefused,
    frame_from_values,
    pixel_format,
)

ITEM, ITEM_DELIM, SEQ_DELIM, UNDEF = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD, 0xFFFFFFFF
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT",
                      "UV"})
PIXEL_TAGS = (PIXEL_DATA, FLOAT_PIXEL_DATA, DOUBLE_PIXEL_DATA)
SHARED_GROUPS, PER_FRAME_GROUPS = 0x52009229, 0x52009230

# top-level attributes kept: tag -> (keyword, VR)
TOP = {
    0x00280002: ("SamplesPerPixel", "US"), 0x00280004: ("PhotometricInterpretation", "CS"),
    0x00280008: ("NumberOfFrames", "IS"), 0x00280010: ("Rows", "US"),
    0x00280011: ("Columns", "US"), 0x00280100: ("BitsAllocated", "US"),
    0x00280101: ("BitsStored", "US"), 0x00280103: ("PixelRepresentation", "US"),
    0x00200032: ("ImagePositionPatient", "DS"), 0x00200037: ("ImageOrientationPatient", "DS"),
    0x00280030: ("PixelSpacing", "DS"), 0x00281052: ("RescaleIntercept", "DS"),
    0x00281053: ("RescaleSlope", "DS"),
}
# functional group macro -> the attributes read from its first item
GROUPS = {
    0x00209113: {0x00200032: "ImagePositionPatient"},  # PlanePositionSequence
    0x00209116: {0x00200037: "ImageOrientationPatient"},  # PlaneOrientationSequence
    0x00289110: {0x00280030: "PixelSpacing"},  # PixelMeasuresSequence
    0x00289145: {0x00281052: "RescaleIntercept", 0x00281053: "RescaleSlope"},
}


@dataclass
class Layout:
    """A file's pixel format, frame geometry and pixel data tag."""

    fmt: PixelFormat
    frames: list[Frame]
    pixel_tag: int


Visit = Callable[[int, "int | None"], int]
"""Called with (start, end or None) of an item; returns where the item ends."""


@dataclass
class _Walk:
    buf: bytes | mmap.mmap
    implicit: bool
    top: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)
    per_frame: list[dict[str, Any]] | None = None  # None: no per-frame groups
    pixel_tag: int = 0

    def header(self, pos: int, implicit: bool) -> tuple[int, str | None, int, int]:
        """(tag, VR or None, value length, header length) of the element at ``pos``."""
        buf = self.buf
        if pos + 8 > len(buf):
            raise PixelRefused("the header ends inside an element")
        group, elem = struct.unpack_from("<HH", buf, pos)
        tag = (group << 16) | elem
        if implicit or group == 0xFFFE:
            return tag, None, struct.unpack_from("<I", buf, pos + 4)[0], 8
        vr = bytes(buf[pos + 4:pos + 6]).decode("latin-1")
        if vr in LONG_VRS:
            return tag, vr, struct.unpack_from("<I", buf, pos + 8)[0], 12
        return tag, vr, struct.unpack_from("<H", buf, pos + 6)[0], 8

    def sequence(self, vpos: int, length: int, visit: Visit) -> int:
        """``visit`` each item of the sequence whose value starts at ``vpos``; return
        where the sequence ends."""
        end = vpos + length if length != UNDEF else None
        p = vpos
        while end is None or p < end:
            tag, _vr, ilen, _h = self.header(p, True)
            if tag == SEQ_DELIM and end is None:
                return p + 8
            if tag != ITEM:
                raise PixelRefused("a sequence without items")
            if ilen == UNDEF:
                p = visit(p + 8, None)
            else:
                visit(p + 8, p + 8 + ilen)
                p += 8 + ilen
        if p != end:
            raise PixelRefused("a sequence whose items overrun it")
        return p

    def skipper(self, implicit: bool) -> Visit:
        def skip(start: int, end: int | None) -> int:
            return end if end is not None else self.level(start, None, implicit, None)
        return skip

    def level(self, pos: int, end: int | None, implicit: bool,
              wanted: dict[int, str] | None, found: dict[str, Any] | None = None) -> int:
        """Walk one item from ``pos`` (to ``end``, or to its delimiter), putting the values
        of ``wanted`` tags into ``found``; return where the item ends."""
        limit = end if end is not None else len(self.buf)
        while pos < limit:
            tag, vr, length, hdr = self.header(pos, implicit)
            if tag == ITEM_DELIM and end is None:
                return pos + 8
            vpos = pos + hdr
            if length == UNDEF:
                sub = implicit or vr == "UN"
                pos = self.sequence(vpos, length, self.skipper(sub))
                continue
            if vpos + length > len(self.buf):
                raise PixelRefused("an element runs past the end of the file")
            if wanted is not None and found is not None and tag in wanted:
                found[wanted[tag]] = _text(self.buf[vpos:vpos + length])
            pos = vpos + length
        if end is None:
            raise PixelRefused("an item without its delimiter")
        return pos

    def groups(self, implicit: bool, into: list[dict[str, Any]]) -> Visit:
        """A visitor reading one functional groups item (shared, or one frame's)."""
        def visit(start: int, end: int | None) -> int:
            values: dict[str, Any] = {}
            limit = end if end is not None else len(self.buf)
            pos = start
            while pos < limit:
                tag, vr, length, hdr = self.header(pos, implicit)
                if tag == ITEM_DELIM and end is None:
                    into.append(values)
                    return pos + 8
                vpos = pos + hdr
                sub = implicit or vr == "UN"
                if tag in GROUPS:
                    first: list[bool] = []

                    def macro(s: int, e: int | None, tag: int = tag, sub: bool = sub,
                              first: list[bool] = first) -> int:
                        if first:  # the first item holds the macro; skip the rest
                            return self.skipper(sub)(s, e)
                        first.append(True)
                        return self.level(s, e, sub, GROUPS[tag], values)

                    pos = self.sequence(vpos, length, macro)
                elif length == UNDEF:
                    pos = self.sequence(vpos, length, self.skipper(sub))
                else:
                    pos = vpos + length
            if end is None:
                raise PixelRefused("an item without its delimiter")
            into.append(values)
            return pos
        return visit

    def dataset(self, pos: int) -> None:
        """The top level, from ``pos`` to the pixel data."""
        while pos < len(self.buf):
            tag, vr, length, hdr = self.header(pos, self.implicit)
            vpos = pos + hdr
            if tag in PIXEL_TAGS:
                self.pixel_tag = tag
                return
            sub = self.implicit or vr == "UN"
            if tag in (SHARED_GROUPS, PER_FRAME_GROUPS):
                items: list[dict[str, Any]] = []
                pos = self.sequence(vpos, length, self.groups(sub, items))
                if tag == SHARED_GROUPS:
                    self.shared = items[0] if items else {}
                else:
                    self.per_frame = items
                continue
            if length == UNDEF:
                pos = self.sequence(vpos, length, self.skipper(sub))
                continue
            if vpos + length > len(self.buf):
                raise PixelRefused("an element runs past the end of the file")
            if tag in TOP:
                keyword, tvr = TOP[tag]
                raw = bytes(self.buf[vpos:vpos + length])
                self.top[keyword] = (struct.unpack_from("<H", raw)[0] if tvr == "US"
                                     and length >= 2 else _text(raw))
            pos = vpos + length


def _text(raw: bytes | mmap.mmap) -> list[str] | str:
    values = [v.strip(" \x00") for v in bytes(raw).decode("latin-1").split("\\")]
    return values if len(values) > 1 else values[0]


def _dataset_start(buf: bytes | mmap.mmap) -> int:
    """Where the dataset starts (after the preamble and the group 0002 file meta)."""
    if len(buf) < 132 or bytes(buf[128:132]) != b"DICM":
        raise PixelRefused("no DICOM preamble")
    pos = 132
    while pos + 8 <= len(buf):
        group = struct.unpack_from("<H", buf, pos)[0]
        if group != 0x0002:
            return pos
        vr = bytes(buf[pos + 4:pos + 6]).decode("latin-1")
        if vr in LONG_VRS:
            pos += 12 + struct.unpack_from("<I", buf, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", buf, pos + 6)[0]
    raise PixelRefused("no dataset after the file meta")


def read_layout(buf: bytes | mmap.mmap, implicit: bool) -> Layout:
    """The :class:`Layout` of the little-endian file in ``buf`` (see module docstring)."""
    walk = _Walk(buf, implicit)
    try:
        walk.dataset(_dataset_start(buf))
    except (struct.error, UnicodeDecodeError) as exc:
        raise PixelRefused("the header cannot be followed to the pixel data") from exc
    if not walk.pixel_tag:
        raise PixelRefused("no pixel data")
    top = Dataset()
    for keyword, value in walk.top.items():
        if keyword in ("SamplesPerPixel", "PhotometricInterpretation", "NumberOfFrames",
                       "Rows", "Columns", "BitsAllocated", "BitsStored",
                       "PixelRepresentation"):
            setattr(top, keyword, value)
    fmt = pixel_format(top, walk.pixel_tag)
    if walk.per_frame is not None:  # enhanced, even if empty (refused below)
        if len(walk.per_frame) != fmt.frames:
            raise PixelRefused("the per-frame functional groups do not match NumberOfFrames")
        frames = [frame_from_values({**walk.shared, **values}, f"frame {k + 1}")
                  for k, values in enumerate(walk.per_frame)]
    else:
        if fmt.frames != 1:
            raise PixelRefused("multi-frame image without per-frame plane positions")
        frames = [frame_from_values(walk.top, "the image")]
    return Layout(fmt, frames, walk.pixel_tag)
