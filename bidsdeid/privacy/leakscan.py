"""Stage 9: scan every staged byte (NIfTI headers, gzip content, DICOM, JSON, TSV, HTML, paths) for every token of ctx.identifiers; a hit is ctx.error naming the file and the kind of identifier (never the value)."""

from __future__ import annotations

from bidsdeid.context import ParticipantContext


def run(ctx: ParticipantContext) -> None:
    raise NotImplementedError("privacy/leakscan.run is not built yet")
