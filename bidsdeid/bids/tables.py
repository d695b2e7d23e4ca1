"""Stage 7: the participant's tables, and the final sidecars.

* ``sub-<p>/[ses-<s>/]sub-<p>[_ses-<s>]_scans.tsv``: ``filename`` and ``acq_time``;
* ``sub-<p>/sub-<p>_sessions.tsv`` (when there are sessions): ``session_id`` and the
  session's first ``acq_time``.

``acq_time`` is the ORIGINAL acquisition time shifted by the subject's one offset
(``--retain-dates modified``, the default: years land at or before 1925 and the
intervals between sessions are kept), the original (``full``), or left out (``off``).
Only these columns are written: no operator, physician or other column of an input
table is carried over.

The participants.tsv row is not written here: a participant job never writes a shared
file. Its fragment goes to the private ``state_dir/sub-<input>/participants.json``;
:func:`bidsdeid.bids.dataset.update_shared_files` merges the fragments of completed
participants. Age is in whole years, capped at 89 (``bidsdeid.bids.age``); sex only
with ``--include-sex``; neither with ``--drop-demographics``. Replacement age and sex
from ``--id-map`` take the place of the ones found in the input.

Sidecars are rewritten last, so images the deface stage defaced say so in their
DeidentificationMethod (code 113102).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from typing import Any

from bidsdeid.bids import age as age_mod
from bidsdeid.bids import sidecar, staging
from bidsdeid.context import BidsImage, ParticipantContext
from bidsdeid.convert.facts import facts_of
from bidsdeid.privacy.dates import cap_age
from bidsdeid.site.idmap import REPLACEMENT_DEMOGRAPHICS
from bidsdeid.utils.atomic import write_json

FRAGMENT = "participants.json"
_SEX = {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F", "O": "O", "OTHER": "O"}


def acq_time_text(ctx: ParticipantContext, when: dt.datetime | None) -> str:
    """``acq_time`` as BIDS writes it (``YYYY-MM-DDThh:mm:ss``), per ``--retain-dates``."""
    if when is None:
        return "n/a"
    when = when.replace(microsecond=0, tzinfo=None)
    mode = ctx.config.deid.retain_longitudinal
    if mode == "modified":
        when = ctx.offset.apply(when)
    elif mode != "full":
        return "n/a"
    return (f"{when.year:04d}-{when.month:02d}-{when.day:02d}"
            f"T{when.hour:02d}:{when.minute:02d}:{when.second:02d}")


def _tsv(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join("\t".join(r) for r in [header, *rows]) + "\n"


def _with_times(ctx: ParticipantContext) -> bool:
    return ctx.config.deid.retain_longitudinal in ("modified", "full")


def write_scans(ctx: ParticipantContext) -> None:
    by_session: dict[str | None, list[BidsImage]] = {}
    for im in ctx.images:
        by_session.setdefault(im.session, []).append(im)
    for ses, images in sorted(by_session.items(), key=lambda kv: kv[0] or ""):
        prefix = f"{ctx.sub}/" + (f"ses-{ses}/" if ses else "")
        name = f"{ctx.sub}" + (f"_ses-{ses}" if ses else "") + "_scans.tsv"
        rows = []
        for im in sorted(images, key=lambda i: i.rel_path):
            row = [im.rel_path[len(prefix):]]
            if _with_times(ctx):
                row.append(acq_time_text(ctx, im.acq_time))
            rows.append(row)
        header = ["filename"] + (["acq_time"] if _with_times(ctx) else [])
        staging.stage_text(ctx, prefix + name, _tsv(header, rows))


def _published_session_rows(ctx: ParticipantContext, header: list[str],
                            sessions: set[str]) -> list[list[str]]:
    """With ``--session-label``: the rows of the already published sessions.tsv for the
    sessions this run does not redo, so a run of one session keeps the others."""
    if not ctx.config.session_label:
        return []
    path = ctx.config.output_dir / ctx.sub / f"{ctx.sub}_sessions.tsv"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    if not lines or lines[0].split("\t") != header:
        return []
    rows = [line.split("\t") for line in lines[1:] if line]
    return [r for r in rows if len(r) == len(header) and r[0][4:] not in sessions]


def write_sessions(ctx: ParticipantContext) -> None:
    sessions: dict[str, dt.datetime | None] = {}
    for im in ctx.images:
        if im.session is None:
            continue
        cur = sessions.get(im.session)
        if im.acq_time is not None and (cur is None or im.acq_time < cur):
            sessions[im.session] = im.acq_time
        else:
            sessions.setdefault(im.session, cur)
    if not sessions:
        return
    header = ["session_id"] + (["acq_time"] if _with_times(ctx) else [])
    rows = _published_session_rows(ctx, header, set(sessions))
    for ses in sessions:
        row = [f"ses-{ses}"]
        if _with_times(ctx):
            row.append(acq_time_text(ctx, sessions[ses]))
        rows.append(row)
    rows.sort(key=lambda r: r[0])
    staging.stage_text(ctx, f"{ctx.sub}/{ctx.sub}_sessions.tsv", _tsv(header, rows))


def _input_participant_row(ctx: ParticipantContext) -> dict[str, str]:
    path = ctx.config.bids_dir / "participants.tsv"
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                if (row.get("participant_id") or "").strip() == f"sub-{ctx.input_label}":
                    return {k: (v or "").strip() for k, v in row.items() if k}
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    return {}


def _first_visit(ctx: ParticipantContext) -> tuple[str | None, Any]:
    """The first session (by acquisition time) and a DICOM header of it, if any."""
    if ctx.dicom is not None and ctx.dicom.series:
        facts = ctx.results.get("dicom_facts", {})

        def when(series: Any) -> dt.datetime:
            found_facts = (facts_of(f, facts) for f in series.files)
            times = [ff.acq_datetime for ff in found_facts if ff and ff.acq_datetime]
            return min(times) if times else dt.datetime.max

        first = min(ctx.dicom.series, key=when)
        return first.session, first.header
    sessions = sorted(s for s in ctx.session_map if s is not None)
    return (sessions[0] if sessions else None), None


def demographics(ctx: ParticipantContext) -> dict[str, Any]:
    """Age (whole years, capped at 89) and sex, as the options allow."""
    cfg = ctx.config
    out: dict[str, Any] = {}
    if cfg.drop_demographics:
        return out
    first_session, header = _first_visit(ctx)
    found = age_mod.resolve(cfg.bids_dir, ctx.input_label, first_session,
                            age_months_option=cfg.deface.age_months, dicom_header=header)
    years = found.years
    replacement = ctx.results.get(REPLACEMENT_DEMOGRAPHICS) or {}  # from --id-map
    if "age" in replacement:
        years, found = float(replacement["age"]), age_mod.Age(None, "id map")
    out["age"] = math.floor(cap_age(years)) if years is not None else "n/a"
    out["age_source"] = found.source
    if cfg.include_sex:
        sex = ""
        if header is not None:
            sex = str(header.get("PatientSex", "") or "")
        sex = sex or _input_participant_row(ctx).get("sex", "")
        sex = str(replacement.get("sex", sex))
        out["sex"] = _SEX.get(sex.strip().upper(), "n/a")
    return out


def write_fragment(ctx: ParticipantContext) -> None:
    """This participant's participants.tsv row, in the private state dir."""
    demo = demographics(ctx)
    ctx.demographics = demo
    row = {"participant_id": ctx.sub, "input_label": ctx.input_label,
           **{k: v for k, v in demo.items() if k in ("age", "sex")}}
    write_json(ctx.config.state_dir / f"sub-{ctx.input_label}" / FRAGMENT, {
        "row": row, "age_source": demo.get("age_source", "none")}, perms=0o600)


def _defaced(ctx: ParticipantContext) -> set[str]:
    done = set()
    for res in ctx.results.get("deface", []) or []:
        if getattr(res, "defaced", None) is not None and getattr(res, "passed", False):
            done.add(res.rel_path)
    return done


def rewrite_sidecars(ctx: ParticipantContext) -> None:
    defaced = _defaced(ctx)
    for im in ctx.images:
        im.sidecar.update(sidecar.deid_fields(ctx.config.deid, defaced=im.rel_path in defaced))
        staging.write_sidecar(ctx, im)


def run(ctx: ParticipantContext) -> None:
    if not ctx.images:
        ctx.error("write tables", ctx.sub, "no image to publish: every series or file was "
                  "left out (the reasons are above and in the audit dir)")
        return
    rewrite_sidecars(ctx)
    write_scans(ctx)
    write_sessions(ctx)
    write_fragment(ctx)
