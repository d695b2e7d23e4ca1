"""The template registry (``templates/registry.json``, shipped as ``bidsdeid.registry``).

A registry is data: families of templates, each with the ages its cohorts cover (in
postnatal months), its contrasts and masks, and where its files come from (the
``pydeface`` package, TemplateFlow, or plain files next to a user registry). This module
reads registries and picks the template for an age and a contrast:

* a user ``--template HEAD [FACE_MASK [BRAIN_MASK]]`` wins over everything;
* else the narrowest child cohort (infant cohorts by month, pediatric by year) that
  covers the age (bounds inclusive; ties go to the nearest centre) and has the
  contrast, ranked by ``priority``;
* else (adult, or no age known) the first adult family with the contrast.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bidsdeid.errors import DataError, UsageError

CONTRASTS = ("T1w", "T2w")


@dataclass(frozen=True)
class FileRef:
    """Where one file of a template comes from (exactly one way is set)."""

    entities: tuple[tuple[str, str], ...] = ()  # TemplateFlow entities (res, desc, suffix...)
    file: str | None = None  # a file of the source package or a path next to the registry
    registry_file: str | None = None  # a file shipped in bidsdeid.registry


@dataclass(frozen=True)
class Family:
    """One template family of a registry."""

    id: str
    role: str  # "child" | "adult"
    priority: int
    source: dict[str, str]
    files: dict[str, FileRef]
    cohorts: dict[str | None, tuple[float, float | None]]  # label -> [min, max) months
    face_mask: dict[str, Any] = field(default_factory=dict)  # derive | face_value
    description: str = ""
    base_dir: Path | None = None  # folder of the registry file (user file sources)

    @property
    def contrasts(self) -> list[str]:
        return [c for c in CONTRASTS if c in self.files]


@dataclass(frozen=True)
class TemplateChoice:
    """A family, a cohort and a contrast: one template image with its masks."""

    family: Family
    cohort: str | None
    contrast: str
    reason: str  # why this one, for the report

    @property
    def id(self) -> str:
        return self.family.id + (f":cohort-{self.cohort}" if self.cohort else "")


def _fileref(spec: dict[str, Any]) -> FileRef:
    if "file" in spec:
        return FileRef(file=str(spec["file"]))
    if "registry_file" in spec:
        return FileRef(registry_file=str(spec["registry_file"]))
    return FileRef(entities=tuple((str(k), str(v)) for k, v in spec.items()))


def _family(raw: dict[str, Any], base_dir: Path | None, where: str) -> Family:
    try:
        fid = str(raw["id"])
        role = str(raw.get("role", "adult"))
        if role not in ("child", "adult"):
            raise ValueError(f"role must be child or adult, not {role!r}")
        files = {str(k): _fileref(v) for k, v in raw["files"].items()}
        if not any(c in files for c in CONTRASTS):
            raise ValueError("no T1w or T2w file")
        cohorts: dict[str | None, tuple[float, float | None]] = {}
        for label, rng in (raw.get("cohorts") or {}).items():
            hi = rng.get("max")
            cohorts[str(label)] = (float(rng.get("min", 0.0)), None if hi is None else float(hi))
        if not cohorts:
            cohorts[None] = (0.0, None)
        return Family(id=fid, role=role, priority=int(raw.get("priority", 0)),
                      source=dict(raw["source"]), files=files, cohorts=cohorts,
                      face_mask=dict(raw.get("face_mask") or {}),
                      description=str(raw.get("description", "")), base_dir=base_dir)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"template registry {where}: bad family "
                         f"{raw.get('id', '?') if isinstance(raw, dict) else '?'}: {exc}") from exc


def load_registry(extra: str | Path | None = None) -> list[Family]:
    """The built-in families, after those of a user registry file (which rank first)."""
    builtin = json.loads(resources.files("bidsdeid.registry").joinpath("registry.json")
                         .read_text(encoding="utf-8"))
    families = [_family(f, None, "bidsdeid.registry") for f in builtin["families"]]
    if extra is None:
        return families
    path = Path(extra)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read template registry {path}: {exc}") from exc
    users = [_family(f, path.parent.resolve(), str(path))
             for f in (data.get("families") or [])]
    for fam in users:
        if fam.source.get("kind") not in ("files", "templateflow", "package"):
            raise UsageError(f"template registry {path}: family {fam.id}: source kind must be "
                             "files, templateflow or package")
    user_ids = {f.id for f in users}
    return [*[Family(**{**f.__dict__, "priority": f.priority - 100}) for f in users],
            *[f for f in families if f.id not in user_ids]]


def user_template_family(files: list[str]) -> Family:
    """A family for ``--template HEAD [FACE_MASK [BRAIN_MASK]]`` (any age, any contrast)."""
    head = Path(files[0]).resolve()
    refs = {"T1w": FileRef(file=str(head)), "T2w": FileRef(file=str(head))}
    face: dict[str, Any] = {"derive": "affine"}
    if len(files) > 1:
        refs["face_mask"] = FileRef(file=str(Path(files[1]).resolve()))
        face = {"face_value": "auto"}
    if len(files) > 2:
        refs["brain_mask"] = FileRef(file=str(Path(files[2]).resolve()))
    name = head.name.split(".")[0]
    return Family(id=f"user:{name}", role="adult", priority=-1000,
                  source={"kind": "files"}, files=refs, cohorts={None: (0.0, None)},
                  face_mask=face, description="template given with --template")


def _covers(rng: tuple[float, float | None], months: float) -> bool:
    """Bounds are inclusive: an age on a boundary is covered by both cohorts, and the
    narrower one (then the one whose centre is nearer) wins."""
    lo, hi = rng
    return months >= lo and (hi is None or months <= hi)


def select(families: list[Family], age_months: float | None, contrast: str,
           user_template: list[str] | None = None) -> TemplateChoice:
    """The template for ``age_months`` (None: adult) and the anchor ``contrast``."""
    if user_template:
        fam = user_template_family(user_template)
        return TemplateChoice(fam, None, contrast, "--template")
    if age_months is not None:
        best: tuple[tuple[int, float, float, int], Family, str | None] | None = None
        for order, fam in enumerate(families):
            if fam.role != "child" or contrast not in fam.files:
                continue
            for label, rng in fam.cohorts.items():
                if not _covers(rng, age_months):
                    continue
                hi = rng[1] if rng[1] is not None else 1e6
                key = (fam.priority, hi - rng[0], abs(age_months - (hi + rng[0]) / 2), order)
                if best is None or key < best[0]:
                    best = (key, fam, label)
        if best is not None:
            fam, label = best[1], best[2]
            lo, hi = fam.cohorts[label]
            return TemplateChoice(fam, label, contrast,
                                  f"age {age_months:.1f} months in {lo:g}-{hi:g} months")
    adults = sorted((f for f in families if f.role == "adult" and contrast in f.files),
                    key=lambda f: f.priority)
    if not adults:
        raise DataError(f"no adult template with a {contrast} image in the template registry")
    fam = adults[0]
    label = next(iter(fam.cohorts))
    reason = "no age known: adult assumed" if age_months is None else \
        f"age {age_months:.1f} months: no child cohort covers it, adult template"
    return TemplateChoice(fam, label, contrast, reason)
