"""Stage 6 (--dicom-out): de-identify every DICOM file by PS3.15 Annex E and stage it
under ``sourcedata/sub-<label>[/ses-<label>]/<series number>/<n>.dcm``.

* Series that must not be shared (:mod:`bidsdeid.dicom.quarantine`) are skipped, and
  quarantined if the convert stage has not done so already; a single refused file
  inside a shared series is quarantined on its own and the others renumbered.
* Files are numbered 1.. in instance order; names carry nothing from the input.
* One file at a time per process, ``--nprocs`` processes (:mod:`bidsdeid.dicom.worker`).
* SeriesDescription and ProtocolName become the series' BIDS name when the convert
  stage recorded one in ``ctx.results["series_names"]`` (series UID -> name).
* ``PRIVATE_DIR/uid_mapping.csv`` and ``patid_mapping.csv`` get this participant's
  rows (merged under a lock); ``PRIVATE_DIR/audit/sub-<label>/dicom/`` one audit per
  series. Every file passes the self-check before it is written; an identifier found
  fails the participant (:class:`~bidsdeid.errors.LeakError`).
* A later stage (a site rules file) can override the profile per attribute through
  ``ctx.results[OVERRIDES]``; nothing else in the engine changes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bidsdeid.context import ParticipantContext
from bidsdeid.dicom.audit import SeriesAudit, profile_settings
from bidsdeid.dicom.deidentify import Deidentifier
from bidsdeid.dicom.index import DicomSeries
from bidsdeid.dicom.layout import audit_name, series_dirnames, series_key
from bidsdeid.dicom.mappings import PATID_MAPPING, UID_MAPPING, merge_mapping
from bidsdeid.dicom.profile import Profile
from bidsdeid.dicom.quarantine import (
    quarantine_files,
    quarantine_reason,
    quarantine_series,
    quarantined,
)
from bidsdeid.dicom.worker import Job, JobResult, WorkerSettings, run_jobs
from bidsdeid.errors import DataError, LeakError

STAGE = "de-identify DICOM"


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


def run(ctx: ParticipantContext) -> None:
    if not ctx.config.dicom_out or ctx.dicom is None or not ctx.dicom.series:
        return
    dirnames = series_dirnames(ctx.dicom)
    done = quarantined(ctx)
    plan: list[tuple[DicomSeries, str, SeriesAudit]] = []
    jobs: list[Job] = []
    owners: list[tuple[int, int]] = []  # job index -> (plan index, file index)
    for series in ctx.dicom.series:
        reason = done.get(series.series_uid) or quarantine_reason(series.header)
        if reason:
            quarantine_series(ctx, series, reason)
            continue
        dirname = dirnames[series_key(series)]
        out = _out_dir(ctx, series, dirname)
        audit = SeriesAudit(series=dirname, session=series.session, output=out)
        plan.append((series, dirname, audit))
        descriptors = _descriptors(ctx, series)
        for i, f in enumerate(series.files):
            jobs.append(Job(len(jobs), f.path, ctx.stage_path(f"{out}/{i + 1}.dcm"),
                            f"series {dirname} file {i + 1}", descriptors))
            owners.append((len(plan) - 1, i))
    if not jobs:
        return
    allowed = sorted({v for s, _d, _a in plan for v in _descriptors(ctx, s).values()})
    settings = worker_settings(ctx, allowed)
    results = _run_all(ctx, settings, jobs)
    uid_map, patid_map = _collect(ctx, plan, jobs, owners, results)
    private = ctx.config.private_dir
    merge_mapping(private / UID_MAPPING, uid_map)
    merge_mapping(private / PATID_MAPPING, patid_map)
    deid = Deidentifier(Profile(ctx.config.deid, settings.overrides, settings.private_overrides),
                        ctx.key, ctx.offset, ctx.output_label)
    summary = profile_settings(deid.method_codes(), deid.profile.columns, ctx.key.fingerprint)
    written: dict[str, Any] = {}
    for series, dirname, audit in plan:
        audit.write(ctx.audit_dir / "dicom", audit_name(series, dirname), summary)
        written[audit.output] = audit.files
    ctx.results["dicom_out"] = {"series": written, "files": sum(written.values())}


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


def _collect(ctx: ParticipantContext, plan: list[tuple[DicomSeries, str, SeriesAudit]],
             jobs: list[Job], owners: list[tuple[int, int]],
             results: list[JobResult]) -> tuple[dict[str, str], dict[str, str]]:
    """Merge reports into audits and maps; quarantine refused files, close the gaps."""
    uid_map: dict[str, str] = {}
    patid_map: dict[str, str] = {}
    refused: dict[int, list[tuple[int, str]]] = {}
    for result in results:
        report = result.report
        assert report is not None
        p, i = owners[result.index]
        if report.refused:
            refused.setdefault(p, []).append((i, report.refused))
            continue
        plan[p][2].add(report.engine, report.actions)
        uid_map.update(report.uid_map)
        if report.patient_id:
            patid_map[report.patient_id] = ctx.output_label
    by_plan: dict[int, list[Job]] = {}
    for job, (p, _i) in zip(jobs, owners):
        by_plan.setdefault(p, []).append(job)
    for p, files in refused.items():
        series, dirname, audit = plan[p]
        for i, reason in files:
            quarantine_files(ctx, series, [i], reason)
            audit.refused.append((i + 1, reason))
            ctx.warn("quarantine", f"series {dirname} file {i + 1}", f"not shared: {reason}")
        _renumber([j.dst for j in by_plan[p]])
    return uid_map, patid_map


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
