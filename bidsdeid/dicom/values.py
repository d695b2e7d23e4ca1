"""Value transformations shared by both engines (pydicom datasets and raw bytes).

Everything here works on the text form of DICOM values (one ``str`` per value of a
multi-valued element), so the byte engine (:mod:`bidsdeid.dicom.rawengine`) and the
pydicom engine (:mod:`bidsdeid.dicom.deidentify`) produce the same values:

* UIDs: :meth:`ValueCleaner.uid` maps through the project key to ``2.25.<int>``;
  public UIDs (pydicom's UID dictionary, or the DICOM root ``1.2.840.10008.``) stay.
* Dates and times: shifted by the subject's :class:`~bidsdeid.privacy.keys.DateOffset`;
  a DA with its TM partner (StudyDate/StudyTime, ...) moves together so midnight
  carries into the date. A value that does not parse is emptied (fail closed).
* Dummies: one fixed value per VR (:data:`DUMMY_TEXT`, ``19000101``, ``0``, ...).
* Ages: above 89 years written as ``089Y``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from pydicom.datadict import DicomDictionary
from pydicom.uid import UID_dictionary

from bidsdeid.privacy import dates
from bidsdeid.privacy.keys import DateOffset, ProjectKey

DUMMY_TEXT = "ANONYMIZED"
"""Dummy for text VRs: a placeholder that identifies nobody (and that the leak scan
knows as a generic word)."""

DUMMY_BY_VR: dict[str, str] = {
    "DA": "19000101", "DT": "19000101000000", "TM": "000000", "DS": "0", "IS": "0",
    "AS": "000Y", "CS": DUMMY_TEXT, "AE": DUMMY_TEXT, "LO": DUMMY_TEXT, "LT": DUMMY_TEXT,
    "SH": DUMMY_TEXT, "ST": DUMMY_TEXT, "UT": DUMMY_TEXT, "UC": DUMMY_TEXT, "PN": DUMMY_TEXT,
    "UR": "urn:uuid:00000000-0000-0000-0000-000000000000",
}
BINARY_WIDTH: dict[str, int] = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "AT": 4,
                                "UV": 8, "SV": 8, "OB": 2, "OW": 2, "OF": 4, "OD": 8, "OL": 4,
                                "OV": 8, "UN": 2}
"""Byte width of a zero dummy for binary VRs (OB/UN padded to an even length)."""

MAX_LEN: dict[str, int] = {"SH": 16, "LO": 64, "AE": 16, "CS": 16, "PN": 64, "ST": 1024,
                           "LT": 10240, "UC": 1 << 20, "UT": 1 << 20}

MAX_AGE = f"{dates.MAX_AGE_YEARS:03d}Y"


def _date_time_pairs() -> dict[int, int]:
    """DA tag -> TM tag for every dictionary pair ``<X>Date``/``<X>Time``."""
    by_keyword = {entry[4]: tag for tag, entry in DicomDictionary.items() if entry[4]}
    pairs = {}
    for tag, entry in DicomDictionary.items():
        vr, keyword = entry[0], entry[4]
        if vr == "DA" and keyword.endswith("Date"):
            partner = by_keyword.get(keyword[:-4] + "Time")
            if partner is not None and DicomDictionary[partner][0] == "TM":
                pairs[tag] = partner
    return pairs


DATE_TIME_PAIRS: dict[int, int] = _date_time_pairs()
TIME_TO_DATE: dict[int, int] = {v: k for k, v in DATE_TIME_PAIRS.items()}


def is_public_uid(uid: str) -> bool:
    """A UID defined by the standard (class, transfer syntax, coding scheme, ...)."""
    return uid in UID_dictionary or uid.startswith("1.2.840.10008.")


def cap_age(value: str) -> str:
    """``093Y`` -> ``089Y``; other ages, and malformed values, unchanged or emptied."""
    v = value.strip()
    if not v:
        return v
    if len(v) == 4 and v[:3].isdigit() and v[3] in "DWMY":
        if v[3] == "Y" and int(v[:3]) > dates.MAX_AGE_YEARS:
            return MAX_AGE
        return v
    return ""  # not an age string: fail closed


class ValueCleaner:
    """The per-participant value transformations, and the UID map they build."""

    def __init__(self, key: ProjectKey, offset: DateOffset) -> None:
        self.key = key
        self.offset = offset
        self.uid_map: dict[str, str] = {}
        self._uid_cache: dict[str, str] = {}

    # -- UIDs ---------------------------------------------------------------------
    def uid(self, value: str) -> str:
        v = value.strip().rstrip("\x00").strip()
        if not v:
            return v
        new = self._uid_cache.get(v)
        if new is None:
            new = v if is_public_uid(v) else self.key.uid(v)
            self._uid_cache[v] = new
        if new != v:
            self.uid_map[v] = new
        return new

    def uids(self, values: Iterable[str]) -> list[str]:
        return [self.uid(v) for v in values]

    # -- dates and times --------------------------------------------------------------
    def shift(self, vr: str, values: Iterable[str]) -> list[str] | None:
        """Shift every value; None if any value does not parse (the caller empties)."""
        out: list[str] = []
        fn = {"DA": dates.shift_da, "TM": dates.shift_tm, "DT": dates.shift_dt}[vr]
        for v in values:
            v = v.strip()
            if not v:
                out.append(v)
                continue
            try:
                out.append(fn(v, self.offset))
            except (ValueError, OverflowError):
                return None
        return out

    def shift_pair(self, da: str, tm: str) -> tuple[str, str] | None:
        """Shift a single DA with its TM partner; None if either does not parse."""
        try:
            return dates.shift_date_and_time(da.strip(), tm.strip(), self.offset)
        except (ValueError, OverflowError):
            return None

    # -- site rules ---------------------------------------------------------------------
    @staticmethod
    def replacement(value: str, vr: str) -> str:
        """A site rule's fixed value, fitted to the VR (code strings upper-case)."""
        return fit(value.upper() if vr == "CS" else value, vr)

    def hashed(self, values: Iterable[str], vr: str) -> list[str]:
        return hashed(self.key, values, vr)

    # -- dummies ------------------------------------------------------------------------
    @staticmethod
    def dummy_text(vr: str) -> str | None:
        """The dummy of a text-encoded VR, or None for binary VRs."""
        return DUMMY_BY_VR.get(vr)

    @staticmethod
    def dummy_binary(vr: str) -> bytes:
        return b"\x00" * BINARY_WIDTH.get(vr, 2)


def hashed(key: ProjectKey, values: Iterable[str], vr: str) -> list[str]:
    """Each value replaced by a keyed token of it (a site rule's ``hash``; empty values
    stay empty): equal values stay equal, in DICOM and sidecars alike, and without the
    key nothing can be reversed. Hexadecimal, 16 characters, upper-case for CS/AE."""
    width = min(16, MAX_LEN.get(vr, 64))
    out = []
    for v in values:
        v = v.strip()
        token = key.token("site-rule-hash", v, width) if v else ""
        out.append(token.upper() if vr in ("CS", "AE") else token)
    return out


def fit(value: str, vr: str) -> str:
    """Truncate a replacement value to the VR's maximum length."""
    limit = MAX_LEN.get(vr)
    return value[:limit] if limit else value


def encode_text(values: list[str], vr: str) -> bytes:
    """Encode text values as DICOM bytes (backslash separated, even length)."""
    data = "\\".join(values).encode("ascii", "replace")
    if len(data) % 2:
        data += b"\x00" if vr == "UI" else b" "
    return data


def decode_text(raw: bytes) -> list[str]:
    """Split a text value into its values (padding stripped)."""
    text = raw.decode("latin-1").rstrip("\x00 ")
    return [v.strip(" \x00") for v in text.split("\\")] if text else []


def pack_zero(vr: str) -> bytes:
    return struct.pack("<" + {2: "H", 4: "I", 8: "Q"}[BINARY_WIDTH.get(vr, 2)], 0)
