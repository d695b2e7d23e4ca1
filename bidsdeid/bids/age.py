"""A participant's age for one session, and where it came from.

Order (DESIGN.md section 5, nibabies' ``parse_bids_for_age_months``): ``--age-months``,
then the input's ``sessions.tsv``, then ``participants.tsv`` (columns ``age``,
``age_months``, ``age_weeks``, ``age_days``, with ``Units`` from the JSON sidecar; plain
``age`` is years unless the sidecar says otherwise), then the DICOM header
(PatientAge, else PatientBirthDate and the study date).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from bidsdeid.privacy.dates import age_in_years, parse_da, parse_dicom_age

_UNIT_TO_MONTHS = {"year": 12.0, "years": 12.0, "y": 12.0, "month": 1.0, "months": 1.0,
                   "m": 1.0, "week": 12 / 52.1775, "weeks": 12 / 52.1775, "w": 12 / 52.1775,
                   "day": 12 / 365.25, "days": 12 / 365.25, "d": 12 / 365.25}
_COLUMNS = (("age_months", 1.0), ("age_weeks", 12 / 52.1775), ("age_days", 12 / 365.25))


@dataclass(frozen=True)
class Age:
    months: float | None
    source: str  # where the age came from; "none" if unknown

    @property
    def years(self) -> float | None:
        return None if self.months is None else self.months / 12.0


UNKNOWN = Age(None, "none")


def _units(tsv: Path, column: str) -> str | None:
    side = tsv.with_suffix(".json")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        units = meta.get(column, {}).get("Units")
        return str(units).strip().lower() if units else None
    except (OSError, ValueError, AttributeError):
        return None


def _from_table(tsv: Path, key_column: str, key: str) -> float | None:
    try:
        with open(tsv, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    for row in rows:
        if (row.get(key_column) or "").strip() != key:
            continue
        for column, factor in _COLUMNS:
            value = _number(row.get(column))
            if value is not None:
                unit = _units(tsv, column)
                return value * (_UNIT_TO_MONTHS.get(unit, factor) if unit else factor)
        value = _number(row.get("age"))
        if value is not None:
            unit = _units(tsv, "age") or "years"
            return value * _UNIT_TO_MONTHS.get(unit, 12.0)
    return None


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    t = text.strip()
    if t in ("", "n/a", "N/A", "NaN", "nan"):
        return None
    try:
        v = float(t.rstrip("+"))  # "89+" as BIDS examples write it
    except ValueError:
        return None
    return v if v >= 0 else None


def from_dicom(header: Dataset) -> Age:
    """PatientAge, else birth date and study (or acquisition) date."""
    years = parse_dicom_age(str(header.get("PatientAge", "") or ""))
    if years is not None and years > 0:
        return Age(years * 12.0, "DICOM PatientAge")
    birth = str(header.get("PatientBirthDate", "") or "")
    when = str(header.get("StudyDate", "") or header.get("AcquisitionDate", "") or
               header.get("SeriesDate", "") or "")
    try:
        b, pb = parse_da(birth)
        w, pw = parse_da(when)
    except ValueError:
        return UNKNOWN
    if pb < 3 or pw < 3 or w < b:
        return UNKNOWN
    months = (w.year - b.year) * 12 + (w.month - b.month) - (w.day < b.day)
    months_exact = max(months, 0) + (((w.day - b.day) % 31) / 31.0 if w.day >= b.day else 0.0)
    if age_in_years(b, w) >= 0:
        return Age(float(months_exact), "DICOM birth date")
    return UNKNOWN


def resolve(bids_dir: Path, label: str, session: str | None, *,
            age_months_option: float | None = None,
            dicom_header: Dataset | None = None) -> Age:
    """The age of ``sub-<label>`` at ``session`` in months, with its source."""
    if age_months_option is not None:
        return Age(float(age_months_option), "--age-months")
    if session is not None:
        tsv = bids_dir / f"sub-{label}" / f"sub-{label}_sessions.tsv"
        months = _from_table(tsv, "session_id", f"ses-{session}")
        if months is not None:
            return Age(months, "sessions.tsv")
    months = _from_table(bids_dir / "participants.tsv", "participant_id", f"sub-{label}")
    if months is not None:
        return Age(months, "participants.tsv")
    if dicom_header is not None:
        return from_dicom(dicom_header)
    return UNKNOWN
