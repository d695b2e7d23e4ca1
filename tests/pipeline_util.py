"""Helpers for the whole-pipeline tests: studies made from copies of ../shared/data."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pydicom
from conftest import DICOM_SESSIONS

DATE_KEYWORDS = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate",
                 "InstanceCreationDate", "PerformedProcedureStepStartDate")


def rewrite_dicom(folder: Path, edit: Callable[[pydicom.Dataset], None]) -> int:
    """Apply ``edit`` to every DICOM file under ``folder`` (copies only!)."""
    n = 0
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        try:
            ds = pydicom.dcmread(p)
        except Exception:  # noqa: BLE001 - README files and the like
            continue
        edit(ds)
        ds.save_as(p)
        n += 1
    return n


def shift_dates(days: int) -> Callable[[pydicom.Dataset], None]:
    def edit(ds: pydicom.Dataset) -> None:
        for elem in ds.iterall():
            if elem.VR == "DA" and elem.value and elem.keyword != "PatientBirthDate":
                d = dt.datetime.strptime(str(elem.value)[:8], "%Y%m%d") + dt.timedelta(days)
                elem.value = d.strftime("%Y%m%d")
            elif elem.VR == "DT" and elem.value and len(str(elem.value)) >= 8:
                v = str(elem.value)
                d = dt.datetime.strptime(v[:8], "%Y%m%d") + dt.timedelta(days)
                elem.value = d.strftime("%Y%m%d") + v[8:]
    return edit


def two_session_participant(shared: Path, dest: Path, name: str = "ge",
                            days_apart: int = 35) -> Path:
    """``sourcedata/sub-X/ses-1`` and ``ses-2``: the same session copied, the second one
    acquired ``days_apart`` days later."""
    src = shared / DICOM_SESSIONS[name]
    shutil.copytree(src, dest / "ses-1")
    shutil.copytree(src, dest / "ses-2")
    rewrite_dicom(dest / "ses-2", shift_dates(days_apart))
    return dest


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def decompressed(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def find_tokens(root: Path, tokens: list[str]) -> list[tuple[str, str]]:
    """Brute force: every (file or path, token) where a token occurs, any case, in the
    path or anywhere in the (decompressed) bytes of a file under ``root``."""
    found = []
    lowered = [(t, t.lower().encode()) for t in tokens]
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            data = decompressed(p).lower() + b"\n" + rel.lower().encode()
            found.extend((rel, t) for t, low in lowered if low in data)
    return found
