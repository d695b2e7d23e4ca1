"""Stage 7: stage sessions.tsv and scans.tsv (acq_time shifted by ctx.offset) and write the participants.tsv fragment to the private state dir."""

from __future__ import annotations

from bidsdeid.context import ParticipantContext


def run(ctx: ParticipantContext) -> None:
    raise NotImplementedError("bids/tables.run is not built yet")
