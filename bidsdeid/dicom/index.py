"""Index the raw DICOM of one participant: headers only, grouped by study and series.

Reads ``BIDS_DIR/sourcedata/sub-<label>[/ses-<label>]/**`` with any nesting and any
file names (extension or not). Every file is either indexed or reported as skipped
with a reason (DICOMDIR, not DICOM, truncated, unreadable, ...): nothing is lost
silently. Pixel data is never loaded here; a truncated file is detected by comparing
the declared pixel data length with the file size, by a header element shorter than
its declared length (pydicom reads such a file without complaint), and by an image
object (Rows, Columns) that ends before its pixel data.

With ``nprocs`` > 1 the headers are read by worker processes in batches of consecutive
files (:func:`index_participant`); each batch comes back with its own collected
identifiers and facts, folded back in file order, so the index is the same as a serial
read (``tests/test_dicom_index_parallel.py``).

A skipped file is *harmless* when it is plainly not scan data: DICOMDIR, system files,
hidden folders, and files that are not DICOM and do not claim to be (no ``DICM``
magic, no ``.dcm``/``.ima`` name: a text note, a picture). Everything else skipped
(damaged or unreadable DICOM, links not followed) is bad input: the run exits 65.
"""

from __future__ import annotations

import gc
import os
import stat
import struct
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import BinaryIO, Protocol

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset, read_partial, read_sequence_item
from pydicom.sequence import Sequence

from bidsdeid.errors import DataError
from bidsdeid.utils.processes import pool_context

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT",
             b"UV"}
_SKIP_NAMES = {"dicomdir", ".ds_store", "thumbs.db", "desktop.ini"}
_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima", ".dc3")


@dataclass
class SkippedFile:
    """A file under sourcedata that is not converted, and why (reported, never silent).

    ``harmless``: plainly not scan data (see the module docstring); otherwise the file
    may have held data that is now missing, and the run says so with exit code 65.
    """

    path: Path
    reason: str
    harmless: bool = False


@dataclass
class DicomFile:
    """One indexed DICOM file (header facts needed to plan; no pixel data)."""

    path: Path
    size: int
    sop_class_uid: str
    sop_instance_uid: str
    instance_number: int | None
    n_frames: int
    has_pixels: bool


@dataclass
class DicomSeries:
    """All files of one series, in one session, with the header of its first file."""

    session: str | None
    study_uid: str
    series_uid: str
    series_number: int | None
    modality: str
    sop_class_uid: str
    header: Dataset  # first file, read without pixel data (holds PHI: keep private)
    files: list[DicomFile] = field(default_factory=list)

    @property
    def n_files(self) -> int:
        return len(self.files)

    @property
    def n_frames(self) -> int:
        return sum(f.n_frames for f in self.files)

    @property
    def nbytes(self) -> int:
        return sum(f.size for f in self.files)

    def sort(self) -> None:
        self.files.sort(key=lambda f: (f.instance_number if f.instance_number is not None
                                       else 1 << 30, f.path.name))


@dataclass
class ParticipantDicom:
    """The DICOM index of one participant."""

    label: str
    root: Path
    series: list[DicomSeries] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def sessions(self) -> list[str | None]:
        return sorted({s.session for s in self.series}, key=lambda x: (x is not None, x or ""))

    def by_session(self, session: str | None) -> list[DicomSeries]:
        return [s for s in self.series if s.session == session]


def participant_dicom_root(bids_dir: Path, label: str) -> Path:
    return bids_dir / "sourcedata" / f"sub-{label}"


def iter_files(root: Path, skipped: list[SkippedFile]) -> Iterator[Path]:
    """Walk ``root`` (no symlinked folders: they can loop), sorted, reporting oddities."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=None):
        here = Path(dirpath)
        keep_dirs = []
        for d in sorted(dirnames):
            p = here / d
            if p.is_symlink():
                skipped.append(SkippedFile(p, "symbolic link to a folder (not followed)"))
            elif d.startswith("."):
                skipped.append(SkippedFile(p, "hidden folder", harmless=True))
            else:
                keep_dirs.append(d)
        dirnames[:] = keep_dirs
        for name in sorted(filenames):
            yield here / name


_PIXEL_TAGS = {b"\xe0\x7f\x10\x00", b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00",
               b"\x7f\xe0\x00\x10", b"\x7f\xe0\x00\x08", b"\x7f\xe0\x00\x09"}


def _pixel_data_check(fp: pydicom.filebase.ReadableBuffer, size: int,
                      ds: Dataset) -> tuple[bool, str | None]:
    """With ``fp`` where ``stop_before_pixels`` left it, check the pixel data element.

    Returns (has pixel data, problem or None): a declared length longer than the file
    means the file is truncated.
    """
    pos = fp.tell()
    head = fp.read(12)
    if len(head) == 0:
        return False, None
    if head[:4] not in _PIXEL_TAGS:
        return False, None
    if len(head) < 8:
        return True, "truncated (ends inside the pixel data header)"
    little = getattr(ds, "is_little_endian", True)
    implicit = getattr(ds, "is_implicit_VR", False)
    endian = "<" if little is not False else ">"
    if implicit:
        length = struct.unpack(endian + "I", head[4:8])[0]
        start = pos + 8
    elif head[4:6] in _LONG_VRS:
        length = struct.unpack(endian + "I", head[8:12])[0]
        start = pos + 12
    else:
        length = struct.unpack(endian + "H", head[6:8])[0]
        start = pos + 8
    if length == 0xFFFFFFFF:  # encapsulated: must end with a sequence delimiter
        fp.seek(max(size - 8, 0))
        tail = fp.read(8)
        if tail[:4] not in (b"\xfe\xff\xdd\xe0", b"\xff\xfe\xe0\xdd"):
            return True, "truncated (encapsulated pixel data has no end)"
        return True, None
    if start + length > size:
        return True, f"truncated (pixel data needs {start + length} bytes, file has {size})"
    return True, None


@dataclass
class _Read:
    path: Path
    ds: Dataset | None
    file: DicomFile | None
    problem: str | None
    harmless: bool = False  # a skipped file that is plainly not scan data


def _short_element(ds: Dataset) -> bool:
    """True if a top-level element holds fewer bytes than its declared length (the file
    ends inside it). Looks at the raw elements only, so call it before values are used."""
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        value = getattr(raw, "value", None)
        length = getattr(raw, "length", None)
        if (isinstance(value, bytes) and isinstance(length, int)
                and length != 0xFFFFFFFF and len(value) < length):
            return True
    return False


def _claims_dicom(path: Path, fp: pydicom.filebase.ReadableBuffer) -> bool:
    """A ``.dcm``-like name or the DICM magic: the file says it is DICOM."""
    fp.seek(128)
    magic = fp.read(4) == b"DICM"
    fp.seek(0)
    return magic or path.name.lower().endswith(_DICOM_SUFFIXES)


STREAM_FRAMES_ABOVE = 512
"""Enhanced files with more frames than this have their per-frame functional groups
read one item at a time (see :func:`_read_streaming`)."""

FrameSink = Callable[[Dataset], Callable[[Dataset], None]]
"""Given the header read so far, the function that takes each per-frame item."""

_PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_UNDEFINED = 0xFFFFFFFF


def _at_pixels(tag: int, _vr: str | None, _length: int) -> bool:
    return tag in _PIXEL_DATA_TAGS  # a set lookup: a pydicom Tag compared with == is slow


_PER_FRAME_OR_PIXELS = _PIXEL_DATA_TAGS | {0x52009230}


def _at_per_frame_or_pixels(tag: int, _vr: str | None, _length: int) -> bool:
    return tag in _PER_FRAME_OR_PIXELS


def _read_streaming(fp: BinaryIO, on_frames: FrameSink) -> Dataset | None:
    """Read a header like ``dcmread(stop_before_pixels=True)``, except that a large
    PerFrameFunctionalGroupsSequence is read one item at a time and handed to
    ``on_frames(header so far)``; only its first item is kept. pydicom holds every item
    of that sequence at tens of kB each: 20,000 frames would take gigabytes, whatever
    the pixel data. Returns None (``fp`` rewound) for an enhanced file with few frames
    or an encoding this reader does not follow (deflated, big endian, the sequence not
    encoded as SQ): the caller reads it the usual way."""
    start = fp.tell()
    ds = read_partial(fp, stop_when=_at_per_frame_or_pixels)
    pos = fp.tell()
    head = fp.read(12)
    fp.seek(pos)
    if head[:4] != struct.pack("<HH", _PER_FRAME >> 16, _PER_FRAME & 0xFFFF):
        # stopped at the pixel data (or the end)
        return ds
    meta = getattr(ds, "file_meta", None)
    ts = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        frames = 1
    if (frames <= STREAM_FRAMES_ABOVE or len(head) < 12 or ts is None
            or ts.is_deflated or not ts.is_little_endian):
        fp.seek(start)
        return None
    if ts.is_implicit_VR:
        length = struct.unpack("<I", head[4:8])[0]
        fp.seek(pos + 8)
    elif head[4:6] == b"SQ":
        length = struct.unpack("<I", head[8:12])[0]
        fp.seek(pos + 12)
    else:
        fp.seek(start)
        return None
    implicit = bool(ts.is_implicit_VR)
    encoding = ds._character_set
    sink = on_frames(ds)
    end = None if length == _UNDEFINED else fp.tell() + length
    first: Dataset | None = None
    while end is None or fp.tell() < end:
        item = read_sequence_item(fp, implicit, True, encoding)
        if item is None:  # the sequence delimiter
            break
        sink(item)
        if first is None:
            first = item
    rest = read_dataset(fp, implicit, True, stop_when=_at_pixels, parent_encoding=encoding)
    ds.update(rest)
    ds[_PER_FRAME] = DataElement(_PER_FRAME, "SQ", Sequence([first] if first else []))
    return ds


def read_header(path: Path, on_frames: FrameSink | None = None) -> _Read:
    """Read one file's header (no pixels); classify it as indexed or skipped.
    ``on_frames``: stream the per-frame groups of a large enhanced file through it
    (:func:`_read_streaming`); without it every file is read whole."""
    name = path.name.lower()
    if name in _SKIP_NAMES:
        return _Read(path, None, None, "DICOMDIR or system file (ignored)"
                     if name == "dicomdir" else "system file (ignored)", harmless=True)
    try:
        st = path.stat()
    except OSError as exc:
        return _Read(path, None, None, f"cannot read ({exc.strerror})")
    if not stat.S_ISREG(st.st_mode):
        return _Read(path, None, None, "not a regular file")
    if st.st_size == 0:
        return _Read(path, None, None, "empty file (0 bytes)")
    try:
        with open(path, "rb") as fp:
            claims = _claims_dicom(path, fp)
            try:
                ds = _read_streaming(fp, on_frames) if on_frames is not None else None
                if ds is None:
                    ds = pydicom.dcmread(fp, stop_before_pixels=True)
            except InvalidDicomError:
                fp.seek(0)
                try:
                    ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
                except Exception:  # noqa: BLE001 - forced reads of non-DICOM bytes
                    ds = None
                if ds is None or "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
                    return _Read(path, None, None, "not a DICOM file", harmless=not claims)
            # a header element shorter than declared means the read ran out of file:
            # only a read that ended at the end of the file can hold one
            if fp.tell() >= st.st_size and _short_element(ds):
                return _Read(path, None, None, "truncated (ends inside a header element)")
            has_pixels, problem = _pixel_data_check(fp, st.st_size, ds)
    except PermissionError:
        return _Read(path, None, None, "cannot read (permission denied)")
    except OSError as exc:
        if exc.errno is None:  # pydicom's own OSError: the bytes, not the disk
            return _Read(path, None, None, "not a readable DICOM file (truncated or damaged)")
        return _Read(path, None, None, f"cannot read ({exc.strerror or exc})")
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on corrupt input
        return _Read(path, None, None, f"not a readable DICOM file ({type(exc).__name__})")
    if problem:
        return _Read(path, None, None, problem)
    meta = getattr(ds, "file_meta", None)
    media_class = str(getattr(meta, "MediaStorageSOPClassUID", "")) if meta else ""
    if media_class == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds:
        return _Read(path, None, None, "DICOMDIR (ignored)", harmless=True)
    if not has_pixels and "Rows" in ds and "Columns" in ds:
        return _Read(path, None, None, "image without pixel data (truncated or damaged)")
    try:
        sop_class = str(ds.SOPClassUID)
        sop_inst = str(ds.SOPInstanceUID)
        series_uid = str(ds.get("SeriesInstanceUID", "") or "")
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        inst = ds.get("InstanceNumber")
        inst_n = int(inst) if inst not in (None, "") else None
    except Exception:  # noqa: BLE001
        return _Read(path, None, None, "DICOM header is missing or has malformed key attributes")
    if not series_uid or not sop_inst:
        return _Read(path, None, None, "DICOM file without SeriesInstanceUID/SOPInstanceUID")
    return _Read(path, ds, DicomFile(path, st.st_size, sop_class, sop_inst, inst_n, frames,
                                     has_pixels), None)


_PER_FRAME = 0x52009230  # PerFrameFunctionalGroupsSequence


def _kept_header(ds: Dataset) -> Dataset:
    """The header a series keeps for planning: an enhanced file's per-frame functional
    groups cut to the first frame's. Every header was already seen whole (identifiers,
    file facts); tens of thousands of per-frame items held for the rest of the run
    would cost gigabytes, and planning reads only the first."""
    if _PER_FRAME in ds:
        frames = ds[_PER_FRAME].value
        if len(frames) > 1:
            ds[_PER_FRAME].value = Sequence([frames[0]])
    return ds


def patient_key(ds: Dataset) -> str:
    """What tells two patients apart in one folder (PatientID, else name + birth date)."""
    pid = str(ds.get("PatientID", "") or "").strip()
    if pid:
        return "id:" + pid
    return "name:" + str(ds.get("PatientName", "") or "").strip() + "|" + str(
        ds.get("PatientBirthDate", "") or "")


class HeaderCollector(Protocol):
    """Takes every header the index reads (identifiers, file facts, ...).

    The index may read in worker processes: each gets :meth:`fresh`, an empty collector
    of the same kind, and the parent folds the workers' collectors back with
    :meth:`merge`, in file order, so the result is the same as one serial read.
    """

    def header(self, ds: Dataset) -> None:
        """One file's header, read whole (or with its per-frame groups streamed)."""

    def frames(self, top: Dataset) -> Callable[[Dataset], None]:
        """For a large enhanced file: the function that takes each per-frame item."""

    def fresh(self) -> HeaderCollector | None:
        """An empty collector for a worker process; None: read serially."""

    def merge(self, other: HeaderCollector) -> None:
        """Fold in what a worker's collector took."""


class CallbackCollector:
    """A :class:`HeaderCollector` made of plain functions (read serially)."""

    def __init__(self, on_header: Callable[[Dataset], None] | None = None,
                 on_frames: FrameSink | None = None) -> None:
        self._on_header, self._on_frames = on_header, on_frames

    def header(self, ds: Dataset) -> None:
        if self._on_header is not None:
            self._on_header(ds)

    def frames(self, top: Dataset) -> Callable[[Dataset], None]:
        if self._on_frames is None:
            return lambda item: None
        return self._on_frames(top)

    def fresh(self) -> None:
        return None

    def merge(self, other: HeaderCollector) -> None:
        raise TypeError("a CallbackCollector is not read in parallel")


@dataclass
class _Indexed:
    """One file as the grouping needs it: indexed (with the facts that place it in a
    series, and its header when it is the first file of its series in its batch) or
    skipped with a reason."""

    path: Path
    session: str | None
    file: DicomFile | None = None
    problem: str | None = None
    harmless: bool = False
    patient: str = ""
    study_uid: str = ""
    series_uid: str = ""
    series_number: int | None = None
    modality: str = ""
    header: Dataset | None = None


GC_THRESHOLD_WHILE_READING = 50_000
"""Allocations between two young-generation garbage collections while headers are read
(Python's default is 700). pydicom allocates millions of small objects and almost no
cycles; collecting every 700 took a third of the read time. Memory is still freed by
reference counting as each header is let go."""


@contextmanager
def _fewer_collections() -> Iterator[None]:
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], GC_THRESHOLD_WHILE_READING), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _index_batch(batch: list[tuple[Path, str | None]], collector: HeaderCollector | None,
                 stream: bool) -> tuple[list[_Indexed], HeaderCollector | None]:
    """Read the headers of ``batch`` in order, each through ``collector``; keep the
    header of the first file of each series (the batch's first: the parent keeps the
    first of the whole participant, which is the first of some batch)."""
    on_frames = collector.frames if collector is not None and stream else None
    seen: set[tuple[str | None, str, str]] = set()
    out: list[_Indexed] = []
    with _fewer_collections():
        for path, session in batch:
            r = read_header(path, on_frames)
            if r.problem or r.ds is None or r.file is None:
                out.append(_Indexed(path, session, problem=r.problem or "unreadable",
                                    harmless=r.harmless))
                continue
            ds = r.ds
            if collector is not None:
                collector.header(ds)
            study_uid = str(ds.get("StudyInstanceUID", "") or "")
            series_uid = str(ds.SeriesInstanceUID)
            sn = ds.get("SeriesNumber")
            try:
                series_number = int(sn) if sn not in (None, "") else None
            except (TypeError, ValueError):
                series_number = None
            key = (session, study_uid, series_uid)
            header = None
            if key not in seen:
                seen.add(key)
                header = _kept_header(ds)
            out.append(_Indexed(path, session, r.file, patient=patient_key(ds),
                                study_uid=study_uid, series_uid=series_uid,
                                series_number=series_number,
                                modality=str(ds.get("Modality", "") or ""), header=header))
    return out, collector


PARALLEL_FROM = 16
"""Fewer files than this are read in the calling process. Forking a pool costs tens of
milliseconds; an enhanced file's header alone can take that long to read."""


def _index_all(todo: list[tuple[Path, str | None]], collector: HeaderCollector | None,
               stream: bool, nprocs: int) -> Iterator[_Indexed]:
    """Every file of ``todo`` read, in order: by ``nprocs`` worker processes when the
    collector can be split (:meth:`HeaderCollector.fresh`), else here."""
    fresh = collector.fresh() if collector is not None and nprocs > 1 else None
    if fresh is None or len(todo) < PARALLEL_FROM:
        yield from _index_batch(todo, collector, stream)[0]
        return
    size = max(8, min(256, len(todo) // (nprocs * 4)))
    batches = [todo[i:i + size] for i in range(0, len(todo), size)]
    with ProcessPoolExecutor(max_workers=nprocs, mp_context=pool_context()) as pool:
        for indexed, part in pool.map(_index_batch, batches, repeat(fresh), repeat(stream)):
            assert collector is not None and part is not None
            collector.merge(part)
            yield from indexed


def index_participant(bids_dir: Path, label: str, *,
                      on_header: Callable[[Dataset], None] | None = None,
                      on_frames: FrameSink | None = None,
                      collector: HeaderCollector | None = None, nprocs: int = 1,
                      sessions: list[str] | None = None) -> ParticipantDicom:
    """Index ``sourcedata/sub-<label>``.

    Every header read goes to ``collector`` (or to ``on_header``, and a large enhanced
    file's per-frame items to ``on_frames``): the identifier collector uses it, so every
    file's PHI is seen, not only the first per series. With ``nprocs`` > 1 and a
    collector that can be split, worker processes read the headers; the result is the
    same. ``sessions`` restricts to those session labels. Raises :class:`DataError` if
    the folder holds more than one patient (the message names the folder, never the
    patient).
    """
    if collector is None and (on_header is not None or on_frames is not None):
        collector = CallbackCollector(on_header, on_frames)
    stream = collector is not None and (on_frames is not None
                                        or not isinstance(collector, CallbackCollector))
    root = participant_dicom_root(bids_dir, label)
    result = ParticipantDicom(label=label, root=root)
    if not root.is_dir():
        return result
    ses_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()
                      and p.name.startswith("ses-"))
    # the files to read, in walk order; what the walk itself skips keeps its place
    todo: list[tuple[Path, str | None]] = []
    walk: list[tuple[int, SkippedFile]] = []

    def add_tree(tree: Path, session: str | None) -> None:
        found: list[SkippedFile] = []
        for path in iter_files(tree, found):
            walk.extend((len(todo), s) for s in found)
            found.clear()
            if session is None and ses_dirs and path.parent == root:
                walk.append((len(todo), SkippedFile(path, "file outside the ses-* folders")))
            elif path.is_symlink() and not path.exists():
                walk.append((len(todo), SkippedFile(path, "broken symbolic link")))
            else:
                todo.append((path, session))
        walk.extend((len(todo), s) for s in found)

    outside: list[SkippedFile] = []
    if ses_dirs:
        for sd in ses_dirs:
            ses = sd.name[len("ses-"):]
            if not ses.isalnum():
                raise DataError(f"sourcedata/sub-{label}/{sd.name}: session label has "
                                "characters other than letters and digits")
            if sessions is not None and ses not in sessions:
                continue
            add_tree(sd, ses)
        for p in sorted(root.iterdir()):
            if p.is_file():
                outside.append(SkippedFile(p, "file outside the ses-* folders"))
            elif p.is_dir() and not p.name.startswith("ses-"):
                outside.append(SkippedFile(p, "folder outside the ses-* folders"))
    else:
        add_tree(root, None)

    groups: dict[tuple[str | None, str, str], DicomSeries] = {}
    patients: set[str] = set()
    pending = iter(walk)
    next_walk = next(pending, None)
    for i, item in enumerate(_index_all(todo, collector, stream, nprocs)):
        while next_walk is not None and next_walk[0] <= i:
            result.skipped.append(next_walk[1])
            next_walk = next(pending, None)
        if item.file is None:
            result.skipped.append(SkippedFile(item.path, item.problem or "unreadable",
                                              harmless=item.harmless))
            continue
        patients.add(item.patient)
        key = (item.session, item.study_uid, item.series_uid)
        series = groups.get(key)
        if series is None:
            assert item.header is not None  # the first file of a series keeps its header
            series = DicomSeries(session=item.session, study_uid=item.study_uid,
                                 series_uid=item.series_uid,
                                 series_number=item.series_number, modality=item.modality,
                                 sop_class_uid=item.file.sop_class_uid, header=item.header)
            groups[key] = series
        series.files.append(item.file)
    while next_walk is not None:
        result.skipped.append(next_walk[1])
        next_walk = next(pending, None)
    result.skipped.extend(outside)
    if len(patients) > 1:
        raise DataError(f"sourcedata/sub-{label} holds DICOM of {len(patients)} different "
                        "patients; put each patient in its own sub-<label> folder")
    for s in groups.values():
        s.sort()
    result.series = sorted(groups.values(), key=lambda s: (
        s.session or "", s.series_number if s.series_number is not None else 1 << 30,
        s.series_uid))
    return result
