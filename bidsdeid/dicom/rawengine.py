"""The byte engine: the profile applied to the encoded file, without building a Dataset.

pydicom parses every element of every sequence into Python objects and writes them
back one by one; on enhanced multi-frame files (thousands of per-frame elements)
that is most of the cost. This engine walks the little-endian encoding once (explicit
or implicit VR, any encapsulated transfer syntax), asks the same cached
:class:`~bidsdeid.dicom.profile.Decision` per attribute as
:mod:`bidsdeid.dicom.deidentify`, copies kept elements byte for byte, re-encodes
only what it changes (with the same value functions of :mod:`bidsdeid.dicom.values`),
and rebuilds sequence and item lengths. Pixel data is not read at all: it is a
:class:`Range` of the source file that the writer streams, so memory does not grow
with the file.

Files it does not handle (no preamble, deflated or big-endian transfer syntax, a
structure it cannot follow) raise :class:`Unsupported` and the caller uses the
pydicom engine. ``tests/test_dicom_engines.py`` checks both give the same dataset.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.uid import UID

from bidsdeid.dicom import profile as P
from bidsdeid.dicom.deidentify import (
    FLAG_TAGS,
    PIXEL_TAGS,
    SOP_CLASS_UID,
    SOP_INSTANCE_UID,
    TOP_LEVEL_ADDED,
    Deidentifier,
    FileReport,
    attribute_name,
    private_name,
)
from bidsdeid.dicom.pixelcheck import (
    GEOMETRY_TAGS,
    encapsulated_text,
    native_problem,
    raw_geometry_value,
)
from bidsdeid.dicom.unlisted import normalise_vr
from bidsdeid.dicom.values import DATE_TIME_PAIRS, TIME_TO_DATE, cap_age, decode_text, encode_text

ITEM = 0xFFFEE000
ITEM_DELIM = 0xFFFEE00D
SEQ_DELIM = 0xFFFEE0DD
UNDEF = 0xFFFFFFFF
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT",
                      "UV"})
_ITEM_DELIM_BYTES = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
_SEQ_DELIM_BYTES = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
_unpack_hh = struct.Struct("<HH").unpack_from
_unpack_h = struct.Struct("<H").unpack_from
_unpack_i = struct.Struct("<I").unpack_from


class Unsupported(Exception):
    """The byte engine cannot process this file; use the pydicom engine."""


@dataclass(frozen=True)
class Range:
    """Bytes of the source file copied unchanged (pixel data)."""

    offset: int
    length: int


Chunk = bytes | Range


def _dict_vr(tag: int) -> str:
    try:
        return normalise_vr(dictionary_VR(tag))
    except KeyError:
        return "UN"


class _Level:
    """Output of one dataset level: (tag, chunk) pairs, sorted on join."""

    __slots__ = ("creators", "kept_blocks", "out", "shifts")

    def __init__(self) -> None:
        self.out: list[tuple[int, Chunk]] = []
        self.creators: dict[tuple[int, int], tuple[int, int]] = {}  # block -> (index, tag)
        self.kept_blocks: set[tuple[int, int]] = set()
        self.shifts: dict[int, tuple[int, str, list[str], str, bool]] = {}


class RawEngine:
    """Apply a :class:`Deidentifier` to the bytes of one file (see module docstring)."""

    def __init__(self, deid: Deidentifier) -> None:
        self.deid = deid
        self.profile = deid.profile
        self._decisions = self.profile._cache  # shared cache, filled by profile.decide
        self._names: dict[int, str] = {}
        self._added: dict[bool, list[tuple[int, Chunk]]] = {}
        self.enhanced = False
        self.implicit = False
        self.transfer_syntax = ""  # of the last file run
        self.encapsulated = False
        self.geometry: dict[str, int | None] = {}  # Rows, Columns, ... (pixelcheck)
        self.buf: bytes | mmap.mmap = b""

    # -- entry point ------------------------------------------------------------------
    def run(self, buf: bytes | mmap.mmap, descriptors: dict[str, str] | None
            ) -> tuple[bytes, list[Chunk], FileReport]:
        """Return (preamble + file meta, body chunks, report) for the file in ``buf``."""
        if len(buf) < 144 or bytes(buf[128:132]) != b"DICM":
            raise Unsupported("no DICOM preamble")
        self.buf = buf
        try:
            return self._run(buf, descriptors)
        except (struct.error, IndexError, KeyError, AttributeError, UnicodeError,
                ValueError) as exc:
            # a damaged structure the walk could not follow: the pydicom engine decides
            raise Unsupported(f"damaged structure ({type(exc).__name__})") from exc

    def _run(self, buf: bytes | mmap.mmap, descriptors: dict[str, str] | None
             ) -> tuple[bytes, list[Chunk], FileReport]:
        pos, meta_tags, ts = self._meta(132)
        uid = UID(ts)
        if not uid.is_transfer_syntax or uid.is_deflated or not uid.is_little_endian:
            raise Unsupported("transfer syntax")
        self.implicit = uid.is_implicit_VR
        self.transfer_syntax = ts
        self.encapsulated = uid.is_encapsulated
        self.geometry = {}
        self.enhanced = False
        report = self.deid.begin(descriptors, "raw")
        for tag in meta_tags:
            if tag not in (0x00020001, 0x00020002, 0x00020003, 0x00020010):
                report.touch(attribute_name(tag), P.Decision(P.REMOVE,
                                                             "file meta: rebuilt without it"))
        level, end = self._level(pos, len(buf), self.implicit, "", True)
        if end != len(buf):
            raise Unsupported("trailing bytes")
        for tag, chunk in level.out:
            if tag == SOP_INSTANCE_UID and isinstance(chunk, bytes):  # the value written
                report.sop_instance_uid = (decode_text(chunk[8:]) or [""])[0] \
                    if len(chunk) > 8 else ""
        level.out = [(t, c) for t, c in level.out if t not in TOP_LEVEL_ADDED]
        level.out.extend(self._added_bytes())
        level.out.sort(key=lambda tc: tc[0])
        meta = self.meta_bytes(report.sop_class_uid, report.sop_instance_uid, ts)
        self.deid.finish()
        return meta, [c for _t, c in level.out], report

    # -- file meta ----------------------------------------------------------------------
    def _meta(self, pos: int) -> tuple[int, list[int], str]:
        buf = self.buf
        tags = []
        ts = ""
        while pos + 8 <= len(buf):
            group, elem = _unpack_hh(buf, pos)
            if group != 0x0002:
                break
            vr = bytes(buf[pos + 4:pos + 6]).decode("latin-1")
            if vr in LONG_VRS:
                length, hdr = _unpack_i(buf, pos + 8)[0], 12
            else:
                length, hdr = _unpack_h(buf, pos + 6)[0], 8
            if length == UNDEF or pos + hdr + length > len(buf):
                raise Unsupported("file meta")
            tag = (group << 16) | elem
            tags.append(tag)
            if tag == 0x00020010:
                ts = bytes(buf[pos + hdr:pos + hdr + length]).decode("latin-1").strip(" \x00")
            pos += hdr + length
        if not ts:
            raise Unsupported("no transfer syntax")
        return pos, tags, ts

    def meta_bytes(self, sop_class: str, sop_instance: str, ts: str) -> bytes:
        """Preamble and the rebuilt file meta (the writer asks again when it changes the
        transfer syntax: defaced pixels decoded from a compressed file)."""
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        fp.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(fp, self.deid.file_meta(sop_class, sop_instance, ts),
                             enforce_standard=True)
        return fp.getvalue()

    def _added_bytes(self) -> list[tuple[int, Chunk]]:
        """The top-level attributes every output gets, encoded one by one."""
        data = self._added.get(self.implicit)
        if data is None:
            data = []
            added = self.deid.added_elements()
            for tag in added.keys():  # noqa: SIM118 - a Dataset iterates elements
                fp = DicomBytesIO()
                fp.is_little_endian, fp.is_implicit_VR = True, self.implicit
                write_data_element(fp, added[tag])
                data.append((int(tag), fp.getvalue()))
            self._added[self.implicit] = data
        return data

    # -- one dataset level ----------------------------------------------------------------
    def _header(self, pos: int, implicit: bool) -> tuple[int, str | None, int, int]:
        buf = self.buf
        if pos + 8 > len(buf):
            raise Unsupported("truncated")
        group, elem = _unpack_hh(buf, pos)
        tag = (group << 16) | elem
        if implicit or group == 0xFFFE:
            return tag, None, _unpack_i(buf, pos + 4)[0], 8
        vr = bytes(buf[pos + 4:pos + 6]).decode("latin-1")
        if vr in LONG_VRS:
            if pos + 12 > len(buf):
                raise Unsupported("truncated")
            return tag, vr, _unpack_i(buf, pos + 8)[0], 12
        return tag, vr, _unpack_h(buf, pos + 6)[0], 8

    def _level(self, pos: int, end: int | None, implicit: bool, prefix: str,
               top: bool) -> tuple[_Level, int]:
        """Process elements from ``pos`` to ``end`` (or to an item delimiter)."""
        lv = _Level()
        limit = end if end is not None else len(self.buf)
        last, pixels = -1, 0
        while pos < limit:
            tag, vr, length, hdr = self._header(pos, implicit)
            if tag == ITEM_DELIM and end is None:
                return self._finish(lv, implicit, prefix), pos + 8
            # elements out of order, or a second pixel data element: a damaged file (an
            # element made pixel data would be copied unchecked); pydicom decides
            if tag <= last:
                raise Unsupported("elements out of order")
            last = tag
            pixels += top and tag in PIXEL_TAGS
            if pixels > 1:
                raise Unsupported("more than one pixel data element")
            vpos = pos + hdr
            if length != UNDEF and vpos + length > len(self.buf):
                raise Unsupported("element runs past the end of the file")
            if (tag >> 16) & 1:
                pos = self._private(lv, pos, tag, vr, length, vpos, implicit, prefix)
            else:
                pos = self._standard(lv, pos, tag, vr, length, vpos, implicit, prefix, top)
        if end is None:
            raise Unsupported("item without delimiter")
        return self._finish(lv, implicit, prefix), pos

    def _standard(self, lv: _Level, pos: int, tag: int, vr: str | None, length: int,
                  vpos: int, implicit: bool, prefix: str, top: bool) -> int:
        dvr = _dict_vr(tag) if vr is None or vr == "UN" else normalise_vr(vr)
        if top and tag == SOP_CLASS_UID and length != UNDEF:
            sop_class = self.buf[vpos:vpos + length].decode("latin-1").strip(" \x00")
            self.deid.report.sop_class_uid = sop_class
            self.enhanced = P.is_enhanced(sop_class)
        if top and tag in GEOMETRY_TAGS and length != UNDEF:
            self.geometry[GEOMETRY_TAGS[tag]] = raw_geometry_value(
                tag, bytes(self.buf[vpos:vpos + length]))
        if top and tag in PIXEL_TAGS and length != UNDEF:  # pixelcheck: really the image?
            problem = ("encapsulated pixel data with a defined length" if self.encapsulated
                       and tag == 0x7FE00010 else native_problem(tag, length, self.geometry))
            if problem:
                raise Unsupported(problem)
        if top and (tag in FLAG_TAGS or tag in PIXEL_TAGS):
            if tag in PIXEL_TAGS:
                self.deid.report.has_pixels = True
            elif length != UNDEF:
                self.deid.report.flags[FLAG_TAGS[tag]] = "\\".join(
                    decode_text(self.buf[vpos:vpos + length]))
        key = (tag, dvr, self.enhanced)
        d = self._decisions.get(key)
        if d is None:
            d = self.profile.decide(tag, dvr, self.enhanced)
        op = d.op
        if length == UNDEF:
            if top and tag in PIXEL_TAGS:
                end = self._skip_fragments(vpos)
                problem = encapsulated_text(memoryview(self.buf)[vpos:end])
                if problem:  # the pydicom engine refuses the file, saying why
                    raise Unsupported(problem)
                lv.out.append((tag, Range(pos, end - pos)))
                return end
            if op in (P.RECURSE, P.KEEP):
                return self._sequence(lv, pos, tag, vr, length, vpos, implicit, prefix, d)
            end = self._skip_sequence(vpos, implicit or vr == "UN")
            if op not in (P.REMOVE, P.EMPTY):
                d = P.Decision(P.EMPTY, d.audit + ": sequence emptied")
                op = d.op
            self.deid.report.touch(prefix + self._name(tag), d)
            if op == P.EMPTY:
                lv.out.append((tag, self._element(tag, "SQ" if vr in (None, "UN") else vr,
                                                  b"", implicit)))
            return end
        end = vpos + length
        if op == P.VOCAB:
            d = self.deid.vocabulary(d, decode_text(self.buf[vpos:end]),
                                      prefix + self._name(tag))
            op = d.op
        if op == P.KEEP_TEXT:
            self.deid.report.kept_text.update(decode_text(self.buf[vpos:end]))
            op = P.KEEP
        if op == P.KEEP:
            if top and tag in PIXEL_TAGS:
                lv.out.append((tag, Range(pos, end - pos)))
            else:
                lv.out.append((tag, self.buf[pos:end]))
            return end
        if op == P.RECURSE:
            return self._sequence(lv, pos, tag, vr, length, vpos, implicit, prefix, d)
        path = prefix + self._name(tag)
        if op == P.DESCRIPTOR and d.fallback is not None and self.deid.descriptor(
                tag, dvr) is None:
            d = d.fallback
            op = d.op
            if op == P.RECURSE:  # pragma: no cover - text attributes are never sequences
                raise Unsupported("descriptor fallback on a sequence")
        if op == P.SHIFT:
            values = decode_text(self.buf[vpos:end])
            lv.shifts[tag] = (len(lv.out), dvr, values, path, vr == "UN")
            lv.out.append((tag, b""))
            return end
        self.deid.report.touch(path, d)
        if top and tag == 0x00100020 and op == P.LABEL:
            old = self.buf[vpos:end].decode("latin-1").strip(" \x00")
            self.deid.report.patient_id = old or None
        data = self._value(tag, dvr, d, vpos, end)
        if data is not None:
            out_vr = vr if vr is not None and vr != "UN" else dvr
            lv.out.append((tag, self._element(tag, out_vr, data, implicit)))
        return end

    def _value(self, tag: int, vr: str, d: P.Decision, vpos: int, end: int) -> bytes | None:
        """New value bytes for an operation (None: remove the element)."""
        op = d.op
        if op == P.REMOVE:
            return None
        if op == P.EMPTY:
            return b""
        cleaner = self.deid.cleaner
        if op == P.DUMMY:
            text = cleaner.dummy_text(vr)
            return encode_text([text], vr) if text is not None else cleaner.dummy_binary(vr)
        if op == P.UID:
            return encode_text(cleaner.uids(decode_text(self.buf[vpos:end])), "UI")
        if op == P.LABEL:
            return encode_text([self.deid.patient_label], vr)
        if op == P.REPLACE:
            assert d.arg is not None
            return encode_text([cleaner.replacement(d.arg.value, vr)], vr)
        if op == P.HASH:
            return encode_text(cleaner.hashed(decode_text(self.buf[vpos:end]), vr), vr)
        if op == P.AGE:
            return encode_text([cap_age(v) for v in decode_text(self.buf[vpos:end])],
                               "AS")
        if op == P.DESCRIPTOR:
            value = self.deid.descriptor(tag, vr)
            if value is not None:
                return encode_text([value], vr)
            if d.fallback is None:  # pragma: no cover - DESCRIPTOR always has a fallback
                return None
            return self._value(tag, vr, d.fallback, vpos, end)
        raise Unsupported(f"operation {op}")  # pragma: no cover

    def _private(self, lv: _Level, pos: int, tag: int, vr: str | None, length: int,
                 vpos: int, implicit: bool, prefix: str) -> int:
        group, elem = tag >> 16, tag & 0xFFFF
        end = self._end_of(vpos, length, implicit, vr)
        if 0x10 <= elem <= 0xFF:
            lv.creators[(group, elem)] = (len(lv.out), tag)
            lv.out.append((tag, self.buf[pos:end]))
            return end
        creator_at = lv.creators.get((group, elem >> 8)) if elem >= 0x1000 else None
        if creator_at is None:
            self.deid.report.touch(prefix + private_name(group, elem),
                                   P.Decision(P.REMOVE, "private without creator: removed"))
            return end
        cpos = creator_at[0]
        creator = self._creator_text(lv.out[cpos][1], implicit)
        pvr = vr if vr not in (None, "UN") else None
        d = self.profile.decide_private(creator, group, elem & 0xFF, pvr)
        if d.op == P.VOCAB and length != UNDEF:
            d = self.deid.vocabulary(d, decode_text(self.buf[vpos:end]),
                                      prefix + private_name(group, elem))
        if d.op == P.REMOVE:
            self.deid.report.touch(prefix + private_name(group, elem), d)
            return end
        lv.kept_blocks.add((group, elem >> 8))
        if d.op == P.KEEP_TEXT:
            self.deid.report.kept_text.update(decode_text(self.buf[vpos:end]))
        if d.op in (P.KEEP, P.KEEP_TEXT):
            lv.out.append((tag, self.buf[pos:end]))
            return end
        if d.op == P.RECURSE:
            if vr == "SQ" or length == UNDEF or vr in (None, "UN"):
                sub = prefix + private_name(group, elem)
                return self._sequence(lv, pos, tag, vr, length, vpos, implicit, sub, d,
                                      named=True)
            lv.out.append((tag, self.buf[pos:end]))
            return end
        self.deid.report.touch(prefix + private_name(group, elem), d)
        dvr = pvr or ("UI" if d.op == P.UID else "UN")
        if d.op == P.SHIFT:
            values = decode_text(self.buf[vpos:end])
            lv.shifts[tag] = (len(lv.out), pvr or "DA", values, prefix + private_name(
                group, elem), False)
            lv.out.append((tag, b""))
            return end
        data = self._value(tag, dvr, d, vpos, end)
        if data is not None:
            lv.out.append((tag, self._element(tag, vr or dvr, data, implicit)))
        return end

    def _creator_text(self, chunk: Chunk, implicit: bool) -> str:
        assert isinstance(chunk, bytes)
        hdr = 8 if implicit or chunk[4:6].decode("latin-1") not in LONG_VRS else 12
        return chunk[hdr:].decode("latin-1").strip(" \x00")

    def _end_of(self, vpos: int, length: int, implicit: bool, vr: str | None) -> int:
        if length != UNDEF:
            return vpos + length
        return self._skip_sequence(vpos, implicit or vr == "UN")

    # -- sequences ------------------------------------------------------------------------
    def _sequence(self, lv: _Level, pos: int, tag: int, vr: str | None, length: int,
                  vpos: int, implicit: bool, prefix: str, d: P.Decision,
                  named: bool = False) -> int:
        """Clean every item of a sequence; keep the input's length style."""
        items_implicit = implicit or vr == "UN"
        sub = (prefix if named else prefix + self._name(tag)) + "/"
        end = vpos + length if length != UNDEF else None
        parts: list[bytes] = []
        p = vpos
        while end is None or p < end:
            itag, _vr, ilen, _hdr = self._header(p, True)
            if itag == SEQ_DELIM and end is None:
                p += 8
                break
            if itag != ITEM:
                raise Unsupported("sequence without items")
            if ilen == UNDEF:
                level, p = self._level(p + 8, None, items_implicit, sub, False)
                content = b"".join(c for _t, c in level.out)  # type: ignore[misc]
                parts.append(struct.pack("<HHI", 0xFFFE, 0xE000, UNDEF) + content
                             + _ITEM_DELIM_BYTES)
            else:
                level, p = self._level(p + 8, p + 8 + ilen, items_implicit, sub, False)
                content = b"".join(c for _t, c in level.out)  # type: ignore[misc]
                parts.append(struct.pack("<HHI", 0xFFFE, 0xE000, len(content)) + content)
        else:
            if end is not None and p != end:
                raise Unsupported("sequence length mismatch")
        body = b"".join(parts)
        if length == UNDEF:
            value_len, body = UNDEF, body + _SEQ_DELIM_BYTES
        else:
            value_len = len(body)
        if implicit:
            head = struct.pack("<HHI", tag >> 16, tag & 0xFFFF, value_len)
        else:
            head = struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF,
                               (vr or "SQ").encode("latin-1"), 0, value_len)
        lv.out.append((tag, head + body))
        return p

    def _skip_sequence(self, vpos: int, implicit: bool) -> int:
        """End of an undefined-length sequence (structure walked, nothing kept)."""
        p = vpos
        while True:
            itag, _vr, ilen, _hdr = self._header(p, True)
            if itag == SEQ_DELIM:
                return p + 8
            if itag != ITEM:
                raise Unsupported("sequence without items")
            if ilen != UNDEF:
                p += 8 + ilen
                continue
            p += 8
            while True:
                tag, vr, length, hdr = self._header(p, implicit)
                if tag == ITEM_DELIM:
                    p += 8
                    break
                p = self._end_of(p + hdr, length, implicit, vr)

    def _skip_fragments(self, vpos: int) -> int:
        """End of encapsulated pixel data (items up to the sequence delimiter)."""
        p = vpos
        while True:
            itag, _vr, ilen, _hdr = self._header(p, True)
            if itag == SEQ_DELIM:
                return p + 8
            if itag != ITEM or ilen == UNDEF:
                raise Unsupported("malformed encapsulated pixel data")
            p += 8 + ilen

    # -- finishing a level ------------------------------------------------------------------
    def _finish(self, lv: _Level, implicit: bool, prefix: str) -> _Level:
        if lv.shifts:
            self._apply_shifts(lv, implicit)
        drop = set()
        for block, (index, _tag) in lv.creators.items():
            if block not in lv.kept_blocks:
                drop.add(index)
                self.deid.report.touch(prefix + private_name(block[0], block[1]),
                                       P.Decision(P.REMOVE, "private creator: block removed"))
        if drop:
            lv.out = [tc for i, tc in enumerate(lv.out) if i not in drop]
        lv.out = [tc for tc in lv.out if tc[1] != b""]
        lv.out.sort(key=lambda tc: tc[0])
        return lv

    def _apply_shifts(self, lv: _Level, implicit: bool) -> None:
        cleaner = self.deid.cleaner
        results: dict[int, list[str] | None] = {}
        for tag, (_i, vr, values, _path, _un) in lv.shifts.items():
            if tag in results:
                continue
            partner = DATE_TIME_PAIRS.get(tag) or TIME_TO_DATE.get(tag)
            if partner is not None and partner in lv.shifts and partner not in results:
                da_tag, tm_tag = (tag, partner) if tag in DATE_TIME_PAIRS else (partner, tag)
                da, tm = lv.shifts[da_tag][2], lv.shifts[tm_tag][2]
                if len(da) == 1 and len(tm) == 1 and da[0] and tm[0]:
                    pair = cleaner.shift_pair(da[0], tm[0])
                    results[da_tag] = [pair[0]] if pair else None
                    results[tm_tag] = [pair[1]] if pair else None
                    continue
            results[tag] = cleaner.shift(vr, values)
        for tag, (index, vr, _values, path, _un) in lv.shifts.items():
            new = results[tag]
            if new is None:
                self.deid.report.touch(path, P.Decision(P.EMPTY, "date/time that does not "
                                                                 "parse: emptied"))
                data = b""
            else:
                d = self.profile.decide(tag, vr, False) if not (tag >> 16) & 1 else None
                self.deid.report.touch(path, d if d is not None and d.op == P.SHIFT
                                       else P.Decision(P.SHIFT, "shifted"))
                data = encode_text(new, vr)
            lv.out[index] = (tag, self._element(tag, vr, data, implicit))

    # -- encoding -------------------------------------------------------------------------
    def _element(self, tag: int, vr: str, value: bytes, implicit: bool) -> bytes:
        if implicit:
            return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value
        if vr in LONG_VRS:
            return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr.encode("latin-1"), 0,
                               len(value)) + value
        if len(value) > 0xFFFF:
            raise Unsupported("value too long for its VR")
        return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode("latin-1"),
                           len(value)) + value

    def _name(self, tag: int) -> str:
        name = self._names.get(tag)
        if name is None:
            name = self._names[tag] = attribute_name(tag)
        return name


__all__ = ["Range", "RawEngine", "Unsupported", "keyword_for_tag"]
