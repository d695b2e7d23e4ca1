"""The input's own tables: what they tell about the person, and the columns of a copied
table that would name them.

The participant's rows of the input ``participants.tsv``, ``sessions.tsv`` and
``scans.tsv`` often hold more than age and sex: a birth date, the visit dates, the
hospital number, initials. bidsdeid writes its own tables (age and sex only, shifted
times), so none of that is copied, but the values are identifiers of the participant:
a file name, a label or a copied ``events.tsv`` that repeats them must fail the leak
scan. :func:`collect_identifiers` adds every date in those rows (a birth column's as a
date of birth) and every value of a column that names, numbers or reaches a person.

Tables copied as they are (``_events.tsv``, written by stimulus software that logs
the participant, the session and the date in columns of their own, e.g. PsychoPy's
``participant``, ``session`` and ``date``) lose those columns
(:func:`without_identity_columns`); the rest is copied and leak-scanned.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

from bidsdeid.privacy.identifiers import Identifiers

_NAME_COLUMNS = frozenset({
    "name", "fullname", "firstname", "lastname", "givenname", "familyname", "middlename",
    "maidenname", "nickname", "surname", "forename", "initials", "patientname",
    "subjectname", "participantname", "mother", "mothername", "father", "fathername",
    "parent", "parentname", "guardian", "guardianname", "operator", "operatorname",
    "experimenter", "examiner", "rater", "tester", "physician", "doctor", "clinician",
    "referringphysician", "user", "username"})
"""Columns (lower case, letters and digits only) that hold a person's name."""
_ID_COLUMN = re.compile(r"^(?:id|mrn.*|.*mrn|patientid|patientnumber|hospitalid|"
                        r"hospitalnumber|.*recordnumber|medicalrecord.*|nhs.*|ssn|"
                        r"socialsecurity.*|insurance.*|accession.*|passport.*)$")
_CONTACT_COLUMN = re.compile(r"address|street|city|town|zip|postcode|postal|phone|mobile|"
                             r"email|fax")
_BIRTH_COLUMN = re.compile(r"birth|dob|born", re.I)
_LABEL_COLUMNS = {"participant_id", "session_id", "filename"}
"""Columns BIDS gives the labels and file names in (labels are handled by
:mod:`bidsdeid.bids.labels`; file names by the leak scan of paths)."""

IDENTITY_COLUMN = re.compile(
    r"^(?:participant|participant_?id|subject|subject_?id|sub|subj|session|session_?id|"
    r"ses|date|.*_date|date_.*|dob|.*birth.*|expdate|computer|host(?:name)?|"
    r"user(?:name)?)$", re.I)
"""Columns of a copied table that name the participant or session, date the visit or
name the computer (PsychoPy: participant, session, date; E-Prime: Subject, Session,
SessionDate, SessionTime)."""

_ISO_DATE = re.compile(r"^\s*(\d{4})[-/._]?(\d{2})[-/._]?(\d{2})(?:$|[T _\s])")
_DMY_DATE = re.compile(r"^\s*(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})(?:$|[T _\s])")


def read_rows(path: Path) -> list[dict[str, str]] | None:
    """The rows of a TSV file (None if it cannot be read)."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return [{(k or "").strip(): (v or "").strip() for k, v in row.items()
                     if isinstance(v, str)}
                    for row in csv.DictReader(fh, delimiter="\t")]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def dates_in(value: str) -> list[str]:
    """``value`` as YYYYMMDD if it is a date (ISO, compact, or day/month/year either
    way round when both readings are dates), else []."""
    found = []
    m = _ISO_DATE.match(value)
    if m:
        found.append(m.groups())
    m = _DMY_DATE.match(value)
    if m:
        a, b, year = m.groups()
        found += [(year, b, a), (year, a, b)]
    out = []
    for year, month, day in found:
        try:
            d = dt.date(int(year), int(month), int(day))
        except ValueError:
            continue
        out.append(f"{d.year:04d}{d.month:02d}{d.day:02d}")
    return list(dict.fromkeys(out))


def add_row(ids: Identifiers, row: dict[str, str], source: str) -> None:
    """Add the identifying cells of one input table row (see the module docstring)."""
    for column, value in row.items():
        if not value or value.lower() == "n/a" or column.lower() in _LABEL_COLUMNS:
            continue
        where = f"{source} {column}"
        dates = dates_in(value)
        kind = "birthdate" if _BIRTH_COLUMN.search(column) else "date"
        for date in dates:
            ids.add_date(date, where, kind=kind)
        if dates:
            continue
        key = re.sub(r"[^a-z0-9]", "", column.lower())
        if key in _NAME_COLUMNS:
            ids.add_name(value, where)
        elif _ID_COLUMN.match(key):
            ids.add("id", value, where)
        elif _CONTACT_COLUMN.search(key):
            ids.add("text", value, where)


def collect_identifiers(ids: Identifiers, bids_dir: Path, label: str) -> None:
    """The participant's rows of the input participants.tsv, sessions.tsv and every
    scans.tsv, into ``ids``."""
    sub = f"sub-{label}"
    rows = read_rows(bids_dir / "participants.tsv") or []
    for row in rows:
        if row.get("participant_id") in (sub, label):
            add_row(ids, row, "input participants.tsv")
    root = bids_dir / sub
    if not root.is_dir():
        return
    tables = [root / f"{sub}_sessions.tsv", *sorted(root.rglob("*_scans.tsv"))]
    for tsv in tables:
        for row in read_rows(tsv) or []:
            add_row(ids, row, f"input {tsv.name.split('_')[-1]}")


def without_identity_columns(path: Path) -> tuple[str, list[str]] | None:
    """The text of a TSV file without its :data:`IDENTITY_COLUMN` columns, and the
    names of the columns dropped; None if it has none (copy it as it is) or cannot be
    parsed as a table (the leak scan still reads every byte of the copy)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.splitlines()
    if not lines:
        return None
    header = lines[0].split("\t")
    drop = [i for i, name in enumerate(header) if IDENTITY_COLUMN.match(name.strip())]
    if not drop:
        return None
    keep = [i for i in range(len(header)) if i not in drop]
    out = io.StringIO()
    for line in lines:
        cells = line.split("\t")
        out.write("\t".join(cells[i] if i < len(cells) else "" for i in keep) + "\n")
    return out.getvalue(), [header[i].strip() for i in drop]
