"""De-identify one DICOM file and write it atomically, streaming its pixel data.

The byte engine (:mod:`bidsdeid.dicom.rawengine`) handles little-endian files with a
preamble: the header is rewritten in memory and the pixel data is copied from the
source in 1 MB blocks, so memory stays flat whatever the file size. Other files
(no preamble, deflated, big endian) go through the pydicom engine
(:mod:`bidsdeid.dicom.deidentify`), which holds that one file in memory.

Files of a defaced series come with the series' removed region
(:class:`~bidsdeid.dicom.facemask.SeriesFace`): their pixel data is defaced frame by
frame on the way out (:mod:`bidsdeid.dicom.pixelstream`; compressed pixel data is
decoded and written uncompressed in Explicit VR Little Endian). Whatever cannot be
defaced with certainty raises :class:`~bidsdeid.dicom.pixels.PixelRefused` before
anything is written; the stage then refuses the whole series.

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
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from bidsdeid.dicom import geometry, pixelstream
from bidsdeid.dicom.deidentify import Deidentifier, FileReport
from bidsdeid.dicom.facemask import SeriesFace
from bidsdeid.dicom.pixelcheck import dataset_problem, dataset_text
from bidsdeid.dicom.pixels import FileFace, PixelRefused
from bidsdeid.dicom.rawengine import Range, RawEngine, Unsupported
from bidsdeid.dicom.selfcheck import LeakChecker
from bidsdeid.errors import BidsdeidError, DataError
from bidsdeid.utils.atomic import atomic_open

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
            descriptors: Mapping[str, str] | None = None,
            face: SeriesFace | None = None) -> FileReport:
        """De-identify ``src`` into ``dst``; ``where`` names the file in messages;
        ``face``: the series' removed region (its pixels are defaced)."""
        with open(src, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise DataError(f"{where}: empty file")
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            layout: geometry.Layout | None = None
            layout_error: PixelRefused | None = None
            try:
                try:
                    meta, chunks, report = self.engine.run(mm, dict(descriptors or {}))
                except Unsupported:
                    chunks = None
                if chunks is not None and face is not None and report.has_pixels:
                    try:  # read while mapped; raised only if the file is not quarantined
                        layout = geometry.read_layout(mm, self.engine.implicit)
                    except PixelRefused as exc:
                        layout_error = exc
            finally:
                mm.close()
            if chunks is None:
                return self._with_pydicom(src, dst, where, descriptors, face)
            if self._refused(report):
                return report
            if layout_error is not None:
                raise layout_error
            pixels = None
            if face is not None and layout is not None:
                pixels, meta, chunks = self._pixel_plan(src, fh, meta, chunks, report, face,
                                                        layout)
            header = meta + b"".join(c for c in chunks if isinstance(c, bytes))
            self._check(header, where, report)
            with atomic_open(dst, "wb", durable=False) as out:
                out.write(meta)
                for chunk in chunks:
                    if isinstance(chunk, Range):
                        if pixels is not None:
                            pixels.write(fh, out)
                        else:
                            _copy_range(fh, out, chunk)
                    else:
                        out.write(chunk)
            if pixels is not None:
                _count(report, pixels.face)
        return report

    def _pixel_plan(self, src: Path, fh: IO[bytes], meta: bytes, chunks: list[bytes | Range],
                    report: FileReport, face: SeriesFace, layout: geometry.Layout
                    ) -> tuple[pixelstream.PixelPlan | None, bytes, list[bytes | Range]]:
        ranges = [c for c in chunks if isinstance(c, Range)]
        if len(ranges) != 1:
            raise PixelRefused("no pixel data element, or more than one")
        ts = self.engine.transfer_syntax
        plan = pixelstream.plan(src, fh, ranges[0], self.engine.implicit, ts, face, layout)
        if plan.decoded:
            if self.engine.implicit:
                raise PixelRefused("encapsulated pixel data in an implicit VR file")
            report.decoded_from = UID(ts).name
            meta = self.engine.meta_bytes(report.sop_class_uid, report.sop_instance_uid,
                                          ExplicitVRLittleEndian)
            chunks = [c for c in chunks if not (isinstance(c, bytes) and _tag_of(c) in
                                                pixelstream.EXTENDED_OFFSET_TAGS)]
        return plan, meta, chunks

    def _with_pydicom(self, src: Path, dst: Path, where: str,
                      descriptors: Mapping[str, str] | None,
                      face: SeriesFace | None = None) -> FileReport:
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
            text = dataset_text(ds)
            if text:  # copied with the pixels, it would be published unread
                raise DataError(f"{where}: {text}, which can hold a name or a date: not "
                                "written")
            pixels = _dataset_face(ds, face) if face is not None else None
            report = self.deid.dataset(ds, descriptors)
            if self._refused(report):
                return report
            if pixels is not None:
                _deface_dataset(ds, *pixels, report)
            head = Dataset()
            head.update({t: ds.get_item(t)
                         for t in ds.keys() if int(t) not in _PIXEL_TAGS})  # noqa: SIM118
            head.file_meta = ds.file_meta
            buf = io.BytesIO()
            head.save_as(buf, enforce_file_format=True)
        except (BidsdeidError, PixelRefused):
            raise
        except Exception as exc:
            raise DataError(f"{where}: damaged DICOM that cannot be de-identified "
                            f"({type(exc).__name__})") from exc
        self._check(buf.getvalue(), where, report)
        try:
            with atomic_open(dst, "wb", durable=False) as out:
                ds.save_as(out, enforce_file_format=True)
        except OSError:
            raise
        except Exception as exc:
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
    pixelstream.copy_bytes(fh, out, rng.length,
                           DataError("source file shrank while it was being copied"))


def _tag_of(chunk: bytes) -> int:
    group, elem = struct.unpack_from("<HH", chunk)
    return int((group << 16) | elem)


def _count(report: FileReport, face: FileFace) -> None:
    report.pixels_removed = face.counts.removed
    report.pixels_total = face.counts.total
    report.pixels_zeroed_not_refaced = face.counts.zeroed_not_refaced


def _dataset_face(ds: Dataset, face: SeriesFace) -> tuple[FileFace, int, bool] | None:
    """(the file's face, its pixel tag, compressed?) for the pydicom engine, from the
    header before de-identification; None if the file has no pixel data."""
    tags = [t for t in _PIXEL_TAGS if t in ds]
    if not tags:
        return None
    if len(tags) > 1:
        raise PixelRefused("more than one pixel data element")
    tag = tags[0]
    _implicit, little = ds.original_encoding
    if little is False:
        raise PixelRefused("big-endian transfer syntax (retired): its pixels are not "
                           "defaced here")
    compressed = bool(ds[tag].is_undefined_length)
    if compressed:
        pixelstream.refuse_undecodable(str(ds.file_meta.get("TransferSyntaxUID", "")))
    return FileFace.of(face, ds, tag), tag, compressed


def _deface_dataset(ds: Dataset, face: FileFace, tag: int, compressed: bool,
                    report: FileReport) -> None:
    """Deface the (in-memory) pixel data of ``ds``; compressed data is decoded first."""
    if compressed:
        report.decoded_from = UID(str(ds.file_meta.TransferSyntaxUID)).name
        try:
            ds.decompress(as_rgb=False, generate_instance_uid=False)
        except Exception as exc:  # any decoder failure: refuse, never guess
            raise PixelRefused(f"the compressed pixel data could not be decoded "
                               f"({type(exc).__name__})") from exc
        for t in pixelstream.EXTENDED_OFFSET_TAGS:
            if t in ds:
                del ds[t]
    fmt = face.fmt
    raw = ds[tag].value
    if not isinstance(raw, bytes | bytearray) or len(raw) < fmt.frames * fmt.frame_bytes:
        raise PixelRefused("the pixel data is shorter than its frames")
    out = bytearray(raw)
    step = fmt.frame_bytes
    for k in range(fmt.frames):
        out[k * step:(k + 1) * step] = face.deface_bytes(k, bytes(raw[k * step:(k + 1) * step]))
    ds[tag].value = bytes(out)
    _count(report, face)
