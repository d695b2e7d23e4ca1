"""Stage 8: per-participant QC: renders, face-visibility check (a face after defacing is ctx.error), private before/after report, shareable defaced-only report and metrics JSON staged under derivatives/bidsdeid/. Must work on a participant that failed part-way."""

from __future__ import annotations

from bidsdeid.context import ParticipantContext


def run(ctx: ParticipantContext) -> None:
    raise NotImplementedError("qc/stage.run is not built yet")
