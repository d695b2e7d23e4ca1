"""What the series heuristic needs to know about each DICOM file and series.

:class:`FileFacts` are taken from every header as the index reads it (so no file is
read twice); :func:`series_facts` folds them, with the first header of the series,
into one :class:`SeriesFacts`. Classic single-frame and enhanced multi-frame DICOM are
handled alike: for enhanced objects the values come from the shared and per-frame
functional groups (MR Echo, MR Timing, MR Modifier, MR Diffusion, MR Arterial Spin
Labeling, Frame Content, Plane Position, MR Image Frame Type).

These objects hold PHI (descriptions, acquisition times): they stay in memory and in
the private audit dir only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from bidsdeid.convert import vendor
from bidsdeid.dicom.index import DicomFile, DicomSeries
from bidsdeid.privacy.dates import parse_da, parse_tm

_SHARED = "SharedFunctionalGroupsSequence"
_PER_FRAME = "PerFrameFunctionalGroupsSequence"


def _num(value: Any) -> float | None:
    try:
        if value is None or value == "":
            return None
        if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
            value = value[0] if len(value) else None
        return float(value)
    except (TypeError, ValueError, IndexError):
        return None


def _strs(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(v.strip().upper() for v in value.split("\\") if v.strip())
    try:
        return tuple(str(v).strip().upper() for v in value if str(v).strip())
    except TypeError:
        return (str(value).strip().upper(),)


def _items(ds: Dataset, keyword: str) -> list[Dataset]:
    seq = ds.get(keyword)
    try:
        return list(seq) if seq is not None else []
    except TypeError:
        return []


def _find(ds: Dataset, keyword: str, depth: int = 2) -> Any:
    """``keyword`` in ``ds`` or in its sequences (functional-group macros), depth-first."""
    if keyword in ds:
        return ds.get(keyword)
    if depth == 0:
        return None
    for elem in ds:
        if elem.VR != "SQ" or elem.tag.is_private:
            continue
        for item in elem.value or []:
            found = _find(item, keyword, depth - 1)
            if found is not None:
                return found
    return None


# The standard functional-group macro that holds each per-frame attribute.
_MACRO = {
    "FrameType": "MRImageFrameTypeSequence", "ComplexImageComponent": "MRImageFrameTypeSequence",
    "EffectiveEchoTime": "MREchoSequence", "InversionTimes": "MRModifierSequence",
    "DiffusionBValue": "MRDiffusionSequence", "TemporalPositionIndex": "FrameContentSequence",
    "ASLContext": "MRArterialSpinLabelingSequence", "ImagePositionPatient": "PlanePositionSequence",
    "ImageOrientationPatient": "PlaneOrientationSequence",
    "RepetitionTime": "MRTimingAndRelatedParametersSequence",
    "FlipAngle": "MRTimingAndRelatedParametersSequence",
}


class _FrameReader:
    """Per-frame values of an enhanced object, read from the standard macros (fast), or
    by searching the first frame's sequences once when a vendor put a value elsewhere."""

    def __init__(self, shared: Dataset | None, first: Dataset) -> None:
        self.shared = shared
        self.searched: dict[str, bool] = {}
        for keyword in _MACRO:
            direct = self._macro(first, keyword) is not None
            self.searched[keyword] = not direct and (
                _find(first, keyword, 2) is not None
                or (shared is not None and _find(shared, keyword, 2) is not None))

    def _macro(self, frame: Dataset, keyword: str) -> Any:
        for where in (frame, self.shared):
            if where is None:
                continue
            seq = where.get(_MACRO[keyword])
            if seq:
                value = seq[0].get(keyword)
                if value is not None:
                    return value
        return None

    def get(self, frame: Dataset, keyword: str) -> Any:
        if not self.searched[keyword]:
            return self._macro(frame, keyword)
        for where in (frame, self.shared):
            if where is not None:
                v = _find(where, keyword, 2)
                if v is not None:
                    return v
        return None


def _datetime(date: str, time: str) -> dt.datetime | None:
    try:
        d, prec = parse_da(date)
        if prec < 3:
            return None
        t = parse_tm(time)[0] if time else dt.time(0, 0)
        return dt.datetime.combine(d, t)
    except ValueError:
        return None


def _dicom_dt(value: str) -> dt.datetime | None:
    v = (value or "").strip()
    if len(v) < 8:
        return None
    return _datetime(v[:8], v[8:].split("+")[0].split("-")[0])


def acquisition_datetime(ds: Dataset) -> dt.datetime | None:
    """When the image was acquired (the ORIGINAL value; private, shifted on output)."""
    adt = _dicom_dt(str(ds.get("AcquisitionDateTime", "") or ""))
    if adt is not None:
        return adt
    for date_kw, time_kw in (("AcquisitionDate", "AcquisitionTime"), ("SeriesDate", "SeriesTime"),
                             ("ContentDate", "ContentTime"), ("StudyDate", "StudyTime")):
        date = str(ds.get(date_kw, "") or "")
        time = str(ds.get(time_kw, "") or "")
        if date and time:
            found = _datetime(date, time)
            if found is not None:
                return found
    per_frame = _items(ds, _PER_FRAME)
    if per_frame:
        v = _find(per_frame[0], "FrameAcquisitionDateTime", 1)
        if v:
            return _dicom_dt(str(v))
    return _datetime(str(ds.get("StudyDate", "") or ""), "")


@dataclass
class FileFacts:
    """Per-file (and per-frame, for enhanced objects) facts of one DICOM file."""

    sop_instance_uid: str
    n_frames: int = 1
    image_types: frozenset[str] = frozenset()  # every ImageType / FrameType value
    echo_numbers: tuple[int, ...] = ()
    echo_times: tuple[float, ...] = ()  # ms
    inversion_times: tuple[float, ...] = ()  # ms
    repetition_time: float | None = None  # ms
    flip_angle: float | None = None
    b_values: tuple[float, ...] = ()  # one per frame (or one per file)
    complex_components: frozenset[str] = frozenset()
    asl_contexts: tuple[tuple[int, str], ...] = ()  # (temporal position, context)
    positions: tuple[tuple[float, float, float], ...] = ()
    orientations: frozenset[tuple[float, ...]] = frozenset()  # ImageOrientationPatient
    groups: frozenset[tuple[int, str]] = frozenset()  # (echo number, complex component)
    acq_datetime: dt.datetime | None = None
    instance_number: int | None = None


def _position(value: Any) -> tuple[float, float, float] | None:
    try:
        x, y, z = (round(float(v), 2) for v in value)
        return (x, y, z)
    except (TypeError, ValueError):
        return None


def _direction(value: Any) -> tuple[float, ...] | None:
    """ImageOrientationPatient rounded to 3 decimals (six direction cosines)."""
    try:
        cosines = tuple(round(float(v), 3) + 0.0 for v in value)
    except (TypeError, ValueError):
        return None
    return cosines if len(cosines) == 6 else None


def _component(image_type: Iterable[str], explicit: Any) -> str:
    if explicit:
        return str(explicit).upper()
    tokens = set(image_type)
    if tokens & {"P", "PHASE", "PHASE MAP"}:
        return "PHASE"
    if tokens & {"R", "REAL"}:
        return "REAL"
    if tokens & {"I", "IMAGINARY"}:
        return "IMAGINARY"
    return "MAGNITUDE"


class FrameFacts:
    """The per-frame facts of an enhanced object, accumulated one frame at a time (so a
    file whose per-frame groups are streamed, :mod:`bidsdeid.dicom.index`, never holds
    them all)."""

    def __init__(self, shared: Dataset | None) -> None:
        self.shared = shared
        self.read: _FrameReader | None = None
        self.n = 0
        self.types: set[str] = set()
        self.echo_times: list[float] = []
        self.inversion: list[float] = []
        self.b_values: list[float] = []
        self.components: set[str] = set()
        self.asl: list[tuple[int, str]] = []
        self.positions: list[tuple[float, float, float]] = []
        self.orientations: set[tuple[float, ...]] = set()
        self.groups: set[tuple[int, str]] = set()
        self.tr: float | None = None
        self.flip: float | None = None

    def add(self, frame: Dataset) -> None:
        """Fold in the next frame's functional groups."""
        i = self.n
        if self.read is None:
            self.read = _FrameReader(self.shared, frame)
            self.tr = _num(self.read.get(frame, "RepetitionTime"))
            self.flip = _num(self.read.get(frame, "FlipAngle"))
        read = self.read
        self.n += 1
        ftype = _strs(read.get(frame, "FrameType"))
        self.types.update(ftype)
        te = _num(read.get(frame, "EffectiveEchoTime"))
        if te is not None:
            self.echo_times.append(round(te, 3))
        ti = _num(read.get(frame, "InversionTimes"))
        if ti is not None:
            self.inversion.append(ti)
        b = _num(read.get(frame, "DiffusionBValue"))
        self.b_values.append(b if b is not None else 0.0)
        comp = _component(ftype, read.get(frame, "ComplexImageComponent"))
        self.components.add(comp)
        temporal = _num(read.get(frame, "TemporalPositionIndex"))
        ctx = read.get(frame, "ASLContext")
        if ctx:
            self.asl.append((int(temporal) if temporal is not None else i, str(ctx).upper()))
        pos = _position(read.get(frame, "ImagePositionPatient"))
        if pos is not None:
            self.positions.append(pos)
        direction = _direction(read.get(frame, "ImageOrientationPatient"))
        if direction is not None:
            self.orientations.add(direction)
        self.groups.add((round(te * 1000) if te is not None else 0, comp))


def _shared_item(ds: Dataset) -> Dataset | None:
    shared_items = _items(ds, _SHARED)
    return shared_items[0] if shared_items else None


def file_facts(ds: Dataset, streamed: FrameFacts | None = None) -> FileFacts:
    """Facts of one header (classic or enhanced); ``streamed``: the per-frame facts of
    an enhanced file whose per-frame groups were read one at a time."""
    image_type = _strs(ds.get("ImageType"))
    types = set(image_type)
    echo_numbers: list[int] = []
    echo_times: list[float] = []
    inversion: list[float] = []
    b_values: list[float] = []
    components: set[str] = set()
    asl: list[tuple[int, str]] = []
    positions: list[tuple[float, float, float]] = []
    orientations: set[tuple[float, ...]] = set()
    groups: set[tuple[int, str]] = set()
    tr = _num(ds.get("RepetitionTime"))
    flip = _num(ds.get("FlipAngle"))
    frames = streamed
    if frames is None and _items(ds, _PER_FRAME):
        frames = FrameFacts(_shared_item(ds))
        for frame in _items(ds, _PER_FRAME):
            frames.add(frame)
    if frames is not None and frames.n:
        tr = tr if tr is not None else frames.tr
        flip = flip if flip is not None else frames.flip
        types.update(frames.types)
        echo_times, inversion, b_values = frames.echo_times, frames.inversion, frames.b_values
        components, asl, positions = frames.components, frames.asl, frames.positions
        orientations, groups = frames.orientations, frames.groups
    else:
        te = _num(ds.get("EchoTime"))
        if te is not None:
            echo_times.append(round(te, 3))
        en = _num(ds.get("EchoNumbers"))
        echo_numbers.append(int(en) if en is not None else 1)
        ti = _num(ds.get("InversionTime"))
        if ti is not None:
            inversion.append(ti)
        b = _num(ds.get("DiffusionBValue"))
        if b is None:
            b = vendor.private_b_value(ds)
        if b is not None:
            b_values.append(b)
        comp = _component(image_type, ds.get("ComplexImageComponent"))
        components.add(comp)
        pos = _position(ds.get("ImagePositionPatient"))
        if pos is not None:
            positions.append(pos)
        direction = _direction(ds.get("ImageOrientationPatient"))
        if direction is not None:
            orientations.add(direction)
        groups.add((echo_numbers[0], comp))
    inst = ds.get("InstanceNumber")
    try:
        inst_n = int(inst) if inst not in (None, "") else None
    except (TypeError, ValueError):
        inst_n = None
    n_frames = frames.n if frames is not None and frames.n else int(
        _num(ds.get("NumberOfFrames")) or 1)
    return FileFacts(
        sop_instance_uid=str(ds.get("SOPInstanceUID", "") or ""),
        n_frames=n_frames,
        image_types=frozenset(types), echo_numbers=tuple(echo_numbers),
        echo_times=tuple(echo_times), inversion_times=tuple(inversion),
        repetition_time=tr, flip_angle=flip, b_values=tuple(b_values),
        complex_components=frozenset(components), asl_contexts=tuple(asl),
        positions=tuple(positions), orientations=frozenset(orientations),
        groups=frozenset(groups),
        acq_datetime=acquisition_datetime(ds), instance_number=inst_n)


class FactsCollector:
    """Collect :class:`FileFacts` of every header the index reads, by file path (copies
    of a session share SOP instance UIDs, paths are unique)."""

    def __init__(self) -> None:
        self.by_path: dict[str, FileFacts] = {}
        self._streamed: tuple[Dataset, FrameFacts] | None = None

    def frames(self, top: Dataset) -> Callable[[Dataset], None]:
        """For a file whose per-frame groups are streamed: the function that takes each
        frame's item (``top``: the header read so far, shared groups included); the
        next call of this collector uses what it gathered."""
        self._streamed = (top, FrameFacts(_shared_item(top)))
        return self._streamed[1].add

    def __call__(self, ds: Dataset) -> None:
        pending, self._streamed = self._streamed, None
        streamed = pending[1] if pending is not None and pending[0] is ds else None
        try:
            facts = file_facts(ds, streamed)
        except Exception:  # noqa: BLE001 - odd headers must not stop indexing
            return
        key = str(getattr(ds, "filename", "") or "") or facts.sop_instance_uid
        if key:
            self.by_path[key] = facts

    def __getstate__(self) -> dict[str, object]:
        """Pickled (to and from a worker process) without a streamed file's pending
        frames: they belong to a read in progress in this process."""
        return {**self.__dict__, "_streamed": None}

    def merge(self, other: FactsCollector) -> None:
        """Fold in another collector's facts (a worker's, read after these)."""
        self.by_path.update(other.by_path)


def facts_of(file: DicomFile, collected: dict[str, FileFacts]) -> FileFacts | None:
    """The collected facts of one indexed file."""
    return collected.get(str(file.path)) or collected.get(file.sop_instance_uid)


@dataclass
class SeriesFacts:
    """One series, summarised for the heuristic (holds PHI: private use only)."""

    series_uid: str
    series_number: int | None
    session: str | None
    modality: str
    sop_class_uid: str
    manufacturer: str  # siemens | ge | philips | canon | hitachi | other
    image_type: tuple[str, ...]  # ImageType of the first file
    image_types: frozenset[str]  # every ImageType/FrameType value of the series
    scanning_sequence: frozenset[str]
    sequence_variant: frozenset[str]
    scan_options: frozenset[str]
    sequence_name: str
    mr_acquisition_type: str
    echo_pulse_sequence: str  # enhanced: SPIN | GRADIENT | BOTH
    echo_planar: bool  # EPI (enhanced flag, ScanningSequence EP or an EPI sequence name)
    inversion_recovery: bool
    acquisition_contrast: str  # enhanced: T1, T2, DIFFUSION, PERFUSION, ...
    asl_labeling: str  # ArterialSpinLabelingContrast (PSEUDOCONTINUOUS, ...)
    echo_times: tuple[float, ...]  # distinct, ms
    echo_numbers: tuple[int, ...]
    repetition_time: float | None
    inversion_time: float | None
    flip_angle: float | None
    b_values: tuple[float, ...]  # distinct, rounded
    n_diffusion_weighted: int  # frames with b > 50
    complex_components: frozenset[str]
    asl_contexts: tuple[str, ...]  # in volume order (empty if not recorded)
    n_files: int
    n_frames: int
    n_positions: int
    n_groups: int  # distinct (echo, magnitude/phase/...) groups
    n_volumes: int
    description: str  # SeriesDescription (private)
    protocol: str  # ProtocolName (private)
    burned_in: str
    has_pixels: bool
    orientation: str  # sag | cor | ax | oblique | ""
    phoenix: dict[str, int] = field(default_factory=dict)
    acq_datetime: dt.datetime | None = None
    asl_bolus_cutoff: str = ""

    @property
    def text(self) -> str:
        """Description and protocol name, lower case (for patterns; never printed)."""
        return f"{self.description} {self.protocol}".lower()

    @property
    def max_b(self) -> float:
        return max(self.b_values) if self.b_values else 0.0

    @property
    def is_derived(self) -> bool:
        return bool(self.image_type) and self.image_type[0] == "DERIVED"


def _manufacturer(ds: Dataset) -> str:
    m = str(ds.get("Manufacturer", "") or "").lower()
    for key in ("siemens", "philips", "canon", "toshiba", "hitachi", "fuji", "uih", "united"):
        if key in m:
            return {"toshiba": "canon", "fuji": "hitachi", "united": "uih"}.get(key, key)
    if m.startswith("ge") or "general electric" in m:
        return "ge"
    return "other"


def _orientation(ds: Dataset) -> str:
    iop = ds.get("ImageOrientationPatient")
    for keyword in (_SHARED, _PER_FRAME):
        if iop is not None:
            break
        items = _items(ds, keyword)
        iop = _find(items[0], "ImageOrientationPatient", 2) if items else None
    try:
        r = [float(v) for v in iop]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return ""
    if len(r) != 6:
        return ""
    n = (r[1] * r[5] - r[2] * r[4], r[2] * r[3] - r[0] * r[5], r[0] * r[4] - r[1] * r[3])
    axis = max(range(3), key=lambda i: abs(n[i]))
    if abs(n[axis]) < 0.8:
        return "oblique"
    return ("sag", "cor", "ax")[axis]


def series_facts(series: DicomSeries, collected: dict[str, FileFacts]) -> SeriesFacts:
    """Fold the file facts of ``series`` and its first header into :class:`SeriesFacts`."""
    ds = series.header
    files = [ff for ff in (facts_of(f, collected) for f in series.files) if ff is not None]
    if not files:
        files = [file_facts(ds)]
    image_types: set[str] = set()
    te: set[float] = set()
    ti: list[float] = []
    b: list[float] = []
    comps: set[str] = set()
    asl: list[tuple[int, int, str]] = []
    positions: set[tuple[float, float, float]] = set()
    groups: set[tuple[int, str]] = set()
    echo_numbers: set[int] = set()
    trs = [f.repetition_time for f in files if f.repetition_time is not None]
    flips = [f.flip_angle for f in files if f.flip_angle is not None]
    for order, f in enumerate(files):
        image_types |= f.image_types
        te.update(f.echo_times)
        ti.extend(f.inversion_times)
        b.extend(f.b_values)
        comps |= f.complex_components
        positions.update(f.positions)
        groups |= f.groups
        echo_numbers.update(f.echo_numbers)
        for temporal, context in f.asl_contexts:
            asl.append((order if len(files) > 1 else 0, temporal, context))
    n_frames = sum(f.n_frames for f in files)
    n_positions = max(len(positions), 1)
    n_groups = max(len(groups), 1)
    is_mosaic = "MOSAIC" in image_types
    if is_mosaic:
        n_volumes = len(files)
    else:
        n_volumes = max(n_frames // (n_positions * n_groups), 1)
    # ASL context per volume: one entry per (file, temporal position), in order
    contexts: list[str] = []
    seen: set[tuple[int, int]] = set()
    for order, temporal, context in sorted(asl):
        if (order, temporal) not in seen:
            seen.add((order, temporal))
            contexts.append(context)
    scanning = frozenset(_strs(ds.get("ScanningSequence")))
    seq_name = str(ds.get("SequenceName", "") or ds.get("PulseSequenceName", "") or "")
    if not seq_name:
        seq_name = str(_find(ds, "PulseSequenceName", 2) or "")
    epi_flag = str(ds.get("EchoPlanarPulseSequence", "") or "").upper() == "YES"
    name_l = seq_name.lower().lstrip("*")
    echo_planar = (epi_flag or "EP" in scanning or name_l.startswith(("ep", "epfid", "epse"))
                   or "EPI" in image_types or "MOSAIC" in image_types)
    ir_flag = str(_find(ds, "InversionRecovery", 3) or "").upper() == "YES"
    inversion_recovery = ir_flag or "IR" in scanning or bool([t for t in ti if t > 0])
    acq_times = [f.acq_datetime for f in files if f.acq_datetime is not None]
    return SeriesFacts(
        series_uid=series.series_uid, series_number=series.series_number,
        session=series.session, modality=series.modality.upper(),
        sop_class_uid=series.sop_class_uid, manufacturer=_manufacturer(ds),
        image_type=_strs(ds.get("ImageType")), image_types=frozenset(image_types),
        scanning_sequence=scanning, sequence_variant=frozenset(_strs(ds.get("SequenceVariant"))),
        scan_options=frozenset(_strs(ds.get("ScanOptions"))), sequence_name=seq_name,
        mr_acquisition_type=str(ds.get("MRAcquisitionType", "") or "").upper(),
        echo_pulse_sequence=str(_find(ds, "EchoPulseSequence", 1) or "").upper(),
        echo_planar=echo_planar, inversion_recovery=inversion_recovery,
        acquisition_contrast=str(_find(ds, "AcquisitionContrast", 3) or "").upper(),
        asl_labeling=str(ds.get("ArterialSpinLabelingContrast", "") or "").upper(),
        echo_times=tuple(sorted(te)), echo_numbers=tuple(sorted(echo_numbers)),
        repetition_time=min(trs) if trs else None,
        inversion_time=max(ti) if ti else None,
        flip_angle=flips[0] if flips else None,
        b_values=tuple(sorted({round(v, -1) if v > 50 else round(v) for v in b})),
        n_diffusion_weighted=sum(1 for v in b if v > 50),
        complex_components=frozenset(comps), asl_contexts=tuple(contexts),
        n_files=len(series.files), n_frames=n_frames, n_positions=n_positions,
        n_groups=n_groups, n_volumes=n_volumes,
        description=str(ds.get("SeriesDescription", "") or ""),
        protocol=str(ds.get("ProtocolName", "") or ""),
        burned_in=str(ds.get("BurnedInAnnotation", "") or "").upper(),
        has_pixels=any(f.has_pixels for f in series.files),
        orientation=_orientation(ds), phoenix=vendor.siemens_protocol(ds),
        acq_datetime=min(acq_times) if acq_times else None,
        asl_bolus_cutoff=str(_find(ds, "ASLBolusCutoffFlag", 3) or "").upper(),
    )
