"""Stage 5: deface every anatomical image of ``ctx.images``.

Age-matched template (``bidsdeid.bids.age``), antspyx registration to the anchor
image, rigid co-registration of the other anatomicals, safety gates. Appends a
:class:`bidsdeid.deface.result.DefaceResult` per image to ``ctx.results["deface"]``;
a failed gate is ``ctx.error(...)``. ``--deface-modalities none`` skips defacing
(a warning in the report).
"""

from __future__ import annotations

from bidsdeid.context import ParticipantContext


def run(ctx: ParticipantContext) -> None:
    mods = ctx.config.deface.modalities
    if mods and [m.lower() for m in mods] == ["none"]:
        if ctx.anat_images():
            ctx.warn("deface", ctx.sub, "defacing skipped (--deface-modalities none): "
                     "anatomical images are published with their faces")
        return
    if not ctx.anat_images():
        return
    raise NotImplementedError("deface.stage.run is not built yet")
