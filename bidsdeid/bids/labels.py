"""Stage 2: the output labels of a participant and its sessions (``--relabel``,
``--id-map``).

* ``keep``: labels as in the input;
* ``sequential``: ``sub-001``, ``sub-002``, ... and ``ses-01``, ``ses-02`` (sessions in
  the order they were acquired, else by label). A rerun reuses the numbers already in
  ``PRIVATE_DIR/linkage.tsv``; a new participant gets the next free number;
* ``random``: a keyed pseudonym (:meth:`ProjectKey.pseudonym`, an HMAC of the original
  label under the site's key): the same key gives the same labels on every run, every
  SLURM task and every later upload of the same person, whatever the output dir
  (BIRNDUP's stable IDs). Sessions get keyed pseudonyms too;
* ``idmap`` (``--id-map``, :mod:`bidsdeid.site.idmap`): the label the site's table
  gives, looked up by input label or PatientID; no entry fails the participant with a
  message naming it. Session labels are kept. Replacement age/sex from the table go to
  ``ctx.results[REPLACEMENT_DEMOGRAPHICS]`` for participants.tsv.

``PRIVATE_DIR/linkage.tsv`` records original label -> pseudonym and the date offset of
every participant (it is the only way back to the person: keep it private). It is
updated under a file lock and written atomically, so parallel tasks never lose rows.
Replaced labels are added to the participant's identifiers, so the leak scan fails if
an original label reaches the output. A session label with a date in it (``ses-20220711``)
adds that date to them. Labels published as the input has them (``keep``, sessions and
the site's labels under ``--id-map``) must hold no identifier, even inside a word
(``sub-smith01``): else the participant fails at once (exit 65), pointing at
``--relabel``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import Path

from bidsdeid.bids import tsv
from bidsdeid.context import ParticipantContext
from bidsdeid.convert.facts import facts_of
from bidsdeid.errors import DataError
from bidsdeid.site import idmap
from bidsdeid.utils.atomic import write_text
from bidsdeid.utils.locks import file_lock

LINKAGE = "linkage.tsv"
COLUMNS = ("original_participant_id", "participant_id", "original_session_id", "session_id",
           "method", "date_offset_days")
NA = "n/a"


@dataclass(frozen=True)
class LinkRow:
    original_participant: str
    participant: str
    original_session: str  # NA for the participant's own row
    session: str
    method: str
    date_offset_days: str

    def cells(self) -> tuple[str, ...]:
        return (f"sub-{self.original_participant}", f"sub-{self.participant}",
                f"ses-{self.original_session}" if self.original_session != NA else NA,
                f"ses-{self.session}" if self.session != NA else NA, self.method,
                self.date_offset_days)


def _strip(value: str, prefix: str) -> str:
    return value.removeprefix(prefix)


def read_linkage(path: Path) -> list[LinkRow]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    rows = []
    for rec in csv.DictReader(io.StringIO(text), delimiter="\t"):
        try:
            rows.append(LinkRow(_strip(rec["original_participant_id"], "sub-"),
                                _strip(rec["participant_id"], "sub-"),
                                _strip(rec["original_session_id"], "ses-"),
                                _strip(rec["session_id"], "ses-"), rec["method"],
                                rec.get("date_offset_days") or NA))
        except KeyError as exc:
            raise DataError(f"{path} is damaged (missing column {exc})") from exc
    return rows


def write_linkage(path: Path, rows: list[LinkRow]) -> None:
    ordered = sorted(set(rows), key=lambda r: (r.original_participant, r.original_session != NA,
                                               r.original_session, r.method))
    lines = ["\t".join(COLUMNS)] + ["\t".join(r.cells()) for r in ordered]
    write_text(path, "\n".join(lines) + "\n", perms=0o600)


def _sessions(ctx: ParticipantContext) -> list[str | None]:
    """Input sessions, first acquired first (label order when times are unknown)."""
    found: dict[str | None, dt.datetime | None] = {}
    facts = ctx.results.get("dicom_facts", {})
    if ctx.dicom is not None:
        for series in ctx.dicom.series:
            found_facts = (facts_of(f, facts) for f in series.files)
            times = [ff.acq_datetime for ff in found_facts if ff and ff.acq_datetime]
            first = min(times) if times else None
            cur = found.get(series.session)
            found[series.session] = first if cur is None else (min(cur, first) if first else cur)
    if ctx.bids_root is not None:
        ses_dirs = [p.name[4:] for p in ctx.bids_root.iterdir()
                    if p.is_dir() and p.name.startswith("ses-")]
        if not ses_dirs:
            found.setdefault(None, None)
        for ses in ses_dirs:
            if ctx.config.session_label is None or ses in ctx.config.session_label:
                found.setdefault(ses, None)
    big = dt.datetime.max
    return sorted(found, key=lambda s: (found[s] or big, s or ""))


def _next_number(taken: list[str]) -> int:
    numbers = [int(t) for t in taken if t.isdigit()]
    return max(numbers, default=0) + 1


@dataclass
class Assignment:
    """The labels decided for one participant, and the linkage rows that record them."""

    label: str
    session_map: dict[str | None, str | None]
    rows: list[LinkRow]  # the whole linkage table after this participant
    demographics: dict[str, float | str]  # replacement age/sex (id map), else empty


def _patient_ids(ctx: ParticipantContext) -> list[str]:
    """The PatientIDs of the participant's DICOM (one per series, usually all equal)."""
    ids = []
    if ctx.dicom is not None:
        for series in ctx.dicom.series:
            pid = str(series.header.get("PatientID", "") or "").strip()
            if pid:
                ids.append(pid)
    return sorted(set(ids))


def decide(ctx: ParticipantContext, rows: list[LinkRow]) -> Assignment:
    """The labels of ``ctx``'s participant given the current linkage rows (writes
    nothing; :func:`assign` writes, the dry run only looks)."""
    cfg = ctx.config
    method = "idmap" if cfg.id_map is not None else cfg.relabel
    sessions = _sessions(ctx)
    mine = [r for r in rows if r.original_participant == ctx.input_label
            and r.method == method]
    others = [r for r in rows if not (r.original_participant == ctx.input_label
                                      and r.method == method)]
    own = next((r for r in mine if r.original_session == NA), None)
    demographics: dict[str, float | str] = {}
    if method == "keep":
        label = ctx.input_label
    elif method == "idmap":
        assert cfg.id_map is not None
        entry = idmap.load(cfg.id_map).require(ctx.input_label, _patient_ids(ctx))
        label, demographics = entry.label, entry.demographics()
    elif own is not None:
        label = own.participant
    elif method == "sequential":
        used = [r.participant for r in rows if r.method == "sequential"
                and r.original_session == NA]
        label = f"{_next_number(used):03d}"
    else:
        label = ctx.key.pseudonym("participant", ctx.input_label)
    clash = [r for r in others if r.participant == label and r.original_session == NA
             and r.original_participant != ctx.input_label and r.method != "keep"]
    if clash and method != "keep":
        raise DataError(f"sub-{ctx.input_label}: {'its id-map label' if method == 'idmap' else 'pseudonym'}"
                        " collides with another participant in linkage.tsv (edit or remove "
                        "that file)")
    offset = str(ctx.offset.days)
    new_rows = [LinkRow(ctx.input_label, label, NA, NA, method, offset)]
    session_map: dict[str | None, str | None] = {None: None}
    existing: dict[str, str] = {r.original_session: r.session for r in mine
                                if r.original_session != NA}
    for ses in sessions:
        if ses is None:
            continue
        if method in ("keep", "idmap"):
            out = ses
        elif ses in existing:
            out = existing[ses]
        elif method == "sequential":
            out = f"{_next_number(list(existing.values())):02d}"
        else:
            out = ctx.key.pseudonym("session", f"{ctx.input_label}/{ses}", 6)
        existing[ses] = out
        session_map[ses] = out
    for ses_in, ses_out in existing.items():
        new_rows.append(LinkRow(ctx.input_label, label, str(ses_in), ses_out, method, offset))
    return Assignment(label, session_map, others + new_rows, demographics)


def assign(ctx: ParticipantContext) -> None:
    cfg = ctx.config
    path = cfg.private_dir / LINKAGE
    with file_lock(cfg.private_dir / ".linkage.lock"):
        found = decide(ctx, read_linkage(path))
        write_linkage(path, found.rows)
    label, session_map = found.label, found.session_map
    if found.demographics:
        ctx.results[idmap.REPLACEMENT_DEMOGRAPHICS] = found.demographics
    ctx.output_label = label
    ctx.session_map = session_map
    if label != ctx.input_label:
        ctx.identifiers.add_label(ctx.input_label, "original participant label")
    for ses, new in session_map.items():
        if ses is None:
            continue
        for date in _dates_in_label(ses):  # ses-20220711 names the day of the visit
            ctx.identifiers.add_date(date, "session label")
        if new != ses:
            ctx.identifiers.add_label(ses, "original session label")
    _check_published_labels(ctx)


def _dates_in_label(label: str) -> list[str]:
    """The dates (YYYYMMDD) written in a label, as eight digits of their own."""
    return [d for run in re.findall(r"(?<![0-9])[0-9]{8}(?![0-9])", label)
            for d in tsv.dates_in(run)]


def _check_published_labels(ctx: ParticipantContext) -> None:
    """Labels published as the input has them (``keep``, a session under ``--id-map``,
    the site's own id-map label) must hold no identifier of the participant, even
    inside a word (``sub-smith01``, ``ses-visit20220711``): the participant fails
    before anything is made (bad input, exit 65), with the way out."""
    from bidsdeid.privacy.leakscan import Matcher, label_holds_identifier, skipped_kinds

    published = []
    if ctx.output_label == ctx.input_label or ctx.config.id_map:
        published.append(("participant", "sub", ctx.output_label))
    published += [("session", "ses", new) for ses, new in ctx.session_map.items()
                  if ses is not None and new == ses]
    if not published:
        return
    matcher = Matcher(ctx.identifiers, skipped_kinds(ctx.config))
    for what, key, value in published:
        if label_holds_identifier(ctx.identifiers, matcher, key, value):
            raise DataError(f"sub-{ctx.input_label}: the {what} label {key}-{value} holds an "
                            "identifier of the participant (a name, ID or date, possibly "
                            "inside a word); publish it with --relabel sequential or "
                            "--relabel random" + (" (or another label in --id-map)"
                                                  if ctx.config.id_map else ""))
