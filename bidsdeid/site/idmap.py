"""``--id-map FILE``: the site's own table of new participant labels.

A TSV (``.tsv``) or CSV (``.csv``; other names: tab if the header has one, else comma)
with a header row. Columns, any case:

* the original: ``original``, ``original_id``, ``original_participant_id`` or
  ``source_id``: an input participant label (``sub-`` optional) or a PatientID;
* the new label: ``new``, ``new_label``, ``new_id``, ``participant_id`` or
  ``pseudonym``: letters and digits (``sub-`` optional);
* optional ``age`` (years, a number or ``n/a``) and ``sex`` (``M``/``F``/``O``,
  ``male``/``female``/``other`` or ``n/a``): replacements for participants.tsv (age
  capped at 89 as always; sex written only with ``--include-sex``).

So the ``linkage.tsv`` of an earlier run (``original_participant_id``,
``participant_id``) is itself a valid id map. Blank lines and lines starting with ``#``
are skipped. A participant is looked up by its input label first, then by the
PatientIDs of its DICOM; no entry is an error naming the participant (never the
PatientID), never a silent fallback. Problems with the file itself are
:class:`~bidsdeid.errors.UsageError` (exit 64) naming the file and line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bidsdeid.errors import DataError, UsageError

OPTION = "--id-map"
ORIGINAL_COLUMNS = ("original", "original_id", "original_participant_id", "source_id")
NEW_COLUMNS = ("new", "new_label", "new_id", "participant_id", "pseudonym")
NA = ("", "n/a", "na", "nan")
SEX = {"m": "M", "male": "M", "f": "F", "female": "F", "o": "O", "other": "O"}
_LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")
REPLACEMENT_DEMOGRAPHICS = "replacement_demographics"
"""``ctx.results`` key: ``{"age": years, "sex": "M"|"F"|"O"}`` from the id map, for
participants.tsv (:func:`bidsdeid.bids.tables.demographics`)."""


@dataclass(frozen=True)
class Entry:
    original: str
    label: str
    age: float | None
    sex: str | None
    line: int

    def demographics(self) -> dict[str, float | str]:
        out: dict[str, float | str] = {}
        if self.age is not None:
            out["age"] = self.age
        if self.sex is not None:
            out["sex"] = self.sex
        return out


@dataclass(frozen=True)
class IdMap:
    path: Path
    sha256: str
    entries: tuple[Entry, ...]

    def _by_original(self) -> dict[str, Entry]:
        return {e.original: e for e in self.entries}

    def lookup(self, input_label: str, patient_ids: Iterable[str] = ()) -> Entry | None:
        """The entry of a participant: by input label, else by one of its PatientIDs.

        Raises :class:`DataError` if its PatientIDs point to different entries."""
        by = self._by_original()
        for key in (input_label, f"sub-{input_label}"):
            if key in by:
                return by[key]
        found = {by[p.strip()] for p in patient_ids if p and p.strip() in by}
        if len(found) > 1:
            raise DataError(f"sub-{input_label}: its PatientIDs match {len(found)} entries of "
                            f"the id map {self.path.name} (lines "
                            f"{', '.join(str(e.line) for e in sorted(found, key=lambda e: e.line))})")
        return next(iter(found), None)

    def for_patient_id(self, patient_id: str) -> Entry | None:
        """The entry whose original is this PatientID (the receiver's lookup)."""
        return self._by_original().get(patient_id.strip())

    def require(self, input_label: str, patient_ids: Iterable[str] = ()) -> Entry:
        """:meth:`lookup`, or a :class:`DataError` naming the participant."""
        entry = self.lookup(input_label, patient_ids)
        if entry is None:
            raise DataError(f"sub-{input_label} has no entry in the id map {self.path.name} "
                            "(looked up by participant label and by PatientID); add a line "
                            "for it, or leave it out with --participant-label")
        return entry


def _column(header: list[str], names: tuple[str, ...], path: Path, what: str,
            required: bool = True) -> int | None:
    found = [i for i, h in enumerate(header) if h.strip().lower() in names]
    if len(found) > 1:
        raise UsageError(f"{OPTION} {path}: line 1: more than one {what} column")
    if not found:
        if required:
            raise UsageError(f"{OPTION} {path}: line 1: no {what} column (one of "
                             f"{', '.join(names)})")
        return None
    return found[0]


def load(path: Path) -> IdMap:
    """Read and check an id map (see the module docstring)."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except OSError as exc:
        raise UsageError(f"{OPTION} {path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{OPTION} {path}: not UTF-8 text (byte {exc.start})") from exc
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise UsageError(f"{OPTION} {path}: empty (expected a header row and one row per "
                         "participant)")
    first = lines[0][1]
    if path.suffix.lower() == ".tsv" or (path.suffix.lower() != ".csv" and "\t" in first):
        delimiter = "\t"
    else:
        delimiter = ","
    rows = list(csv.reader(io.StringIO("\n".join(line for _n, line in lines)),
                           delimiter=delimiter))
    header = rows[0]
    c_orig = _column(header, ORIGINAL_COLUMNS, path, "original")
    c_new = _column(header, NEW_COLUMNS, path, "new label")
    c_age = _column(header, ("age",), path, "age", required=False)
    c_sex = _column(header, ("sex",), path, "sex", required=False)
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for (n, _line), row in zip(lines[1:], rows[1:]):
        where = f"{OPTION} {path}: line {n}"

        def cell(i: int | None, row: list[str] = row) -> str:
            return row[i].strip() if i is not None and i < len(row) else ""

        original = cell(c_orig)
        label = cell(c_new).removeprefix("sub-")
        if not original:
            raise UsageError(f"{where}: no original label or PatientID")
        if not _LABEL_RE.match(label):
            raise UsageError(f"{where}: the new label must be letters and digits (sub- "
                             "optional)")
        if original in seen:
            raise UsageError(f"{where}: the same original as line {seen[original]}")
        seen[original] = n
        entries.append(Entry(original, label, _age(cell(c_age), where), _sex(cell(c_sex), where),
                             n))
    return IdMap(path, hashlib.sha256(raw).hexdigest(), tuple(entries))


def _age(text: str, where: str) -> float | None:
    if text.lower() in NA:
        return None
    try:
        value = float(text.rstrip("+"))
    except ValueError:
        raise UsageError(f"{where}: age must be a number of years or n/a") from None
    if not 0 <= value <= 130:
        raise UsageError(f"{where}: age must be between 0 and 130 years")
    return value


def _sex(text: str, where: str) -> str | None:
    if text.lower() in NA:
        return None
    sex = SEX.get(text.lower())
    if sex is None:
        raise UsageError(f"{where}: sex must be M, F, O (male, female, other) or n/a")
    return sex
