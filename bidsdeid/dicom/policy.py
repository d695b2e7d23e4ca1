"""Which series ``--dicom-out`` writes, and with which pixels (the publication policy).

The DICOM copy publishes nothing the BIDS output does not: same series, same faces.

* A series is written only if the convert stage made at least one BIDS image of it in
  this run (``ctx.results["series_outputs"]``: series UID -> OUTPUT_DIR-relative image
  paths). Series left out of the conversion (localizers and scouts, derived maps,
  reports, unclear series, mapping-file exclusions, images the BIDS filter dropped,
  failed conversions) are not written: the stage records a PHI-free line in the
  audit and warns with the series number.
* A series whose images are all non-anatomical is written with its pixels unchanged
  (streamed from the source: the fast path).
* A series with an anatomical image (``anat`` datatype) that was defaced is written
  with defaced pixels: the removed region of every defaced image of the series
  (``ctx.results["deface"]``), see :mod:`bidsdeid.dicom.pixels`.
* An anatomical series whose image the user chose not to deface
  (``--deface-modalities none``, or a list that leaves its suffix out) is written as
  it is, with a warning, exactly like its NIfTI.
* Anything else (an anatomical image with no defacing record, or whose defacing
  failed) is not written: fail closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bidsdeid.context import ParticipantContext
from bidsdeid.deface.result import DefaceResult
from bidsdeid.dicom.index import DicomSeries

SERIES_OUTPUTS = "series_outputs"
"""``ctx.results`` key (filled by the convert stage): series UID -> image rel paths."""

UNCHANGED = "unchanged"  # no anatomical image: pixels streamed from the source
DEFACED = "defaced"  # anatomical and defaced: the removed region is removed here too
NOT_DEFACED = "not defaced (by request)"  # anatomical, defacing turned off for it


@dataclass
class SeriesPolicy:
    """What the DICOM stage does with one (non-quarantined) series."""

    write: bool
    pixels: str  # UNCHANGED | DEFACED | NOT_DEFACED ("" when not written)
    reason: str  # PHI-free: why it is left out, or what happens to its pixels
    outputs: list[str] = field(default_factory=list)  # its BIDS images
    defaced: list[DefaceResult] = field(default_factory=list)  # their defacing


def _is_anat(ctx: ParticipantContext, rel: str) -> bool:
    for im in ctx.images:
        if im.rel_path == rel:
            return im.is_anat
    return "/anat/" in f"/{rel}"  # not in ctx.images: judge by the folder (fail closed)


def _defacing_off(ctx: ParticipantContext) -> bool:
    mods = ctx.config.deface.modalities
    return bool(mods) and [m.lower() for m in mods or []] == ["none"]


def decide(ctx: ParticipantContext, series: DicomSeries) -> SeriesPolicy:
    """The policy for ``series`` (see the module docstring)."""
    outputs: list[str] = list((ctx.results.get(SERIES_OUTPUTS) or {}).get(series.series_uid,
                                                                           []))
    session = ctx.out_session(series.session)
    if session:  # a series UID copied into two sessions: only this session's images
        outputs = [rel for rel in outputs if f"/ses-{session}/" in f"/{rel}"]
    if not outputs:
        return SeriesPolicy(False, "", "no BIDS image was made of it in this run")
    anat = [rel for rel in outputs if _is_anat(ctx, rel)]
    if not anat:
        return SeriesPolicy(True, UNCHANGED, "no anatomical image: pixels unchanged",
                            outputs)
    records = {r.rel_path: r for r in ctx.results.get("deface") or []}
    defaced: list[DefaceResult] = []
    by_request: list[str] = []
    for rel in anat:
        res = records.get(rel)
        if res is None:
            if _defacing_off(ctx):
                by_request.append(rel)
                continue
            return SeriesPolicy(False, "", "its anatomical image has no defacing record",
                                outputs)
        if res.error is not None or not res.passed:
            return SeriesPolicy(False, "", "the defacing of its anatomical image failed",
                                outputs)
        if res.removed_mask is not None and res.defaced is not None:
            defaced.append(res)
        elif res.role == "not defaced":
            by_request.append(rel)
        else:
            return SeriesPolicy(False, "", "its anatomical image has no removed region",
                                outputs)
    if defaced:
        return SeriesPolicy(True, DEFACED, "anatomical: pixels defaced like its image",
                            outputs, defaced)
    return SeriesPolicy(True, NOT_DEFACED, "anatomical, not defaced (--deface-modalities): "
                        "written with its face, like its image", outputs)
