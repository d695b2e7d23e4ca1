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
   ``.bval``/``.bvec`` (numbers only), ``_events.tsv`` and ``_aslcontext.tsv`` go along.

Files of other kinds are reported and left out.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from bidsdeid.bids import filters, names, nifti, schema, sidecar, staging
from bidsdeid.context import BidsImage, ParticipantContext
from bidsdeid.errors import ExitCode, is_disk_full
from bidsdeid.privacy.leakscan import Matcher, skipped_kinds

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
            ids.add_date(value[:10], f"sidecar {key}")


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
    for tsv in sorted(ctx.bids_root.rglob("*_scans.tsv")):
        try:
            with open(tsv, encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh, delimiter="\t"):
                    name, when = (row.get("filename") or "").strip(), (row.get("acq_time") or "")
                    try:
                        parsed = dt.datetime.fromisoformat(when.strip().replace("Z", ""))
                    except ValueError:
                        continue
                    times[str((tsv.parent / name).resolve())] = parsed.replace(tzinfo=None)
                    ctx.identifiers.add_date(when.strip()[:10], "input scans.tsv acq_time")
        except (OSError, UnicodeDecodeError, csv.Error):
            ctx.warn(STAGE, str(tsv.relative_to(ctx.config.bids_dir)), "unreadable scans.tsv")
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


def run(ctx: ParticipantContext) -> None:
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
    out_entities = _out_entities(ctx, entities)
    if not filters.keep(ctx.config.bids_filters, datatype, suffix, out_entities):
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
            staging.stage_copy(ctx, src, dst)
            image.extra_files.append(dst)
    staging.write_sidecar(ctx, image)
    ctx.images.append(image)
