"""Mutations of real DICOM headers, and the two targets the fuzz tests drive.

Base files are real headers from ../shared/data (the GE slice with identifiers planted
in every PS3.15 Annex E attribute; the TCIA and Penn pseudo-PHI headers; a JPEG
compressed CT slice), their pixel data cut to 8x8 where it is large so an example
takes milliseconds. A :class:`Mutation` is data (kind, where, value), so a crash found
by hypothesis is written down as a regression case in a line.

Mutations: ``flip`` (one bit anywhere in the header), ``cut`` (truncate the file),
``length`` (an element's length field set to another number), ``vr`` (an element's
VR replaced), ``value`` (an element's value replaced by an odd string, its length
field kept consistent), ``tag`` (an element's tag replaced).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from bidsdeid.config import DeidOptions
from bidsdeid.dicom.index import read_header
from bidsdeid.dicom.worker import WorkerSettings, build
from bidsdeid.errors import BidsdeidError
from bidsdeid.privacy.identifiers import Identifiers
from bidsdeid.privacy.keys import DateOffset, ProjectKey
from bidsdeid.privacy.leakscan import Matcher

LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
            b"UT", b"UV"}
VRS = [b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
       b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST",
       b"SV", b"TM", b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV", b"ZZ", b"\x00\x00"]
ODD_VALUES = [b"", b"\x00", b" ", b"\\", b"\\\\\\\\", b"../../etc/passwd", b"/", b"^^^^",
              b"%s%n%x", b"\xff\xfe\xfd", b"\x1b$B\x1b(B", b"\xc3\x28", b"1.2.3.", b"2.25.",
              b"-2147483648", b"99999999999999999999", b"NaN", b"inf", b"1e308",
              b"20001301", b"00000000", b"250000", b"19999999.999999", b"-1", b"0\\0\\0",
              b"A" * 300, b"\x00" * 64, "Jos\u00e9^M\u00fcller".encode(), b"\r\n\t",
              b"YES", b"DERIVED\\SECONDARY\\SCREEN SAVE", b"1.2.840.10008.1.2.4.50"]
KEY = ProjectKey(b"f" * 32)
OFFSET = DateOffset(KEY.date_offset("fuzz").delta)


@dataclass(frozen=True)
class Mutation:
    kind: str  # flip | cut | length | vr | value | tag
    where: int  # byte offset (flip, cut) or element index (length, vr, value, tag)
    value: int | bytes = 0  # bit, new length, VR bytes, value bytes, tag number

    def __str__(self) -> str:
        return f"{self.kind}@{self.where}={self.value!r}"


@dataclass(frozen=True)
class Element:
    """Where one top-level element of an explicit VR little endian file is."""

    start: int  # offset of the tag
    vr_long: bool  # 4-byte length after 2 reserved bytes
    value_start: int
    length: int


class Base:
    """A real header to mutate (a plain class: hypothesis prints it by name only)."""

    def __init__(self, name: str, data: bytes, elements: list[Element], header_end: int,
                 identifiers: Identifiers) -> None:
        self.name = name
        self.data = data
        self.elements = elements
        self.header_end = header_end  # offset of the pixel data (flips stay before it)
        self.identifiers = identifiers

    def __repr__(self) -> str:
        return f"Base({self.name!r})"


def _elements(data: bytes, implicit: bool) -> list[Element]:
    """Top-level elements after the file meta, by walking the bytes (little endian)."""
    pos = 132
    meta_len = struct.unpack("<I", data[pos + 8:pos + 12])[0]
    pos += 12 + meta_len
    out = []
    while pos + 8 <= len(data):
        group, _elem = struct.unpack("<HH", data[pos:pos + 4])
        vr = data[pos + 4:pos + 6]
        if implicit:  # tag, 4-byte length: the "VR" mutations then hit the length
            length = struct.unpack("<I", data[pos + 4:pos + 8])[0]
            out.append(Element(pos, False, pos + 8, length))
            if length == 0xFFFFFFFF:
                break
            pos += 8 + length
        elif vr in LONG_VRS:
            length = struct.unpack("<I", data[pos + 8:pos + 12])[0]
            out.append(Element(pos, True, pos + 12, length))
            if length == 0xFFFFFFFF:
                break  # an undefined-length sequence or pixel data: stop here
            pos += 12 + length
        else:
            length = struct.unpack("<H", data[pos + 6:pos + 8])[0]
            out.append(Element(pos, False, pos + 8, length))
            pos += 8 + length
        if group == 0x7FE0:
            break
    return out


def make_base(name: str, path: Path, plant: bool = False, implicit: bool = False) -> Base:
    """A base file: pixel data cut to 8x8 (uncompressed files); ``implicit``: written
    in Implicit VR Little Endian."""
    ds = pydicom.dcmread(path)
    if ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian and (
            ds.Rows * ds.Columns > 64):
        ds.Rows = ds.Columns = 8
        ds.PixelData = np.arange(64, dtype=np.uint16).tobytes()
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        for kw in ("NumberOfFrames", "SmallestImagePixelValue", "LargestImagePixelValue"):
            if kw in ds:
                delattr(ds, kw)
    if plant:
        ds.PatientName = "Qzfuzzname^Qzfuzzgiven"
        ds.PatientID = "QZFUZZID0042"
        ds.InstitutionName = "Qzfuzz Institute of Imaging"
        ds.PatientBirthDate = "19440203"
        ds.AccessionNumber = "QZACC77123"
    if implicit:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    ids = Identifiers()
    ids.add_dataset(ds)
    ts = ds.file_meta.TransferSyntaxUID
    elements = _elements(data, ts.is_implicit_VR) if ts.is_little_endian else []
    pixel = data.rfind(b"\xe0\x7f\x10\x00")
    return Base(name, data, elements, pixel if pixel > 0 else len(data), ids)


def mutate(base: Base, mutations: list[Mutation]) -> bytes:
    data = bytearray(base.data)
    for m in mutations:
        if m.kind == "flip":
            if not data:
                continue
            pos = m.where % max(min(base.header_end, len(data)), 1)
            data[pos] ^= 1 << (int(m.value) % 8)
        elif m.kind == "cut":
            del data[m.where % max(len(data), 1):]
        elif base.elements:
            el = base.elements[m.where % len(base.elements)]
            if el.value_start > len(data):
                continue
            if m.kind == "length":
                if el.vr_long:
                    data[el.start + 8:el.start + 12] = struct.pack("<I", int(m.value) & 0xFFFFFFFF)
                else:
                    data[el.start + 6:el.start + 8] = struct.pack("<H", int(m.value) & 0xFFFF)
            elif m.kind == "vr":
                data[el.start + 4:el.start + 6] = bytes(m.value)[:2].ljust(2, b"\x00")
            elif m.kind == "tag":
                data[el.start:el.start + 4] = struct.pack("<HH", (int(m.value) >> 16) & 0xFFFF,
                                                          int(m.value) & 0xFFFF)
            elif m.kind == "value" and not el.vr_long:
                new = bytes(m.value)[:0xFFFE]
                if len(new) % 2:
                    new += b" "
                data[el.value_start:el.value_start + el.length] = new
                data[el.start + 6:el.start + 8] = struct.pack("<H", len(new))
                break  # later element offsets moved: stop here
    return bytes(data)


# -- the targets -------------------------------------------------------------------
def check_read_header(path: Path) -> str:
    """``read_header`` never raises; a file it indexes has what the index needs."""
    r = read_header(path)
    if r.problem is None:
        assert r.ds is not None and r.file is not None
        assert r.file.sop_instance_uid and r.file.n_frames >= 1
        return "indexed"
    assert r.ds is None and r.file is None and isinstance(r.problem, str)
    return "skipped"


def deidentifier(base: Base) -> object:
    tokens = [(t.kind, t.text, t.source) for t in base.identifiers.tokens()]
    return build(WorkerSettings(options=DeidOptions(), key=KEY, offset=OFFSET,
                                label="fuzz01", tokens=tokens))


def check_deidentify(fd: object, base: Base, src: Path, dst: Path) -> str:
    """The file is written clean, refused, or a bidsdeid error says why; nothing else.
    A written file holds no identifier of the original header."""
    try:
        report = fd.run(src, dst, "fuzz file")  # type: ignore[attr-defined]
    except BidsdeidError:
        assert not dst.exists()
        return "error"
    if not dst.exists():
        assert report.refused
        return "refused"
    out = dst.read_bytes()
    pixel = out.rfind(b"\xe0\x7f\x10\x00")
    header = out[:pixel] if pixel > 0 else out
    hits = [(t.kind, t.source) for t, _p, _f in Matcher(base.identifiers).finditer(header)]
    assert not hits, f"identifiers survived: {hits}"
    for planted in (b"qzfuzz", b"qzacc77123", b"19440203"):
        assert planted not in header.lower(), planted
    dst.unlink()
    return "written"


__all__ = [
    "ODD_VALUES",
    "VRS",
    "Base",
    "Dataset",
    "Mutation",
    "check_deidentify",
    "check_read_header",
    "deidentifier",
    "make_base",
    "mutate",
]
