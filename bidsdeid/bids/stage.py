"""Stage 1: load a participant's inputs and collect its identifiers.

Indexes the raw DICOM (headers only) and finds the BIDS NIfTI input folder. Every
header read goes through :meth:`Identifiers.add_dataset`, so the leak scan knows
every name, ID, date, UID, institution and device of the participant, whatever
file it came from. Identifiers are saved in the private state dir (the group level
rescans the whole dataset with them).
"""

from __future__ import annotations

from bidsdeid.context import ParticipantContext
from bidsdeid.dicom.index import index_participant
from bidsdeid.errors import DataError


def load_inputs(ctx: ParticipantContext) -> None:
    cfg = ctx.config
    ctx.dicom = index_participant(cfg.bids_dir, ctx.input_label,
                                  on_header=ctx.identifiers.add_dataset,
                                  sessions=cfg.session_label)
    for skipped in ctx.dicom.skipped:
        rel = skipped.path.relative_to(cfg.bids_dir) if skipped.path.is_relative_to(
            cfg.bids_dir) else skipped.path
        ctx.warn("load inputs", str(rel), f"skipped: {skipped.reason}")
    bids_root = cfg.bids_dir / f"sub-{ctx.input_label}"
    ctx.bids_root = bids_root if bids_root.is_dir() else None
    if not ctx.dicom.series and ctx.bids_root is None:
        raise DataError(f"sub-{ctx.input_label}: nothing to convert (no readable DICOM under "
                        f"sourcedata/sub-{ctx.input_label} and no sub-{ctx.input_label}/ "
                        "BIDS folder)")
    ctx.identifiers.add_label(ctx.input_label, "participant label")
    ctx.identifiers.save(cfg.state_dir / f"sub-{ctx.input_label}" / "identifiers.json")
