"""One typed settings object for a run, saved with the run (fmriprep's idea, smaller).

The CLI builds a :class:`RunConfig` from the parsed arguments; every stage reads it
and nothing else. It is saved as JSON under ``PRIVATE_DIR/logs/<run id>/config.json``
so any run can be reproduced from its log. It lives in the private dir because the
paths in it can name people (a folder called after a patient is common).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bidsdeid import __version__


@dataclass
class DeidOptions:
    """PS3.15 Table E.1-1 options (DESIGN.md section 4 gives the defaults)."""

    retain_safe_private: bool = False
    retain_uids: bool = False
    retain_device_identity: bool = False
    retain_institution_identity: bool = False
    retain_patient_characteristics: bool = False
    # "modified" (shift dates: Retain Longitudinal Temporal Information with Modified
    # Dates), "full" (keep dates), or "off" (Basic Profile: remove/blank dates)
    retain_longitudinal: str = "modified"
    clean_descriptors: bool = True
    clean_structured_content: bool = False
    clean_graphics: bool = False
    # the site rules in force (file name and sha256, bidsdeid.site.rules), recorded in
    # DeidentificationMethod; None without --rules
    site_rules: str | None = None

    def kept_identifier_kinds(self) -> list[str]:
        """Identifier kinds the user chose to keep (the retain options): the self-check
        and the leak scans do not count them as leaks."""
        kinds = []
        if self.retain_longitudinal == "full":
            kinds.append("date")
        if self.retain_uids:
            kinds.append("uid")
        if self.retain_device_identity:
            kinds.append("device")
        if self.retain_institution_identity:
            kinds.append("institution")
        return kinds

    def option_columns(self) -> list[str]:
        """The Table E.1-1 option columns in force, in the order they are applied."""
        cols = []
        if self.retain_safe_private:
            cols.append("rtnSafePrivOpt")
        if self.retain_uids:
            cols.append("rtnUIDsOpt")
        if self.retain_device_identity:
            cols.append("rtnDevIdOpt")
        if self.retain_institution_identity:
            cols.append("rtnInstIdOpt")
        if self.retain_patient_characteristics:
            cols.append("rtnPatCharsOpt")
        if self.retain_longitudinal == "full":
            cols.append("rtnLongFullDatesOpt")
        elif self.retain_longitudinal == "modified":
            cols.append("rtnLongModifDatesOpt")
        if self.clean_descriptors:
            cols.append("cleanDescOpt")
        if self.clean_structured_content:
            cols.append("cleanStructContOpt")
        if self.clean_graphics:
            cols.append("cleanGraphOpt")
        return cols


@dataclass
class DefaceOptions:
    modalities: list[str] | None = None  # None: every anatomical suffix
    age_months: float | None = None
    template: list[str] | None = None  # user template files (head[, face mask[, brain mask]])
    template_registry: str | None = None  # extra registry file
    remove_ears: bool = False
    method: str = "zero"  # "zero" or "reface"
    sloppy: bool = False


@dataclass
class RunConfig:
    """Everything a run needs to know. Paths are absolute."""

    bids_dir: Path
    output_dir: Path
    analysis_level: str
    private_dir: Path
    work_dir: Path
    participant_label: list[str] | None = None
    session_label: list[str] | None = None
    bids_filter_file: Path | None = None
    bids_filters: dict[str, Any] | None = None
    nprocs: int = 1
    omp_nthreads: int = 1
    mem_gb: float | None = None
    skip_bids_validation: bool = False
    verbosity: int = 0
    dicom_out: bool = False
    relabel: str = "keep"  # keep | sequential | random
    id_map: Path | None = None
    include_sex: bool = False
    drop_demographics: bool = False
    mapping_file: Path | None = None
    rules_file: Path | None = None
    force: bool = False
    dry_run: bool = False
    inventory_only: bool = False
    send_to: str | None = None
    deid: DeidOptions = field(default_factory=DeidOptions)
    deface: DefaceOptions = field(default_factory=DefaceOptions)
    version: str = __version__
    run_id: str = ""

    # -- derived places ----------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        """Per-participant state (completion markers, fragments, identifiers): private."""
        return self.private_dir / "state"

    @property
    def audit_dir(self) -> Path:
        return self.private_dir / "audit"

    @property
    def quarantine_dir(self) -> Path:
        return self.private_dir / "quarantine"

    @property
    def reports_dir(self) -> Path:
        return self.private_dir / "reports"

    @property
    def log_dir(self) -> Path:
        return self.private_dir / "logs" / self.run_id

    @property
    def derivatives_dir(self) -> Path:
        return self.output_dir / "derivatives" / "bidsdeid"

    # -- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        def conv(v: Any) -> Any:
            if isinstance(v, Path):
                return str(v)
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [conv(x) for x in v]
            return v

        return conv(dataclasses.asdict(self))

    def save(self, path: Path | None = None) -> Path:
        from bidsdeid.utils.atomic import write_json

        target = path or (self.log_dir / "config.json")
        write_json(target, self.to_dict(), perms=0o600)
        return target

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        data = dict(data)
        deid = DeidOptions(**data.pop("deid", {}))
        deface = DefaceOptions(**data.pop("deface", {}))
        for key in ("bids_dir", "output_dir", "private_dir", "work_dir", "bids_filter_file",
                    "id_map", "mapping_file", "rules_file"):
            if data.get(key) is not None:
                data[key] = Path(data[key])
        return cls(deid=deid, deface=deface, **data)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RunConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
