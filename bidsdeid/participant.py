"""The participant level: one participant at a time, stage by stage, fail closed.

Stages (each a function ``run(ctx)`` in its own module, so a newcomer finds its room):

0. ``bidsdeid.site.stage.prepare``          --rules: profile overrides, sidecar rules
1. ``bidsdeid.bids.stage.load_inputs``      index DICOM, find BIDS inputs, collect identifiers
2. ``bidsdeid.bids.labels.assign``          output labels (keep / sequential / random / id map)
3. ``bidsdeid.convert.stage.run``           series -> BIDS names, quarantine, dcm2niix, scrub
4. ``bidsdeid.bids.inputs.run``             BIDS NIfTI inputs: scrub and copy
5. ``bidsdeid.deface.stage.run``            deface every anatomical image, safety gates
   (then: a participant with no image left fails as bad input, exit 65)
6. ``bidsdeid.dicom.stage.run``             --dicom-out: de-identified DICOM (PS3.15 Annex E)
7. ``bidsdeid.bids.tables.run``             sessions.tsv, scans.tsv, participants fragment
8. ``bidsdeid.qc.stage.run``                reports (also when an earlier stage failed)
9. ``bidsdeid.site.stage.audit``            --rules: the rules in force, what they kept
10. ``bidsdeid.privacy.leakscan.run``       every staged byte against every identifier
11. ``bidsdeid.publish.run``                staged files -> OUTPUT_DIR (atomic), mark complete

After a participant completes (or is found complete), ``--send-to`` sends its
``--dicom-out`` files to an archive (:func:`bidsdeid.site.send.after_participant`).

Everything is staged in the private work dir first; a participant that fails any
stage or gate publishes nothing.
"""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bidsdeid.config import RunConfig
from bidsdeid.context import ParticipantContext
from bidsdeid.errors import BidsdeidError, DataError, ExitCode, is_disk_full, worst
from bidsdeid.privacy.keys import ProjectKey
from bidsdeid.progress import Progress

log = logging.getLogger("bidsdeid")


@dataclass
class ParticipantResult:
    """What happened to one participant (PHI-free: labels, stages, messages)."""

    input_label: str
    output_label: str | None
    status: str  # complete | failed | skipped (already complete)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    n_files: int = 0
    exit_code: int = 0  # what this participant's problems mean for the run (errors.worst)


Stage = tuple[str, Callable[[ParticipantContext], None]]


def _stages() -> list[Stage]:
    from bidsdeid import publish
    from bidsdeid.bids import inputs, labels, tables
    from bidsdeid.bids import stage as bids_stage
    from bidsdeid.convert import stage as convert_stage
    from bidsdeid.deface import stage as deface_stage
    from bidsdeid.dicom import stage as dicom_stage
    from bidsdeid.privacy import leakscan
    from bidsdeid.site import stage as site_stage

    return [
        ("site rules", site_stage.prepare),
        ("load inputs", bids_stage.load_inputs),
        ("assign labels", labels.assign),
        ("convert DICOM", convert_stage.run),
        ("copy BIDS inputs", inputs.run),
        ("deface", deface_stage.run),
        ("check images", _require_images),
        ("de-identify DICOM", dicom_stage.run),
        ("write tables", tables.run),
        ("QC reports", _qc_stage),
        ("site rules audit", site_stage.audit),
        ("leak scan", leakscan.run),
        ("publish", publish.run),
    ]


def _require_images(ctx: ParticipantContext) -> None:
    """A participant with nothing left to publish fails (bad input), rather than being
    published as an empty folder that looks complete."""
    if not ctx.images:
        raise DataError("nothing to publish: every series and image was left out or failed "
                        "(-v prints the decision on each series; the private audit dir has "
                        "them all)")


def _qc_stage(ctx: ParticipantContext) -> None:
    from bidsdeid.qc import stage as qc_stage

    qc_stage.run(ctx)


def make_context(config: RunConfig, key: ProjectKey, label: str,
                 progress: Progress) -> ParticipantContext:
    work = config.work_dir / f"sub-{label}"
    staging = work / "staging"
    if staging.exists():  # a previous, unfinished run: start clean (deterministic output)
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return ParticipantContext(config=config, key=key, input_label=label, output_label=label,
                              offset=key.date_offset(label), work=work, staging=staging,
                              progress=progress)


def process(config: RunConfig, key: ProjectKey, label: str,
            progress: Progress) -> ParticipantResult:
    """Run every stage for ``sub-<label>``; never raises for a participant's own problems."""
    from bidsdeid import publish

    start = time.monotonic()
    if not config.force and publish.is_complete(config, label, key.fingerprint):
        log.info("[sub-%s] already complete (use --force to redo)", label)
        return ParticipantResult(label, publish.completed_label(config, label), "skipped")
    progress.set_prefix(f"sub-{label}")
    ctx = make_context(config, key, label, progress)
    qc_done = False
    try:
        for name, fn in _stages():
            if ctx.failed and name not in ("QC reports",):
                break
            progress.stage(name)
            fn(ctx)
            if name == "QC reports":
                qc_done = True
    except BidsdeidError as exc:
        ctx.error("participant", f"sub-{label}", exc.message, exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - one participant must not stop the others
        log.debug("error in sub-%s:\n%s", label, traceback.format_exc())
        if isinstance(exc, OSError) and is_disk_full(exc):  # ENOSPC, EFBIG (ulimit -f), EDQUOT: not a bug
            ctx.error("participant", f"sub-{label}", f"cannot write ({exc.strerror}); "
                      "free space or raise the limit, then rerun", ExitCode.CANT_CREATE)
        else:
            ctx.error("participant", f"sub-{label}",
                      f"internal error ({type(exc).__name__}); details in the log")
    finally:
        if not qc_done:
            try:
                _qc_stage(ctx)  # reports are written even when a participant fails
            except Exception:  # noqa: BLE001
                log.debug("QC after failure also failed:\n%s", traceback.format_exc())
        progress.set_prefix("")
    status = "failed" if ctx.failed else "complete"
    if status == "failed":
        publish.record_failure(ctx)
    return ParticipantResult(label, ctx.output_label, status,
                             [p.line() for p in ctx.problems],
                             round(time.monotonic() - start, 1),
                             len(ctx.results.get("published", [])),
                             worst(p.code for p in ctx.problems))


def run(config: RunConfig, key: ProjectKey, labels: list[str],
        progress: Progress) -> list[ParticipantResult]:
    """Process participants one after another (one SLURM task runs one of them)."""
    results = []
    for i, label in enumerate(labels, 1):
        log.info("participant %d/%d: sub-%s", i, len(labels), label)
        result = process(config, key, label, progress)
        if config.send_to:
            from bidsdeid.site import send

            send.after_participant(config, result)
        results.append(result)
    if any(r.status == "skipped" for r in results):
        from bidsdeid.bids import dataset

        # a run killed after a participant's marker but before the dataset files were
        # rebuilt left them without it; the rerun skips the participant, so rebuild here
        dataset.update_shared_files(config)
    return results


def work_dir_of(config: RunConfig, label: str) -> Path:
    return config.work_dir / f"sub-{label}"
