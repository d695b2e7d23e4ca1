"""Stage 3: DICOM series -> scrubbed BIDS images under ``ctx.staging``.

1. decide every series (:mod:`bidsdeid.convert.plan`: quarantine, heuristic, mapping);
2. leave out series whose slices cannot make a correct image (:mod:`.geometry`), then
   run dcm2niix on the original files of each series to convert, in parallel
   (``--nprocs``), in the private work dir; a failure is an error for that series and
   the others go on;
3. name the images (:mod:`bidsdeid.convert.naming`), leave out series that would
   publish a face outside ``anat/`` (:mod:`bidsdeid.bids.exposure`), drop those the
   ``--bids-filter-file`` does not select, check the names hold no identifier;
4. scrub the sidecars (:mod:`bidsdeid.bids.sidecar`), check the fields BIDS requires,
   and stage NIfTI (header text cleared, gzip mtime 0), JSON, bval/bvec, aslcontext;
5. append a :class:`BidsImage` per image to ``ctx.images`` and record, for the
   DICOM writer, ``ctx.results["series_names"]`` (series UID -> ``task-rest_bold``-like
   name) and ``ctx.results["series_outputs"]`` (series UID -> the OUTPUT_DIR-relative
   paths of the images staged from it; only these series are written by
   ``--dicom-out``, see :mod:`bidsdeid.dicom.policy`).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bidsdeid.bids import exposure, filters, names, schema, sidecar, staging
from bidsdeid.context import BidsImage, ParticipantContext
from bidsdeid.convert import asl, dcm2niix, geometry
from bidsdeid.convert.facts import facts_of
from bidsdeid.convert.heuristic import Decision
from bidsdeid.convert.naming import Named, number_repeats, roles, short_name
from bidsdeid.convert.plan import Plan, decide, log_decisions, write_table
from bidsdeid.errors import ExitCode
from bidsdeid.privacy.leakscan import Matcher, skipped_kinds
from bidsdeid.utils.atomic import write_json

STAGE = "convert"
_FROM_DESCRIPTION = ("task", "acq", "dir")


def _asl_without_context(ctx: ParticipantContext, plans: list[Plan]) -> None:
    """ASL series whose volume types are recorded nowhere are left out before converting."""
    for p in plans:
        d = p.decision
        if d.converts and d.suffix == "asl" and d.aslcontext is None and not p.facts.asl_contexts:
            why = asl.context(d, p.facts, p.facts.n_volumes)
            if isinstance(why, str):
                ctx.warn(STAGE, p.where, f"left out: {why}")
                p.notes.append(f"left out: {why}")
                p.decision = Decision("exclude", f"arterial spin labelling: {why}",
                                      source=d.source)


def _broken_geometry(ctx: ParticipantContext, plans: list[Plan]) -> None:
    """Series whose slices cannot make a correct image (a missing slice, two
    orientations) are left out before converting: dcm2niix would make a wrong image of
    them and exit 0 (:mod:`bidsdeid.convert.geometry`). Bad input: exit code 65."""
    collected = ctx.results.get("dicom_facts", {})
    for p in plans:
        if not p.decision.converts:
            continue
        facts = [ff for ff in (facts_of(f, collected) for f in p.series.files) if ff]
        why = geometry.problem(facts)
        if why:
            ctx.warn(STAGE, p.where, f"left out: {why}", ExitCode.DATA)
            p.notes.append(f"left out: {why}")
            p.decision = Decision("exclude", f"slice geometry: {why}", source=p.decision.source)


def _convert_all(ctx: ParticipantContext, plans: list[Plan]) -> None:
    todo = [p for p in plans if p.decision.converts]

    def one(item: tuple[int, Plan]) -> None:
        i, p = item
        p.conversion = dcm2niix.convert(p.series, ctx.work / "dcm2niix" / f"{i:04d}",
                                        p.facts.n_frames,
                                        mosaic="MOSAIC" in p.facts.image_types)

    with ThreadPoolExecutor(max_workers=max(ctx.config.nprocs, 1)) as pool:
        for done, _ in enumerate(pool.map(one, enumerate(todo)), 1):
            ctx.progress.item("series converted", done, len(todo))


def _named(ctx: ParticipantContext, plans: list[Plan]) -> list[Named]:
    items: list[Named] = []
    for p in plans:
        conv = p.conversion
        if conv is None:
            continue
        for w in conv.warnings:
            ctx.warn(STAGE, p.where, w)
            p.notes.append(w)
        if not conv.ok:
            ctx.error(STAGE, p.where, f"{conv.failure} (its log: dcm2niix/{conv.workdir.name} "
                      "in the work dir; a --mapping-file 'exclude' rule leaves it out)")
            p.notes.append(conv.failure or "failed")
            continue
        assigned = roles(p.decision, conv.outputs)
        if isinstance(assigned, str):
            ctx.warn(STAGE, p.where, f"left out: {assigned}")
            p.notes.append(f"left out: {assigned}")
            continue
        for output, suffix, extra in assigned:
            assert p.decision.datatype is not None
            items.append(Named(output, p.decision.datatype, suffix,
                               {**p.decision.entities, **extra}, p.series.series_number,
                               p.series.session, p.facts, p.decision, origin=p))
    return items


def _unexposed(ctx: ParticipantContext, items: list[Named]) -> list[Named]:
    """Leave out every image of a series that would publish a face without defacing (a
    high-resolution, non-EPI head named as anything but anatomical:
    :mod:`bidsdeid.bids.exposure`); bad input, exit 65."""
    exposed: dict[int, str] = {}
    for n in items:
        why = exposure.face_exposed(n.output.nii, n.datatype, echo_planar=n.facts.echo_planar)
        if why and id(n.origin) not in exposed:
            exposed[id(n.origin)] = why
            msg = (f"left out: {why} (a --mapping-file rule to an anatomical suffix has "
                   "it defaced)")
            ctx.warn(STAGE, n.origin.where, msg, ExitCode.DATA)
            n.origin.notes.append(msg)
    return [n for n in items if id(n.origin) not in exposed]


def _hides_identifier(ctx: ParticipantContext, entities: dict[str, str]) -> bool:
    """True if a label taken from a description contains a name, ID or label of the
    participant even inside a word (``task-johnsmith``): stricter than the token match."""
    labels = [entities[k] for k in _FROM_DESCRIPTION if entities.get(k)]
    return ctx.identifiers.hidden_in_labels(labels, least_name=3) is not None


def _in_path(matcher: Matcher, name: str) -> bool:
    """Whether a file name would hold an identifier, as the leak scan searches paths
    (dates inside labels included)."""
    return next(matcher.finditer_path(name), None) is not None


def _safe_names(ctx: ParticipantContext, items: list[Named], matcher: Matcher) -> list[Named]:
    """Names must hold no identifier: labels taken from descriptions are neutralised."""
    kept = []
    for n in items:
        text = names.build_name(n.entities, n.suffix, "")
        if _in_path(matcher, text) or _hides_identifier(ctx, n.entities):
            for key in _FROM_DESCRIPTION:
                if key in n.entities:
                    n.entities[key] = "unknown" if key in ("task", "dir") else ""
            n.entities = {k: v for k, v in n.entities.items() if v}
            msg = "a label taken from the description matched an identifier: replaced"
            ctx.warn(STAGE, n.origin.where, msg)
            if _in_path(matcher, names.build_name(n.entities, n.suffix, "")):
                ctx.warn(STAGE, n.origin.where, "left out: its name holds an identifier")
                continue
        n.entities, _dropped = names.fit_entities(n.datatype, n.suffix, n.entities)
        kept.append(n)
    return kept


def _sidecar(ctx: ParticipantContext, n: Named, matcher: Matcher) -> tuple[dict[str, Any],
                                                                            str | None]:
    """The scrubbed sidecar of one image, or the reason it cannot be published."""
    raw: dict[str, Any] = dict(n.output.sidecar)
    raw.update(n.decision.metadata)
    if n.suffix in ("bold", "sbref") and "task" in n.entities:
        raw["TaskName"] = n.entities["task"]
    if n.suffix == "asl":
        types = asl.context(n.decision, n.facts, n.output.volumes)
        if isinstance(types, str):
            return {}, types
        n.extra["aslcontext"] = types
        raw.update({k: v for k, v in asl.metadata(n.facts, raw, types).items() if k not in raw})
    raw.update(n.extra.get("sidecar", {}))
    clean = sidecar.scrub(raw, matcher.first, ctx.config.deid,
                          ctx.results.get(sidecar.FIELD_RULES))
    n.extra["dropped"] = clean.dropped
    kept = clean.kept
    kept.update(sidecar.deid_fields(ctx.config.deid, defaced=False))
    missing = schema.required_fields(n.datatype, n.suffix, kept, n.entities)
    if n.suffix == "bold" and "RepetitionTime" in kept and "VolumeTiming" in missing:
        missing.remove("VolumeTiming")
    missing = [m for m in missing if m != "IntendedFor"]
    if missing:
        return {}, (f"BIDS requires {', '.join(missing)}, which the DICOM does not record "
                    "(add them as 'metadata' in --mapping-file)")
    return kept, None


def _intended_for(images: list[BidsImage]) -> None:
    """Field maps point at the EPI images of their session, a separate M0 scan at the
    ASL images of its session (BIDS URIs)."""
    for fm in images:
        wanted: tuple[str, ...]
        if fm.datatype == "fmap":
            wanted = ("bold", "dwi", "asl", "sbref")
        elif fm.suffix == "m0scan":
            wanted = ("asl",)
        else:
            continue
        targets = sorted(f"bids::{im.rel_path}" for im in images
                         if im.session == fm.session and im.suffix in wanted
                         and im.datatype in ("func", "dwi", "perf"))
        if targets:
            fm.sidecar["IntendedFor"] = targets


def _dwi_tables(n: Named) -> str | None:
    """Why a dwi image cannot be published (no usable bval/bvec), or None."""
    if n.suffix != "dwi":
        return None
    for ext in ("bval", "bvec"):
        src = getattr(n.output, ext)
        if src is None or not staging.numbers_only(src):
            return "dcm2niix wrote no usable bval/bvec (the gradient table is not in the DICOM)"
    return None


def run(ctx: ParticipantContext) -> None:
    if ctx.dicom is None or not ctx.dicom.series:
        return
    t0 = time.monotonic()
    plans = decide(ctx)
    matcher = Matcher(ctx.identifiers, skipped_kinds(ctx.config))
    log_decisions(ctx, plans, matcher.first)
    t1 = time.monotonic()
    _asl_without_context(ctx, plans)
    _broken_geometry(ctx, plans)
    _convert_all(ctx, plans)
    t2 = time.monotonic()
    items = _safe_names(ctx, _unexposed(ctx, _named(ctx, plans)), matcher)
    by_session: dict[str | None, list[Named]] = {}
    for n in items:
        by_session.setdefault(n.session, []).append(n)
    for group in by_session.values():
        number_repeats(group)
    images: list[tuple[BidsImage, Named]] = []
    for n in items:
        plan: Plan = n.origin
        out_ses = ctx.out_session(n.session)
        entities = {"sub": ctx.output_label, **({"ses": out_ses} if out_ses else {}),
                    **n.entities}
        if not filters.keep(ctx.config.bids_filters, n.datatype, n.suffix, entities):
            plan.notes.append("not selected by --bids-filter-file")
            continue
        side, problem = _sidecar(ctx, n, matcher)
        problem = problem or _dwi_tables(n)
        if problem:
            ctx.warn(STAGE, plan.where, f"left out: {problem}")
            plan.notes.append(f"left out: {problem}")
            continue
        rel = names.rel_path(entities, n.datatype, n.suffix, ".nii.gz")
        image = BidsImage(rel_path=rel, datatype=n.datatype, suffix=n.suffix,
                          entities=dict(names.ordered(entities)), session=out_ses,
                          source=f"dicom {plan.where}", sidecar=side,
                          acq_time=n.facts.acq_datetime, original=n.output.nii)
        images.append((image, n))
    _intended_for([im for im, _n in images])
    _stage(ctx, images)
    write_table(ctx, plans)
    write_json(ctx.audit_dir / "sidecars_dropped.json",
               {im.rel_path: n.extra.get("dropped", {}) for im, n in images}, perms=0o600)
    write_json(ctx.audit_dir / "timing_convert.json", {
        "decide_s": round(t1 - t0, 3), "dcm2niix_wall_s": round(t2 - t1, 3),
        "dcm2niix_sum_s": round(sum(p.conversion.seconds for p in plans if p.conversion), 3),
        "scrub_and_stage_s": round(time.monotonic() - t2, 3)}, perms=0o600)


def _stage(ctx: ParticipantContext, images: list[tuple[BidsImage, Named]]) -> None:
    def one(pair: tuple[BidsImage, Named]) -> None:
        image, n = pair
        staging.stage_nifti(ctx, n.output.nii, image.rel_path)

    with ThreadPoolExecutor(max_workers=max(ctx.config.nprocs, 1)) as pool:
        for done, _ in enumerate(pool.map(one, images), 1):
            ctx.progress.item("images staged", done, len(images))
    series_names: dict[str, str] = {}
    series_outputs: dict[str, list[str]] = {}
    for image, n in images:
        plan: Plan = n.origin
        staging.write_sidecar(ctx, image)
        if n.suffix == "dwi":
            for ext in ("bval", "bvec"):
                rel = staging.companion_rel(image.rel_path, "." + ext)
                staging.stage_copy(ctx, getattr(n.output, ext), rel)
                image.extra_files.append(rel)
        if "aslcontext" in n.extra:
            rel = image.rel_path[: -len("_asl.nii.gz")] + "_aslcontext.tsv"
            staging.stage_text(ctx, rel, asl.context_tsv(n.extra["aslcontext"]))
            image.extra_files.append(rel)
        plan.outputs.append(image.rel_path)
        series_outputs.setdefault(plan.series.series_uid, []).append(image.rel_path)
        series_names.setdefault(plan.series.series_uid,
                                short_name(image.datatype, image.suffix, image.entities))
        ctx.images.append(image)
    ctx.results["series_names"] = series_names
    ctx.results["series_outputs"] = series_outputs
