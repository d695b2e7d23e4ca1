"""Stage 5: deface every anatomical image of ctx.images (age-matched template, antspyx registration, rigid co-registration of the other anatomicals); safety gates; results in ctx.results['deface']; a failed gate is ctx.error(...)."""

from __future__ import annotations

from bidsdeid.context import ParticipantContext


def run(ctx: ParticipantContext) -> None:
    raise NotImplementedError("deface/stage.run is not built yet")
