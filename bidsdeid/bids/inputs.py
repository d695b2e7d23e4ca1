"""Stage 4: BIDS NIfTI inputs (read with pybids): scrub sidecars and NIfTI header text, relabel, stage copies under ctx.staging, append BidsImage entries to ctx.images."""

from __future__ import annotations

from bidsdeid.context import ParticipantContext


def run(ctx: ParticipantContext) -> None:
    raise NotImplementedError("bids/inputs.run is not built yet")
