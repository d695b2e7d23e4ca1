"""The state of one participant as it moves through the stages.

A :class:`ParticipantContext` is made by :mod:`bidsdeid.participant` and handed to
each stage in turn. Stages write shareable files only under ``ctx.staging`` (a mirror
of OUTPUT_DIR in the private work dir); nothing reaches OUTPUT_DIR until the leak
scan of the staged files has passed and :mod:`bidsdeid.publish` moves them.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bidsdeid.config import RunConfig
from bidsdeid.dicom.index import ParticipantDicom
from bidsdeid.privacy.identifiers import Identifiers
from bidsdeid.privacy.keys import DateOffset, ProjectKey
from bidsdeid.progress import NULL_PROGRESS, Progress

log = logging.getLogger("bidsdeid")

ANAT_SUFFIXES = ("T1w", "T2w", "FLAIR", "PDw", "T2starw", "T1map", "T2map", "PDT2",
                 "inplaneT1", "inplaneT2", "angio", "MP2RAGE", "UNIT1", "MPM", "MTS",
                 "MESE", "MEGRE", "VFA", "IRT1", "T2starmap", "PDmap", "MTRmap", "R1map",
                 "R2map", "R2starmap", "TB1map", "RB1map", "S0map", "M0map", "Chimap")
"""Anatomical suffixes: all are defaced by default (DESIGN.md section 5)."""


@dataclass
class Problem:
    """Something a user must know about. ``where`` names a series or file, never PHI."""

    level: str  # "error" (the participant fails) or "warning"
    stage: str
    where: str
    message: str
    # the exit code this problem gives the run; None: 1 for an error, 0 for a warning.
    # Bad input (a damaged file, a series left out for its geometry) is 65 even when the
    # participant is published without it: the user must learn that data are missing.
    exit_code: int | None = None

    @property
    def code(self) -> int:
        if self.exit_code is not None:
            return self.exit_code
        return 1 if self.level == "error" else 0

    def line(self) -> str:
        return f"{self.level}: [{self.stage}] {self.where}: {self.message}"


@dataclass
class BidsImage:
    """One image the participant will publish, staged under ``ctx.staging``."""

    rel_path: str  # relative to OUTPUT_DIR, e.g. sub-01/anat/sub-01_T1w.nii.gz
    datatype: str  # anat | func | dwi | fmap | perf
    suffix: str  # T1w, bold, ...
    entities: dict[str, str]  # BIDS entities (output labels), in BIDS order
    session: str | None  # output session label
    source: str  # where it came from, PHI-free: "dicom series 5" or "bids anat/..."
    sidecar: dict[str, Any] = field(default_factory=dict)  # scrubbed metadata
    acq_time: dt.datetime | None = None  # ORIGINAL acquisition time (private; shifted on output)
    original: Path | None = None  # un-defaced image in the work dir (for QC "before")
    extra_files: list[str] = field(default_factory=list)  # .bval/.bvec/... rel paths

    @property
    def is_anat(self) -> bool:
        return self.datatype == "anat"


@dataclass
class ParticipantContext:
    """Everything the stages of one participant share."""

    config: RunConfig
    key: ProjectKey
    input_label: str  # label of the input folder (sub-<input_label>)
    output_label: str  # label in OUTPUT_DIR (== input_label unless relabelled)
    offset: DateOffset
    work: Path  # private scratch of this participant
    staging: Path  # mirror of OUTPUT_DIR, private
    session_map: dict[str | None, str | None] = field(default_factory=dict)
    identifiers: Identifiers = field(default_factory=Identifiers)
    dicom: ParticipantDicom | None = None
    bids_root: Path | None = None  # sub-<label>/ of a BIDS input, if any
    images: list[BidsImage] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    demographics: dict[str, Any] = field(default_factory=dict)  # age (years), sex, sources
    age: dict[str, Any] = field(default_factory=dict)  # age_months, source (for templates)
    results: dict[str, Any] = field(default_factory=dict)  # per-stage outputs (deface, qc)
    progress: Progress = NULL_PROGRESS

    # -- paths --------------------------------------------------------------------------
    def stage_path(self, rel: str) -> Path:
        """Absolute staging path of an OUTPUT_DIR-relative path (refuses escapes)."""
        p = (self.staging / rel).resolve()
        if not str(p).startswith(str(self.staging.resolve()) + "/"):
            raise ValueError(f"output path escapes the dataset: {rel!r}")
        return p

    @property
    def audit_dir(self) -> Path:
        return self.config.audit_dir / f"sub-{self.input_label}"

    @property
    def sub(self) -> str:
        return f"sub-{self.output_label}"

    def out_session(self, input_session: str | None) -> str | None:
        return self.session_map.get(input_session, input_session)

    # -- problems -----------------------------------------------------------------------
    def error(self, stage: str, where: str, message: str, exit_code: int | None = None) -> None:
        self.problems.append(Problem("error", stage, where, message, exit_code))
        log.error("[sub-%s] %s: %s", self.input_label, where, message)

    def warn(self, stage: str, where: str, message: str, exit_code: int | None = None) -> None:
        self.problems.append(Problem("warning", stage, where, message, exit_code))
        log.warning("[sub-%s] %s: %s", self.input_label, where, message)

    @property
    def failed(self) -> bool:
        return any(p.level == "error" for p in self.problems)

    def anat_images(self) -> list[BidsImage]:
        return [im for im in self.images if im.is_anat]
