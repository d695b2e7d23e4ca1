"""Stage 6 (--dicom-out): de-identify every DICOM file by PS3.15 Annex E and stage it
under ``sourcedata/sub-<label>[/ses-<label>]/<series number>/<n>.dcm``."""

from __future__ import annotations

from bidsdeid.context import ParticipantContext
from bidsdeid.errors import NotImplementedOption


def run(ctx: ParticipantContext) -> None:
    if not ctx.config.dicom_out:
        return
    raise NotImplementedOption("--dicom-out")
