"""BIDS file names made only of entities (DESIGN.md section 4: "Filenames and labels:
only BIDS entities"). Labels are letters and digits; anything else is refused."""

from __future__ import annotations

import re

from bidsdeid.bids import schema

LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")
_ENTITY_RE = re.compile(r"^([a-zA-Z]+)-([A-Za-z0-9]+)$")


def clean_label(text: str) -> str:
    """Letters and digits of ``text`` (what a BIDS label may hold)."""
    return re.sub(r"[^A-Za-z0-9]", "", text)


def ordered(entities: dict[str, str]) -> list[tuple[str, str]]:
    """Entities in schema order; unknown names go last, alphabetically."""
    order = {name: i for i, name in enumerate(schema.entity_order())}
    return sorted(((k, v) for k, v in entities.items() if v not in (None, "")),
                  key=lambda kv: (order.get(kv[0], 1000), kv[0]))


def build_name(entities: dict[str, str], suffix: str, extension: str) -> str:
    """``sub-01_ses-1_task-rest_bold.nii.gz`` from entities, suffix and extension."""
    parts = []
    for key, value in ordered(entities):
        if not LABEL_RE.match(str(value)):
            raise ValueError(f"entity {key} has a label that is not letters and digits")
        parts.append(f"{key}-{value}")
    if not LABEL_RE.match(suffix):
        raise ValueError("suffix must be letters and digits")
    return "_".join(parts + [suffix]) + extension


def rel_path(entities: dict[str, str], datatype: str, suffix: str, extension: str) -> str:
    """OUTPUT_DIR-relative path: ``sub-X/[ses-Y/]<datatype>/<name>``."""
    folder = f"sub-{entities['sub']}"
    if entities.get("ses"):
        folder += f"/ses-{entities['ses']}"
    return f"{folder}/{datatype}/{build_name(entities, suffix, extension)}"


def split_extension(filename: str) -> tuple[str, str]:
    """(stem, extension) with double extensions (.nii.gz, .tsv.gz) kept whole."""
    for ext in (".nii.gz", ".tsv.gz", ".ome.zarr"):
        if filename.endswith(ext):
            return filename[: -len(ext)], ext
    stem, dot, ext = filename.rpartition(".")
    return (stem, "." + ext) if dot else (filename, "")


def parse_name(filename: str) -> tuple[dict[str, str], str, str] | None:
    """(entities, suffix, extension) of a BIDS file name, or None if it is not one."""
    stem, ext = split_extension(filename)
    parts = stem.split("_")
    if len(parts) < 2:
        return None
    entities: dict[str, str] = {}
    for part in parts[:-1]:
        m = _ENTITY_RE.match(part)
        if not m or m.group(1) in entities:
            return None
        entities[m.group(1)] = m.group(2)
    suffix = parts[-1]
    if not LABEL_RE.match(suffix) or "sub" not in entities:
        return None
    return entities, suffix, ext


def fit_entities(datatype: str, suffix: str,
                 entities: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Keep only the entities the schema allows for ``datatype/suffix``; return the
    kept entities and the names of those dropped."""
    allowed = schema.allowed_entities(datatype, suffix)
    if allowed is None:
        return dict(entities), []
    kept = {k: v for k, v in entities.items() if k in allowed}
    return kept, sorted(set(entities) - set(kept))
