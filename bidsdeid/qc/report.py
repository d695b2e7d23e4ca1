"""Participant reports: the private before/after page, the shareable defaced-only page
and the shareable metrics JSON.

Pages are Jinja2 templates shipped in the package (``bidsdeid/qc/templates``, loaded
with a PackageLoader) with autoescape on; every image is inline (data: URI) and a
Content-Security-Policy forbids loading anything, so a page opened offline shows all
and a page opened online fetches nothing. The shareable page and JSON are built only
from what is safe to publish: figures made after defacing, OUTPUT_DIR-relative paths,
output labels, rounded numbers, no timestamps; the same input gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jinja2

from bidsdeid import __version__
from bidsdeid.privacy.dates import MAX_AGE_YEARS
from bidsdeid.qc import figures
from bidsdeid.qc.assess import STATUS_ORDER, ImageQC
from bidsdeid.qc.face import FaceEvidence

# Fixed text of the shareable files is kept short and plain: the leak scan matches
# name parts as words, so words that are also common surnames are avoided.
NUMBER_LABELS = (
    ("voxels_removed", "voxels removed"),
    ("removed_ml", "removed volume (mL)"),
    ("brain_voxels_removed", "brain voxels removed (0 expected)"),
    ("brain_distance_mm", "removed region to brain (mm)"),
    ("voxels_changed_outside_mask", "voxels changed outside the removed region"),
    ("similarity", "registration similarity"),
    ("template_correlation", "template correlation"),
)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("bidsdeid.qc", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=False, lstrip_blocks=False, keep_trailing_newline=True)
    env.globals["fmt"] = fmt_number
    return env


def fmt_number(v: Any) -> Any:
    """Numbers as a person reads them: whole numbers without decimals, others to 3
    significant decimals."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return v
    if not math.isfinite(v):
        return None
    if float(v).is_integer():
        return int(v)
    return float(f"{v:.4g}") if abs(v) < 1000 else round(float(v), 1)


def shareable_age(months: float | None) -> str | None:
    """Age as the shareable files give it: months under 2 years, whole years above,
    capped at 89 years (as participants.tsv)."""
    if months is None or not math.isfinite(months):
        return None
    if months < 24:
        return f"{months:.1f} months"
    return f"{min(int(months // 12), MAX_AGE_YEARS)} years"


def template_name(template: str) -> str:
    """A template as shareable files name it: a user's template file by its file name
    only (its folder may name a person or a site)."""
    if "/" in template or "\\" in template:
        return template.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return template


def private_age(months: float | None) -> str | None:
    if months is None or not math.isfinite(months):
        return None
    if months < 24:
        return f"{months:.1f} months"
    return f"{months / 12:.1f} years ({months:.0f} months)"


def _evidence_row(state: str, ev: FaceEvidence) -> tuple[str, dict[str, Any]]:
    haar = ", ".join(f"{k} {v:.0f}" for k, v in sorted(ev.haar.items())) or "–"
    return state, {"haar_text": haar, "nose_mm": fmt_number(round(ev.nose_mm, 1))}


@dataclass
class PageImage:
    """One image as a page shows it (figures already filtered for the audience)."""

    anchor_id: str
    path: str
    suffix: str
    role: str
    status: str
    anchor: str | None
    error: str | None
    template: str
    template_contrast: str
    age: str | None
    age_source: str
    face: dict[str, Any] | None
    renders: list[Any] = field(default_factory=list)
    panels: list[Any] = field(default_factory=list)
    number_rows: list[dict[str, Any]] = field(default_factory=list)
    gates: list[Any] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    reported: dict[str, float] = field(default_factory=dict)


def page_image(qc: ImageQC, index: int, private: bool) -> PageImage:
    figs = [f for f in qc.figures if private or not f.shows_face]
    renders = [f for f in figs if f.name.startswith("render_")]
    # before above after, views in the order of render.VIEWS
    renders.sort(key=lambda f: (0 if "_before_" in f.name else 1))
    panels = sorted((f for f in figs if not f.name.startswith("render_")),
                    key=lambda f: (f.name.split("_")[0] != "slices", f.name.endswith("after")))
    face = None
    if qc.face is not None:
        evidence = []
        if private and qc.face.before is not None:
            evidence.append(_evidence_row("before", qc.face.before))
        elif qc.face.before is not None:
            evidence.append(("before", {"haar_text": "face found" if qc.face.before.seen
                                        else "no face found", "nose_mm": None}))
        if qc.face.after is not None:
            evidence.append(_evidence_row("after", qc.face.after))
        face = {"status": qc.face.status, "message": qc.face.message, "evidence": evidence}
    rows = []
    for key, label in NUMBER_LABELS:
        if key in qc.metrics or key in qc.reported:
            rows.append({"label": label, "qc": fmt_number(qc.metrics.get(key)),
                         "reported": fmt_number(qc.reported.get(key))})
    known = {k for k, _ in NUMBER_LABELS}
    for key in sorted(set(qc.reported) - known):
        rows.append({"label": key, "qc": None, "reported": fmt_number(qc.reported[key])})
    age = private_age(qc.age_months) if private else shareable_age(qc.age_months)
    return PageImage(
        anchor_id=f"image-{index + 1}", path=qc.rel_path, suffix=qc.suffix, role=qc.role,
        status=qc.status, anchor=qc.anchor, error=qc.error,
        template=qc.template if private else template_name(qc.template),
        template_contrast=qc.template_contrast, age=age, age_source=qc.age_source, face=face,
        renders=renders, panels=panels, number_rows=rows, gates=qc.gates,
        metrics=qc.metrics, reported=qc.reported)


def participant_status(images: list[ImageQC], failed: bool) -> str:
    worst = min((STATUS_ORDER.index(q.status) for q in images), default=len(STATUS_ORDER))
    status = STATUS_ORDER[worst] if worst < len(STATUS_ORDER) else "pass"
    if failed and status not in ("error", "fail"):
        return "fail"
    return status


FIGURE_BUDGET_BYTES = 4_500_000
"""Inline images of one page, base64 included: the page stays under 5 MB."""


def render_participant(*, images: list[ImageQC], private: bool, title: str, input_sub: str,
                       output_sub: str, problems: list[str], notes: list[str],
                       failed: bool) -> str:
    """HTML of one participant page (private: before and after; else after only)."""
    kept = [[f for f in q.figures if private or not f.shows_face] for q in images]
    kept = figures.fit_budget(kept, FIGURE_BUDGET_BYTES)
    images = [dataclasses.replace(q, figures=k) for q, k in zip(images, kept)]
    page = {
        "title": title, "private": private, "input_sub": input_sub, "output_sub": output_sub,
        "status": participant_status(images, failed), "notes": notes,
        "problems": problems if private else [],
        "images": [page_image(q, i, private) for i, q in enumerate(images)],
        "generator": f"bidsdeid {__version__}",
    }
    return environment().get_template("participant.html").render(page=page)


def shareable_metrics(images: list[ImageQC], output_sub: str, status: str) -> dict[str, Any]:
    """The shareable metrics JSON: PHI-free and deterministic (rounded numbers, no
    paths outside OUTPUT_DIR, no before-defacing evidence beyond "a face was found")."""
    out_images = []
    for qc in images:
        rec = qc.record()
        rec.pop("error", None)
        rec.pop("age_months", None)
        rec["age"] = shareable_age(qc.age_months)
        rec["template"] = template_name(qc.template)
        face = rec.get("face_check")
        if face and face.get("before") is not None:
            face["before"] = {"face": bool(face["before"]["face"])}
        out_images.append(rec)
    return {"participant": output_sub, "status": status, "images": out_images,
            "generated_by": {"name": "bidsdeid", "version": __version__}}
