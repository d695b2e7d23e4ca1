"""Identifiers collected from a participant's inputs, for the leak scan.

Every value that could identify the person, the site or the visit is recorded here
before anything is scrubbed: names (and their parts), IDs, dates (in every form a
converter might print them), original UIDs, institution, station, serials, free text
and original labels. The leak scan (:mod:`bidsdeid.privacy.leakscan`) then searches
every byte of the shareable output for them and fails closed on a hit.

The collection is stored in PRIVATE_DIR (it *is* PHI) so the group level can rescan
the whole dataset.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID_dictionary

from bidsdeid.privacy.dates import parse_da
from bidsdeid.utils.atomic import write_json

KINDS = ("name", "id", "date", "birthdate", "uid", "institution", "device", "text", "label")
"""Kinds of identifier. ``text`` is free text (descriptions, comments); ``label`` an
original participant/session label that was replaced by a pseudonym; ``birthdate`` a
date of birth, kept apart from the other dates because no option keeps it (Table
E.1-1 removes PatientBirthDate under every option, Full Dates included)."""

DATE_KINDS = frozenset({"date", "birthdate"})
LABEL_KINDS = ("name", "id", "label", "institution", "device")
"""Kinds :meth:`Identifiers.hidden_in_labels` looks for inside BIDS labels."""
BIRTH_DATE_KEYWORDS = frozenset({"PatientBirthDate"})

MIN_TOKEN_LEN = 3
_MIN_NUMERIC_LEN = 5  # a bare number shorter than this matches too much by chance

# Attributes (keywords) whose values identify, by kind. PN values are names whatever
# their keyword; DA/DT values are dates; UI values are UIDs unless they are a public
# (class / transfer syntax) UID.
_KEYWORD_KINDS: dict[str, str] = {
    "PatientID": "id", "OtherPatientIDs": "id", "IssuerOfPatientID": "institution",
    "AccessionNumber": "id", "StudyID": "id", "MedicalRecordLocator": "id",
    "PatientAddress": "text", "PatientTelephoneNumbers": "id", "MilitaryRank": "text",
    "EthnicGroup": "text", "Occupation": "text", "PatientInsurancePlanCodeSequence": "text",
    "RequestAttributesSequence": "text", "RequestedProcedureID": "id",
    "ScheduledProcedureStepID": "id", "PerformedProcedureStepID": "id",
    "AdmissionID": "id", "ServiceEpisodeID": "id", "VisitComments": "text",
    "InstitutionName": "institution", "InstitutionAddress": "institution",
    "InstitutionalDepartmentName": "institution", "InstitutionalDepartmentTypeCodeSequence":
    "institution", "StationName": "device", "DeviceSerialNumber": "device",
    "DeviceUID": "uid", "PerformedStationName": "device", "PerformedLocation": "institution",
    "ScheduledStationName": "device", "ScheduledProcedureStepLocation": "institution",
    "SourceApplicationEntityTitle": "device", "SendingApplicationEntityTitle": "device",
    "ReceivingApplicationEntityTitle": "device", "DetectorID": "device",
    "GantryID": "device", "PlateID": "device", "CassetteID": "device",
    "DeviceID": "device", "ResponsibleOrganization": "institution",
    "StudyDescription": "text", "SeriesDescription": "text", "ProtocolName": "text",
    "PerformedProcedureStepDescription": "text", "RequestedProcedureDescription": "text",
    "ImageComments": "text", "PatientComments": "text", "AdditionalPatientHistory": "text",
    "StudyComments": "text", "AcquisitionComments": "text", "DerivationDescription": "text",
    "ReasonForTheRequestedProcedure": "text", "AdmittingDiagnosesDescription": "text",
    "MedicalAlerts": "text", "Allergies": "text", "PatientState": "text",
    "TextValue": "text", "ContentLabel": "text", "ContentDescription": "text",
    "IconImageSequence": "text", "FillerOrderNumberImagingServiceRequest": "id",
    "PlacerOrderNumberImagingServiceRequest": "id", "ClinicalTrialSubjectID": "id",
    "ClinicalTrialSubjectReadingID": "id", "ClinicalTrialSiteName": "institution",
    "ClinicalTrialSiteID": "id", "ClinicalTrialSponsorName": "institution",
    "ClinicalTrialProtocolName": "text", "ClinicalTrialProtocolID": "id",
    "ClinicalTrialTimePointID": "id", "PatientBirthName": "name",
    "PatientMotherBirthName": "name", "CountryOfResidence": "text", "RegionOfResidence": "text",
    "CurrentPatientLocation": "institution", "PatientInstitutionResidence": "institution",
    "BranchOfService": "text", "PersonAddress": "text", "PersonTelephoneNumbers": "id",
    "ReferringPhysicianAddress": "text", "ReferringPhysicianTelephoneNumbers": "id",
    "InstitutionCodeSequence": "institution",
}

_IDENTIFYING_VRS = frozenset({"PN", "DA", "DT", "UI"})
"""VRs whose values are collected whatever their keyword (see :meth:`add_dataset`)."""

TECHNICAL_KEYWORDS = frozenset({
    "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "SequenceName",
    "PulseSequenceName", "ReceiveCoilName", "TransmitCoilName", "ImagedNucleus",
    "MRAcquisitionType", "ScanningSequence", "SequenceVariant", "ScanOptions",
})
"""Attributes that describe the scanner model and sequence, never a person or a site
(DeviceSerialNumber and StationName are not here: they identify a site)."""
_TECHNICAL_KEY = "_technical"
_SHORT_DATES_KEY = "_short_dates"
_SHORT_BIRTHDATES_KEY = "_short_birthdates"
_SHORT_NUMBERS_KEY = "_short_numbers"
_ID_PARTS_KEY = "_id_parts"
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")

# Free text shorter than this is not used as a whole-value token (e.g. "T1").
_MIN_TEXT_LEN = 6


@dataclass(frozen=True)
class Token:
    """One search token: the text, its kind, and where it came from (an attribute name)."""

    kind: str
    text: str
    source: str

    def pattern(self) -> re.Pattern[bytes]:
        """A bytes regex that finds the token on alphanumeric boundaries, any case."""
        body = re.escape(self.text.encode("utf-8", "replace"))
        return re.compile(rb"(?<![A-Za-z0-9])" + body + rb"(?![A-Za-z0-9])", re.IGNORECASE)


@dataclass
class Identifiers:
    """The identifiers of one participant (see the module docstring)."""

    values: dict[str, dict[str, str]] = field(default_factory=lambda: {k: {} for k in KINDS})
    # values[kind][text] = source attribute
    technical: set[str] = field(default_factory=set)
    # upper-cased values of TECHNICAL_KEYWORDS: free text equal to one of them (an SR
    # report quoting "MAGNETOM Prisma Fit") is not an identifier
    short_dates: dict[str, str] = field(default_factory=dict)
    # dates with a two-digit year (YYMMDD, DDMMYY, MMDDYY) -> source: searched in paths
    # only (a session folder named 220711), since six digits in a file's content are too
    # often part of some number
    short_birthdates: dict[str, str] = field(default_factory=dict)
    # the same for dates of birth (never skipped, see KINDS)
    id_parts: set[str] = field(default_factory=set)
    # tokens that are only a part of an ID (the jdoe of 12343@jdoe): sought on word
    # boundaries like any token, but not inside the words of a label, where a study
    # code that prefixes both the IDs and the labels (NIMH-12345, sub-nimh01) would
    # fail every participant
    short_numbers: dict[str, dict[str, str]] = field(default_factory=dict)
    # kind ("id", "label") -> {digits: source}: IDs and replaced labels of 2 to 4 digits,
    # too short to search in every byte (they are inside many numbers), searched only
    # where they would stand whole: inside a path's labels (3+ digits) and as a cell of
    # a column that names a participant or session (bidsdeid.bids.tsv)

    # -- adding ----------------------------------------------------------------------
    def add(self, kind: str, text: str, source: str = "") -> None:
        """Add one value as a whole token (stripped; too-short values are ignored); an ID
        also with its parts (:func:`_id_parts`, marked in :attr:`id_parts`)."""
        if kind not in self.values:
            raise ValueError(f"unknown identifier kind {kind!r}")
        t = _clean(text)
        self._add_whole(kind, t, source)
        if kind == "id":  # 12343@jdoe: the user name and the number on their own
            self.id_parts.discard(t)
            for part in _id_parts(t):
                if part not in self.values[kind]:
                    self.id_parts.add(part)
                    self._add_whole(kind, part, source)

    def _add_whole(self, kind: str, t: str, source: str) -> None:
        if kind in ("id", "label") and t.isdigit() and 2 <= len(t) < _MIN_NUMERIC_LEN:
            self.short_numbers.setdefault(kind, {}).setdefault(t, source)
        if not _usable(t, kind):
            return
        self.values[kind].setdefault(t, source)
        if kind == "id" and t.isdigit() and t.startswith("0"):  # 000123 is also written 123
            self._add_whole(kind, t.lstrip("0"), source)

    def add_name(self, text: str, source: str = "") -> None:
        """Add a person name: the whole value, each part of 3+ characters (split at the
        DICOM separators and again at other punctuation: Smith-Jones, O'Brien), and
        family and given name run together either way (DoeJohn, JohnDoe: a user name,
        an e-mail address, a file name)."""
        whole = _clean(text)
        if not whole:
            return
        self.add("name", whole.replace("^", " ").strip(), source)
        for part in re.split(r"[\^=,\s]+", whole):
            self.add("name", part, source)
            for piece in _word_parts(part):
                self.add("name", piece, source)
        family_given = [p for p in re.split(r"[\^\s]+", whole.split("=")[0]) if p][:2]
        if len(family_given) == 2:
            for joined in ("".join(family_given), "".join(family_given[::-1])):
                if len(joined) >= _MIN_TEXT_LEN:
                    self.add("name", joined, source)

    def add_date(self, text: str, source: str = "", *, kind: str = "date") -> None:
        """Add a date in the forms people and converters write: YYYYMMDD, DDMMYYYY,
        MMDDYYYY; YYYY-MM-DD and DD-MM-YYYY, MM-DD-YYYY with any of - / . _ as
        separator; days and months without their leading zero (6/5/2014); month names
        (6 May 2014, May 6, 2014, 06-May-2014, 06MAY2014, 2014_May_06, full or three
        letters); and, for paths, the two-digit-year forms. ``kind``: "date", or
        "birthdate" for a date of birth (searched whatever the options keep)."""
        if kind not in DATE_KINDS:
            raise ValueError(f"not a date kind: {kind!r}")
        t = _clean(text)
        if len(t) < 8:
            return
        try:
            d, precision = parse_da(t[:8] if t[:8].isdigit() else t[:10])
        except ValueError:
            return
        if precision < 3:
            return
        for form in date_forms(d.year, d.month, d.day):
            self.values[kind].setdefault(form, source)
        yy, m, dd = f"{d.year % 100:02d}", f"{d.month:02d}", f"{d.day:02d}"
        short = self.short_birthdates if kind == "birthdate" else self.short_dates
        for form in (f"{yy}{m}{dd}", f"{dd}{m}{yy}", f"{m}{dd}{yy}"):
            short.setdefault(form, source)

    def add_label(self, label: str, source: str = "original label") -> None:
        """Add an original participant or session label that was relabelled."""
        self.add("label", label, source)

    def add_dataset(self, ds: Dataset) -> None:
        """Collect every identifying value of a DICOM dataset, recursing into sequences
        (per-frame and shared functional groups included) and into the file meta."""
        if getattr(ds, "file_meta", None) is not None:
            self._add_elements(ds.file_meta)
        self._add_elements(ds)

    def _add_elements(self, ds: Dataset) -> None:
        for elem in ds.iterall():
            if elem.VR == "SQ" or elem.value is None:
                continue
            self._add_element(elem)

    def _add_element(self, elem: DataElement) -> None:
        """Record the values of one (non-sequence) element by VR and keyword."""
        kw = elem.keyword or ""
        values: Iterable[object]
        values = elem.value if isinstance(elem.value, MultiValue | list) else [elem.value]
        for v in values:
            if isinstance(v, bytes | bytearray):
                continue
            text = str(v)
            if kw in TECHNICAL_KEYWORDS:
                self.technical.add(_clean(text).upper())
            elif elem.VR == "PN":
                self.add_name(text, kw or str(elem.tag))
            elif elem.VR in ("DA", "DT"):
                self.add_date(text if elem.VR == "DA" else text[:8], kw,
                              kind="birthdate" if kw in BIRTH_DATE_KEYWORDS else "date")
            elif elem.VR == "UI":
                # UIDs of the standard itself (classes, context groups: 1.2.840.10008.*)
                # identify no one, and the DICOM writer keeps them as they are
                if text and text not in UID_dictionary and not text.startswith(
                        "1.2.840.10008."):
                    self.add("uid", text, kw)
            elif _KEYWORD_KINDS.get(kw):
                self.add(_KEYWORD_KINDS[kw], text, kw)

    def add_dataset_fast(self, ds: Dataset) -> None:
        """The same result as :meth:`add_dataset`, about 5x faster: elements whose VR and
        keyword show they cannot hold an identifier are not decoded (decoding every
        element dominated reading a study's headers). Added for the participant index;
        ``tests/test_leakscan_identifiers.py`` checks both agree on every real header."""
        if getattr(ds, "file_meta", None) is not None:
            self._add_elements_fast(ds.file_meta)
        self._add_elements_fast(ds)

    def _add_elements_fast(self, ds: Dataset) -> None:
        for tag in sorted(ds.keys()):
            if not _may_identify(int(tag), ds.get_item(tag).VR):
                continue  # e.g. US, DS, FD, OB pixel-adjacent data: nothing to collect
            elem = ds[tag]
            if elem.VR == "SQ":
                for item in elem.value or []:
                    self._add_elements_fast(item)
                continue
            if elem.value is None:
                continue
            self._add_element(elem)

    def merge(self, other: Identifiers) -> None:
        for kind, vals in other.values.items():
            for text, src in vals.items():
                self.values.setdefault(kind, {}).setdefault(text, src)
        self.technical |= other.technical
        self.id_parts |= other.id_parts
        for text, src in other.short_dates.items():
            self.short_dates.setdefault(text, src)
        for text, src in other.short_birthdates.items():
            self.short_birthdates.setdefault(text, src)
        for kind, numbers in other.short_numbers.items():
            for text, src in numbers.items():
                self.short_numbers.setdefault(kind, {}).setdefault(text, src)

    # -- using -----------------------------------------------------------------------
    def tokens(self, kinds: Iterable[str] | None = None) -> list[Token]:
        """All tokens, longest first (so a report names the most specific hit)."""
        selected = set(kinds) if kinds is not None else set(KINDS)
        out = [Token(k, t, s) for k, vals in self.values.items() if k in selected
               for t, s in vals.items()
               if not (k == "text" and t.upper() in self.technical)]
        return sorted(out, key=lambda tok: (-len(tok.text), tok.kind, tok.text))

    def hidden_in_labels(self, labels: Iterable[str], *, least_name: int = 4,
                         numbers: bool = True) -> Token | None:
        """A name, ID, original label, institution or device hidden inside one of the
        BIDS entity ``labels`` even within a word (``task-johnsmith``, ``acq-jdoe1``):
        stricter than the leak scan's match on word boundaries. Tokens are compared
        without their punctuation and in their ASCII spellings (Müller: muller,
        mueller), names from ``least_name`` characters (3 where a hit only replaces a
        label taken from a description), the other kinds from 4, parts of IDs not at
        all (:attr:`id_parts`); with ``numbers``, short IDs and replaced labels as
        :meth:`numbers_in_labels` finds them (not for a participant's own label kept
        as it is: a research ID of three digits is often both PatientID and label)."""
        lowered = [re.sub(r"[^a-z0-9]", "", label.lower()) for label in labels if label]
        if not lowered:
            return None
        for tok in self.tokens(LABEL_KINDS):
            if tok.kind == "id" and tok.text in self.id_parts:
                continue
            least = least_name if tok.kind == "name" else 4
            for spelling in ascii_spellings(tok.text):
                needle = re.sub(r"[^a-z0-9]", "", spelling.lower())
                if len(needle) >= least and any(needle in label for label in lowered):
                    return tok
        return self.numbers_in_labels(lowered) if numbers else None

    def numbers_in_labels(self, labels: Iterable[str], skip: Iterable[str] = ()
                          ) -> Token | None:
        """A short ID or replaced label (3 or 4 digits) inside one of ``labels``, not
        part of a longer number (``acq-s1234`` holds ``1234``); kinds in ``skip`` are
        not sought."""
        labels = list(labels)
        for kind in sorted(set(self.short_numbers) - set(skip)):
            for text, source in sorted(self.short_numbers[kind].items()):
                if len(text) < 3:
                    continue
                pattern = re.compile(r"(?<![0-9])" + text + r"(?![0-9])")
                if any(pattern.search(label) for label in labels):
                    return Token(kind, text, source)
        return None

    def __len__(self) -> int:
        return sum(len(v) for v in self.values.values())

    def contains_text(self, text: str) -> Token | None:
        """The first token found inside ``text`` (for checking a kept free-text value)."""
        data = text.encode("utf-8", "replace")
        for tok in self.tokens():
            if tok.pattern().search(data):
                return tok
        return None

    # -- storage (PRIVATE_DIR only) ----------------------------------------------------
    def to_json(self) -> dict[str, dict[str, str]]:
        out = {k: dict(sorted(v.items())) for k, v in self.values.items()}
        out[_TECHNICAL_KEY] = {t: "technical" for t in sorted(self.technical)}
        out[_SHORT_DATES_KEY] = dict(sorted(self.short_dates.items()))
        out[_SHORT_BIRTHDATES_KEY] = dict(sorted(self.short_birthdates.items()))
        out[_SHORT_NUMBERS_KEY] = {k: dict(sorted(v.items()))  # type: ignore[misc]
                                   for k, v in sorted(self.short_numbers.items())}
        out[_ID_PARTS_KEY] = {t: "part of an ID" for t in sorted(self.id_parts)}
        return out

    @classmethod
    def from_json(cls, data: dict[str, dict[str, str]]) -> Identifiers:
        ids = cls()
        for kind, vals in data.items():
            if kind == _TECHNICAL_KEY:
                ids.technical.update(vals)
            elif kind == _SHORT_DATES_KEY:
                ids.short_dates.update(vals)
            elif kind == _SHORT_BIRTHDATES_KEY:
                ids.short_birthdates.update(vals)
            elif kind == _ID_PARTS_KEY:
                ids.id_parts.update(vals)
            elif kind == _SHORT_NUMBERS_KEY:
                for sub_kind, numbers in vals.items():
                    ids.short_numbers.setdefault(sub_kind, {}).update(numbers)  # type: ignore[arg-type]
            else:
                ids.values.setdefault(kind, {}).update(vals)
        return ids

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_json(), perms=0o600)

    @classmethod
    def load(cls, path: str | Path) -> Identifiers:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


def date_forms(year: int, month: int, day: int) -> list[str]:
    """Every way :meth:`Identifiers.add_date` looks for one date (four-digit years)."""
    y, m, dd, mo, da = f"{year:04d}", f"{month:02d}", f"{day:02d}", str(month), str(day)
    forms = [f"{y}{m}{dd}", f"{dd}{m}{y}", f"{m}{dd}{y}"]
    for sep in "-/._":
        forms += [f"{y}{sep}{m}{sep}{dd}", f"{dd}{sep}{m}{sep}{y}", f"{m}{sep}{dd}{sep}{y}",
                  f"{y}{sep}{mo}{sep}{da}", f"{da}{sep}{mo}{sep}{y}", f"{mo}{sep}{da}{sep}{y}"]
    full = _MONTHS[month - 1]
    for name in dict.fromkeys((full, full[:3], full[:4] if full == "September" else full[:3])):
        for day_text in dict.fromkeys((dd, da)):
            forms += [f"{day_text} {name} {y}", f"{name} {day_text}, {y}",
                      f"{name} {day_text} {y}", f"{day_text}-{name}-{y}",
                      f"{day_text}{name}{y}", f"{day_text}.{name}.{y}"]
        forms += [f"{y}-{name}-{dd}", f"{y}{name}{dd}", f"{y}_{name}_{dd}"]
        # PsychoPy's default date: 2014_May_06_1030
    return list(dict.fromkeys(forms))


@functools.lru_cache(maxsize=65536)
def _may_identify(tag: int, raw_vr: str | None) -> bool:
    """Whether an element can hold an identifier, from its tag and raw VR alone (cached:
    a study repeats the same few hundred tags in every header)."""
    private = bool((tag >> 16) & 1)
    keyword = "" if private else (keyword_for_tag(tag) or "")
    if raw_vr is None and not private:
        try:
            raw_vr = dictionary_VR(tag)
        except KeyError:
            raw_vr = None
    return (raw_vr in (None, "UN", "SQ") or raw_vr in _IDENTIFYING_VRS
            or keyword in _KEYWORD_KINDS or keyword in TECHNICAL_KEYWORDS)


def _word_parts(text: str) -> list[str]:
    """The words of ``text`` split at punctuation (Smith-Jones, O'Brien, 12343@jdoe),
    when it has any; letters of every script, digits and underscores stay together (a
    test patient called d2n_Philips_3T stays whole, so the vendor's name does not
    become a token of its own)."""
    parts = [p for p in re.split(r"[^\w]+", text) if p]
    return parts if len(parts) > 1 else []


def _id_parts(text: str) -> list[str]:
    """The parts of an ID worth a token of their own: runs of letters and digits with a
    letter and 4+ characters (a user name), or numbers (kept if 5+ digits); generic
    words (SUBJ, PILOT, STUDY) are not."""
    return [p for p in _word_parts(text)
            if (p.isdigit() or (len(p) >= 4 and any(c.isalpha() for c in p)))
            and p.upper() not in GENERIC_ID_PARTS]


def _clean(text: str) -> str:
    return str(text).replace("\x00", "").strip()


_TRANSLITERATION = str.maketrans({
    "ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "æ": "ae", "ø": "oe", "å": "aa", "œ": "oe",
    "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "Æ": "Ae", "Ø": "Oe", "Å": "Aa", "Œ": "Oe",
    "þ": "th", "Þ": "Th", "ð": "d", "Ð": "D", "đ": "d", "Đ": "D", "ł": "l", "Ł": "L"})


def ascii_spellings(text: str) -> set[str]:
    """How a value with accented letters is written in plain ASCII: accents dropped
    (Müller -> Muller, as Unicode decomposition does) and spelled out the way names are
    transliterated (Müller -> Mueller, Søren -> Soeren, Straße -> Strasse)."""
    out = set()
    for form in (text, text.translate(_TRANSLITERATION)):
        folded = unicodedata.normalize("NFKD", form).encode("ascii", "ignore").decode()
        if folded:
            out.add(folded)
    return out


def _is_wide(char: str) -> bool:
    """A CJK ideograph, kana or hangul syllable: a name part of two of them is a whole
    family or given name."""
    return ord(char) >= 0x2E80


def _usable(text: str, kind: str) -> bool:
    least = 2 if kind == "name" and all(_is_wide(c) for c in text) else MIN_TOKEN_LEN
    if len(text) < least:
        return False
    if kind == "text" and len(text) < _MIN_TEXT_LEN:
        return False
    if text.replace(".", "").isdigit() and len(text) < _MIN_NUMERIC_LEN:
        return False
    # values that are only punctuation, or placeholders, identify nothing (letters of
    # any script count: やまだ is a name)
    if not any(c.isalnum() for c in text):
        return False
    return text.upper().strip(".") not in GENERIC_WORDS


GENERIC_WORDS = frozenset({
    "ANONYMOUS", "ANONYMIZED", "ANONYMISED", "REMOVED", "NONE", "UNKNOWN", "N/A", "N.A", "NA",
    "NULL", "MRI", "MR", "RADIOLOGY", "HOSPITAL", "CLINIC", "RESEARCH", "SCANNER",
    "DEPARTMENT", "UNIVERSITY", "INSTITUTE", "HEAD", "BRAIN", "DEFAULT", "AWP",
    # the keys of BIDS entities stand in every published path (XAtest_sub-July11)
    "SUB", "SES", "TASK", "ACQ", "REC", "DIR", "RUN", "MOD", "ECHO", "FLIP", "INV",
    "PART", "RECORDING", "SPACE", "SPLIT", "CHUNK", "DESC", "TRACER",
})
"""Values that identify nobody and that a report or README may well contain (a
station called "MRI" is common); they are not used as leak-scan tokens."""

GENERIC_ID_PARTS = GENERIC_WORDS | frozenset({
    "SUBJ", "SUBJECT", "PATIENT", "PAT", "STUDY", "TEST", "PILOT", "PHANTOM", "CONTROL",
    "VISIT", "SESSION", "SCAN", "BASELINE", "FOLLOWUP", "CASE", "SITE"})
"""Words an ID is often built from (SUBJ-0042-PILOT) that name nobody on their own."""
