"""Stage 4: NIfTI + JSON inputs already in BIDS layout (``sub-<label>/...``).

The participant's files are found with pybids (``BIDSLayout``, ``validate=False``,
other participants ignored), filtered by ``--session-label`` and
``--bids-filter-file``, and go through the same scrubbing as converted DICOM:

1. identifying sidecar values (institution, station, serials, names, IDs, dates,
   UIDs, descriptions), the NIfTI header text and the dates of the input
   ``scans.tsv`` are added to the participant's identifiers first;
2. sidecars (with BIDS inheritance applied by pybids) are scrubbed by allow-list,
   ``IntendedFor`` paths are rewritten to the output labels;
3. images are copied with cleared header text and no extensions (gzip mtime 0);
   ``.bval``/``.bvec`` (numbers only), ``_events.tsv`` (without the columns that name
   the participant, the session, a date or a computer: :mod:`bidsdeid.bids.tsv`) and
   ``_aslcontext.tsv`` go along; an entity label that holds an identifier, even inside
   a word, fails the participant.

Step 1 runs in stage 1 (:func:`load`), so the labels of every image are checked
against the identifiers of all the participant's inputs.

Files of other kinds are reported and left out.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from bidsdeid.bids import exposure, filters, names, nifti, schema, sidecar, staging, tsv
from bidsdeid.context import BidsImage, ParticipantContext
from bidsdeid.errors import ExitCode, is_disk_full
from bidsdeid.privacy.identifiers import BIRTH_DATE_KEYWORDS
from bidsdeid.privacy.leakscan import Matcher, label_holds_identifier, skipped_kinds

STAGE = "copy BIDS inputs"

_SIDECAR_KINDS = {
    "InstitutionName": "institution", "InstitutionAddress": "institution",
    "InstitutionalDepartmentName": "institution", "StationName": "device",
    "DeviceSerialNumber": "device", "PatientID": "id", "AccessionNumber": "id",
    "StudyID": "id", "SeriesDescription": "text", "ProtocolName": "text",
    "StudyDescription": "text", "ImageComments": "text", "ProcedureStepDescription": "text",
    "PerformedProcedureStepDescription": "text", "SeriesInstanceUID": "uid",
    "StudyInstanceUID": "uid", "SOPInstanceUID": "uid", "FrameOfReferenceUID": "uid",
    "DeviceUID": "uid",
}
_SIDECAR_NAMES = ("PatientName", "ReferringPhysicianName", "PerformingPhysicianName",
                  "OperatorsName", "PatientBirthName", "PatientMotherBirthName")
_SIDECAR_DATES = ("AcquisitionDateTime", "AcquisitionDate", "StudyDate", "SeriesDate",
                  "ContentDate", "PatientBirthDate", "InstanceCreationDate",
                  "PerformedProcedureStepStartDate")
_COMPANIONS = ("_events.tsv", "_events.json", "_aslcontext.tsv")


def collect_identifiers(ctx: ParticipantContext, meta: dict[str, Any]) -> None:
    """Add the identifying values of one input sidecar to ``ctx.identifiers``."""
    ids = ctx.identifiers
    for key, kind in _SIDECAR_KINDS.items():
        if isinstance(meta.get(key), str | int):
            ids.add(kind, str(meta[key]), f"sidecar {key}")
    for key in _SIDECAR_NAMES:
        if isinstance(meta.get(key), str):
            ids.add_name(meta[key], f"sidecar {key}")
    for key in _SIDECAR_DATES:
        value = meta.get(key)
        if isinstance(value, str) and len(value) >= 8:
            ids.add_date(value[:10], f"sidecar {key}",
                         kind="birthdate" if key in BIRTH_DATE_KEYWORDS else "date")


def _invalid_sidecars(ctx: ParticipantContext) -> list[Path]:
    """JSON files pybids would read for this participant that are not valid JSON (a
    single one makes ``BIDSLayout`` raise). They are reported and left out; the images
    go on with the metadata that remains."""
    root = ctx.config.bids_dir
    candidates = [p for p in root.glob("*.json") if p.name != "dataset_description.json"]
    if ctx.bids_root is not None:
        candidates += sorted(ctx.bids_root.rglob("*.json"))
    bad = []
    for path in candidates:
        try:
            json.loads(path.read_bytes())
        except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError
            bad.append(path)
            ctx.warn(STAGE, str(path.relative_to(root)), "left out: not a valid JSON file "
                     "(the images go on without its metadata)", ExitCode.DATA)
    return bad


def _layout_files(ctx: ParticipantContext) -> list[Any]:
    from bids import BIDSLayout
    from bids.layout import BIDSLayoutIndexer

    label = re.escape(ctx.input_label)
    bad_json = [re.compile("^/" + re.escape(str(p.relative_to(ctx.config.bids_dir))) + "$")
                for p in _invalid_sidecars(ctx)]
    indexer = BIDSLayoutIndexer(validate=False, index_metadata=True, ignore=[
        re.compile(rf"/sub-(?!{label}(/|$))[^/_]*(/|$)"),  # other participants' folders
        re.compile(r"/(sourcedata|derivatives|code|stimuli)(/|$)"),
        re.compile(r"/\."), *bad_json])
    layout = BIDSLayout(str(ctx.config.bids_dir), validate=False, indexer=indexer)
    files = layout.get(subject=ctx.input_label, extension=[".nii", ".nii.gz"])
    return [(f, layout.get_metadata(f.path)) for f in sorted(files, key=lambda f: f.path)]


def _scans_times(ctx: ParticipantContext) -> dict[str, dt.datetime]:
    """ORIGINAL acq_time of every input image, from the input scans.tsv files."""
    times: dict[str, dt.datetime] = {}
    assert ctx.bids_root is not None
    for table in sorted(ctx.bids_root.rglob("*_scans.tsv")):
        try:
            with open(table, encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh, delimiter="\t"):
                    name, when = (row.get("filename") or "").strip(), (row.get("acq_time") or "")
                    try:
                        parsed = dt.datetime.fromisoformat(when.strip().replace("Z", ""))
                    except ValueError:
                        continue
                    times[str((table.parent / name).resolve())] = parsed.replace(tzinfo=None)
                    ctx.identifiers.add_date(when.strip()[:10], "input scans.tsv acq_time")
        except (OSError, UnicodeDecodeError, csv.Error):
            ctx.warn(STAGE, str(table.relative_to(ctx.config.bids_dir)), "unreadable scans.tsv")
    return times


def _out_entities(ctx: ParticipantContext, entities: dict[str, str]) -> dict[str, str]:
    out = dict(entities)
    out["sub"] = ctx.output_label
    if "ses" in out:
        new = ctx.out_session(out["ses"])
        if new:
            out["ses"] = new
        else:
            out.pop("ses")
    return out


def _identifier_in_labels(ctx: ParticipantContext, matcher: Matcher,
                          entities: dict[str, str], out_entities: dict[str, str]
                          ) -> str | None:
    """The entity whose label (as published) holds an identifier, else None. The
    leak scan matches on word boundaries; a label is checked inside its words too
    (``acq-jdoe``, ``ses-visit20220711``). Labels bidsdeid replaced (``sub``, a
    relabelled ``ses``) are its own pseudonyms."""
    for key, label in out_entities.items():
        if key == "sub" or (key == "ses" and label != entities.get("ses")):
            continue
        if label_holds_identifier(ctx.identifiers, matcher, key, label):
            return key
    return None


def _rewrite_intended_for(ctx: ParticipantContext, value: Any) -> list[str] | None:
    """IntendedFor paths with output labels, or None if one cannot be rewritten."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if not isinstance(item, str):
            return None
        text = item.removeprefix("bids::")
        parts = text.split("/")
        parsed = names.parse_name(parts[-1])
        if parsed is None:
            return None
        ents, suffix, ext = parsed
        new = _out_entities(ctx, ents)
        folder = parts[-2] if len(parts) >= 2 else ""
        out.append("bids::" + names.rel_path(new, folder, suffix, ext))
    return sorted(out)


FOUND = "bids_inputs"
"""``ctx.results`` key: the participant's BIDS images with their metadata, and their
original acquisition times (:func:`load`)."""


def load(ctx: ParticipantContext) -> None:
    """Part of stage 1: find the participant's BIDS images and collect the identifiers
    of their sidecars, NIfTI header text and input ``scans.tsv`` dates, so that every
    later stage knows them (labels are checked against them before anything is
    named)."""
    if ctx.bids_root is None:
        return
    found = _layout_files(ctx)
    times = _scans_times(ctx)
    for _f, meta in found:
        collect_identifiers(ctx, meta)
    for f, _meta in found:
        try:
            for text in nifti.header_text(nifti.read_image_bytes(Path(f.path))).values():
                ctx.identifiers.add("text", text, "input NIfTI header text")
        except (nifti.NiftiError, OSError):
            pass
    ctx.results[FOUND] = (found, times)


def run(ctx: ParticipantContext) -> None:
    if ctx.bids_root is None:
        return
    if FOUND not in ctx.results:
        load(ctx)
    found, times = ctx.results[FOUND]
    matcher = Matcher(ctx.identifiers, skipped_kinds(ctx.config))
    for f, meta in found:
        _copy_one(ctx, Path(f.path), str(f.entities.get("datatype", "")), meta, times, matcher)


def _copy_one(ctx: ParticipantContext, path: Path, datatype: str, meta: dict[str, Any],
              times: dict[str, dt.datetime], matcher: Matcher) -> None:
    where = str(path.relative_to(ctx.config.bids_dir))
    parsed = names.parse_name(path.name)
    if parsed is None or datatype not in schema.MRI_DATATYPES:
        ctx.warn(STAGE, where, "left out: not a BIDS MRI image name")
        return
    entities, suffix, _ext = parsed
    if ctx.config.session_label and entities.get("ses") not in ctx.config.session_label:
        return
    epi = exposure.sidecar_says_epi(suffix, meta, exposure.volumes_of(path))
    exposed = exposure.face_exposed(path, datatype, echo_planar=epi)
    if exposed:
        ctx.warn(STAGE, where, f"left out: {exposed} (file it under anat/ with an anatomical "
                 "suffix to have it defaced)", ExitCode.DATA)
        return
    out_entities = _out_entities(ctx, entities)
    if not filters.keep(ctx.config.bids_filters, datatype, suffix, out_entities):
        return
    hidden = _identifier_in_labels(ctx, matcher, entities, out_entities)
    if hidden is not None:
        ctx.error(STAGE, where, f"its {hidden} label holds an identifier of the participant "
                  "(a name, ID, date or original label, possibly inside a word): rename "
                  "the file (and --relabel for sub-/ses- labels)")
        return
    raw = dict(meta)
    if "IntendedFor" in raw:
        rewritten = _rewrite_intended_for(ctx, raw["IntendedFor"])
        if rewritten is None:
            raw.pop("IntendedFor")
        else:
            raw["IntendedFor"] = rewritten
    clean = sidecar.scrub(raw, matcher.first, ctx.config.deid,
                          ctx.results.get(sidecar.FIELD_RULES))
    kept = {**clean.kept, **sidecar.deid_fields(ctx.config.deid, defaced=False)}
    rel = names.rel_path(out_entities, datatype, suffix, ".nii.gz")
    if any(im.rel_path == rel for im in ctx.images):
        ctx.error(STAGE, where, "has the BIDS name of an image converted from DICOM; give one "
                  "of them another name (--mapping-file) or leave one out")
        return
    try:
        staging.stage_nifti(ctx, path, rel)
    except nifti.NiftiError as exc:  # damaged input: left out, the others go on
        ctx.warn(STAGE, where, f"left out: not a usable NIfTI image ({exc})", ExitCode.DATA)
        return
    except OSError as exc:
        if is_disk_full(exc):
            raise
        ctx.warn(STAGE, where, f"left out: cannot read this image ({exc.strerror or exc})",
                 ExitCode.DATA)
        return
    image = BidsImage(rel_path=rel, datatype=datatype, suffix=suffix,
                      entities=dict(names.ordered(out_entities)),
                      session=out_entities.get("ses"), source=f"bids {where}", sidecar=kept,
                      acq_time=times.get(str(path.resolve())), original=path)
    stem = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.stem
    for ext in (".bval", ".bvec"):
        src = path.with_name(stem + ext)
        if src.is_file():
            if staging.numbers_only(src):
                dst = staging.companion_rel(rel, ext)
                staging.stage_copy(ctx, src, dst)
                image.extra_files.append(dst)
            else:
                ctx.warn(STAGE, where, f"left out its {ext} (not only numbers)")
    base = stem[: -len(suffix) - 1] if stem.endswith("_" + suffix) else stem
    for companion in _COMPANIONS:
        src = path.with_name(base + companion)
        if src.is_file():
            dst = rel[: -len(f"_{suffix}.nii.gz")] + companion
            scrubbed = tsv.without_identity_columns(src) if companion.endswith(".tsv") \
                else None
            if scrubbed is None:
                staging.stage_copy(ctx, src, dst)
            else:
                staging.stage_text(ctx, dst, scrubbed[0])
                ctx.warn(STAGE, str(src.relative_to(ctx.config.bids_dir)),
                         f"columns left out (they name the participant, the session, a "
                         f"date or a computer): {', '.join(scrubbed[1])}")
            image.extra_files.append(dst)
    staging.write_sidecar(ctx, image)
    ctx.images.append(image)
