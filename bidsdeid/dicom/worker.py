"""Run file de-identification jobs in worker processes, one file at a time.

Each worker builds its :class:`~bidsdeid.dicom.writer.FileDeidentifier` once (profile,
key, leak checker) and then takes jobs: a job is a source path, a staged destination,
the series' safe descriptor values and, for a defaced series, the
:class:`~bidsdeid.dicom.facemask.FaceSpec` of its removed region (loaded once per
series and worker); a result is the file's report (actions, UID map, pixel counts) or
why it was refused (the file, or for pixels that cannot be defaced the whole series)
or failed. Nothing of a series is held in memory, so a
worker's memory does not depend on the series size; ``nprocs`` workers run at once.
With ``nprocs`` 1 everything runs in the calling process.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

from bidsdeid.config import DeidOptions
from bidsdeid.dicom import facemask
from bidsdeid.dicom.deidentify import Deidentifier, FileReport
from bidsdeid.dicom.facemask import FaceSpec
from bidsdeid.dicom.pixels import PixelRefused
from bidsdeid.dicom.profile import Profile
from bidsdeid.dicom.quarantine import quarantine_reason
from bidsdeid.dicom.selfcheck import LeakChecker
from bidsdeid.dicom.writer import FileDeidentifier
from bidsdeid.errors import BidsdeidError, LeakError
from bidsdeid.privacy.keys import DateOffset, ProjectKey
from bidsdeid.utils.processes import pool_context


@dataclass(frozen=True)
class WorkerSettings:
    """Everything a worker needs (picklable)."""

    options: DeidOptions
    key: ProjectKey
    offset: DateOffset
    label: str  # PatientName / PatientID of the output
    tokens: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, text, source)
    allowed: list[str] = field(default_factory=list)  # values the tool writes itself
    overrides: dict[int, str] = field(default_factory=dict)
    private_overrides: dict[tuple[str, int, int], str] = field(default_factory=dict)
    self_check: bool = True


@dataclass(frozen=True)
class Job:
    index: int
    src: Path
    dst: Path
    where: str  # PHI-free name for messages: "series 5 file 3"
    descriptors: dict[str, str] = field(default_factory=dict)
    face: FaceSpec | None = None  # the series is defaced: its removed region


@dataclass
class JobResult:
    index: int
    report: FileReport | None = None
    error: str | None = None  # one line, PHI-free
    leak: bool = False
    series_refused: str | None = None  # pixels that cannot be defaced: refuse the series


def refuse_by_flags(report: FileReport) -> str | None:
    """Per-file quarantine check on the attributes the engines captured."""
    ds = Dataset()
    ds.SOPClassUID = report.sop_class_uid
    for keyword, value in report.flags.items():
        setattr(ds, keyword, value.split("\\") if keyword == "ImageType" else value)
    return quarantine_reason(ds, has_pixels=report.has_pixels)


def build(settings: WorkerSettings) -> FileDeidentifier:
    profile = Profile(settings.options, settings.overrides, settings.private_overrides)
    deid = Deidentifier(profile, settings.key, settings.offset, settings.label)
    checker = None
    if settings.self_check:
        checker = LeakChecker(settings.tokens, allowed=[settings.label, *settings.allowed],
                              skip_kinds=set(settings.options.kept_identifier_kinds()),
                              kept_on_purpose=profile.keeps)
    return FileDeidentifier(deid, checker, refuse=refuse_by_flags)


_STATE: FileDeidentifier | None = None


def _init(settings: WorkerSettings) -> None:
    global _STATE
    _STATE = build(settings)


def _run(job: Job) -> JobResult:
    assert _STATE is not None
    return run_one(_STATE, job)


def run_one(fd: FileDeidentifier, job: Job) -> JobResult:
    """One job; every failure becomes a PHI-free message in the result."""
    try:
        face = facemask.load(job.face) if job.face is not None else None
        return JobResult(job.index, fd.run(job.src, job.dst, job.where, job.descriptors,
                                           face))
    except PixelRefused as exc:
        return JobResult(job.index, series_refused=str(exc))
    except LeakError as exc:
        return JobResult(job.index, error=exc.message, leak=True)
    except BidsdeidError as exc:
        return JobResult(job.index, error=exc.message)
    except Exception as exc:  # noqa: BLE001 - one file must not hide the others' results
        tb = traceback.format_exc(limit=3).splitlines()[-1][:200]
        return JobResult(job.index, error=f"{job.where}: internal error ({type(exc).__name__}:"
                                          f" {tb})")


def run_jobs(settings: WorkerSettings, jobs: list[Job], nprocs: int,
             on_done: Callable[[JobResult], None] | None = None) -> Iterator[JobResult]:
    """Results of ``jobs`` in job order, computed by ``nprocs`` processes."""
    if nprocs <= 1 or len(jobs) <= 1:
        fd = build(settings)
        for job in jobs:
            result = run_one(fd, job)
            if on_done:
                on_done(result)
            yield result
        return
    chunk = max(1, min(16, len(jobs) // (nprocs * 4)))
    with ProcessPoolExecutor(max_workers=nprocs, mp_context=pool_context(), initializer=_init,
                             initargs=(settings,)) as pool:
        for result in pool.map(_run, jobs, chunksize=chunk):
            if on_done:
                on_done(result)
            yield result
