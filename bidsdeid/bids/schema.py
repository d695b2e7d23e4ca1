"""What the BIDS schema (``bidsschematools``, the one bids-validator uses) says.

* :func:`entity_order`: the order of entities in a file name;
* :func:`allowed_entities`: which entities a datatype/suffix may carry;
* :func:`metadata_names`: every sidecar field BIDS defines (the base of the allow-list);
* :func:`required_fields`: the sidecar fields the validator requires for a file, from
  the schema's sidecar rules. Only the simple selector forms those rules use are
  evaluated; an unknown form counts as "does not apply".
"""

from __future__ import annotations

import functools
import re
from typing import Any

from bidsschematools import schema as bst

MRI_DATATYPES = ("anat", "func", "dwi", "fmap", "perf")
_SIDECAR_GROUPS = ("mri", "anat", "func", "dwi", "fmap", "asl", "qmri")


@functools.lru_cache(maxsize=1)
def load() -> Any:
    return bst.load_schema()


def bids_version() -> str:
    return str(load().bids_version)


@functools.lru_cache(maxsize=1)
def entity_order() -> tuple[str, ...]:
    """Short entity names in file-name order (sub, ses, task, acq, ...)."""
    s = load()
    return tuple(s.objects.entities[k].name for k in s.rules.entities)


@functools.lru_cache(maxsize=1)
def _long_to_short() -> dict[str, str]:
    s = load()
    return {k: s.objects.entities[k].name for k in s.rules.entities}


@functools.lru_cache(maxsize=256)
def allowed_entities(datatype: str, suffix: str) -> dict[str, str] | None:
    """Short entity name -> "required"/"optional" for a raw file, or None if unknown."""
    s = load()
    raw = s.rules.files.raw
    if datatype not in raw:
        return None
    to_short = _long_to_short()
    for rule in raw[datatype].values():
        if suffix in rule.get("suffixes", []) and datatype in rule.get("datatypes", []):
            ents = rule.get("entities", {})
            out: dict[str, str] = {}
            for long, level in dict(ents).items():
                lvl = level if isinstance(level, str) else dict(level).get("level", "optional")
                out[to_short.get(str(long), str(long))] = str(lvl)
            return out
    return None


@functools.lru_cache(maxsize=1)
def metadata_names() -> frozenset[str]:
    s = load()
    return frozenset(v["name"] for v in s.objects.metadata.values())


def _field_name(key: str) -> str:
    s = load()
    obj = s.objects.metadata.get(key)
    return str(obj["name"]) if obj is not None else key.split("__")[0]


_LIT = r'(true|false|null|"[^"]*"|-?\d+(?:\.\d+)?)'


def _literal(text: str) -> Any:
    if text == "true":
        return True
    if text == "false":
        return False
    if text == "null":
        return None
    if text.startswith('"'):
        return text[1:-1]
    return float(text)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _selector(expr: str, ctx: dict[str, Any]) -> bool:
    e = expr.strip()
    m = re.fullmatch(r"(datatype|suffix|modality)\s*(==|!=)\s*\"([^\"]*)\"", e)
    if m:
        return (ctx[m.group(1)] == m.group(3)) == (m.group(2) == "==")
    m = re.fullmatch(r"match\(extension,\s*[\"'](.*)[\"']\)", e)
    if m:
        return re.search(m.group(1).replace("\\\\", "\\"), ctx["extension"]) is not None
    m = re.fullmatch(r"intersects\(\[?(suffix|datatype)\]?,\s*\[(.*)\]\)", e)
    if m:
        options = [o.strip().strip("'\"") for o in m.group(2).split(",")]
        return ctx[m.group(1)] in options
    m = re.fullmatch(r"intersects\(\[sidecar\.(\w+)\],\s*\[(.*)\]\)", e)
    if m:
        options = [o.strip().strip("'\"") for o in m.group(2).split(",")]
        return ctx["sidecar"].get(m.group(1)) in options
    m = re.fullmatch(r"sidecar\.(\w+)\s*(==|!=)\s*" + _LIT, e)
    if m:
        value = ctx["sidecar"].get(m.group(1))
        return (value == _literal(m.group(3))) == (m.group(2) == "==")
    m = re.fullmatch(r"type\(sidecar\.(\w+)\)\s*(==|!=)\s*\"(\w+)\"", e)
    if m:
        t = _json_type(ctx["sidecar"].get(m.group(1)))
        return (t == m.group(3)) == (m.group(2) == "==")
    m = re.fullmatch(r"(!?)\(?\"(\w+)\" in sidecar\)?", e)
    if m:
        return (m.group(2) in ctx["sidecar"]) != bool(m.group(1))
    m = re.fullmatch(r"entities\.(\w+)", e)
    if m:
        return bool(ctx["entities"].get(m.group(1)))
    return False  # dataset-level or unknown forms: treat as not applying


def required_fields(datatype: str, suffix: str, sidecar: dict[str, Any],
                    entities: dict[str, str] | None = None) -> list[str]:
    """Sidecar fields the validator requires for ``<datatype>/<suffix>.nii.gz`` and not
    present in ``sidecar`` (evaluated against the sidecar itself, as the validator does)."""
    s = load()
    long_entities = {}
    short_to_long = {v: k for k, v in _long_to_short().items()}
    for k, v in (entities or {}).items():
        long_entities[short_to_long.get(k, k)] = v
    ctx = {"datatype": datatype, "suffix": suffix, "extension": ".nii.gz",
           "modality": "mri" if datatype in MRI_DATATYPES else "", "sidecar": sidecar,
           "entities": long_entities}
    missing: list[str] = []
    for group in _SIDECAR_GROUPS:
        if group not in s.rules.sidecars:
            continue
        for rule in s.rules.sidecars[group].values():
            selectors = list(rule.get("selectors", []))
            if not all(_selector(sel, ctx) for sel in selectors):
                continue
            for key, level in dict(rule.get("fields", {})).items():
                lvl = level if isinstance(level, str) else dict(level).get("level")
                name = _field_name(key)
                if lvl == "required" and name not in sidecar and name not in missing:
                    missing.append(name)
    return missing
