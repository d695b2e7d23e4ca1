"""Names of DICOM series in the output and the audit, carrying nothing from the input.

A series is written to ``sourcedata/sub-<label>[/ses-<label>]/<series number>/`` and
audited as ``[ses-<input session>_]series-<series number>``. Two series of one
session with the same number (common: derived series, several studies in one
session) get ``<number>-2``, ``<number>-3``... in index order; a series without a
number is ``0``.
"""

from __future__ import annotations

from bidsdeid.dicom.index import DicomSeries, ParticipantDicom

SeriesKey = tuple[str | None, str, str]


def series_key(series: DicomSeries) -> SeriesKey:
    return (series.session, series.study_uid, series.series_uid)


def series_dirnames(dicom: ParticipantDicom) -> dict[SeriesKey, str]:
    """A unique folder name for every series, per session (see module docstring)."""
    names: dict[SeriesKey, str] = {}
    used: dict[str | None, set[str]] = {}
    for series in dicom.series:
        taken = used.setdefault(series.session, set())
        base = str(series.series_number) if series.series_number is not None else "0"
        base = base.replace("-", "m")  # a negative number must not look like a suffix
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}-{k}"
        taken.add(name)
        names[series_key(series)] = name
    return names


def audit_name(series: DicomSeries, dirname: str) -> str:
    """File stem of a series' audit (private: the input session label is fine)."""
    return (f"ses-{series.session}_" if series.session else "") + f"series-{dirname}"
