"""Stage 8: per-participant QC: renders, face-visibility check (a face after defacing
is ``ctx.error``), the private before/after report, and the shareable defaced-only
report and metrics JSON staged under ``derivatives/bidsdeid/``. Runs also for a
participant that failed part-way (what is known so far, and the error).

Files written:

- ``PRIVATE_DIR/reports/sub-<input>.html``: before and after, for the reviewer.
- ``<staging>/derivatives/bidsdeid/sub-<output>.html`` and ``sub-<output>_qc.json``:
  after defacing only; published with the participant after the leak scan.
- ``PRIVATE_DIR/state/sub-<input>/qc.json``: the record the group report reads.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import Any

from bidsdeid.context import ANAT_SUFFIXES, ParticipantContext
from bidsdeid.deface.result import DefaceResult
from bidsdeid.qc import report
from bidsdeid.qc.assess import FACE_GATE, ImageInput, ImageQC, assess, face_gate
from bidsdeid.utils.atomic import dumps_json, write_json, write_text

log = logging.getLogger("bidsdeid")

STATE_FILE = "qc.json"
SKIPPED_NOTE = "not defaced (--deface-modalities none)"


def defacing_skipped(ctx: ParticipantContext) -> bool:
    mods = ctx.config.deface.modalities or []
    return [m.lower() for m in mods] == ["none"]


def defacing_expected(ctx: ParticipantContext, suffix: str) -> bool:
    """Whether the settings ask for ``suffix`` to be defaced."""
    mods = ctx.config.deface.modalities
    if not mods:
        return suffix in ANAT_SUFFIXES
    return suffix.lower() in {m.lower() for m in mods}


def plan(ctx: ParticipantContext) -> list[ImageInput]:
    """One item per anatomical image: its defacing result if there is one, else the
    image alone (not defaced, or defacing never reached it)."""
    results: list[DefaceResult] = list(ctx.results.get("deface") or [])
    items = [ImageInput(r.rel_path, r.suffix, r, r.original, r.defaced) for r in results]
    seen = {r.rel_path for r in results}
    for im in ctx.anat_images():
        if im.rel_path in seen:
            continue
        before = im.original
        if before is None:
            staged = ctx.stage_path(im.rel_path)
            before = staged if staged.is_file() else None
        items.append(ImageInput(im.rel_path, im.suffix, None, before, None))
    return items


def _assess_safely(ctx: ParticipantContext, item: ImageInput) -> ImageQC:
    try:
        return assess(item, threads=max(1, int(ctx.config.omp_nthreads or 1)))
    except Exception as exc:  # noqa: BLE001 - a broken file must not hide the others
        log.debug("QC of %s failed:\n%s", item.rel_path, traceback.format_exc())
        qc = ImageQC(item.rel_path, item.suffix,
                     item.result.role if item.result else "not defaced")
        qc.error = f"QC could not check this image ({type(exc).__name__})"
        qc.status = "error"
        return qc


def _apply_verdicts(ctx: ParticipantContext, items: list[ImageInput],
                    qcs: list[ImageQC]) -> None:
    """Face gates into the defacing results; errors and warnings into ``ctx``."""
    for item, qc in zip(items, qcs):
        res = item.result
        if res is not None:
            res.gates[:] = [g for g in res.gates if g.name != FACE_GATE]
            if qc.face is not None and item.after is not None:
                res.gates.append(face_gate(qc.face))
        if item.after is not None and qc.error and qc.face is None:
            ctx.error("qc", item.rel_path, "the defaced image could not be checked for a "
                      "visible face")
        elif qc.face is not None and qc.face.failed:
            ctx.error("qc", item.rel_path, qc.face.message)
        elif qc.face is not None and qc.face.status in ("review", "inconclusive"):
            ctx.warn("qc", item.rel_path, f"face check {qc.face.status}: {qc.face.message}")
        if (res is None and not defacing_skipped(ctx) and defacing_expected(ctx, item.suffix)
                and not ctx.failed):
            ctx.error("qc", item.rel_path, "anatomical image was not defaced")


def run(ctx: ParticipantContext) -> None:
    import cv2

    cv2.setNumThreads(max(1, int(ctx.config.omp_nthreads or 1)))
    items = plan(ctx)
    qcs: list[ImageQC] = []
    for i, item in enumerate(items, 1):
        qcs.append(_assess_safely(ctx, item))
        ctx.progress.item("QC", i, len(items))
    _apply_verdicts(ctx, items, qcs)
    write_reports(ctx, qcs)


def write_reports(ctx: ParticipantContext, qcs: list[ImageQC]) -> dict[str, Path]:
    """The private page, the shareable page and JSON (staged), and the state record."""
    cfg = ctx.config
    input_sub, output_sub = f"sub-{ctx.input_label}", ctx.sub
    notes = [SKIPPED_NOTE] if defacing_skipped(ctx) and qcs else []
    problems = [p.line() for p in ctx.problems]
    status = report.participant_status(qcs, ctx.failed)
    title = input_sub if input_sub == output_sub else f"{input_sub} (published as {output_sub})"
    private_html = report.render_participant(
        images=qcs, private=True, title=title, input_sub=input_sub, output_sub=output_sub,
        problems=problems, notes=notes, failed=ctx.failed)
    shared_html = report.render_participant(
        images=qcs, private=False, title=output_sub, input_sub=output_sub,
        output_sub=output_sub, problems=[], notes=notes, failed=ctx.failed)
    paths = {
        "private": cfg.reports_dir / f"{input_sub}.html",
        "html": ctx.stage_path(f"derivatives/bidsdeid/{output_sub}.html"),
        "json": ctx.stage_path(f"derivatives/bidsdeid/{output_sub}_qc.json"),
        "state": cfg.state_dir / input_sub / STATE_FILE,
    }
    write_text(paths["private"], private_html, perms=0o600)
    write_text(paths["html"], shared_html)
    write_text(paths["json"], dumps_json(report.shareable_metrics(qcs, output_sub, status)))
    record: dict[str, Any] = {
        "input_label": ctx.input_label, "output_label": ctx.output_label,
        "report": paths["private"].name, "status": status, "failed": ctx.failed,
        "defacing": "skipped" if defacing_skipped(ctx) else "on",
        "problems": problems, "images": [q.record() for q in qcs],
    }
    write_json(paths["state"], record, perms=0o600)
    ctx.results["qc"] = {"status": status, "images": {q.rel_path: q.status for q in qcs},
                         "reports": paths}
    return paths
