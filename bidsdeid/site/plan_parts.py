"""The parts of a dry-run plan (:mod:`.dryrun`) that need more than the stages' own
deciders: attribute actions of a header, BIDS inputs, identifiers of input sidecars,
and the defacing plan (template per session, without registering)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from pydicom.dataset import Dataset

from bidsdeid.bids import age as age_mod
from bidsdeid.bids import names, schema
from bidsdeid.bids.inputs import collect_identifiers
from bidsdeid.context import ANAT_SUFFIXES, ParticipantContext
from bidsdeid.convert.plan import Plan
from bidsdeid.deface import registry
from bidsdeid.deface.session import SessionImage, choose_anchor
from bidsdeid.dicom import profile as P
from bidsdeid.dicom.deidentify import attribute_name, private_name
from bidsdeid.dicom.index import DicomSeries
from bidsdeid.dicom.stage import OVERRIDES
from bidsdeid.dicom.unlisted import normalise_vr
from bidsdeid.errors import BidsdeidError
from bidsdeid.site.stage import texts_of

_OPS = {P.KEEP: "keep", P.KEEP_TEXT: "keep", P.RECURSE: "keep, items cleaned",
        P.REMOVE: "remove", P.EMPTY: "empty", P.DUMMY: "dummy value", P.UID: "keyed UID",
        P.SHIFT: "shift", P.LABEL: "participant label", P.AGE: "keep, capped at 89",
        P.REPLACE: "fixed value (site rule)", P.HASH: "keyed hash (site rule)",
        P.DESCRIPTOR: "series' BIDS name"}


def _describe(d: P.Decision, values: list[str]) -> tuple[str, str]:
    """(action, why) of a decision for these values, as the engines would act."""
    if d.op == P.VOCAB:
        assert d.arg is not None and d.fallback is not None
        if d.arg.allows(values):
            return "keep (on the site vocabulary)", d.audit
        d = d.fallback
    if d.op == P.DESCRIPTOR and d.fallback is not None:
        return f"{_OPS[P.DESCRIPTOR]}, else {_OPS.get(d.fallback.op, d.fallback.op)}", d.audit
    return _OPS.get(d.op, d.op), d.audit


def attribute_actions(ctx: ParticipantContext, series: DicomSeries) -> list[dict[str, str]]:
    """What the DICOM de-identification does to every top-level attribute of the
    series' first header (values of vocabulary rules evaluated, never listed)."""
    overrides = ctx.results.get(OVERRIDES) or {}
    profile = P.Profile(ctx.config.deid, overrides.get("tags", {}),
                        overrides.get("private", {}))
    header: Dataset = series.header
    enhanced = P.is_enhanced(series.sop_class_uid)
    rows = []
    for tag in header.keys():  # noqa: SIM118 - a Dataset iterates elements
        t = int(tag)
        group, elem_no = t >> 16, t & 0xFFFF
        raw_vr = header.get_item(tag).VR
        vr = None if raw_vr in (None, "UN") else normalise_vr(raw_vr)
        if group & 1:
            if elem_no <= 0xFF:
                continue  # a creator stays only if its block keeps an element
            creator = header.get((group << 16) | (elem_no >> 8))
            if creator is None:
                rows.append({"attribute": private_name(group, elem_no),
                             "tag": private_name(group, elem_no).split()[0],
                             "action": "remove", "why": "private without creator"})
                continue
            d = profile.decide_private(str(creator.value).strip(), group, elem_no & 0xFF, vr)
            name = f"{private_name(group, elem_no)} {str(creator.value).strip()}"
        else:
            d = profile.decide(t, vr, enhanced)
            name = attribute_name(t)
        action, why = _describe(d, texts_of(header[tag].value) if d.op == P.VOCAB else [])
        rows.append({"attribute": name, "tag": f"({group:04X},{elem_no:04X})",
                     "action": action, "why": why})
    return rows


def bids_inputs(ctx: ParticipantContext) -> list[dict[str, str]]:
    """NIfTI images under ``sub-<label>/`` with a BIDS name (others are left out)."""
    if ctx.bids_root is None:
        return []
    out = []
    for path in sorted(ctx.bids_root.rglob("*.nii*")):
        parsed = names.parse_name(path.name)
        datatype = path.parent.name
        if parsed is None or datatype not in schema.MRI_DATATYPES:
            continue
        entities, suffix, _ext = parsed
        if ctx.config.session_label and entities.get("ses") not in ctx.config.session_label:
            continue
        out.append({"path": str(path.relative_to(ctx.config.bids_dir)), "datatype": datatype,
                    "suffix": suffix, "session": entities.get("ses") or ""})
    return out


def bids_identifiers(ctx: ParticipantContext) -> None:
    """Add the identifiers of the input sidecars (as the copy stage will)."""
    if ctx.bids_root is None:
        return
    for side in sorted(ctx.bids_root.rglob("*.json")):
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(meta, dict):
            collect_identifiers(ctx, meta)


@dataclass
class _Planned:
    """Stands in for a :class:`SessionImage` when choosing the anchor (suffix only)."""

    rel_path: str
    suffix: str


def _wanted(ctx: ParticipantContext, suffix: str) -> bool:
    mods = ctx.config.deface.modalities
    if not mods:
        return suffix in ANAT_SUFFIXES
    return suffix.lower() in {m.lower() for m in mods}


def deface(ctx: ParticipantContext, plans: list[Plan],
           bids: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Per session: the anatomical images, the anchor, the age and the template."""
    mods = ctx.config.deface.modalities
    sessions: dict[str | None, list[_Planned]] = {}
    headers: dict[str | None, Dataset] = {}
    for p in plans:
        d = p.decision
        if d.converts and d.datatype == "anat" and d.suffix:
            sessions.setdefault(p.series.session, []).append(_Planned(p.where, d.suffix))
            headers.setdefault(p.series.session, p.series.header)
    for b in bids:
        if b["datatype"] == "anat":
            sessions.setdefault(b["session"] or None, []).append(_Planned(b["path"], b["suffix"]))
    if mods and [m.lower() for m in mods] == ["none"]:
        return [{"session": s, "images": [i.rel_path for i in ims],
                 "note": "not defaced (--deface-modalities none)"}
                for s, ims in sessions.items()]
    opts = ctx.config.deface
    out = []
    for session in sorted(sessions, key=lambda s: (s is not None, s or "")):
        images = [i for i in sessions[session] if _wanted(ctx, i.suffix)]
        if not images:
            continue
        age = age_mod.resolve(ctx.config.bids_dir, ctx.input_label, session,
                              age_months_option=opts.age_months,
                              dicom_header=headers.get(session))
        anchor, contrast = choose_anchor(cast(list[SessionImage], images), age.months)
        entry: dict[str, Any] = {
            "session": session, "images": [f"{i.rel_path} ({i.suffix})" for i in images],
            "anchor": f"{anchor.rel_path} ({anchor.suffix})", "contrast": contrast,
            "age_months": None if age.months is None else round(age.months, 1),
            "age_source": age.source if age.months is not None else "none (adult assumed)"}
        try:
            choice = registry.select(registry.load_registry(opts.template_registry),
                                     age.months, contrast, opts.template)
            entry.update(template=choice.id, reason=choice.reason)
        except BidsdeidError as exc:
            entry.update(template=None, note=f"no template: {exc.message}")
        out.append(entry)
    return out
