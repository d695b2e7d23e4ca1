"""Stage 6 (--dicom-out): de-identify the DICOM of every series the BIDS output
publishes, by PS3.15 Annex E, defacing anatomical pixels, and stage it under
``sourcedata/sub-<label>[/ses-<label>]/<series number>/<n>.dcm``.

* Publication policy (:mod:`bidsdeid.dicom.policy`): only series the convert stage
  made a BIDS image of in this run are written. Series left out of the conversion
  (localizers, scouts, derived maps, unclear or excluded series) are not written:
  ``PRIVATE_DIR/audit/sub-<label>/dicom/left_out.json`` says why (PHI-free) and a
  warning names the series number. Non-anatomical series keep their pixels (streamed
  from the source). Anatomical series whose image was defaced get defaced pixels: the
  image's removed region, mapped to every pixel through world space
  (:mod:`bidsdeid.dicom.pixels`, :mod:`bidsdeid.dicom.facemask`), zeros or the refaced
  values. Anatomical series whose image was not defaced because the user turned
  defacing off for it (``--deface-modalities``) are written as they are, with a
  warning, like their NIfTI.
* A defaced series is refused whole (quarantined with the reason, not written) when
  any file cannot be defaced with certainty (compressed without a decoder, colour,
  frames without a position, pixels outside the converted image), or when its pixels
  lost a smaller share of the face than its image lost of its voxels
  (:data:`MIN_COVERAGE`): un-defaced pixels are never published.
* Series that must not be shared (:mod:`bidsdeid.dicom.quarantine`) are skipped, and
  quarantined if the convert stage has not done so already; a single refused file
  inside a shared series is quarantined on its own and the others renumbered.
* Files are numbered 1.. in instance order; names carry nothing from the input.
* One file at a time per process, ``--nprocs`` processes (:mod:`bidsdeid.dicom.worker`).
* SeriesDescription and ProtocolName become the series' BIDS name when the convert
  stage recorded one in ``ctx.results["series_names"]`` (series UID -> name).
* ``PRIVATE_DIR/uid_mapping.csv`` and ``patid_mapping.csv`` get this participant's
  rows (merged under a lock); ``PRIVATE_DIR/audit/sub-<label>/dicom/`` one audit per
  series (attributes touched, pixel action and counts). Every file passes the
  self-check before it is written; an identifier found fails the participant
  (:class:`~bidsdeid.errors.LeakError`).
* A later stage (a site rules file) can override the profile per attribute through
  ``ctx.results[OVERRIDES]``; nothing else in the engine changes.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bidsdeid.context import ParticipantContext
from bidsdeid.dicom import facemask, policy
from bidsdeid.dicom.audit import SeriesAudit, profile_settings
from bidsdeid.dicom.deidentify import Deidentifier
from bidsdeid.dicom.facemask import FaceSpec
from bidsdeid.dicom.index import DicomSeries
from bidsdeid.dicom.layout import audit_name, series_dirnames, series_key
from bidsdeid.dicom.mappings import PATID_MAPPING, UID_MAPPING, merge_mapping
from bidsdeid.dicom.policy import SeriesPolicy
from bidsdeid.dicom.profile import Profile
from bidsdeid.dicom.quarantine import (
    quarantine_files,
    quarantine_reason,
    quarantine_series,
    quarantined,
)
from bidsdeid.dicom.worker import Job, JobResult, WorkerSettings, run_jobs
from bidsdeid.errors import DataError, LeakError
from bidsdeid.utils.atomic import write_json

STAGE = "de-identify DICOM"
LEFT_OUT = "left_out.json"
"""Audit of the series not written (``PRIVATE_DIR/audit/sub-<label>/dicom/``)."""
MIN_COVERAGE = 0.95
"""A defaced series' share of removed pixels, relative to its image's share of voxels."""


OVERRIDES = "dicom_profile_overrides"
"""``ctx.results`` key of per-attribute overrides (the hook for a site rules file):
``{"tags": {tag: code}, "private": {(creator, group, element offset): code}}`` with
Table E.1-1 codes X Z D K C U (see :class:`~bidsdeid.dicom.profile.Profile`)."""


def worker_settings(ctx: ParticipantContext, allowed: list[str]) -> WorkerSettings:
    tokens = [(t.kind, t.text, t.source) for t in ctx.identifiers.tokens()]
    overrides = ctx.results.get(OVERRIDES) or {}
    return WorkerSettings(options=ctx.config.deid, key=ctx.key, offset=ctx.offset,
                          label=ctx.output_label, tokens=tokens, allowed=allowed,
                          overrides=dict(overrides.get("tags", {})),
                          private_overrides=dict(overrides.get("private", {})))


def _descriptors(ctx: ParticipantContext, series: DicomSeries) -> dict[str, str]:
    names: dict[str, str] = ctx.results.get("series_names") or {}
    name = names.get(series.series_uid)
    return {"SeriesDescription": name, "ProtocolName": name} if name else {}


def _out_dir(ctx: ParticipantContext, series: DicomSeries, dirname: str) -> str:
    ses = ctx.out_session(series.session)
    parts = ["sourcedata", ctx.sub] + ([f"ses-{ses}"] if ses else []) + [dirname]
    return "/".join(parts)


@dataclass
class _Entry:
    """One series being written: its folder, audit, defacing and jobs."""

    series: DicomSeries
    dirname: str
    audit: SeriesAudit
    choice: SeriesPolicy
    face: FaceSpec | None = None
    jobs: list[Job] = field(default_factory=list)
    refused: str | None = None  # the whole series is refused (pixels)

    @property
    def where(self) -> str:
        return f"series {self.dirname}"


def _plan(ctx: ParticipantContext) -> tuple[list[_Entry], list[dict[str, Any]]]:
    """The series to write (with their jobs) and the records of those left out."""
    dirnames = series_dirnames(ctx.dicom) if ctx.dicom else {}
    done = quarantined(ctx)
    entries: list[_Entry] = []
    left_out: list[dict[str, Any]] = []
    n_jobs = 0
    assert ctx.dicom is not None
    for series in ctx.dicom.series:
        reason = done.get(series.series_uid) or quarantine_reason(series.header)
        if reason:
            quarantine_series(ctx, series, reason)
            continue
        dirname = dirnames[series_key(series)]
        choice = policy.decide(ctx, series)
        if not choice.write:
            left_out.append({"series": dirname, "session": series.session,
                             "action": "not written", "reason": choice.reason})
            ctx.warn(STAGE, f"series {series.series_number}",
                     f"not written to sourcedata: {choice.reason}")
            continue
        out = _out_dir(ctx, series, dirname)
        entry = _Entry(series, dirname, SeriesAudit(series=dirname, session=series.session,
                                                    output=out), choice)
        entry.audit.pixels = {"action": choice.pixels, "images": choice.outputs}
        if choice.pixels == policy.NOT_DEFACED:
            ctx.warn(STAGE, entry.where, "anatomical series written with its face: its image "
                     "was not defaced (--deface-modalities)")
        if choice.pixels == policy.DEFACED:
            dest = ctx.work / "dicom_deface" / f"{audit_name(series, dirname)}.npz"
            entry.face = facemask.prepare(choice.defaced, dest, ctx.config.deface.method)
            entry.audit.pixels["method"] = ctx.config.deface.method
        descriptors = _descriptors(ctx, series)
        for i, f in enumerate(series.files):
            entry.jobs.append(Job(n_jobs, f.path, ctx.stage_path(f"{out}/{i + 1}.dcm"),
                                  f"series {dirname} file {i + 1}", descriptors, entry.face))
            n_jobs += 1
        entries.append(entry)
    return entries, left_out


def run(ctx: ParticipantContext) -> None:
    if not ctx.config.dicom_out or ctx.dicom is None or not ctx.dicom.series:
        return
    entries, left_out = _plan(ctx)
    if left_out:
        write_json(ctx.audit_dir / "dicom" / LEFT_OUT, left_out, perms=0o600)
    jobs = [job for e in entries for job in e.jobs]
    if not jobs:
        ctx.results["dicom_out"] = {"series": {}, "files": 0, "defaced": {}}
        return
    allowed = sorted({v for e in entries for v in _descriptors(ctx, e.series).values()})
    settings = worker_settings(ctx, allowed)
    results = _run_all(ctx, settings, jobs)
    uid_map, patid_map = _collect(ctx, entries, results)
    private = ctx.config.private_dir
    merge_mapping(private / UID_MAPPING, uid_map)
    merge_mapping(private / PATID_MAPPING, patid_map)
    deid = Deidentifier(Profile(ctx.config.deid, settings.overrides, settings.private_overrides),
                        ctx.key, ctx.offset, ctx.output_label)
    summary = profile_settings(deid.method_codes(), deid.profile.columns, ctx.key.fingerprint)
    written: dict[str, Any] = {}
    defaced: dict[str, Any] = {}
    for e in entries:
        if e.refused:
            continue
        e.audit.write(ctx.audit_dir / "dicom", audit_name(e.series, e.dirname), summary)
        written[e.audit.output] = e.audit.files
        if e.face is not None:
            defaced[e.audit.output] = {k: e.audit.pixels[k] for k in ("removed", "total")}
    ctx.results["dicom_out"] = {"series": written, "files": sum(written.values()),
                                "defaced": defaced}


def _run_all(ctx: ParticipantContext, settings: WorkerSettings,
             jobs: list[Job]) -> list[JobResult]:
    n = len(jobs)
    done = [0]

    def progress(_r: JobResult) -> None:
        done[0] += 1
        ctx.progress.item("DICOM files", done[0], n)

    results = list(run_jobs(settings, jobs, ctx.config.nprocs, progress))
    leaks = [r for r in results if r.leak]
    if leaks:
        raise LeakError(f"sub-{ctx.input_label} {leaks[0].error} ({len(leaks)} file(s))")
    errors = [r for r in results if r.error]
    if errors:
        raise DataError(f"sub-{ctx.input_label} {errors[0].error}"
                        + (f" (and {len(errors) - 1} more file(s))" if len(errors) > 1 else ""))
    return results


def _collect(ctx: ParticipantContext, entries: list[_Entry],
             results: list[JobResult]) -> tuple[dict[str, str], dict[str, str]]:
    """Merge reports into audits and maps; refuse series whose pixels could not be
    defaced; quarantine refused files and close the gaps."""
    owner = {job.index: (e, i) for e in entries for i, job in enumerate(e.jobs)}
    for result in results:
        e, _i = owner[result.index]
        if result.series_refused and e.refused is None:
            e.refused = result.series_refused
    uid_maps: dict[int, dict[str, str]] = {}
    patid_map: dict[str, str] = {}
    refused: dict[int, list[tuple[int, str]]] = {}
    for result in results:
        e, i = owner[result.index]
        if e.refused:
            continue
        report = result.report
        assert report is not None
        if report.refused:
            refused.setdefault(id(e), []).append((i, report.refused))
            continue
        e.audit.add(report.engine, report.actions)
        e.audit.add_pixels(report)
        uid_maps.setdefault(id(e), {}).update(report.uid_map)
        if report.patient_id:
            patid_map[report.patient_id] = ctx.output_label
    for e in entries:
        if e.refused is None and e.face is not None:
            e.refused = _coverage_problem(e)
        if e.refused is not None:
            _refuse_series(ctx, e)
            continue
        for i, reason in refused.get(id(e), []):
            quarantine_files(ctx, e.series, [i], reason)
            e.audit.refused.append((i + 1, reason))
            ctx.warn("quarantine", f"series {e.dirname} file {i + 1}", f"not shared: {reason}")
        if id(e) in refused:
            _renumber([j.dst for j in e.jobs])
        zeroed = int(e.audit.pixels.get("zeroed_not_refaced", 0))
        if zeroed:
            ctx.warn(STAGE, e.where, f"refacing: {zeroed} pixel(s) zeroed in the DICOM instead "
                     "(their stored scale differs from the image's, or the series made "
                     "several images)")
    uid_map = {k: v for e in entries if not e.refused for k, v in uid_maps.get(id(e),
                                                                                 {}).items()}
    return uid_map, patid_map


def _coverage_problem(e: _Entry) -> str | None:
    """A defaced series must lose at least the share of its pixels that its image lost
    of its voxels (the same grid gives the same share; the half-voxel margin more)."""
    assert e.face is not None
    total = int(e.audit.pixels.get("total", 0))
    removed = int(e.audit.pixels.get("removed", 0))
    if total == 0 or removed < MIN_COVERAGE * e.face.removed_fraction * total:
        return ("its pixels lost less of the face than its image did (the DICOM geometry "
                "does not match the converted image)")
    return None


def _refuse_series(ctx: ParticipantContext, e: _Entry) -> None:
    """Nothing of the series is written; it goes to the quarantine with the reason."""
    for job in e.jobs:
        with contextlib.suppress(FileNotFoundError):
            job.dst.unlink()
    with contextlib.suppress(OSError):
        e.jobs[0].dst.parent.rmdir()
    assert e.refused is not None
    quarantine_series(ctx, e.series, f"pixels not defaced: {e.refused}")


def _renumber(paths: list[Path]) -> None:
    """Rename the written files of a series to 1..n without gaps (order kept)."""
    n = 0
    for path in paths:
        if not path.exists():
            continue
        n += 1
        target = path.with_name(f"{n}.dcm")
        if target != path:
            os.replace(path, target)
