"""Arterial spin labelling: the volume types (``aslcontext.tsv``) and required fields.

BIDS needs to know what each ASL volume is (label, control, M0, ...) and a handful of
labelling parameters. They are taken from the standard enhanced-MR attributes
(per-frame ASL Context, ArterialSpinLabelingContrast, ASL Bolus Cut-off Flag, ASL Pulse
Train Duration), from dcm2niix's sidecar (PostLabelingDelay, LabelingDuration from the
vendor protocol), from the Siemens protocol (``sAsl.ulSuppressionMode``: 1 = no
background suppression, 2 or more = on), or from the user's mapping file. When the
volume types are not recorded anywhere the series is left out with that reason: a
wrong label/control order would silently invert the perfusion signal.
"""

from __future__ import annotations

from typing import Any

from bidsdeid.convert.facts import SeriesFacts
from bidsdeid.convert.heuristic import Decision

_CONTEXT = {"M_ZERO_SCAN": "m0scan", "LABEL": "label", "CONTROL": "control"}
_LABELING = {"PSEUDOCONTINUOUS": "PCASL", "CONTINUOUS": "CASL", "PULSED": "PASL"}


def context(decision: Decision, facts: SeriesFacts, n_volumes: int) -> list[str] | str:
    """The volume types of an ASL series, or why they are unknown."""
    if decision.aslcontext is not None:
        types = list(decision.aslcontext)
        source = "the mapping file"
    elif facts.asl_contexts and all(c in _CONTEXT for c in facts.asl_contexts):
        types = [_CONTEXT[c] for c in facts.asl_contexts]
        source = "the DICOM ASL Context"
    else:
        return ("the volume types (label/control/M0) are not recorded in the DICOM; "
                "give 'aslcontext' for this series in --mapping-file")
    if len(types) != n_volumes:
        return (f"{source} lists {len(types)} volume types but the image has "
                f"{n_volumes} volumes")
    return types


def metadata(facts: SeriesFacts, sidecar: dict[str, Any], types: list[str]) -> dict[str, Any]:
    """Required ASL fields that the DICOM records and dcm2niix's sidecar lacks."""
    out: dict[str, Any] = {}
    if "ArterialSpinLabelingType" not in sidecar and facts.asl_labeling in _LABELING:
        out["ArterialSpinLabelingType"] = _LABELING[facts.asl_labeling]
    if "M0Type" not in sidecar:
        out["M0Type"] = "Included" if "m0scan" in types else "Absent"
    if "TotalAcquiredPairs" not in sidecar:
        out["TotalAcquiredPairs"] = min(types.count("label"), types.count("control")) or \
            types.count("deltam") or types.count("cbf")
    if "RepetitionTimePreparation" not in sidecar and "RepetitionTime" in sidecar:
        # BIDS: equals RepetitionTime unless the preparation is timed differently
        out["RepetitionTimePreparation"] = sidecar["RepetitionTime"]
    if "BackgroundSuppression" not in sidecar:
        mode = facts.phoenix.get("sAsl.ulSuppressionMode")
        if mode is not None and mode > 0:
            out["BackgroundSuppression"] = mode >= 2
    labeling = sidecar.get("ArterialSpinLabelingType", out.get("ArterialSpinLabelingType"))
    if labeling == "PASL" and "BolusCutOffFlag" not in sidecar and facts.asl_bolus_cutoff in (
            "YES", "NO"):
        out["BolusCutOffFlag"] = facts.asl_bolus_cutoff == "YES"
    return out


def context_tsv(types: list[str]) -> str:
    return "volume_type\n" + "".join(f"{t}\n" for t in types)
