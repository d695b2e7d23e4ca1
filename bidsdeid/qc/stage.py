"""Stage 8: per-participant QC: renders, face-visibility check (a face after defacing
is ``ctx.error``), the private before/after report, and the shareable defaced-only
report and metrics JSON staged under ``derivatives/bidsdeid/``. Runs also for a
participant that failed part-way (what is known so far, and the error)."""

from __future__ import annotations

from bidsdeid.context import ParticipantContext


def run(ctx: ParticipantContext) -> None:
    ctx.warn("qc", ctx.sub, "QC reports are not built in this version")
