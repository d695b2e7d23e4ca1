"""Find the participants of an input dataset and apply the label filters."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from bidsdeid.errors import MissingInputError, NothingSelectedError

LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")


@dataclass
class ParticipantSource:
    """Where a participant's input is: raw DICOM, BIDS NIfTI, or both."""

    label: str
    dicom_root: Path | None = None
    bids_root: Path | None = None


@dataclass
class Discovery:
    participants: dict[str, ParticipantSource] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)  # folder names that are not BIDS labels


def discover(bids_dir: Path) -> Discovery:
    """Participants from ``sourcedata/sub-*`` (DICOM) and ``sub-*`` (BIDS) folders."""
    found = Discovery()
    for base, attr in ((bids_dir / "sourcedata", "dicom_root"), (bids_dir, "bids_root")):
        if not base.is_dir():
            continue
        for entry in sorted(base.iterdir()):
            if not entry.name.startswith("sub-"):
                continue
            if not entry.is_dir() or entry.is_symlink():
                continue
            label = entry.name[len("sub-"):]
            if not LABEL_RE.match(label):
                found.invalid.append(str(entry.relative_to(bids_dir)))
                continue
            src = found.participants.setdefault(label, ParticipantSource(label))
            setattr(src, attr, entry)
    return found


def select(found: Discovery, labels: list[str] | None) -> list[str]:
    """The labels to process: all found, or those asked for (error if one is missing)."""
    available = sorted(found.participants)
    if labels:
        missing = [lab for lab in labels if lab not in found.participants]
        if missing and len(missing) == len(set(labels)):
            raise NothingSelectedError(
                "no participant matches --participant-label "
                + " ".join(f"sub-{m}" for m in missing)
                + (f" (found: {', '.join('sub-' + a for a in available[:10])}"
                   f"{' ...' if len(available) > 10 else ''})" if available else " (found none)"))
        if missing:
            raise MissingInputError(
                "participant(s) not found in the input: " + " ".join(f"sub-{m}" for m in missing))
        return sorted(dict.fromkeys(labels))
    if not available:
        raise NothingSelectedError(
            "no participant found: expected sourcedata/sub-<label>/ (DICOM) or sub-<label>/ "
            "(BIDS NIfTI) folders in the input")
    return available
