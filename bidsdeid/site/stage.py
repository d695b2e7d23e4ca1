"""Participant stages that put a site rules file in force, and audit it.

* :func:`prepare` (before the inputs are read): the DICOM profile overrides
  (``ctx.results[dicom.stage.OVERRIDES]``), the sidecar field rules
  (``ctx.results[bids.sidecar.FIELD_RULES]``), and a header hook that takes the values
  a rule keeps out of the identifiers as each header is read (:mod:`.kept`);
* :func:`audit` (before the leak scan): ``PRIVATE_DIR/audit/sub-<label>/site_rules.json``
  with the rules in force, their source (file and sha256), the warnings, and what was
  kept on purpose (counts, no values).

Without ``--rules`` both do nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydicom.dataset import Dataset

from bidsdeid.bids.sidecar import FIELD_RULES
from bidsdeid.bids.stage import HEADER_HOOKS
from bidsdeid.context import ParticipantContext
from bidsdeid.dicom.stage import OVERRIDES
from bidsdeid.site import rules as rules_mod
from bidsdeid.site.kept import KeptValues
from bidsdeid.site.sidecar_rules import field_rules
from bidsdeid.utils.atomic import write_json

SITE_RULES = "site_rules"
"""``ctx.results`` key of the :class:`~bidsdeid.site.rules.SiteRules` in force."""
KEPT = "site_rules_kept"
"""``ctx.results`` key of the participant's :class:`~bidsdeid.site.kept.KeptValues`."""


def texts_of(value: Any) -> list[str]:
    """The values of an element as text (none for binary data)."""
    if value is None or isinstance(value, bytes | bytearray):
        return []
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]
    return [str(value)]


def header_hook(rules: rules_mod.SiteRules, kept: KeptValues) -> Callable[[Dataset], None]:
    """A function of each header read: release the values the rules keep."""
    standard = [(tag, r) for tag, r in rules.standard().items() if r.keeps()]
    private = [(key, r) for key, r in rules.private().items() if r.keeps()]

    def on_header(ds: Dataset) -> None:
        for tag, rule in standard:
            if tag in ds:
                elem = ds[tag]
                if rule.action == "keep" or rule.allows(texts_of(elem.value)):
                    kept.element(rule.target, elem)
        for (creator, group, offset), rule in private:
            try:
                block = ds.private_block(group, creator)
            except KeyError:
                continue
            tag = block.get_tag(offset)
            if tag in ds:
                elem = ds[tag]
                if rule.action == "keep" or rule.allows(texts_of(elem.value)):
                    kept.element(rule.target, elem)
        kept.reapply()

    return on_header


def prepare(ctx: ParticipantContext) -> None:
    path = ctx.config.rules_file
    if path is None:
        return
    rules = rules_mod.load(path)
    ctx.config.deid.site_rules = rules.method_note()  # what the run records, as read now
    kept = KeptValues(ctx.identifiers)
    ctx.results[SITE_RULES] = rules
    ctx.results[KEPT] = kept
    ctx.results[OVERRIDES] = rules.overrides()
    ctx.results[FIELD_RULES] = field_rules(rules, ctx.key, kept)
    ctx.results.setdefault(HEADER_HOOKS, []).append(header_hook(rules, kept))


def audit(ctx: ParticipantContext) -> None:
    rules: rules_mod.SiteRules | None = ctx.results.get(SITE_RULES)
    if rules is None:
        return
    kept: KeptValues = ctx.results[KEPT]
    write_json(ctx.audit_dir / "site_rules.json", {
        **rules.to_json(),
        "warnings": rules.warnings(ctx.config.deid),
        "sidecar_fields": sorted(ctx.results.get(FIELD_RULES) or {}),
        "kept_on_purpose": kept.summary(),
    }, perms=0o600)
