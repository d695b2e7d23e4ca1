"""Scrub BIDS sidecars by allow-list (DESIGN.md section 4).

Kept: the sidecar fields the BIDS schema defines (:func:`bidsdeid.bids.schema.metadata_names`,
from ``bidsschematools``, which bids-validator uses), minus

* fields that identify the site or the person: InstitutionName, InstitutionAddress,
  InstitutionalDepartmentName, SampleExtractionInstitution (unless
  ``--retain-institution-identity``),
  StationName, DeviceSerialNumber (unless ``--retain-device-identity``),
  SubjectArtefactDescription, HeadCircumference;
* dates and times of day: ScanDate, TimeZero, MolarActivityMeasTime,
  SpecificRadioactivityMeasTime. **Time-of-day fields are dropped, not shifted**: the
  acquisition time lives in ``scans.tsv`` only, shifted by the subject's offset;
* dataset-level fields that have no place in a sidecar (Authors, License, ...).

Everything else (SeriesDescription, ProtocolName, ImageComments, AcquisitionDateTime,
AcquisitionTime, PatientName, the converter's own fields, ...) is not in the schema
and is dropped. Every kept value (strings, and numbers as written) is then checked
against the participant's identifiers and dropped on a match. Finally
DeidentificationMethod and DeidentificationMethodCodeSequence (DICOM PS3.16 CID 7050)
say what was done.

A site rules file (``--rules``) decides the fields it names instead of the lists
above, but only fields the schema defines (``field_rules``, built by
:mod:`bidsdeid.site.sidecar_rules` and kept in ``ctx.results[FIELD_RULES]``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bidsdeid import __version__
from bidsdeid.bids import schema
from bidsdeid.config import DeidOptions
from bidsdeid.privacy.identifiers import Token

INSTITUTION_FIELDS = frozenset({"InstitutionName", "InstitutionAddress",
                                "InstitutionalDepartmentName", "SampleExtractionInstitution"})
DEVICE_FIELDS = frozenset({"StationName", "DeviceSerialNumber"})
PERSON_FIELDS = frozenset({"SubjectArtefactDescription", "HeadCircumference"})
TIME_FIELDS = frozenset({"ScanDate", "TimeZero", "MolarActivityMeasTime",
                         "SpecificRadioactivityMeasTime"})
DATASET_FIELDS = frozenset({
    "Acknowledgements", "Authors", "BIDSVersion", "Curators", "DatasetDOI", "DatasetLinks",
    "DatasetType", "EthicsApprovals", "Funding", "GeneratedBy", "HEDVersion",
    "HowToAcknowledge", "Keywords", "License", "Name", "ReferencesAndLinks", "SourceDatasets",
    "Sources", "RawSources", "Description", "Levels", "LongName", "TermURL", "Delimiter",
    "Derivative", "Format", "Maximum", "Minimum", "MissingValues", "Dataset", "Database",
})
DEID_FIELDS = frozenset({"DeidentificationMethod", "DeidentificationMethodCodeSequence"})

FIELD_RULES = "sidecar_field_rules"
"""``ctx.results`` key of the site rules for sidecar fields (field name -> FieldRule)."""

FieldRule = Callable[[Any, Callable[[str], Token | None]], tuple[bool, Any, str]]
"""A site rule for one field: ``rule(value, find) -> (keep?, value to write, reason)``."""

# DICOM PS3.16 CID 7050 "De-identification Method"
CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "visual": ("113102", "Clean Recognizable Visual Features Option"),
    "descriptors": ("113105", "Clean Descriptors Option"),
    "full_dates": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "modified_dates": ("113107",
                       "Retain Longitudinal Temporal Information Modified Dates Option"),
    "device": ("113109", "Retain Device Identity Option"),
    "institution": ("113112", "Retain Institution Identity Option"),
}


def allowed_fields(deid: DeidOptions | None = None) -> frozenset[str]:
    """The sidecar allow-list for the given Annex E options."""
    deny = set(PERSON_FIELDS | TIME_FIELDS | DATASET_FIELDS | DEID_FIELDS)
    if deid is None or not deid.retain_institution_identity:
        deny |= INSTITUTION_FIELDS
    if deid is None or not deid.retain_device_identity:
        deny |= DEVICE_FIELDS
    return frozenset(schema.metadata_names() - deny)


@dataclass
class Scrubbed:
    """A scrubbed sidecar and what was dropped (field -> PHI-free reason)."""

    kept: dict[str, Any]
    dropped: dict[str, str] = field(default_factory=dict)


def _json_ok(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_json_ok(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_ok(v) for k, v in value.items())
    return value is None or isinstance(value, str | int | bool)


def scrub(raw: dict[str, Any], find: Callable[[str], Token | None],
          deid: DeidOptions | None = None,
          field_rules: Mapping[str, FieldRule] | None = None) -> Scrubbed:
    """Keep allow-listed fields whose values hold no identifier (``find`` returns the
    identifier token found in a text, or None); fields with a site rule are decided by
    the rule."""
    allowed = allowed_fields(deid)
    out = Scrubbed(kept={})
    for key in sorted(raw):
        value = raw[key]
        rule = field_rules.get(key) if field_rules else None
        if rule is not None and _json_ok(value):
            keep, new, why = rule(value, find)
            if keep:
                out.kept[key] = new
            else:
                out.dropped[key] = why
            continue
        if key not in allowed:
            out.dropped[key] = "not in the BIDS sidecar allow-list"
            continue
        if not _json_ok(value):
            out.dropped[key] = "value is not valid JSON (NaN or infinite)"
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        token = find(text) if text else None
        if token is not None:
            out.dropped[key] = f"value holds a {token.kind} identifier (from {token.source})"
            continue
        out.kept[key] = value
    return out


def deid_fields(deid: DeidOptions, *, defaced: bool) -> dict[str, Any]:
    """DeidentificationMethod and its code sequence for one image's sidecar."""
    codes = ["basic"]
    steps = ["sidecar allow-list", "NIfTI header text cleared"]
    if defaced:
        codes.append("visual")
        steps.append("face removed")
    if deid.clean_descriptors:
        codes.append("descriptors")
    if deid.retain_longitudinal == "modified":
        codes.append("modified_dates")
        steps.append("dates shifted per subject")
    elif deid.retain_longitudinal == "full":
        codes.append("full_dates")
    if deid.retain_device_identity:
        codes.append("device")
    if deid.retain_institution_identity:
        codes.append("institution")
    if deid.site_rules:
        steps.append(deid.site_rules)
    return {
        "DeidentificationMethod": [f"bidsdeid {__version__}"] + steps,
        "DeidentificationMethodCodeSequence": [
            {"CodeValue": CODES[c][0], "CodingSchemeDesignator": "DCM",
             "CodeMeaning": CODES[c][1]} for c in codes],
    }
