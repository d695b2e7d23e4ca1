"""Stage 6 (--dicom-out): de-identify every DICOM file by PS3.15 Annex E and stage it under sourcedata/sub-<label>[/ses-<label>]/<series number>/<n>.dcm."""

from __future__ import annotations

from bidsdeid.context import ParticipantContext


def run(ctx: ParticipantContext) -> None:
    raise NotImplementedError("dicom/stage.run is not built yet")
