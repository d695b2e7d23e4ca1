"""``--dry-run``: read everything, decide everything, write only a plan (privately).

For every selected participant, the same code the real run uses decides, without
converting, defacing or writing a single output file:

* labels (``--relabel``/``--id-map``, linkage.tsv read, not written): an id map without
  an entry for a participant is an error in the plan, as it would be in the run;
* every series: quarantine, the heuristic and ``--mapping-file`` (the planned BIDS
  name), and the action on every attribute of its first header (Table E.1-1 with the
  options and the site rules; vocabularies evaluated on the series' own values);
* BIDS NIfTI inputs found;
* defacing per session: the anatomical images, the anchor, the age and where it came
  from, and the template the registry would pick (no registration);
* the identifiers found, counted by kind.

The plan goes to ``PRIVATE_DIR/plan/``: ``plan.json`` (everything), ``plan.txt`` (for
reading) and ``attributes.tsv`` (one row per series and attribute). It holds series
descriptions, so it is private; the terminal gets a summary with counts only. OUTPUT_DIR
is not created, nor the work dir; the key is made if missing (so the plan's pseudonyms
are the ones the run will use) and the run log is written as for any run.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

from bidsdeid.bids import labels as labels_mod
from bidsdeid.bids.stage import read_inputs
from bidsdeid.config import RunConfig
from bidsdeid.context import ParticipantContext
from bidsdeid.convert.plan import Plan, decide
from bidsdeid.dicom.quarantine import quarantine_reason
from bidsdeid.errors import BidsdeidError, ExitCode
from bidsdeid.privacy.identifiers import KINDS
from bidsdeid.privacy.keys import ProjectKey
from bidsdeid.progress import NULL_PROGRESS, Progress
from bidsdeid.site import plan_parts
from bidsdeid.site import stage as site_stage
from bidsdeid.utils.atomic import write_json, write_text

log = logging.getLogger("bidsdeid")
FOLDER = "plan"


def _context(config: RunConfig, key: ProjectKey, label: str) -> ParticipantContext:
    work = config.work_dir / f"sub-{label}"  # named, never created
    return ParticipantContext(config=config, key=key, input_label=label, output_label=label,
                              offset=key.date_offset(label), work=work,
                              staging=work / "staging")


def plan_participant(config: RunConfig, key: ProjectKey, label: str) -> dict[str, Any]:
    """The plan of one participant (PHI: series descriptions; private)."""
    ctx = _context(config, key, label)
    out: dict[str, Any] = {"input_label": label, "errors": [], "warnings": []}
    try:
        site_stage.prepare(ctx)
        read_inputs(ctx)
    except BidsdeidError as exc:
        out["errors"].append(exc.message)
        return out
    try:
        found = labels_mod.decide(ctx, labels_mod.read_linkage(
            config.private_dir / labels_mod.LINKAGE))
        ctx.output_label, ctx.session_map = found.label, found.session_map
        out["output_label"] = found.label
        out["sessions"] = {str(k): v for k, v in found.session_map.items() if k is not None}
        out["replacement_demographics"] = found.demographics
    except BidsdeidError as exc:
        out["errors"].append(exc.message)
        out["output_label"] = None
    plans = decide(ctx, copy_refused=False) if ctx.dicom is not None and ctx.dicom.series \
        else []
    out["series"] = [_series(ctx, p) for p in plans]
    out["bids_inputs"] = plan_parts.bids_inputs(ctx)
    plan_parts.bids_identifiers(ctx)
    out["deface"] = plan_parts.deface(ctx, plans, out["bids_inputs"])
    out["identifiers"] = {kind: len(ctx.identifiers.values.get(kind, {})) for kind in KINDS}
    out["warnings"] += [p.line() for p in ctx.problems if p.level == "warning"]
    out["errors"] += [p.line() for p in ctx.problems if p.level == "error"]
    return out


def _series(ctx: ParticipantContext, p: Plan) -> dict[str, Any]:
    s = p.series
    refused = quarantine_reason(s.header)
    return {
        "where": p.where, "session": s.session, "series_number": s.series_number,
        "n_files": s.n_files, "description": p.facts.description,
        "protocol": p.facts.protocol,
        "decision": ("quarantine" if refused else
                     "convert" if p.decision.converts else "exclude"),
        "bids": p.decision.short() if p.decision.converts else None,
        "reason": p.decision.reason, "source": p.decision.source,
        "dicom_out": ctx.config.dicom_out and not refused,
        "attributes": plan_parts.attribute_actions(ctx, s),
    }


def _text(plan: dict[str, Any]) -> str:
    """The readable form of the plan."""
    lines = [f"bidsdeid dry run: {len(plan['participants'])} participant(s)",
             f"options: {json.dumps(plan['options'], sort_keys=True)}"]
    if plan.get("rules"):
        lines.append(f"site rules: {plan['rules']['name']} sha256 {plan['rules']['sha256']}")
    for w in plan.get("rule_warnings", []):
        lines.append(f"  warning: {w}")
    for part in plan["participants"]:
        lines.append("")
        lines.append(f"sub-{part['input_label']} -> "
                     f"{'sub-' + part['output_label'] if part.get('output_label') else '?'}")
        for e in part["errors"]:
            lines.append(f"  ERROR: {e}")
        for s in part.get("series", []):
            lines.append(f"  {s['where']}: {s['decision']}"
                         + (f" {s['bids']}" if s["bids"] else "")
                         + f" ({s['n_files']} files; {s['reason']})")
        for b in part.get("bids_inputs", []):
            lines.append(f"  bids {b['path']}: {b['datatype']}/{b['suffix']}")
        for d in part.get("deface", []):
            lines.append(f"  deface {d['session'] or '(no session)'}: {', '.join(d['images'])}"
                         f" -> {d.get('template') or d.get('note')}"
                         + (f" (anchor {d['anchor']}, age {d['age_months']} months from "
                            f"{d['age_source']}; {d['reason']})" if d.get("template") else ""))
        ids = ", ".join(f"{k} {n}" for k, n in part.get("identifiers", {}).items() if n)
        lines.append(f"  identifiers found: {ids or 'none'}")
    return "\n".join(lines) + "\n"


def _attributes_tsv(plan: dict[str, Any]) -> str:
    rows = ["participant\tseries\tattribute\ttag\taction\twhy"]
    for part in plan["participants"]:
        for s in part.get("series", []):
            for a in s["attributes"]:
                rows.append("\t".join([part["input_label"], s["where"], a["attribute"],
                                       a["tag"], a["action"], a["why"]]))
    return "\n".join(rows) + "\n"


def _summary_line(part: dict[str, Any]) -> str:
    """Counts only: no value on the terminal."""
    series = part.get("series", [])
    n = Counter(s["decision"] for s in series)
    deface = part.get("deface", [])
    images = sum(len(d["images"]) for d in deface if d.get("template"))
    templates = sorted({d["template"] for d in deface if d.get("template")})
    ids = ", ".join(f"{k} {c}" for k, c in part.get("identifiers", {}).items() if c)
    out = (f"sub-{part['input_label']} -> "
           f"{'sub-' + part['output_label'] if part.get('output_label') else '(no label)'}: "
           f"{len(series)} series ({n['convert']} to convert, {n['exclude']} left out, "
           f"{n['quarantine']} quarantined), {len(part.get('bids_inputs', []))} BIDS images, "
           f"{images} anatomical image(s) to deface"
           + (f" with {', '.join(templates)}" if templates else "")
           + f"; identifiers: {ids or 'none'}")
    if part["errors"]:
        out += f"; {len(part['errors'])} ERROR(S) (see the plan)"
    return out


def run(config: RunConfig, key: ProjectKey, labels: list[str],
        progress: Progress = NULL_PROGRESS) -> int:
    """Plan every participant; write the plan; print a summary; 1 if any has an error."""
    plan: dict[str, Any] = {
        "bids_dir": str(config.bids_dir), "output_dir": str(config.output_dir),
        "options": config.to_dict()["deid"], "deface_options": config.to_dict()["deface"],
        "dicom_out": config.dicom_out, "send_to": config.send_to,
        "relabel": "idmap" if config.id_map else config.relabel, "participants": []}
    if config.rules_file is not None:
        from bidsdeid.site.rules import load

        rules = load(config.rules_file)
        plan["rules"] = rules.to_json()
        plan["rule_warnings"] = rules.warnings(config.deid)
    for i, label in enumerate(labels, 1):
        progress.item("participants planned", i, len(labels))
        try:
            part = plan_participant(config, key, label)
        except Exception as exc:
            log.debug("planning sub-%s failed", label, exc_info=True)
            part = {"input_label": label, "output_label": None, "warnings": [],
                    "errors": [f"internal error ({type(exc).__name__}); details in the log"]}
        plan["participants"].append(part)
    folder = config.private_dir / FOLDER
    write_json(folder / "plan.json", plan, perms=0o600)
    write_text(folder / "plan.txt", _text(plan), perms=0o600)
    write_text(folder / "attributes.tsv", _attributes_tsv(plan), perms=0o600)
    for part in plan["participants"]:
        print(f"bidsdeid: dry run: {_summary_line(part)}")
    print(f"bidsdeid: dry run: nothing was written to {config.output_dir}; the plan is in "
          f"{folder / 'plan.txt'} (private)")
    failed = [p for p in plan["participants"] if p["errors"]]
    return int(ExitCode.FAILURE if failed else ExitCode.SUCCESS)
