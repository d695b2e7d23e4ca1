"""The site rules file (``--rules``): per-attribute actions over the profile, and
vocabularies that decide which descriptions may stay.

A YAML or JSON file::

    version: 1                          # optional
    attributes:                         # by keyword or tag: (0008,0080), 0008,0080, 00080080
      PatientWeight: keep
      InstitutionName: {replace: SITE-A}
      AccessionNumber: hash             # a keyed token of the value (the project key)
      AcquisitionDate: shift            # shifted by the subject's offset
      ImageComments: empty              # or: remove
      ProtocolName:                     # a vocabulary (see below)
        allowed: [T1 MPRAGE]
        patterns: ["ep2d_bold_.*"]
    vocabularies:                       # the same, for descriptions (a list = allowed)
      SeriesDescription: [T1 MPRAGE, DWI_dir80_PA]
      StudyDescription: {patterns: ["BRAIN( RESEARCH)?"]}
    private:                            # by creator, group and element offset
      - {creator: GEMS_PARM_01, group: "0043", element: "39", action: keep}

Actions: ``keep``, ``remove``, ``empty``, ``hash``, ``shift`` (dates and times), a
``{replace: VALUE}`` mapping, or a vocabulary ``{allowed: [...], patterns: [...]}``:
a value is kept only when it equals an allowed entry (case and surrounding spaces
ignored) or a pattern matches all of it (Python regular expressions); any other value
is cleaned (the Clean Descriptors action: the series' BIDS name, else removed). Hex
numbers (groups, elements) are written as quoted strings: YAML reads ``0011`` as an
octal number.

Rules override the profile at every nesting level (Table E.1-1 codes K, X, Z, C and
the site actions of :class:`~bidsdeid.dicom.profile.SiteAction`). Some attributes take
no rule: PatientName and PatientID (use ``--id-map`` or ``--relabel``), UIDs (they
follow the project key, or ``--retain-uids``), the file meta, pixel data, the
character set and the de-identification markers bidsdeid writes. Every mistake is a
:class:`~bidsdeid.errors.UsageError` (exit 64) naming the file, the line and key, and
the problem.

A rule that keeps an attribute the profile in force would not keep is reported by
:meth:`SiteRules.warnings` (printed on every run). The rules in force and their source
(file name and sha256) go to the audit and to DeidentificationMethod.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_dict, keyword_for_tag

from bidsdeid.config import DeidOptions
from bidsdeid.dicom import profile as P
from bidsdeid.dicom.values import MAX_LEN, fit
from bidsdeid.site.rules_file import KeyPath, Locator, read

OPTION = "--rules"
WORDS = ("keep", "remove", "empty", "hash", "shift")
CODE_OF = {"keep": "K", "remove": "X", "empty": "Z", "shift": "C"}
"""Plain actions as Table E.1-1 codes (``shift`` is C, which shifts dates and times)."""
KEEPING = ("keep", "vocabulary")
_TOP_KEYS = {"version", "attributes", "vocabularies", "private", "description"}
_PRIVATE_KEYS = {"creator", "group", "element", "action"}
_TAG_RE = re.compile(r"^\(?\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)?$")
_TAG8_RE = re.compile(r"^(?:0[xX])?([0-9A-Fa-f]{8})$")
_HEX_RE = re.compile(r"^(?:0[xX])?([0-9A-Fa-f]{1,4})$")
_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")
_VALUE_FORMS = {
    "DS": re.compile(r"^[ ]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?[ ]*$"),
    "IS": re.compile(r"^[ ]*[+-]?\d+[ ]*$"),
    "DA": re.compile(r"^\d{8}$"),
    "TM": re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$"),
    "DT": re.compile(r"^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?$"),
    "AS": re.compile(r"^\d{3}[DWMY]$"),
    "CS": re.compile(r"^[A-Z0-9 _]*$"),
}
_REFUSED: dict[int, str] = {
    0x00100010: "PatientName is replaced by the participant label (use --id-map or --relabel)",
    0x00100020: "PatientID is replaced by the participant label (use --id-map or --relabel)",
    0x00080005: "the character set describes how the file is encoded",
    0x00120062: "bidsdeid writes PatientIdentityRemoved itself",
    0x00120063: "bidsdeid writes DeidentificationMethod itself",
    0x00120064: "bidsdeid writes DeidentificationMethodCodeSequence itself",
    0x00280303: "bidsdeid writes LongitudinalTemporalInformationModified itself",
}


@dataclass(frozen=True)
class Rule:
    """One rule: a target (standard tag, or private creator/group/offset) and an action."""

    target: str  # for messages and the audit: "PatientWeight", "(0043,xx39) GEMS_PARM_01"
    action: str  # keep | remove | empty | hash | shift | replace | vocabulary
    tag: int | None = None
    private: tuple[str, int, int] | None = None  # (creator, group, element offset)
    vr: str | None = None  # dictionary VR of a standard tag, when known
    value: str = ""  # replace
    allowed: tuple[str, ...] = ()  # vocabulary
    patterns: tuple[str, ...] = ()  # vocabulary
    line: int | None = None

    @property
    def keyword(self) -> str | None:
        return keyword_for_tag(self.tag) if self.tag is not None else None

    def keeps(self) -> bool:
        """True if the rule publishes (some) original values."""
        return self.action in KEEPING

    def override(self) -> P.Override:
        """The profile override: an E.1-1 code or a :class:`SiteAction`."""
        if self.action in CODE_OF:
            return CODE_OF[self.action]
        if self.action == "replace":
            return P.SiteAction(P.REPLACE, value=self.value)
        if self.action == "hash":
            return P.SiteAction(P.HASH)
        return P.SiteAction(P.VOCAB, allowed=self.allowed, patterns=self.patterns)

    def allows(self, values: list[str]) -> bool:
        """For a vocabulary rule: every value is on the vocabulary."""
        action = self.override()
        return isinstance(action, P.SiteAction) and action.allows(values)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target": self.target, "action": self.action, "line": self.line}
        if self.tag is not None:
            out["tag"] = f"({self.tag >> 16:04X},{self.tag & 0xFFFF:04X})"
        if self.private is not None:
            creator, group, offset = self.private
            out.update(creator=creator, group=f"{group:04X}", element=f"{offset:02X}")
        if self.action == "replace":
            out["value"] = self.value
        if self.action == "vocabulary":
            out.update(allowed=list(self.allowed), patterns=list(self.patterns))
        return out


@dataclass(frozen=True)
class SiteRules:
    """The rules of one file, with its source (name and sha256)."""

    source: Path
    sha256: str
    rules: tuple[Rule, ...]

    @property
    def name(self) -> str:
        return self.source.name

    def standard(self) -> dict[int, Rule]:
        return {r.tag: r for r in self.rules if r.tag is not None}

    def private(self) -> dict[tuple[str, int, int], Rule]:
        return {r.private: r for r in self.rules if r.private is not None}

    def overrides(self) -> dict[str, dict[Any, P.Override]]:
        """The value of ``ctx.results[dicom.stage.OVERRIDES]``."""
        return {"tags": {t: r.override() for t, r in self.standard().items()},
                "private": {k: r.override() for k, r in self.private().items()}}

    def method_note(self) -> str:
        """The DeidentificationMethod line (LO, 64 characters): file name and sha256."""
        return fit(f"site rules {self.name[:29]} sha256 {self.sha256[:16]}", "LO")

    def warnings(self, options: DeidOptions) -> list[str]:
        """One line per rule that keeps what the profile in force would not keep."""
        base = P.Profile(options)
        kept_ops = (P.KEEP, P.KEEP_TEXT, P.AGE, P.RECURSE)
        out = []
        for rule in self.rules:
            if not rule.keeps():
                continue
            if rule.tag is not None:
                decision = base.decide(rule.tag, rule.vr)
            else:
                assert rule.private is not None
                decision = base.decide_private(*rule.private, None)
            if decision.op in kept_ops:
                continue
            what = "keeps" if rule.action == "keep" else "keeps values on the vocabulary of"
            out.append(f"{OPTION} {self.name}: line {rule.line}: the rule {what} "
                       f"{rule.target}, which the de-identification profile would not keep "
                       f"({decision.audit})")
        return out

    def to_json(self) -> dict[str, Any]:
        return {"file": str(self.source), "name": self.name, "sha256": self.sha256,
                "method_note": self.method_note(),
                "rules": [r.to_json() for r in self.rules]}


# -- loading ----------------------------------------------------------------------------
def load(path: Path) -> SiteRules:
    """Read and check a rules file (see the module docstring)."""
    data, loc, digest = read(path, OPTION)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise loc.error((), "expected a mapping with 'attributes', 'vocabularies' and/or "
                            "'private'")
    unknown = sorted(str(k) for k in data if k not in _TOP_KEYS)
    if unknown:
        raise loc.error((unknown[0],), f"unknown section (expected one of "
                                       f"{', '.join(sorted(_TOP_KEYS))})")
    if data.get("version", 1) != 1:
        raise loc.error(("version",), "only version 1 is known")
    rules: list[Rule] = []
    seen: dict[Any, KeyPath] = {}
    for section in ("attributes", "vocabularies"):
        block = data.get(section) or {}
        if not isinstance(block, dict):
            raise loc.error((section,), "expected a mapping of attribute -> action")
        for key, raw in block.items():
            keys: KeyPath = (section, str(key))
            tag = _tag(str(key), loc, keys)
            if section == "vocabularies":
                raw = {"allowed": raw} if isinstance(raw, list) else raw
                if not isinstance(raw, dict) or not set(raw) <= {"allowed", "patterns"}:
                    raise loc.error(keys, "a vocabulary is a list of allowed values, or a "
                                          "mapping with 'allowed' and/or 'patterns'")
            rule = _standard_rule(tag, raw, loc, keys)
            _unique(tag, keys, seen, loc)
            rules.append(rule)
    private = data.get("private") or []
    if not isinstance(private, list):
        raise loc.error(("private",), "expected a list of {creator, group, element, action}")
    for i, raw in enumerate(private):
        keys = ("private", i)
        rule = _private_rule(raw, loc, keys)
        _unique(rule.private, keys, seen, loc)
        rules.append(rule)
    return SiteRules(path, digest, tuple(rules))


def _unique(target: Any, keys: KeyPath, seen: dict[Any, KeyPath], loc: Locator) -> None:
    if target in seen:
        raise loc.error(keys, f"a second rule for the same attribute (the first is at "
                              f"{loc.where(seen[target])})")
    seen[target] = keys


def _tag(key: str, loc: Locator, keys: KeyPath) -> int:
    text = key.strip()
    tag = keyword_dict.get(text)
    if tag is None:
        m = _TAG_RE.match(text)
        if m:
            tag = int(m.group(1) + m.group(2), 16)
        else:
            m8 = _TAG8_RE.match(text)
            if m8:
                tag = int(m8.group(1), 16)
    if tag is None:
        close = difflib.get_close_matches(text, list(keyword_dict), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise loc.error(keys, f"not a DICOM keyword or tag{hint}")
    group = tag >> 16
    if group & 1:
        raise loc.error(keys, "a private attribute: give it in the 'private' list with its "
                              "creator, group and element")
    if group in (0x0000, 0x0002) or tag & 0xFFFF == 0:
        raise loc.error(keys, "file meta, command and group length elements take no rule")
    if group == 0x7FE0 or tag in (0x00280301, 0x00280302):
        raise loc.error(keys, "pixel data and its quarantine flags take no rule")
    if tag in _REFUSED:
        raise loc.error(keys, f"takes no rule: {_REFUSED[tag]}")
    return tag


def _vr(tag: int) -> str | None:
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return None
    return vr.split(" or ")[0] if vr else None


def _standard_rule(tag: int, raw: Any, loc: Locator, keys: KeyPath) -> Rule:
    vr = _vr(tag)
    if vr == "UI":
        raise loc.error(keys, "takes no rule: UIDs follow the project key (or --retain-uids)")
    name = keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    action, value, allowed, patterns = _action(raw, loc, keys)
    if vr is not None:
        _check_vr(action, value, vr, loc, keys)
    return Rule(name, action, tag=tag, vr=vr, value=value, allowed=allowed,
                patterns=patterns, line=loc.lines.get(keys))


def _check_vr(action: str, value: str, vr: str, loc: Locator, keys: KeyPath) -> None:
    if action == "shift" and vr not in P.DATE_VRS:
        raise loc.error(keys, f"'shift' is for dates and times; this attribute's VR is {vr}")
    if vr == "SQ" and action not in ("keep", "remove", "empty"):
        raise loc.error(keys, f"a sequence can be kept (its items are still cleaned), "
                              f"removed or emptied, not '{action}'")
    allowed_vrs = {"replace": P.REPLACE_VRS, "hash": P.HASH_VRS,
                   "vocabulary": P.VOCAB_VRS}.get(action)
    if allowed_vrs is not None and vr not in allowed_vrs:
        raise loc.error(keys, f"'{action}' cannot apply to VR {vr}")
    if action == "replace":
        form = _VALUE_FORMS.get(vr)
        if form is not None and not form.match(value.upper() if vr == "CS" else value):
            raise loc.error(keys, f"the replacement is not a valid {vr} value")
        limit = MAX_LEN.get(vr)
        if limit is not None and len(value) > limit:
            raise loc.error(keys, f"the replacement is longer than {vr} allows ({limit})")


def _action(raw: Any, loc: Locator, keys: KeyPath
            ) -> tuple[str, str, tuple[str, ...], tuple[str, ...]]:
    """(action, replacement value, allowed entries, patterns) of one action spec."""
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in WORDS:
            return word, "", (), ()
        if word == "replace":
            raise loc.error(keys, "'replace' needs its value: {replace: VALUE}")
        raise loc.error(keys, f"unknown action {raw!r} (expected {', '.join(WORDS)}, "
                              "{replace: VALUE} or {allowed: [...], patterns: [...]})")
    if isinstance(raw, dict) and "replace" in raw:
        if len(raw) != 1:
            raise loc.error(keys, "'replace' takes no other key")
        value = raw["replace"]
        if isinstance(value, dt.date):
            raise loc.error(keys + ("replace",), "put the value in quotes (YAML read it as a "
                                                 "date, which DICOM writes as YYYYMMDD)")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise loc.error(keys + ("replace",), "the replacement must be text or a number")
        text = str(value)
        if not _PRINTABLE.match(text) or "\\" in text:
            raise loc.error(keys + ("replace",), "the replacement must be printable ASCII "
                                                 "without a backslash")
        return "replace", text, (), ()
    if isinstance(raw, dict) and set(raw) <= {"allowed", "patterns"}:
        allowed = _strings(raw.get("allowed"), loc, keys + ("allowed",))
        patterns = _strings(raw.get("patterns"), loc, keys + ("patterns",))
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise loc.error(keys + ("patterns", i), f"not a regular expression "
                                                        f"({exc})") from exc
        if not allowed and not patterns:
            raise loc.error(keys, "an empty vocabulary would clean every value: use "
                                  "'remove' or 'empty' instead")
        return "vocabulary", "", allowed, patterns
    raise loc.error(keys, f"not an action (expected {', '.join(WORDS)}, {{replace: VALUE}} "
                          "or {allowed: [...], patterns: [...]})")


def _strings(raw: Any, loc: Locator, keys: KeyPath) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str | int | float) and
                                            not isinstance(v, bool) for v in raw):
        raise loc.error(keys, "expected a list of text values")
    return tuple(str(v) for v in raw)


def _hex(raw: Any, loc: Locator, keys: KeyPath) -> int:
    if not isinstance(raw, str):
        raise loc.error(keys, "write hexadecimal numbers as quoted text, e.g. \"0029\" (YAML "
                              "reads 0011 as an octal number)")
    text = raw.strip()
    if text.lower().startswith("xx"):
        text = text[2:]
    m = _HEX_RE.match(text)
    if not m:
        raise loc.error(keys, f"{raw!r} is not a hexadecimal number")
    return int(m.group(1), 16)


def _private_rule(raw: Any, loc: Locator, keys: KeyPath) -> Rule:
    if not isinstance(raw, dict):
        raise loc.error(keys, "a private rule is a mapping {creator, group, element, action}")
    missing = sorted(_PRIVATE_KEYS - set(raw))
    if missing:
        raise loc.error(keys, f"missing {', '.join(missing)}")
    extra = sorted(set(map(str, raw)) - _PRIVATE_KEYS)
    if extra:
        raise loc.error(keys + (extra[0],), "unknown key")
    creator = raw["creator"]
    if not isinstance(creator, str) or not creator.strip() or len(creator.strip()) > 64:
        raise loc.error(keys + ("creator",), "the private creator is the block's text "
                                             "(1 to 64 characters)")
    group = _hex(raw["group"], loc, keys + ("group",))
    if not group & 1 or group < 0x0009 or group == 0xFFFF:
        raise loc.error(keys + ("group",), "a private group is odd, from 0009 to FFFD")
    element = _hex(raw["element"], loc, keys + ("element",))
    if 0xFF < element < 0x1000:
        raise loc.error(keys + ("element",), "give the element offset in the block (00-FF, "
                                             "or xxNN, or a full element 10NN-FFNN)")
    offset = element & 0xFF
    action, value, allowed, patterns = _action(raw["action"], loc, keys + ("action",))
    name = f"({group:04X},xx{offset:02X}) {creator.strip()}"
    return Rule(name, action, private=(creator.strip(), group, offset), value=value,
                allowed=allowed, patterns=patterns, line=loc.lines.get(keys))
