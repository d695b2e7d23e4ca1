"""Template files: where they are (package, TemplateFlow, user files), and loading them.

TemplateFlow is read from ``$TEMPLATEFLOW_HOME`` (default ``~/.cache/templateflow``, as
templateflow itself) by file name, without importing templateflow: importing it unpacks a
skeleton of empty files and ``templateflow.api.get`` downloads on demand, and a run must
never touch the network. A missing or placeholder (empty) file is a
:class:`TemplateMissingError` naming the file and the command that fetches it
(``scripts/fetch_templates.py``, or ``bidsdeid-templates fetch``).
"""

from __future__ import annotations

import gzip
import os
from importlib import resources
from pathlib import Path

from bidsdeid.deface.registry import Family, FileRef, TemplateChoice
from bidsdeid.errors import DataError

FETCH_HINT = ("fetch it on a machine with network with `python scripts/fetch_templates.py` "
              "(or `bidsdeid-templates fetch`), then point TEMPLATEFLOW_HOME at that folder")


class TemplateMissingError(DataError):
    """A template file the registry names is not on this machine."""


def templateflow_home() -> Path:
    """``$TEMPLATEFLOW_HOME``, read now (not at import), with templateflow's default."""
    home = os.environ.get("TEMPLATEFLOW_HOME")
    return Path(home) if home else Path.home() / ".cache" / "templateflow"


ENTITY_ORDER = ("res", "atlas", "label", "desc")


def templateflow_name(template: str, cohort: str | None, entities: dict[str, str]) -> str:
    """The TemplateFlow relative path: ``tpl-X/[cohort-N/]tpl-X[_cohort-N]_res-.._suffix``."""
    parts = [f"tpl-{template}"]
    if cohort:
        parts.append(f"cohort-{cohort}")
    for key in ENTITY_ORDER:
        if key in entities:
            parts.append(f"{key}-{entities[key]}")
    name = "_".join(parts) + f"_{entities['suffix']}" + entities.get("extension", ".nii.gz")
    folder = f"tpl-{template}" + (f"/cohort-{cohort}" if cohort else "")
    return f"{folder}/{name}"


def _is_real(path: Path) -> bool:
    """True for a real (g)zipped NIfTI, False for a missing file or an empty placeholder."""
    try:
        size = path.stat().st_size
        if size == 0 or (size < 348 and not path.name.endswith(".gz")):
            return False
        with open(path, "rb") as fh:
            head = fh.read(2)
        if path.name.endswith(".gz"):
            if head != b"\x1f\x8b":
                return False
            with gzip.open(path, "rb") as gz:
                return len(gz.read(348)) == 348
        return True
    except (OSError, EOFError, gzip.BadGzipFile):
        return False


def resolve_file(family: Family, cohort: str | None, key: str) -> Path | None:
    """The path of file ``key`` (T1w, T2w, face_mask, brain_mask) of a family, or None when
    the registry does not list it. Raises :class:`TemplateMissingError` when listed but
    absent."""
    ref: FileRef | None = family.files.get(key)
    if ref is None:
        return None
    kind = family.source.get("kind")
    if ref.registry_file:
        path = Path(str(resources.files("bidsdeid.registry").joinpath(ref.registry_file)))
        hint = "it ships with bidsdeid: reinstall the package"
    elif kind == "package":
        package, folder = family.source["package"], family.source.get("folder", "")
        try:
            root = resources.files(package)
        except ModuleNotFoundError as exc:
            raise TemplateMissingError(
                f"template {family.id}: Python package {package} is not installed "
                f"(pip install {package})") from exc
        path = Path(str(root.joinpath(folder, ref.file or "")))
        hint = f"reinstall the {package} package"
    elif kind == "templateflow":
        rel = templateflow_name(family.source["template"], cohort, dict(ref.entities))
        path = templateflow_home() / rel
        hint = FETCH_HINT
        if not _is_real(path):
            raise TemplateMissingError(
                f"template file {rel} is missing from TEMPLATEFLOW_HOME ({templateflow_home()})"
                f"{' (an empty placeholder)' if path.exists() else ''}: {hint}")
        return path
    else:  # files
        path = Path(ref.file or "")
        if not path.is_absolute() and family.base_dir is not None:
            path = family.base_dir / path
        hint = "check the path in --template or the registry file"
    if not _is_real(path):
        raise TemplateMissingError(f"template {family.id}: file {path} is missing or not a "
                                   f"NIfTI image: {hint}")
    return path


def required_files(choice: TemplateChoice) -> dict[str, Path | None]:
    """Head (of the chosen contrast), face mask, brain mask, and the head used to derive
    masks (T1w when the family has it: the pydeface reference is a T1w)."""
    fam, cohort = choice.family, choice.cohort
    derive_from = "T1w" if "T1w" in fam.files else choice.contrast
    return {
        "head": resolve_file(fam, cohort, choice.contrast),
        "face_mask": resolve_file(fam, cohort, "face_mask"),
        "brain_mask": resolve_file(fam, cohort, "brain_mask"),
        "derive_head": resolve_file(fam, cohort, derive_from),
    }


def templateflow_files(families: list[Family]) -> list[tuple[str, str | None, dict[str, str],
                                                             str]]:
    """Every TemplateFlow file the registry needs: (template, cohort, entities, rel path)."""
    out = []
    for fam in families:
        if fam.source.get("kind") != "templateflow":
            continue
        tpl = fam.source["template"]
        for cohort in fam.cohorts:
            for key in sorted(fam.files):
                ref = fam.files[key]
                if ref.entities:
                    ent = dict(ref.entities)
                    out.append((tpl, cohort, ent, templateflow_name(tpl, cohort, ent)))
    return out
