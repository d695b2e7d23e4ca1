"""Stage 2: choose the output participant label and session labels (ctx.output_label, ctx.session_map). --relabel keep|sequential|random and --id-map; pseudonyms recorded in PRIVATE_DIR/linkage.tsv; original labels added to ctx.identifiers when replaced."""

from __future__ import annotations

from bidsdeid.context import ParticipantContext


def assign(ctx: ParticipantContext) -> None:
    raise NotImplementedError("bids/labels.assign is not built yet")
