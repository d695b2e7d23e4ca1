"""User mapping file (``--mapping-file``): rules that override the built-in heuristic.

A JSON or YAML file holding a list of rules (or ``{"series": [rules]}``). The first
rule whose ``match`` fits a series wins. A rule either excludes the series, names it
outright, or amends what the heuristic decided::

    series:
      - match: {SeriesDescription: "*mprage*"}       # glob, case-insensitive
        datatype: anat
        suffix: T1w
        entities: {acq: mprage}
      - match: {SeriesNumber: 99}
        exclude: vendor report                      # reason (kept in the audit)
      - match: {ProtocolName: "re:fmri.*rest"}      # regular expression
        entities: {task: rest}                      # amend the heuristic's decision
      - match: {SeriesDescription: "*pcasl*"}
        metadata: {BackgroundSuppression: false}    # extra sidecar fields
        aslcontext: [control, label, control, label]

``match`` keys are DICOM keywords of the series' first header (``ImageType`` matches
any of its values), or ``session``. Values: a number (equal), a string (equal, any
case), a glob (``*``, ``?``), ``re:<regex>``, or a list of these (any). For a
gradient-echo field map series use ``datatype: fmap`` with ``suffix: auto``.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from bidsdeid.convert.heuristic import GRE_FIELDMAP, Decision
from bidsdeid.errors import UsageError

DATATYPES = ("anat", "func", "dwi", "fmap", "perf")
_LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")
_SUFFIX_RE = re.compile(r"^[A-Za-z0-9]+$")
_ENTITIES = ("task", "acq", "ce", "rec", "dir", "run", "mod", "echo", "flip", "inv", "mt",
             "part", "chunk")
_RULE_KEYS = {"match", "exclude", "datatype", "suffix", "entities", "metadata", "aslcontext",
              "comment"}
_ASL_VOLUME_TYPES = {"control", "label", "m0scan", "deltam", "cbf", "noRF"}


@dataclass
class Rule:
    index: int  # 1-based, as the user counts
    match: dict[str, Any]
    exclude: str | None = None
    datatype: str | None = None
    suffix: str | None = None
    entities: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    aslcontext: list[str] | None = None


def load(path: Path) -> list[Rule]:
    """Read and check a mapping file; a mistake is a :class:`UsageError` naming the rule."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--mapping-file {path}: cannot read ({exc.strerror})") from exc
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json and yaml raise different errors
        raise UsageError(f"--mapping-file {path}: not valid "
                         f"{'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'}"
                         f" ({type(exc).__name__})") from exc
    if isinstance(data, dict):
        data = data.get("series", data.get("rules"))
    if not isinstance(data, list):
        raise UsageError(f"--mapping-file {path}: expected a list of rules "
                         "(or {\"series\": [...]})")
    return [_rule(path, i, raw) for i, raw in enumerate(data, 1)]


def _rule(path: Path, index: int, raw: Any) -> Rule:
    where = f"--mapping-file {path}, rule {index}"
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: a rule is a mapping with 'match' and an action")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    match = raw.get("match")
    if not isinstance(match, dict) or not match:
        raise UsageError(f"{where}: 'match' must map DICOM keywords to values")
    rule = Rule(index=index, match=match)
    if "exclude" in raw:
        rule.exclude = str(raw["exclude"] or "excluded by the mapping file")
        return rule
    rule.datatype = raw.get("datatype")
    rule.suffix = raw.get("suffix")
    if (rule.datatype is None) != (rule.suffix is None):
        raise UsageError(f"{where}: give both 'datatype' and 'suffix' (or neither)")
    if rule.datatype is not None and rule.datatype not in DATATYPES:
        raise UsageError(f"{where}: datatype must be one of {', '.join(DATATYPES)}")
    if rule.suffix is not None:
        if rule.suffix == "auto" and rule.datatype == "fmap":
            rule.suffix = GRE_FIELDMAP
        elif not _SUFFIX_RE.match(str(rule.suffix)):
            raise UsageError(f"{where}: suffix must be letters and digits")
    entities = raw.get("entities") or {}
    if not isinstance(entities, dict):
        raise UsageError(f"{where}: 'entities' must be a mapping such as {{acq: mprage}}")
    for name, label in entities.items():
        if name not in _ENTITIES:
            raise UsageError(f"{where}: '{name}' is not a BIDS entity this tool sets "
                             f"({', '.join(_ENTITIES)})")
        if not _LABEL_RE.match(str(label)):
            raise UsageError(f"{where}: the {name} label must be letters and digits")
        rule.entities[name] = str(label)
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise UsageError(f"{where}: 'metadata' must be a mapping of BIDS fields")
    rule.metadata = dict(metadata)
    asl = raw.get("aslcontext")
    if asl is not None:
        if not isinstance(asl, list) or not all(str(v) in _ASL_VOLUME_TYPES for v in asl):
            raise UsageError(f"{where}: aslcontext is a list of "
                             f"{', '.join(sorted(_ASL_VOLUME_TYPES))}")
        rule.aslcontext = [str(v) for v in asl]
    if rule.datatype is None and not (rule.entities or rule.metadata or rule.aslcontext):
        raise UsageError(f"{where}: give 'exclude', 'datatype'+'suffix', or what to amend "
                         "('entities', 'metadata', 'aslcontext')")
    return rule


def _values(header: Dataset, session: str | None, key: str) -> list[str]:
    if key == "session":
        return [session or ""]
    value = header.get(key)
    if value is None:
        return []
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        return [str(value).strip()]
    parts = [str(v).strip() for v in value]
    return parts + ["\\".join(parts)]


def _fits(pattern: Any, values: list[str]) -> bool:
    if isinstance(pattern, list):
        return any(_fits(p, values) for p in pattern)
    if isinstance(pattern, bool):
        pattern = "YES" if pattern else "NO"
    if isinstance(pattern, int | float):
        for v in values:
            try:
                if float(v) == float(pattern):
                    return True
            except ValueError:
                continue
        return False
    p = str(pattern)
    if p.startswith("re:"):
        rx = re.compile(p[3:], re.IGNORECASE)
        return any(rx.search(v) for v in values)
    if any(c in p for c in "*?["):
        return any(fnmatch.fnmatchcase(v.lower(), p.lower()) for v in values)
    return any(v.lower() == p.strip().lower() for v in values)


def matches(rule: Rule, header: Dataset, session: str | None) -> bool:
    return all(_fits(pattern, _values(header, session, key)) for key, pattern in rule.match.items())


def apply(rules: list[Rule], header: Dataset, session: str | None,
          heuristic: Decision) -> Decision:
    """The decision after the first matching rule (or the heuristic's, unchanged)."""
    for rule in rules:
        try:
            fits = matches(rule, header, session)
        except re.error as exc:
            raise UsageError(f"--mapping-file rule {rule.index}: bad regular expression "
                             f"({exc})") from exc
        if not fits:
            continue
        source = f"mapping file rule {rule.index}"
        if rule.exclude is not None:
            return Decision("exclude", f"{source}: excluded", source=source)
        if rule.datatype is not None:
            d = Decision("convert", f"{source}: named {rule.datatype}/{rule.suffix}",
                         rule.datatype, rule.suffix, dict(rule.entities), dict(rule.metadata),
                         source=source, aslcontext=rule.aslcontext)
            if rule.suffix == "bold" and "task" not in d.entities:
                d.entities["task"] = heuristic.entities.get("task", "unknown")
                if d.entities["task"] == "unknown":
                    d.flags.append("task-unknown")
            return d
        if not heuristic.converts:
            continue  # amending an exclusion makes no sense: keep looking
        d = Decision("convert", f"{heuristic.reason}; amended by {source}", heuristic.datatype,
                     heuristic.suffix, {**heuristic.entities, **rule.entities},
                     {**heuristic.metadata, **rule.metadata},
                     [f for f in heuristic.flags if not (f == "task-unknown" and
                                                         "task" in rule.entities)],
                     source=f"heuristic + {source}",
                     aslcontext=rule.aslcontext or heuristic.aslcontext)
        return d
    return heuristic
