"""Stage 3: map DICOM series to BIDS names (heuristic + --mapping-file), quarantine refused objects, run dcm2niix on the original DICOM in ctx.work, scrub sidecars and NIfTI headers, stage images under ctx.staging and append BidsImage entries to ctx.images."""

from __future__ import annotations

from bidsdeid.context import ParticipantContext


def run(ctx: ParticipantContext) -> None:
    raise NotImplementedError("convert/stage.run is not built yet")
