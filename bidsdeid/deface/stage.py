"""Stage 5: deface every anatomical image of ``ctx.images``.

Per session: the age (``bidsdeid.bids.age.resolve``: --age-months, sessions.tsv,
participants.tsv, DICOM header), the anchor and an age-matched template
(:mod:`bidsdeid.deface.registry`), registration and masks (:mod:`.session`), gates
(:mod:`.gates`). For each image:

* the un-defaced copy goes to the private work dir (``im.original``);
* the staged image is overwritten with the defaced one (same header bytes, gzip mtime 0);
* the deface mask is written as a derivative under ``ctx.staging``, as
  ``derivatives/bidsdeid/sub-<p>/[ses-<s>/]anat/`` +
  ``<source entities>_space-<suffix>_desc-deface_mask.nii.gz`` (+ a JSON sidecar).
  ``space-<suffix>`` names the grid of the source image (the T1w and the T2w of a
  session have different grids, so their masks can never share a name); all other
  entities of the source (acq, rec, run, echo, part, inv...) are kept;
* a :class:`bidsdeid.deface.result.DefaceResult` goes to ``ctx.results["deface"]``.

A failed gate is ``ctx.error``; the staged image is then deleted (the participant is not
published, and nothing un-defaced stays in staging). ``--deface-modalities none`` skips
defacing with a warning.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsdeid.bids import age as age_mod
from bidsdeid.bids.staging import sidecar_rel
from bidsdeid.context import BidsImage, ParticipantContext
from bidsdeid.deface import library, registry
from bidsdeid.deface.nifti_io import write_mask
from bidsdeid.deface.result import DefaceResult
from bidsdeid.deface.session import (
    ImageOutcome,
    SessionImage,
    choose_anchor,
    deface_session,
    load_image,
)
from bidsdeid.errors import BidsdeidError, ExitCode
from bidsdeid.utils.atomic import copy_file, write_json

log = logging.getLogger("bidsdeid")
STAGE = "deface"


def mask_derivative_path(im: BidsImage) -> str:
    """OUTPUT_DIR-relative path of the deface mask of ``im`` (see the module docstring)."""
    ents = [f"{k}-{v}" for k, v in im.entities.items() if k not in ("space", "desc")]
    folder = Path(im.rel_path).parent
    name = "_".join([*ents, f"space-{im.suffix}", "desc-deface", "mask"]) + ".nii.gz"
    return str(Path("derivatives", "bidsdeid", folder, name))


def _selected(ctx: ParticipantContext) -> tuple[list[BidsImage], list[BidsImage]]:
    mods = ctx.config.deface.modalities
    anat = ctx.anat_images()
    if not mods:
        return anat, []
    wanted = {m.lower() for m in mods}
    return ([im for im in anat if im.suffix.lower() in wanted],
            [im for im in anat if im.suffix.lower() not in wanted])


def _input_session(ctx: ParticipantContext, out_session: str | None) -> str | None:
    for inp, out in ctx.session_map.items():
        if out == out_session:
            return inp
    return out_session


def _age(ctx: ParticipantContext, out_session: str | None) -> age_mod.Age:
    in_session = _input_session(ctx, out_session)
    header = None
    if ctx.dicom is not None:
        series = ctx.dicom.by_session(in_session) or ctx.dicom.series
        header = series[0].header if series else None
    return age_mod.resolve(ctx.config.bids_dir, ctx.input_label, in_session,
                           age_months_option=ctx.config.deface.age_months,
                           dicom_header=header)


def _work_paths(ctx: ParticipantContext, rel: str) -> dict[str, Path]:
    base = ctx.work / "deface" / rel
    stem = base.name.split(".nii")[0]
    return {k: base.with_name(f"{stem}_{k}.nii.gz")
            for k in ("original", "removed", "brain", "template")}


def run(ctx: ParticipantContext) -> None:
    mods = ctx.config.deface.modalities
    if mods and [m.lower() for m in mods] == ["none"]:
        if ctx.anat_images():
            ctx.warn(STAGE, ctx.sub, "defacing skipped (--deface-modalities none): "
                     "anatomical images are published with their faces")
        return
    selected, skipped = _selected(ctx)
    selected = [im for im in selected if not _leave_out_flat(ctx, im)]
    results: list[DefaceResult] = ctx.results.setdefault("deface", [])
    for im in skipped:
        ctx.warn(STAGE, im.rel_path, "not defaced (--deface-modalities): published with "
                 "its face")
        results.append(DefaceResult(im.rel_path, im.suffix, "not defaced",
                                    ctx.stage_path(im.rel_path), None, None, None, None))
    if not selected:
        return
    by_session: dict[str | None, list[BidsImage]] = defaultdict(list)
    for im in sorted(selected, key=lambda i: i.rel_path):
        by_session[im.session].append(im)
    for session in sorted(by_session, key=lambda s: (s is not None, s or "")):
        _run_session(ctx, by_session[session], session, results)


def _leave_out_flat(ctx: ParticipantContext, im: BidsImage) -> bool:
    """A 2D image (one slice) cannot be registered nor defaced, so it cannot be
    published safely: it is left out (bad input, exit 65) and the others go on."""
    staged = ctx.stage_path(im.rel_path)
    shape = tuple(nib.load(str(staged)).shape)
    if len(shape) >= 3 and min(shape[:3]) >= 2:
        return False
    ctx.warn(STAGE, im.rel_path, "left out: a 2D image (shape "
             f"{'x'.join(map(str, shape))}) cannot be defaced", ExitCode.DATA)
    for rel in (im.rel_path, sidecar_rel(im.rel_path), *im.extra_files):
        with contextlib.suppress(FileNotFoundError):
            ctx.stage_path(rel).unlink()
    ctx.images.remove(im)
    return True


def _run_session(ctx: ParticipantContext, images: list[BidsImage], session: str | None,
                 results: list[DefaceResult]) -> None:
    opts = ctx.config.deface
    age = _age(ctx, session)
    age_source = age.source if age.months is not None else "none (adult assumed)"
    by_rel = {im.rel_path: im for im in images}
    try:
        for im in images:  # the private un-defaced copy, before anything changes
            work = _work_paths(ctx, im.rel_path)
            copy_file(ctx.stage_path(im.rel_path), work["original"], perms=0o600)
            im.original = work["original"]
        loaded = [load_image(im.rel_path, im.suffix, ctx.stage_path(im.rel_path))
                  for im in images]
        anchor, contrast = choose_anchor(loaded, age.months)
        families = registry.load_registry(opts.template_registry)
        choice = registry.select(families, age.months, contrast, opts.template)
        log.info("[%s] deface: template %s (%s, %s) -> anchor %s", ctx.sub, choice.id,
                 contrast, choice.reason, anchor.rel_path)
        tpl = library.load(choice, sloppy=opts.sloppy)
        outcomes = deface_session(loaded, tpl, anchor, sloppy=opts.sloppy,
                                  remove_ears=opts.remove_ears, method=opts.method)
    except BidsdeidError as exc:
        _fail_all(ctx, images, results, exc.message, age.months, age_source)
        return
    except Exception as exc:
        log.debug("deface failed", exc_info=True)
        _fail_all(ctx, images, results, f"defacing failed ({type(exc).__name__}: {exc})",
                  age.months, age_source)
        return
    for out in outcomes:
        im = by_rel[out.image.rel_path]
        results.append(_write(ctx, im, out, choice.id, tpl.contrast, anchor,
                              age.months, age_source, tpl.face_source))


def _write(ctx: ParticipantContext, im: BidsImage, out: ImageOutcome, template_id: str,
           contrast: str, anchor: SessionImage, age_months: float | None, age_source: str,
           face_source: str) -> DefaceResult:
    work = _work_paths(ctx, im.rel_path)
    nifti = out.image.nifti
    staged = ctx.stage_path(im.rel_path)
    for key, arr in (("removed", out.removed), ("brain", out.brain)):
        _save_private(work[key], arr.astype(np.uint8), nifti.affine)
    _save_private(work["template"], out.template.astype(np.float32), nifti.affine)
    res = DefaceResult(
        rel_path=im.rel_path, suffix=im.suffix, role=out.role, original=work["original"],
        defaced=None, removed_mask=work["removed"], brain_mask=work["brain"],
        template_warped=work["template"], template=template_id, template_contrast=contrast,
        anchor=None if out.role == "anchor" else anchor.rel_path, age_months=age_months,
        age_source=age_source, metrics=dict(out.metrics), gates=list(out.gates))
    res.metrics["face_mask_derived"] = 0.0 if face_source == "shipped" else 1.0
    if not out.passed:
        reasons = "; ".join(f"{g.name}: {g.message or 'failed'}" for g in out.gates
                            if not g.passed)
        res.error = reasons
        ctx.error(STAGE, im.rel_path, f"safety gate failed ({reasons}); not published")
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()
        return res
    nifti.write(staged, out.defaced)
    deriv = mask_derivative_path(im)
    write_mask(ctx.stage_path(deriv), out.removed, nifti)
    write_json(ctx.stage_path(deriv.replace(".nii.gz", ".json")), {
        "Description": "voxels removed by defacing (1 = removed)",
        "Sources": [f"bids::{im.rel_path}"],
        "Template": template_id,
        "TemplateContrast": contrast,
        "Method": ctx.config.deface.method + (" + ears" if ctx.config.deface.remove_ears
                                              else ""),
    })
    res.defaced = staged
    res.mask_derivative = deriv
    return res


def _save_private(path: Path, arr: np.ndarray, affine: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    img = nib.Nifti1Image(arr, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))


def _fail_all(ctx: ParticipantContext, images: list[BidsImage], results: list[DefaceResult],
              message: str, age_months: float | None, age_source: str) -> None:
    """Fail closed: every image of the session is an error and leaves staging."""
    for im in images:
        ctx.error(STAGE, im.rel_path, message)
        original = im.original if im.original is not None else ctx.stage_path(im.rel_path)
        with contextlib.suppress(FileNotFoundError):
            ctx.stage_path(im.rel_path).unlink()
        results.append(DefaceResult(im.rel_path, im.suffix, "not defaced", original, None,
                                    None, None, None, age_months=age_months,
                                    age_source=age_source, error=message))
