"""The group QC report: one private page and one TSV over every participant.

``write_group_report(config)`` reads what the participant runs left in the private
state dir (``state/sub-*/qc.json`` from QC, ``failed.json`` / ``complete.json`` from
publishing), the reviewer's ``reports/review.tsv`` and, if present,
``reports/bids_validator.json``; it writes ``reports/group.html`` (one row per
participant and image, failures and inconclusive checks first, sortable, each row
linking to the participant's private page) and ``reports/group_qc.tsv`` (the same
rows). Participant runs never write a shared file; only this function does
(MRIQC's participant/group split, so SLURM array tasks cannot collide).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bidsdeid import __version__
from bidsdeid.config import RunConfig
from bidsdeid.qc.assess import STATUS_ORDER
from bidsdeid.qc.report import environment, fmt_number
from bidsdeid.qc.review import REVIEW_FILE, Reviews, read_reviews
from bidsdeid.utils.atomic import write_text

GROUP_HTML = "group.html"
GROUP_TSV = "group_qc.tsv"
VALIDATOR_JSON = "bids_validator.json"

COLUMNS: tuple[tuple[str, str], ...] = (
    ("participant", "participant"), ("output", "published as"), ("outcome", "outcome"),
    ("image", "image"), ("suffix", "suffix"), ("role", "role"), ("status", "QC status"),
    ("face", "face check"), ("voxels_removed", "voxels removed"),
    ("removed_ml", "removed mL"), ("brain_voxels_removed", "brain voxels removed"),
    ("brain_distance_mm", "gap to brain mm"), ("similarity", "registration similarity"),
    ("template_correlation", "template correlation"), ("template", "template"),
    ("age_months", "age months"), ("age_source", "age from"), ("gates", "gates"),
    ("review", "review"), ("review_comment", "review comment"), ("reviewer", "reviewer"),
    ("problems", "problems"),
)


@dataclass
class Row:
    values: dict[str, Any]
    rank: int
    link: str | None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _rank(outcome: str, status: str, review: str | None) -> int:
    """0 failures, 1 checks that need a human, 2 not defaced, 3 passed."""
    if outcome == "failed" or status in ("error", "fail") or review == "fail":
        return 0
    if status in ("review", "inconclusive", "unknown"):
        return 1
    if status == "not defaced":
        return 2
    return 3


def _gates_text(gates: list[dict[str, Any]]) -> str:
    return "; ".join(f"{g.get('name')}: {'pass' if g.get('passed') else 'FAIL'}"
                     for g in gates)


def participant_rows(state: Path, reviews: Reviews) -> list[Row]:
    """Rows of one participant's state dir (``state/sub-<input>``)."""
    label = state.name[4:]
    qc = _read_json(state / "qc.json") or {}
    failed = _read_json(state / "failed.json")
    complete = (state / "complete.json").is_file()
    output = (failed or {}).get("output_label") or qc.get("output_label") or label
    outcome = "failed" if failed is not None else ("published" if complete else "not finished")
    problems = list((failed or {}).get("problems") or qc.get("problems") or [])
    report = qc.get("report")
    link = report if report else None
    images = qc.get("images") or []
    rows = []
    for im in images or [None]:
        im = im or {}
        metrics = {**(im.get("defacing_metrics") or {}), **(im.get("metrics") or {})}
        status = im.get("status") or ("error" if outcome == "failed" else "unknown")
        path = im.get("path") or ""
        review = reviews.find([label, output], path) if path else reviews.find(
            [label, output], "*")
        values = {
            "participant": f"sub-{label}", "output": f"sub-{output}", "outcome": outcome,
            "image": path, "suffix": im.get("suffix", ""), "role": im.get("role", ""),
            "status": status, "face": (im.get("face_check") or {}).get("status", ""),
            "voxels_removed": metrics.get("voxels_removed"),
            "removed_ml": metrics.get("removed_ml"),
            "brain_voxels_removed": metrics.get("brain_voxels_removed"),
            "brain_distance_mm": metrics.get("brain_distance_mm"),
            "similarity": (im.get("defacing_metrics") or {}).get("similarity"),
            "template_correlation": metrics.get("template_correlation"),
            "template": im.get("template", ""), "age_months": im.get("age_months"),
            "age_source": im.get("age_source", ""),
            "gates": _gates_text(im.get("safety_checks") or []),
            "review": review.verdict if review else "", "review_comment":
            review.comment if review else "", "reviewer": review.reviewer if review else "",
            "problems": " | ".join(p for p in problems if p.startswith("error")),
        }
        rows.append(Row(values, _rank(outcome, status, values["review"] or None), link))
    return rows


def _validator_messages(path: Path) -> list[str]:
    data = _read_json(path)
    if data is None:
        return []
    items: list[Any] = []
    if isinstance(data, list):
        items = data
    elif isinstance(data, dict):
        for key in ("errors", "warnings"):
            items.extend(f"{key[:-1]}: {x}" if isinstance(x, str) else x
                         for x in data.get(key) or [])
    out = []
    for item in items:
        if isinstance(item, dict):
            out.append(" ".join(f"{k}={item[k]}" for k in sorted(item)))
        else:
            out.append(str(item))
    return out


def _cell(value: Any) -> str:
    v = fmt_number(value)
    return "" if v is None else str(v)


BADGE_COLUMNS = ("status", "outcome", "face", "review")


def _html_cell(key: str, value: Any) -> dict[str, Any]:
    v = fmt_number(value)
    return {"text": _cell(value), "numeric": isinstance(v, int | float) and not isinstance(
        v, bool), "badge": key in BADGE_COLUMNS and bool(v)}


def write_tsv(path: Path, rows: list[Row]) -> None:
    lines = ["\t".join(key for key, _ in COLUMNS)]
    for row in rows:
        lines.append("\t".join(_cell(row.values.get(key)).replace("\t", " ").replace(
            "\n", " ") for key, _ in COLUMNS))
    write_text(path, "\n".join(lines) + "\n", perms=0o600)


NOT_RUN_PROBLEM = ("error: no result from the participant level (not run, killed, or out "
                   "of time)")


def not_run_row(participant: str) -> Row:
    """The row of an expected participant that left no state at all (``sub-<label>``)."""
    values = {key: "" for key, _ in COLUMNS}
    values.update(participant=participant, outcome="not run", status="error",
                  problems=NOT_RUN_PROBLEM)
    return Row(values, 0, None)


def collect(config: RunConfig, missing: Sequence[str] = ()) -> tuple[list[Row], Reviews,
                                                                    list[str]]:
    """Every row (worst first), the reviews, and the validator's messages; ``missing``
    names expected participants (``sub-<label>``) that have no result."""
    reviews = read_reviews(config.reports_dir / REVIEW_FILE)
    rows: list[Row] = []
    if config.state_dir.is_dir():
        for state in sorted(p for p in config.state_dir.iterdir()
                            if p.is_dir() and p.name.startswith("sub-")):
            if not any((state / f).is_file() for f in ("qc.json", "failed.json",
                                                        "complete.json")):
                continue
            rows.extend(participant_rows(state, reviews))
    seen = {r.values["participant"] for r in rows}
    rows.extend(not_run_row(p) for p in missing if p not in seen)
    order = {s: i for i, s in enumerate(STATUS_ORDER)}
    rows.sort(key=lambda r: (r.rank, order.get(r.values["status"], 0),
                             r.values["participant"], r.values["image"]))
    return rows, reviews, _validator_messages(config.reports_dir / VALIDATOR_JSON)


def write_group_report(config: RunConfig, missing: Sequence[str] = ()) -> Path:
    """Write ``reports/group.html`` and ``reports/group_qc.tsv``; return the HTML path.
    ``missing``: expected participants (``sub-<label>``) with no result ("not run")."""
    rows, reviews, validator = collect(config, missing)
    out_dir = config.reports_dir
    write_tsv(out_dir / GROUP_TSV, rows)
    participants = sorted({r.values["participant"] for r in rows})
    summary = {
        "participants": len(participants),
        "failed": len({r.values["participant"] for r in rows
                       if r.values["outcome"] in ("failed", "not run")}),
        "published": len({r.values["participant"] for r in rows
                          if r.values["outcome"] == "published"}),
        "images": sum(1 for r in rows if r.values["image"]),
        "need_review": sum(1 for r in rows if r.rank <= 1),
        "reviewed": sum(1 for r in rows if r.values["review"]),
        "review_fail": sum(1 for r in rows if r.values["review"] == "fail"),
    }
    html = environment().get_template("group.html").render(
        columns=COLUMNS, rows=[{"cells": [_html_cell(k, r.values.get(k)) for k, _ in COLUMNS],
                                "rank": r.rank, "link": r.link} for r in rows],
        summary=summary, review_problems=reviews.problems, validator=validator,
        review_file=REVIEW_FILE, generator=f"bidsdeid {__version__}")
    path = out_dir / GROUP_HTML
    write_text(path, html, perms=0o600)
    return path
