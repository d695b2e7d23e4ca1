"""Decide what happens to every series, and keep the table of decisions.

For each series: the quarantine check of :mod:`bidsdeid.dicom.quarantine` (refused
objects are copied to the private quarantine dir); then
:func:`bidsdeid.convert.heuristic.classify`, then the user's ``--mapping-file`` rules. The full table (with descriptions: PHI) goes to
``PRIVATE_DIR/audit/sub-<label>/series.tsv``; the log gets series number, decision and
reason only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bidsdeid.context import ParticipantContext
from bidsdeid.convert import heuristic, mapping
from bidsdeid.convert.dcm2niix import Conversion
from bidsdeid.convert.facts import SeriesFacts, series_facts
from bidsdeid.convert.heuristic import Decision
from bidsdeid.dicom import quarantine
from bidsdeid.dicom.index import DicomSeries
from bidsdeid.utils.atomic import write_json, write_text

log = logging.getLogger("bidsdeid")

@dataclass
class Plan:
    """One series: facts, decision, conversion and the names its images got."""

    series: DicomSeries
    facts: SeriesFacts
    decision: Decision
    conversion: Conversion | None = None
    outputs: list[str] = field(default_factory=list)  # OUTPUT_DIR-relative paths
    notes: list[str] = field(default_factory=list)  # PHI-free remarks for the audit

    @property
    def where(self) -> str:
        ses = f"ses-{self.series.session} " if self.series.session else ""
        number = self.series.series_number if self.series.series_number is not None else "?"
        return f"{ses}series {number}"


def decide(ctx: ParticipantContext, *, copy_refused: bool = True) -> list[Plan]:
    """A :class:`Plan` with a decision for every indexed series (``copy_refused=False``:
    refused series are not copied to the quarantine, for the dry run)."""
    assert ctx.dicom is not None
    rules = mapping.load(ctx.config.mapping_file) if ctx.config.mapping_file else []
    collected = ctx.results.get("dicom_facts", {})
    plans = []
    for series in ctx.dicom.series:
        facts = series_facts(series, collected)
        reason = quarantine.quarantine_reason(series.header)
        if reason:
            decision = heuristic.exclude(f"quarantined: {reason}")
            decision.source = "quarantine"
            if copy_refused:
                quarantine.quarantine_series(ctx, series, reason)
        else:
            decision = mapping.apply(rules, series.header, series.session,
                                     heuristic.classify(facts))
        plans.append(Plan(series, facts, decision))
    return plans


def log_decisions(ctx: ParticipantContext, plans: list[Plan],
                  holds_identifier: Callable[[str], object]) -> None:
    """One PHI-free line per series. Labels taken from a description (task, acq) are
    withheld when they match an identifier (they are replaced before naming, too)."""
    for p in plans:
        d = p.decision
        label = d.short()
        if holds_identifier(label):
            label = f"{d.datatype}/{d.suffix} (labels withheld: they match an identifier)"
        log.info("[sub-%s] %s: %s (%s; %s)", ctx.input_label, p.where, label, d.reason,
                 d.source)
        if "unclear" in d.flags:
            ctx.warn("convert", p.where, f"left out: {d.reason}")
        if "task-unknown" in d.flags:
            ctx.warn("convert", p.where, "no task name in the description: named "
                     "task-unknown (give the task with a --mapping-file rule)")


_COLUMNS = ("session", "series_number", "series_uid", "modality", "n_files", "n_volumes",
            "image_type", "sequence", "description", "protocol", "decision", "reason",
            "source", "outputs", "notes")


def _row(p: Plan) -> dict[str, Any]:
    f = p.facts
    return {
        "session": p.series.session or "n/a",
        "series_number": p.series.series_number if p.series.series_number is not None else "n/a",
        "series_uid": p.series.series_uid, "modality": f.modality, "n_files": f.n_files,
        "n_volumes": f.n_volumes, "image_type": "\\".join(f.image_type),
        "sequence": f.sequence_name, "description": f.description, "protocol": f.protocol,
        "decision": "convert" if p.outputs else "exclude",
        "reason": p.decision.reason, "source": p.decision.source,
        "outputs": " ".join(p.outputs), "notes": "; ".join(p.notes),
    }


def write_table(ctx: ParticipantContext, plans: list[Plan]) -> None:
    """The full decision table (PHI: descriptions) in the private audit dir."""
    rows = [_row(p) for p in plans]
    clean = [{k: str(v).replace("\t", " ").replace("\n", " ") for k, v in r.items()}
             for r in rows]
    lines = ["\t".join(_COLUMNS)] + ["\t".join(r[c] for c in _COLUMNS) for r in clean]
    write_text(ctx.audit_dir / "series.tsv", "\n".join(lines) + "\n", perms=0o600)
    write_json(ctx.audit_dir / "series.json", rows, perms=0o600)
