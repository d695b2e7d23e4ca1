"""Apply the PS3.15 Annex E profile to a DICOM dataset (the pydicom engine).

:meth:`Deidentifier.dataset` cleans a :class:`pydicom.Dataset` in place, recursively
in every sequence (per-frame and shared functional groups of enhanced multi-frame
objects included), and rebuilds its file meta. Each attribute gets the
:class:`~bidsdeid.dicom.profile.Decision` of :class:`~bidsdeid.dicom.profile.Profile`:

* X removed (at every nesting level), Z emptied, D a dummy valid for the VR,
  K kept (a kept sequence is still cleaned), U a keyed ``2.25.<int>`` UID;
* C: dates and times shifted by the subject's offset (a DA and its TM partner move
  together), descriptors replaced by the safe value the caller gives (e.g. the BIDS
  name of the series) or, without one, the Basic Profile action;
* PatientName and PatientID: the participant's output label;
* PatientAge, when kept: above 89 written as ``089Y``.

Attributes in no table follow :mod:`bidsdeid.dicom.unlisted` (fail closed): numbers,
code strings and sequences kept, UIDs mapped, dates shifted, text emptied unless
allow-listed (Manufacturer, sequence and coil names, coded vocabulary), other binary
data removed. Private attributes are removed (Siemens CSA and XProtocol blobs hold
UIDs, dates and serials in plain text), except the safe ones of Table E.3.10-1 under
Retain Safe Private, matched on private creator, group and element offset; a block's
creator stays only if one of its elements does. Overlay groups (60xx) go with their
Overlay Data, curve groups (50xx) entirely.

Added at the top level: PatientIdentityRemoved YES, DeidentificationMethod,
DeidentificationMethodCodeSequence (CID 7050: 113100 plus the options in force) and
LongitudinalTemporalInformationModified. The file meta is rebuilt from scratch:
MediaStorageSOPInstanceUID follows the new SOPInstanceUID; everything else that was
there (SourceApplicationEntityTitle holds a station name) is dropped.

The same decisions and value functions drive :mod:`bidsdeid.dicom.rawengine`, which
does the same work on the encoded bytes for speed; tests check the two agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import UID

from bidsdeid import __version__
from bidsdeid.dicom import profile as P
from bidsdeid.dicom import tables
from bidsdeid.dicom.unlisted import TEXT_VRS, normalise_vr
from bidsdeid.dicom.values import (
    DATE_TIME_PAIRS,
    TIME_TO_DATE,
    ValueCleaner,
    cap_age,
    encode_text,
    fit,
)
from bidsdeid.privacy.keys import DateOffset, ProjectKey

OPTION_CODES = {
    "rtnSafePrivOpt": "113111", "rtnUIDsOpt": "113110", "rtnDevIdOpt": "113109",
    "rtnInstIdOpt": "113112", "rtnPatCharsOpt": "113108", "rtnLongFullDatesOpt": "113106",
    "rtnLongModifDatesOpt": "113107", "cleanDescOpt": "113105",
    "cleanStructContOpt": "113104", "cleanGraphOpt": "113103",
}
"""Table E.1-1 option column -> CID 7050 code."""

IMPLEMENTATION_CLASS_UID = "2.25.180013952911312786069404466104283545915"
"""bidsdeid's own Implementation Class UID (a fixed UUID-derived UID)."""
IMPLEMENTATION_VERSION = ("BIDSDEID_" + __version__.replace(".", "_"))[:16]

TOP_LEVEL_ADDED = (0x00120062, 0x00120063, 0x00120064, 0x00280303)
FLAG_TAGS = {0x00080008: "ImageType", 0x00280301: "BurnedInAnnotation",
             0x00280302: "RecognizableVisualFeatures"}
"""Top-level attributes read for the per-file quarantine check."""
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
SOP_CLASS_UID = 0x00080016
SOP_INSTANCE_UID = 0x00080018


@dataclass
class FileReport:
    """What happened to one file (no values except the UID and patient ID maps, which
    go to the private mapping files)."""

    actions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (path, audit)
    uid_map: dict[str, str] = field(default_factory=dict)  # original -> new
    patient_id: str | None = None  # original PatientID (top level)
    sop_class_uid: str = ""
    sop_instance_uid: str = ""  # new
    engine: str = ""
    flags: dict[str, str] = field(default_factory=dict)  # quarantine-relevant CS values
    has_pixels: bool = False
    refused: str | None = None  # quarantine reason: the file was not written
    kept_text: set[str] = field(default_factory=set)  # allow-listed text values kept
    # defaced series only (bidsdeid.dicom.pixels): counts, never values
    pixels_removed: int = 0  # pixels set to the fill value
    pixels_total: int = 0
    pixels_zeroed_not_refaced: int = 0  # refacing asked, zeros written
    decoded_from: str = ""  # transfer syntax the pixels were decoded from, if any

    def touch(self, path: str, decision: P.Decision) -> None:
        self.actions[(path, decision.audit)] += 1


def attribute_name(tag: int) -> str:
    """Keyword of a tag, or ``(gggg,eeee)`` if the dictionary does not know it."""
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def private_name(group: int, elem: int) -> str:
    """Audit name of a private element: the tag with its block byte hidden."""
    if elem < 0x100:
        return f"({group:04X},00xx) private creator"
    return f"({group:04X},xx{elem & 0xFF:02X}) private"


class Deidentifier:
    """The de-identification of one participant: profile, key, offset and label."""

    def __init__(self, profile: P.Profile, key: ProjectKey, offset: DateOffset,
                 patient_label: str) -> None:
        self.profile = profile
        self.key = key
        self.offset = offset
        self.patient_label = patient_label
        self.cleaner = ValueCleaner(key, offset)
        self.descriptors: Mapping[str, str] = {}
        self.report = FileReport()

    # -- method description ------------------------------------------------------------
    def method_codes(self) -> list[tuple[str, str]]:
        """(code, meaning) of CID 7050 for the profile and the options in force."""
        cid = tables.cid_7050()
        codes = ["113100"] + [OPTION_CODES[c] for c in self.profile.columns]
        return [(c, cid[c]) for c in codes]

    def method_text(self) -> list[str]:
        """DeidentificationMethod values (LO, 64 characters each)."""
        notes = [fit(self.profile.options.site_rules, "LO")] if self.profile.options.site_rules \
            else []
        return [f"bidsdeid {__version__}"] + [fit(m, "LO") for _c, m in self.method_codes()] \
            + notes

    def longitudinal_value(self) -> str:
        return {"modified": "MODIFIED", "full": "UNMODIFIED"}.get(self.profile.dates, "REMOVED")

    def added_elements(self) -> Dataset:
        """The top-level attributes every output gets."""
        ds = Dataset()
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = self.method_text()
        items = []
        for code, meaning in self.method_codes():
            item = Dataset()
            item.CodeValue = code
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = fit(meaning, "LO")
            items.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        ds.LongitudinalTemporalInformationModified = self.longitudinal_value()
        return ds

    def file_meta(self, sop_class: str, sop_instance: str, transfer_syntax: str
                  ) -> FileMetaDataset:
        meta = FileMetaDataset()
        meta.FileMetaInformationVersion = b"\x00\x01"
        meta.MediaStorageSOPClassUID = UID(sop_class)
        meta.MediaStorageSOPInstanceUID = UID(sop_instance)
        meta.TransferSyntaxUID = UID(transfer_syntax)
        meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION
        return meta

    # -- per file --------------------------------------------------------------------------
    def begin(self, descriptors: Mapping[str, str] | None, engine: str) -> FileReport:
        """Start a new file: fresh report, this series' safe descriptor values."""
        self.descriptors = dict(descriptors or {})
        self.cleaner.uid_map = {}
        self.report = FileReport(engine=engine)
        return self.report

    def finish(self) -> FileReport:
        self.report.uid_map = dict(self.cleaner.uid_map)
        return self.report

    def descriptor(self, tag: int, vr: str) -> str | None:
        value = self.descriptors.get(attribute_name(tag))
        return fit(value, vr) if value else None

    # -- the pydicom engine --------------------------------------------------------------
    def dataset(self, ds: Dataset, descriptors: Mapping[str, str] | None = None) -> FileReport:
        """De-identify ``ds`` in place (file meta included); return the file's report."""
        report = self.begin(descriptors, "pydicom")
        enhanced = P.is_enhanced(str(ds.get("SOPClassUID", "") or ""))
        for tag, keyword in FLAG_TAGS.items():
            if tag in ds:
                report.flags[keyword] = "\\".join(_values(ds[tag].value))
        report.has_pixels = any(t in ds for t in PIXEL_TAGS)
        pid = ds.get("PatientID")
        report.patient_id = str(pid).strip() if pid is not None and str(pid).strip() else None
        self._clean(ds, "", enhanced)
        for tag in TOP_LEVEL_ADDED:
            if tag in ds:
                del ds[tag]
        for elem in self.added_elements():
            ds.add(elem)
        report.sop_class_uid = str(ds.get("SOPClassUID", "") or "")
        report.sop_instance_uid = str(ds.get("SOPInstanceUID", "") or "")
        old_meta = getattr(ds, "file_meta", None)
        ts = str(getattr(old_meta, "TransferSyntaxUID", "") or "") if old_meta else ""
        if old_meta is not None:
            for elem in old_meta:
                if elem.tag not in (0x00020001, 0x00020002, 0x00020003, 0x00020010):
                    report.touch(attribute_name(elem.tag), P.Decision(
                        P.REMOVE, "file meta: rebuilt without it"))
        ds.file_meta = self.file_meta(report.sop_class_uid, report.sop_instance_uid,
                                      ts or "1.2.840.10008.1.2.1")
        return self.finish()

    def _clean(self, ds: Dataset, prefix: str, enhanced: bool) -> None:
        creators: dict[tuple[int, int], int] = {}  # (group, block) -> creator tag
        kept_blocks: set[tuple[int, int]] = set()
        shifts: dict[int, tuple[str, DataElement]] = {}
        for key in list(ds.keys()):
            tag = int(key)
            group, elem_no = tag >> 16, tag & 0xFFFF
            if group & 1:
                if 0x10 <= elem_no <= 0xFF:
                    creators[(group, elem_no)] = tag
                    continue
                self._private(ds, tag, creators, kept_blocks, prefix, enhanced)
                continue
            raw = ds.get_item(tag)
            vr = _vr_of(raw, tag)
            d = self.profile.decide(tag, vr, enhanced)
            if d.op == P.VOCAB:
                d = self.vocabulary(d, _values(ds[tag].value), prefix + attribute_name(tag))
            if d.op == P.KEEP:
                continue
            if d.op == P.KEEP_TEXT:
                self.report.kept_text.update(_values(ds[tag].value))
                continue
            if d.op == P.RECURSE:
                self._recurse(ds, tag, prefix, enhanced)
                continue
            path = prefix + attribute_name(tag)
            if d.op == P.DESCRIPTOR and d.fallback is not None and self.descriptor(
                    tag, vr) is None:
                d = d.fallback
            if d.op == P.SHIFT:
                shifts[tag] = (path, ds[tag])
                continue
            self.report.touch(path, d)
            self._apply(ds, tag, vr, d)
        self._apply_shifts(ds, shifts)
        for (group, block), ctag in creators.items():
            if (group, block) not in kept_blocks:
                del ds[ctag]
                self.report.touch(prefix + private_name(group, block),
                                  P.Decision(P.REMOVE, "private creator: block removed"))

    def _recurse(self, ds: Dataset, tag: int, prefix: str, enhanced: bool) -> None:
        elem = ds[tag]
        if elem.VR != "SQ":  # a UN-encoded sequence pydicom could not parse: fail closed
            del ds[tag]
            self.report.touch(prefix + attribute_name(tag),
                              P.Decision(P.REMOVE, "unparsable sequence: removed"))
            return
        sub = prefix + attribute_name(tag) + "/"
        for item in elem.value:
            self._clean(item, sub, enhanced)

    def _private(self, ds: Dataset, tag: int, creators: dict[tuple[int, int], int],
                 kept: set[tuple[int, int]], prefix: str, enhanced: bool) -> None:
        group, elem_no = tag >> 16, tag & 0xFFFF
        block = (group, elem_no >> 8)
        ctag = creators.get(block) if elem_no >= 0x1000 else None
        creator = _text(ds[ctag].value) if ctag is not None else None
        if not creator:
            del ds[tag]
            self.report.touch(prefix + private_name(group, elem_no),
                              P.Decision(P.REMOVE, "private without creator: removed"))
            return
        raw = ds.get_item(tag)
        vr = raw.VR if raw.VR not in (None, "UN") else None
        d = self.profile.decide_private(creator, group, elem_no & 0xFF, vr)
        if d.op == P.VOCAB:
            d = self.vocabulary(d, _values(ds[tag].value), prefix + private_name(group, elem_no))
        if d.op == P.KEEP_TEXT:
            self.report.kept_text.update(_values(ds[tag].value))
        if d.op in (P.KEEP, P.KEEP_TEXT, P.RECURSE):
            kept.add(block)
            if d.op == P.RECURSE:
                if ds[tag].VR == "SQ":
                    for item in ds[tag].value:
                        self._clean(item, prefix + private_name(group, elem_no) + "/", enhanced)
                else:
                    kept.discard(block)
                    del ds[tag]
            return
        self.report.touch(prefix + private_name(group, elem_no), d)
        pvr = normalise_vr(vr or ("UI" if d.op == P.UID else "UN"))
        self._apply(ds, tag, pvr, d)
        if tag in ds:
            kept.add(block)

    def vocabulary(self, d: P.Decision, values: list[str], path: str) -> P.Decision:
        """A VOCAB decision for these values: KEEP (audited) if on the vocabulary, else the
        fallback (clean)."""
        assert d.arg is not None and d.fallback is not None
        if d.arg.allows(values):
            self.report.touch(path, d)
            return P.Decision(P.KEEP, d.audit)
        return d.fallback

    def _apply(self, ds: Dataset, tag: int, vr: str, d: P.Decision) -> None:
        op = d.op
        if op == P.REMOVE:
            del ds[tag]
        elif op == P.EMPTY:
            ds[tag] = DataElement(tag, vr, [] if vr == "SQ" else ("" if vr in TEXT_VRS
                                                              else None))
        elif op == P.DUMMY:
            text = self.cleaner.dummy_text(vr)
            ds[tag] = DataElement(tag, vr, text if text is not None else
                                  self.cleaner.dummy_binary(vr) if vr in ("OB", "OW", "UN")
                                  else 0)
        elif op == P.UID:
            values = self.cleaner.uids(_values(ds[tag].value))
            ds[tag] = DataElement(tag, "UI", values[0] if len(values) == 1 else values)
        elif op == P.LABEL:
            ds[tag] = DataElement(tag, vr, self.patient_label)
        elif op in (P.REPLACE, P.HASH):
            assert d.arg is not None
            values = ([self.cleaner.replacement(d.arg.value, vr)] if op == P.REPLACE
                      else self.cleaner.hashed(_values(ds[tag].value), vr))
            if vr == "UN":  # a private element of unknown VR: text bytes, as the byte engine
                ds[tag] = DataElement(tag, vr, encode_text(values, "LO"))
            else:
                ds[tag] = DataElement(tag, vr, values[0] if len(values) == 1 else values)
        elif op == P.AGE:
            values = [cap_age(v) for v in _values(ds[tag].value)]
            ds[tag] = DataElement(tag, "AS", "\\".join(values))
        elif op == P.DESCRIPTOR:
            value = self.descriptor(tag, vr)
            if value is not None:
                ds[tag] = DataElement(tag, vr, value)
            elif d.fallback is not None:
                self._apply(ds, tag, vr, d.fallback)
        else:  # pragma: no cover - every op is handled above
            raise ValueError(f"unknown operation {op}")

    def _apply_shifts(self, ds: Dataset, shifts: dict[int, tuple[str, DataElement]]) -> None:
        done: set[int] = set()
        for tag, (path, elem) in shifts.items():
            if tag in done:
                continue
            partner = DATE_TIME_PAIRS.get(tag) or TIME_TO_DATE.get(tag)
            if partner in shifts and partner not in done:
                da_tag, tm_tag = (tag, partner) if tag in DATE_TIME_PAIRS else (partner, tag)
                da, tm = _values(shifts[da_tag][1].value), _values(shifts[tm_tag][1].value)
                if len(da) == 1 and len(tm) == 1 and da[0] and tm[0]:
                    pair = self.cleaner.shift_pair(da[0], tm[0])
                    for t, v in ((da_tag, pair[0] if pair else None),
                                 (tm_tag, pair[1] if pair else None)):
                        self._set_shifted(ds, t, shifts[t], [v] if v is not None else None)
                        done.add(t)
                    continue
            vr = normalise_vr(elem.VR if elem.VR != "UN" else dictionary_VR(tag))
            self._set_shifted(ds, tag, (path, elem), self.cleaner.shift(vr, _values(elem.value)))
            done.add(tag)

    def _set_shifted(self, ds: Dataset, tag: int, entry: tuple[str, DataElement],
                     values: list[str] | None) -> None:
        path, elem = entry
        vr = normalise_vr(elem.VR if elem.VR != "UN" else dictionary_VR(tag))
        d = self.profile.decide(tag, vr, False)
        if values is None:
            self.report.touch(path, P.Decision(P.EMPTY, "date/time that does not parse: "
                                                        "emptied"))
            ds[tag] = DataElement(tag, vr, "")
            return
        self.report.touch(path, d if d.op == P.SHIFT else P.Decision(P.SHIFT, "shifted"))
        ds[tag] = DataElement(tag, vr, values[0] if len(values) == 1 else values)


def _vr_of(raw: Any, tag: int) -> str:
    vr = raw.VR
    if vr in (None, "UN"):
        try:
            return normalise_vr(dictionary_VR(tag))
        except KeyError:
            return "UN"
    return normalise_vr(vr)


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1").strip(" \x00")
    return str(value).strip(" \x00") if value is not None else ""


def _values(value: Any) -> list[str]:
    """Text values of an element (MultiValue, str, bytes or None)."""
    if value is None:
        return []
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("latin-1").rstrip(" \x00")
        return [v.strip(" \x00") for v in text.split("\\")] if text else []
    if isinstance(value, MultiValue | list | tuple):
        return [str(v).strip(" \x00") for v in value]
    text = str(value)
    return [v.strip(" \x00") for v in text.split("\\")] if text else []
