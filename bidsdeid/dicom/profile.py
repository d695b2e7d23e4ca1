"""Resolve what PS3.15 Annex E does to every attribute, for a set of options.

:class:`Profile` turns Table E.1-1 (``bidsdeid/data``), the options in force
(:class:`~bidsdeid.config.DeidOptions`), the rules for attributes in no table
(:mod:`bidsdeid.dicom.unlisted`) and per-attribute overrides into one
:class:`Decision` per (tag, VR, IOD family). Decisions are cached: the engines ask
once per distinct attribute, not once per element.

Order of precedence (first match wins):

1. overrides (``overrides`` by tag, ``private_overrides`` by private creator, group
   and element offset): the hook for a site rules file; values are E.1-1 codes
   (X Z D K C U), interpreted exactly like table cells, or a :class:`SiteAction` for
   what the codes cannot say: replace with a fixed value, a keyed hash of the value, or
   keep the value only when it is on a vocabulary (else clean it, as C);
2. PatientName and PatientID: replaced by the participant's output label (a D, so
   ``patid_mapping.csv`` can link old and new IDs);
3. Table E.1-1: the option columns in force override the Basic Profile code; when
   several option cells apply, C beats K (cleaning is the safer of the two, e.g.
   Retain Device Identity K and Modified Dates C on a calibration date: shifted);
4. attributes in no table: :mod:`bidsdeid.dicom.unlisted`.

Compound codes (Z/D, X/Z, X/D, X/Z/D) pick the first action unless the attribute's
Type in the IOD requires a later one (Z for Type 2, D for Type 1). Types come from
:data:`IOD_TYPES`, which lists the compound-code attributes that are Type 1 or 2 in
common image IODs, separately for classic single-frame IODs and enhanced multi-frame
IODs (a dataset with functional groups). An attribute not listed there is taken as
Type 3 and gets the first action; never is a value kept by this choice. X/Z/U* (the
two image-reference sequences) resolves to U: the sequence is kept with every UID
inside mapped through the key, which keeps references valid and consistent and
keeps no original UID. A D on a sequence keeps its items and cleans each of them (a
non-empty value with nothing identifying left in it).

What a code means for a value:

* X remove; Z empty (zero length); D a dummy valid for the VR; U a keyed UID;
* K keep (a sequence is still cleaned item by item);
* C clean: dates and times shifted by the subject's offset; descriptors replaced by
  a safe value the caller supplies (such as the BIDS name of the series), else the
  Basic Profile action of the attribute (so a free-text field with no known safe
  value is removed or emptied, and a dummy used where a value is required); a
  sequence is cleaned item by item; anything else falls back to the Basic Profile.

Site actions (on a VR they cannot apply to, e.g. a sequence or binary data, they
remove the element; the rules file refuses such rules where the VR is known):

* REPLACE: the rule's value (truncated to the VR's length);
* HASH: each value replaced by a keyed token of it (``ProjectKey.token``), so equal
  values stay equal and nothing can be reversed without the key;
* VOCAB: the engine keeps the value when every value of the element is on the
  vocabulary (:meth:`SiteAction.allows`), else applies the decision's fallback (C).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from bidsdeid.config import DeidOptions
from bidsdeid.dicom import tables
from bidsdeid.dicom.unlisted import (
    BINARY_VRS,
    DATE_VRS,
    NUMERIC_VRS,
    PERSON_GROUPS,
    SAFE_BINARY_KEYWORDS,
    SAFE_TEXT_KEYWORDS,
    TEXT_VRS,
    normalise_vr,
)

# -- operations (what the engines do to a value) --------------------------------------
KEEP = "keep"
KEEP_TEXT = "keep_text"  # keep allow-listed text; its values are known to the self-check
RECURSE = "recurse"  # keep a sequence, clean its items
REMOVE = "remove"
EMPTY = "empty"
DUMMY = "dummy"
UID = "uid"
SHIFT = "shift"
DESCRIPTOR = "descriptor"  # caller's safe value, else the fallback decision
LABEL = "label"  # the participant's output label
AGE = "age"  # keep, ages over 89 written as 089Y
REPLACE = "replace"  # a site rule's fixed value (Decision.arg)
HASH = "hash"  # a keyed token of each value
VOCAB = "vocabulary"  # keep if on the site vocabulary (Decision.arg), else the fallback

PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
PATIENT_AGE = 0x00101010

CODES = frozenset({"X", "Z", "D", "K", "C", "U"})
VOCAB_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR", "UN"})
"""VRs a vocabulary applies to (UN: a private element of unknown VR)."""
HASH_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UN"})
"""VRs that can hold a hexadecimal token."""
REPLACE_VRS = VOCAB_VRS | {"DA", "DT", "TM", "AS", "DS", "IS"}
"""VRs a fixed text value can be written into (the rules file checks the value)."""
_ACTION_VRS = {"replace": REPLACE_VRS, "hash": HASH_VRS, "vocabulary": VOCAB_VRS}


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass(frozen=True)
class SiteAction:
    """A site rule action beyond the E.1-1 codes (picklable: plain strings only).

    ``kind`` is ``"replace"`` (with ``value``), ``"hash"``, or ``"vocabulary"`` (with
    ``allowed`` entries, compared case-insensitively after trimming spaces, and
    ``patterns``, Python regular expressions that must match the whole value).
    """

    kind: str
    value: str = ""
    allowed: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    def allows(self, values: Iterable[str]) -> bool:
        """True if every value is on the vocabulary (an empty element is kept too)."""
        entries = {a.strip().casefold() for a in self.allowed}
        for value in values:
            v = value.strip()
            if not v:
                continue
            if v.casefold() in entries:
                continue
            if any(_compiled(p).fullmatch(v) for p in self.patterns):
                continue
            return False
        return True


Override = str | SiteAction
"""An override: an E.1-1 code or a :class:`SiteAction`."""


class Decision(NamedTuple):
    """What to do with one attribute, and the audit text that explains it."""

    op: str
    audit: str  # e.g. "E.1-1 X", "E.1-1 X/Z/D -> D (Type 1)", "unlisted text: empty"
    fallback: Decision | None = None  # for DESCRIPTOR and VOCAB: the decision otherwise
    arg: SiteAction | None = None  # for REPLACE, HASH and VOCAB: the site action


@dataclass(frozen=True)
class IodType:
    classic: int
    enhanced: int


IOD_TYPES: dict[str, IodType] = {
    # General Image (classic): Content Date/Time Type 2C; Multi-frame Functional Groups
    # (enhanced): Type 1.
    "ContentDate": IodType(2, 1),
    "ContentTime": IodType(2, 1),
    # Enhanced MR/CT/PET Image: Acquisition DateTime Type 1C (ORIGINAL images).
    "AcquisitionDateTime": IodType(3, 1),
    # Enhanced General Equipment: Device Serial Number Type 1.
    "DeviceSerialNumber": IodType(3, 1),
    # Acquisition Context module: the sequence is Type 2 wherever the module is used.
    "AcquisitionContextSequence": IodType(2, 2),
    # Patient module: Patient ID Type 2 (replaced by the label anyway).
    "PatientID": IodType(2, 2),
    # Contrast/Bolus and Enhanced Contrast/Bolus: agent Type 2.
    "ContrastBolusAgent": IodType(2, 2),
    # Presentation states and SR: content creator's name Type 2.
    "ContentCreatorName": IodType(2, 2),
}
"""Type of compound-code attributes that are Type 1 or 2 in common image IODs
(PS3.3 General Image, General/Enhanced General Equipment, Multi-frame Functional
Groups, Enhanced MR/CT Image, Acquisition Context, Patient). Everything else with a
compound code is Type 3 in those IODs and gets the first action."""


ENHANCED_SOP_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT
    "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR
    "1.2.840.10008.5.1.4.1.1.4.2",  # MR Spectroscopy
    "1.2.840.10008.5.1.4.1.1.4.3",  # Enhanced MR Color
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR
    "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume
    "1.2.840.10008.5.1.4.1.1.12.1.1",  # Enhanced XA
    "1.2.840.10008.5.1.4.1.1.12.2.1",  # Enhanced XRF
    "1.2.840.10008.5.1.4.1.1.13.1.1",  # X-Ray 3D Angiographic
    "1.2.840.10008.5.1.4.1.1.13.1.2",  # X-Ray 3D Craniofacial
    "1.2.840.10008.5.1.4.1.1.13.1.3",  # Breast Tomosynthesis
    "1.2.840.10008.5.1.4.1.1.30",  # Parametric Map
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
    "1.2.840.10008.5.1.4.1.1.128.1",  # Legacy Converted Enhanced PET
    "1.2.840.10008.5.1.4.1.1.130",  # Enhanced PET
})
"""SOP classes whose IOD includes the Multi-frame Functional Groups module ("enhanced"
for :data:`IOD_TYPES`). Decided from the SOP Class UID, which both engines read
before any attribute whose resolution depends on it (all of those follow (0008,0016))."""


def is_enhanced(sop_class_uid: str) -> bool:
    return sop_class_uid.strip().rstrip("\x00") in ENHANCED_SOP_CLASSES


def _option_code(cells: dict[str, str], columns: list[str]) -> tuple[str, str] | None:
    """The option cell in force for a row: (code, column), C beating K."""
    found = [(cells[c], c) for c in columns if c in cells]
    if not found:
        return None
    for code, col in found:
        if code == "C":
            return code, col
    return found[0]


@dataclass
class Profile:
    """The de-identification profile for one set of options (see module docstring)."""

    options: DeidOptions = field(default_factory=DeidOptions)
    overrides: Mapping[int, Override] = field(default_factory=dict)
    private_overrides: Mapping[tuple[str, int, int], Override] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for code in list(self.overrides.values()) + list(self.private_overrides.values()):
            if isinstance(code, SiteAction):
                if code.kind not in (REPLACE, HASH, VOCAB):
                    raise ValueError(f"site action must be replace, hash or vocabulary, not "
                                     f"{code.kind!r}")
            elif code not in CODES:
                raise ValueError(f"override action must be one of {sorted(CODES)}, not {code!r}")
        self.columns = self.options.option_columns()
        self._rows: dict[int, tables.E1Row] = {}
        self._repeating: list[tables.E1Row] = []
        self._private_row: tables.E1Row | None = None
        for row in tables.e1_1():
            if row.is_private_row:
                self._private_row = row
            elif row.repeating_group is not None:
                self._repeating.append(row)
            elif row.tag is not None:
                self._rows[row.tag] = row
        self.safe_private = tables.e3_10_1() if self.retain_safe_private else {}
        self._cache: dict[tuple[int, str, bool], Decision] = {}
        self._private_cache: dict[tuple[str, int, int, str], Decision] = {}
        overlay = next(r for r in self._repeating
                       if r.repeating_group == 0x6000 and r.element == 0x3000)
        # C (Clean Graphics) on a bitmap falls back to the Basic Profile's X: an overlay
        # may draw text, which cannot be cleaned with certainty, so the group goes too
        self._overlay_removed = self._code_for_row(overlay, 0x60003000, "OB",
                                                   False)[0] in ("X", "C")

    # -- options --------------------------------------------------------------------
    @property
    def retain_safe_private(self) -> bool:
        if self._private_row is None:  # pragma: no cover - the table always has it
            return False
        return "rtnSafePrivOpt" in self.columns

    @property
    def dates(self) -> str:
        """"modified" (shift), "full" (keep) or "off" (Basic Profile)."""
        return self.options.retain_longitudinal

    def row(self, tag: int) -> tables.E1Row | None:
        """The Table E.1-1 row of a standard tag (repeating groups included)."""
        row = self._rows.get(tag)
        if row is not None:
            return row
        group, elem = tag >> 16, tag & 0xFFFF
        for r in self._repeating:
            if (group & 0xFF00) == r.repeating_group and (r.element is None or r.element == elem):
                return r
        return None

    # -- public decisions -----------------------------------------------------------
    def decide(self, tag: int, vr: str | None, enhanced: bool = False) -> Decision:
        """The decision for a standard (even group) attribute with this VR."""
        key = (tag, vr or "", enhanced)
        d = self._cache.get(key)
        if d is None:
            d = self._decide(tag, normalise_vr(vr or _dict_vr(tag)), enhanced)
            self._cache[key] = d
        return d

    def decide_private(self, creator: str, group: int, offset: int, vr: str | None) -> Decision:
        """The decision for a private data element of block ``creator`` (element offset
        ``offset`` inside the block). Private creators themselves are kept only when
        their block keeps an element (the engines see to that)."""
        key = (creator, group, offset, vr or "")
        d = self._private_cache.get(key)
        if d is None:
            d = self._decide_private(creator, group, offset, vr)
            self._private_cache[key] = d
        return d

    def keeps(self, keyword: str) -> bool:
        """True if the options keep this attribute's value on purpose (e.g. EthnicGroup
        under Retain Patient Characteristics); used to tell the self-check."""
        tag = tag_for_keyword(keyword)
        if tag is None:
            return False
        kept = (KEEP, KEEP_TEXT, AGE)
        return any(self.decide(int(tag), None, e).op in kept for e in (False, True))

    def overlay_removed(self) -> bool:
        """True when Overlay Data is removed, so whole 60xx overlay groups go."""
        return self._overlay_removed

    # -- resolution -----------------------------------------------------------------
    def _decide(self, tag: int, vr: str, enhanced: bool) -> Decision:
        if tag in self.overrides:
            return self._override(self.overrides[tag], tag, vr, enhanced, self.row(tag))
        if tag in (PATIENT_NAME, PATIENT_ID):
            return Decision(LABEL, "replaced by the participant label (D)")
        if (tag & 0xFFFF) == 0 or (tag >> 16) in (0x0000, 0x0002):
            return Decision(REMOVE, "group length, command or file meta element inside the "
                                    "dataset: removed")
        expected = normalise_vr(_dict_vr(tag))
        if expected in TEXT_VRS and vr not in TEXT_VRS:
            # a text attribute the file gives another VR (CS, FD, OB, ...): the rules for
            # that VR would keep it, though it holds text
            return Decision(REMOVE, f"{vr} where the dictionary says {expected}: removed")
        row = self.row(tag)
        if row is not None:
            if (tag >> 16) & 0xFF00 == 0x6000 and self.overlay_removed():
                return Decision(REMOVE, f"E.1-1 {row.tag_text} X: overlay group removed")
            code, source = self._code_for_row(row, tag, vr, enhanced)
            return self._apply_code(code, tag, vr, enhanced, source, row)
        if (tag >> 16) & 0xFF00 == 0x6000 and self.overlay_removed():
            return Decision(REMOVE, "overlay group removed with its Overlay Data (E.1-1 X)")
        if (tag >> 16) & 0xFF00 == 0x5000:
            return Decision(REMOVE, "curve group removed (E.1-1 50XX X)")
        return self._unlisted(tag, vr)

    def _override(self, action: Override, tag: int, vr: str, enhanced: bool,
                  row: tables.E1Row | None) -> Decision:
        """The decision of a site rule (an E.1-1 code or a :class:`SiteAction`)."""
        if isinstance(action, str):
            return self._apply_code(action, tag, vr, enhanced, f"site rule {action}", row)
        if vr not in _ACTION_VRS[action.kind]:
            return Decision(REMOVE, f"site rule {action.kind} on VR {vr}: removed")
        if action.kind == REPLACE:
            return Decision(REPLACE, "site rule: fixed value", arg=action)
        if action.kind == HASH:
            return Decision(HASH, "site rule: keyed hash", arg=action)
        clean = self._apply_code("C", tag, vr, enhanced, "site rule: not on the vocabulary, C",
                                 row)
        return Decision(VOCAB, "site rule: on the vocabulary, kept", clean, action)

    def _code_for_row(self, row: tables.E1Row, tag: int, vr: str,
                      enhanced: bool) -> tuple[str, str]:
        opt = _option_code(row.options, self.columns)
        if opt is not None:
            return opt[0], f"E.1-1 {opt[0]} ({opt[1]})"
        code = row.basic
        if "/" not in code:
            return code, f"E.1-1 {code}"
        return _resolve_compound(code, tag, enhanced)

    def _apply_code(self, code: str, tag: int, vr: str, enhanced: bool, source: str,
                    row: tables.E1Row | None = None) -> Decision:
        """Turn an E.1-1 code into an operation for this VR."""
        if code == "X":
            return Decision(REMOVE, source)
        if code == "Z":
            return Decision(EMPTY, source)
        if code == "D":
            if vr == "SQ":
                return Decision(RECURSE, source + ": items kept, cleaned")
            if vr == "UI":
                return Decision(UID, source + ": keyed UID")
            return Decision(DUMMY, source)
        if code == "U":
            return Decision(RECURSE if vr == "SQ" else UID, source)
        if code == "K":
            if vr == "SQ":
                return Decision(RECURSE, source)
            if tag == PATIENT_AGE or vr == "AS":
                return Decision(AGE, source + ": ages over 89 capped")
            return Decision(KEEP, source)
        # C: clean
        if vr == "SQ":
            return Decision(RECURSE, source + ": items cleaned")
        if vr in DATE_VRS:
            if self.dates == "full":
                return Decision(KEEP, source + ": full dates kept")
            return Decision(SHIFT, source + ": shifted")
        if vr == "UI":
            return Decision(UID, source + ": keyed UID")
        fallback = self._basic_fallback(tag, vr, enhanced, row)
        if vr in TEXT_VRS:
            return Decision(DESCRIPTOR, source + ": safe value", fallback)
        return fallback

    def _basic_fallback(self, tag: int, vr: str, enhanced: bool,
                        row: tables.E1Row | None) -> Decision:
        """The Basic Profile decision, used where C has no safe value to offer."""
        if row is None:
            return Decision(EMPTY if vr in TEXT_VRS else REMOVE, "no safe value: unlisted rule")
        code = row.basic
        source = f"E.1-1 {code}"
        if "/" in code:
            code, source = _resolve_compound(code, tag, enhanced)
        if code in ("C", "K"):  # pragma: no cover - no Basic Profile cell is C or K
            code = "X"
        return self._apply_code(code, tag, vr, enhanced, source + " (no safe value)", row)

    def _unlisted(self, tag: int, vr: str) -> Decision:
        keyword = keyword_for_tag(tag)
        if vr == "SQ":
            return Decision(RECURSE, "unlisted sequence: items cleaned")
        if vr == "UI":
            if self.options.retain_uids:
                return Decision(KEEP, "unlisted UID: kept (Retain UIDs)")
            return Decision(UID, "unlisted UID: keyed UID (public UIDs kept)")
        if vr in DATE_VRS:
            if self.dates == "modified":
                return Decision(SHIFT, "unlisted date/time: shifted")
            if self.dates == "full":
                return Decision(KEEP, "unlisted date/time: kept (Full Dates)")
            return Decision(EMPTY, "unlisted date/time: emptied")
        if (tag >> 16) in PERSON_GROUPS:
            if vr in BINARY_VRS:
                return Decision(REMOVE, "unlisted, patient/visit group: removed")
            return Decision(EMPTY, "unlisted, patient/visit group: emptied")
        if vr in NUMERIC_VRS or vr == "CS":
            return Decision(KEEP, "unlisted numeric or code string: kept")
        if vr == "AS":
            return Decision(AGE, "unlisted age: kept, capped at 89")
        if vr in TEXT_VRS:
            if vr != "PN" and keyword in SAFE_TEXT_KEYWORDS:
                return Decision(KEEP_TEXT, "unlisted, allow-listed text: kept")
            return Decision(EMPTY, "unlisted text: emptied")
        if vr in BINARY_VRS and keyword in SAFE_BINARY_KEYWORDS:
            return Decision(KEEP, "unlisted image/LUT data: kept")
        return Decision(REMOVE, f"unlisted {vr}: removed")

    def _decide_private(self, creator: str, group: int, offset: int,
                        vr: str | None) -> Decision:
        key = (creator, group, offset)
        if key in self.private_overrides:
            safe = self.safe_private.get(key) or tables.e3_10_1().get(key)
            pvr = normalise_vr(vr if vr and vr != "UN" else (safe.vr.split("/")[0] if safe
                                                             and safe.vr else "UN"))
            return self._override(self.private_overrides[key], (group << 16) | offset, pvr,
                                  False, None)
        safe = self.safe_private.get(key)
        if safe is None:
            return Decision(REMOVE, "private: removed (E.1-1 X)")
        pvr = vr if vr and vr != "UN" else (safe.vr.split("/")[0] if safe.vr else "UN")
        pvr = normalise_vr(pvr)
        source = "E.3.10-1 safe private (rtnSafePrivOpt C)"
        if pvr == "SQ":
            return Decision(RECURSE, source + ": items cleaned")
        if pvr == "UI":
            return Decision(KEEP if self.options.retain_uids else UID, source + ": UID rule")
        if pvr in DATE_VRS:
            return (Decision(SHIFT, source + ": shifted") if self.dates == "modified" else
                    Decision(KEEP if self.dates == "full" else EMPTY, source + ": date rule"))
        if pvr in TEXT_VRS:
            return Decision(KEEP_TEXT, source + ": kept")
        return Decision(KEEP, source + ": kept")


def _resolve_compound(code: str, tag: int, enhanced: bool) -> tuple[str, str]:
    """Pick one action of a compound code by the attribute's Type (module docstring)."""
    parts = code.split("/")
    if code == "X/Z/U*":
        return "U", f"E.1-1 {code} -> U (references kept with keyed UIDs)"
    keyword = keyword_for_tag(tag)
    iod = IOD_TYPES.get(keyword)
    typ = 3 if iod is None else (iod.enhanced if enhanced else iod.classic)
    if typ == 1 and "D" in parts:
        chosen = "D"
    elif typ <= 2 and "Z" in parts:
        chosen = "Z"
    elif typ <= 2 and "D" in parts:
        chosen = "D"
    else:
        chosen = parts[0]
    family = "enhanced" if enhanced else "classic"
    return chosen, f"E.1-1 {code} -> {chosen} (Type {typ} in {family} IODs)"


def _dict_vr(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def tag_of(keyword: str) -> int:
    """The tag of a dictionary keyword (raises KeyError for an unknown keyword)."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    return int(tag)
