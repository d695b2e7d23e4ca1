"""De-identify one DICOM file and write it atomically, streaming its pixel data.

The byte engine (:mod:`bidsdeid.dicom.rawengine`) handles little-endian files with a
preamble: the header is rewritten in memory and the pixel data is copied from the
source in 1 MB blocks, so memory stays flat whatever the file size. Other files
(no preamble, deflated, big endian) go through the pydicom engine
(:mod:`bidsdeid.dicom.deidentify`), which holds that one file in memory.

Files are staged (``ctx.staging``), renamed into place when complete but not fsynced:
a crashed run rebuilds the staging area, and the publish stage makes the durable
copy. Before anything is written the new header bytes pass the self-check
(:mod:`bidsdeid.dicom.selfcheck`): an identifier or an original UID found there
raises :class:`~bidsdeid.errors.LeakError` and nothing is written.
"""

from __future__ import annotations

import io
import mmap
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

import pydicom
from pydicom.dataset import Dataset

from bidsdeid.dicom.deidentify import Deidentifier, FileReport
from bidsdeid.dicom.pixelcheck import dataset_problem
from bidsdeid.dicom.rawengine import Range, RawEngine, Unsupported
from bidsdeid.dicom.selfcheck import LeakChecker
from bidsdeid.errors import BidsdeidError, DataError
from bidsdeid.utils.atomic import atomic_open

_BLOCK = 1 << 20
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


class FileDeidentifier:
    """Reusable per worker: one :class:`Deidentifier`, its byte engine and checker."""

    def __init__(self, deid: Deidentifier, checker: LeakChecker | None,
                 refuse: Callable[[FileReport], str | None] | None = None) -> None:
        """``refuse(report)`` may return a reason not to write the file (quarantine)."""
        self.deid = deid
        self.engine = RawEngine(deid)
        self.checker = checker
        self.refuse = refuse

    def run(self, src: Path, dst: Path, where: str,
            descriptors: Mapping[str, str] | None = None) -> FileReport:
        """De-identify ``src`` into ``dst``; ``where`` names the file in messages."""
        with open(src, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise DataError(f"{where}: empty file")
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            try:
                try:
                    meta, chunks, report = self.engine.run(mm, dict(descriptors or {}))
                except Unsupported:
                    chunks = None
            finally:
                mm.close()
            if chunks is None:
                return self._with_pydicom(src, dst, where, descriptors)
            if self._refused(report):
                return report
            header = meta + b"".join(c for c in chunks if isinstance(c, bytes))
            self._check(header, where, report)
            with atomic_open(dst, "wb", durable=False) as out:
                out.write(meta)
                for chunk in chunks:
                    if isinstance(chunk, Range):
                        _copy_range(fh, out, chunk)
                    else:
                        out.write(chunk)
        return report

    def _with_pydicom(self, src: Path, dst: Path, where: str,
                      descriptors: Mapping[str, str] | None) -> FileReport:
        try:
            ds = pydicom.dcmread(src, force=True)
        except Exception as exc:
            raise DataError(f"{where}: cannot be read for de-identification "
                            f"({type(exc).__name__})") from exc
        if sum(1 for t in _PIXEL_TAGS if t in ds) > 1:
            raise DataError(f"{where}: more than one pixel data element (a damaged file)")
        try:
            problem = dataset_problem(ds)
            if problem:  # a damaged file whose "pixel data" may be header text
                raise DataError(f"{where}: {problem} (a damaged file)")
            report = self.deid.dataset(ds, descriptors)
            if self._refused(report):
                return report
            head = Dataset()
            head.update({t: ds.get_item(t)
                         for t in ds.keys() if int(t) not in _PIXEL_TAGS})  # noqa: SIM118
            head.file_meta = ds.file_meta
            buf = io.BytesIO()
            head.save_as(buf, enforce_file_format=True)
        except BidsdeidError:
            raise
        except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on damaged data
            raise DataError(f"{where}: damaged DICOM that cannot be de-identified "
                            f"({type(exc).__name__})") from exc
        self._check(buf.getvalue(), where, report)
        try:
            with atomic_open(dst, "wb", durable=False) as out:
                ds.save_as(out, enforce_file_format=True)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - the header wrote, the pixel data did not
            raise DataError(f"{where}: damaged DICOM that cannot be written "
                            f"({type(exc).__name__})") from exc
        return report

    def _refused(self, report: FileReport) -> bool:
        if self.refuse is not None:
            report.refused = self.refuse(report)
        return report.refused is not None

    def _check(self, header: bytes, where: str, report: FileReport) -> None:
        if self.checker is not None:
            self.checker.check(header, where, report.uid_map.keys(), report.kept_text)


def _copy_range(fh: IO[bytes], out: IO[bytes], rng: Range) -> None:
    fh.seek(rng.offset)
    left = rng.length
    while left > 0:
        block = fh.read(min(_BLOCK, left))
        if not block:
            raise DataError("source file shrank while it was being copied")
        out.write(block)
        left -= len(block)
