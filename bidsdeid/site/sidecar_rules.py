"""The site rules applied to BIDS sidecar fields.

A rule acts on the sidecar field of the same name as its DICOM keyword
(``ManufacturerModelName`` is ``ManufacturersModelName`` in BIDS, ``BodyPartExamined``
is ``BodyPart``), and only when the BIDS schema defines that field: the sidecar stays
an allow-list of BIDS fields whatever the rules say. So ``PatientWeight: keep`` keeps
the weight in the DICOM output only (BIDS defines no weight field, and a sidecar is no
place for one), while ``InstitutionName: {replace: SITE-A}`` writes ``SITE-A`` in every
sidecar that had an InstitutionName, although the default allow-list drops the field.
A rule acts where the field exists (as it acts on attributes a file has); it never
adds one.

======================  =================================================================
action                  sidecar field
======================  =================================================================
keep                    kept (also fields the default list drops), if the value holds no
                        identifier other than itself; its tokens leave the identifiers
vocabulary              kept when on the vocabulary (and as for keep), else dropped
replace                 the rule's value (a number if the original was one and the value
                        is numeric)
hash                    the same keyed token as in the DICOM output
remove, empty           dropped
shift                   dropped: sidecars hold no dates; acq_time is in scans.tsv, shifted
======================  =================================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bidsdeid.bids import schema
from bidsdeid.bids.sidecar import FieldRule
from bidsdeid.dicom.values import hashed
from bidsdeid.privacy.identifiers import Token
from bidsdeid.privacy.keys import ProjectKey
from bidsdeid.site.kept import KeptValues
from bidsdeid.site.rules import Rule, SiteRules

SIDECAR_NAME = {"ManufacturerModelName": "ManufacturersModelName",
                "BodyPartExamined": "BodyPart"}
"""DICOM keywords whose BIDS field has another name."""


def field_name(keyword: str) -> str:
    return SIDECAR_NAME.get(keyword, keyword)


@dataclass
class SidecarRule:
    """One rule as a :data:`~bidsdeid.bids.sidecar.FieldRule`."""

    rule: Rule
    field: str
    key: ProjectKey
    kept: KeptValues

    def __call__(self, value: Any, find: Any) -> tuple[bool, Any, str]:
        action = self.rule.action
        if action in ("remove", "empty"):
            return False, None, f"{action} (site rules)"
        if action == "shift":
            return False, None, "a date or time (site rules: shift); sidecars keep none"
        if action == "replace":
            return True, _typed(self.rule.value, value), "replaced (site rules)"
        if action == "hash":
            if not isinstance(value, str | int) or isinstance(value, bool):
                return False, None, "hash (site rules) of a value that is not text"
            return True, hashed(self.key, [str(value)], self.rule.vr or "LO")[0], \
                "hashed (site rules)"
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        if action == "vocabulary" and not (isinstance(value, str) and self.rule.allows([value])):
            return False, None, "not on the site vocabulary"
        token: Token | None = find(text) if text else None
        if token is not None and token.source not in self._own_sources():
            return False, None, (f"kept by the site rules, but the value holds a {token.kind} "
                                 f"identifier (from {token.source})")
        self.kept.text(self.rule.target, text, self.rule.vr)
        return True, value, "kept (site rules)"

    def _own_sources(self) -> set[str]:
        """Token sources that are this field itself (DICOM keyword or input sidecar)."""
        keyword = self.rule.keyword or self.field
        return {keyword, self.field, f"sidecar {self.field}", f"sidecar {keyword}"}


def _typed(replacement: str, original: Any) -> Any:
    if isinstance(original, int | float) and not isinstance(original, bool):
        try:
            number = float(replacement)
        except ValueError:
            return replacement
        return int(number) if number.is_integer() and isinstance(original, int) else number
    return replacement


def field_rules(rules: SiteRules, key: ProjectKey, kept: KeptValues) -> dict[str, FieldRule]:
    """Sidecar field -> rule, for the standard-attribute rules whose field BIDS defines."""
    known = schema.metadata_names()
    out: dict[str, FieldRule] = {}
    for rule in rules.standard().values():
        keyword = rule.keyword
        if not keyword or field_name(keyword) not in known:
            continue
        name = field_name(keyword)
        out[name] = SidecarRule(rule, name, key, kept)
    return out
