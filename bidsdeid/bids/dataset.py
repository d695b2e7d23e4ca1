"""Dataset-wide files of OUTPUT_DIR: dataset_description.json, README, .bidsignore and
participants.tsv/.json.

They are rebuilt from scratch, under a file lock, from the private fragments
(``state_dir/sub-*/participants.json``) of the participants whose files are in
OUTPUT_DIR, so parallel SLURM tasks never race and the last writer always leaves a
complete file. The same fragments give byte-identical files (sorted rows, sorted JSON
keys, no dates). The fixed texts are short and plain: the leak scan treats every name
part of every participant as a token, so generic words are avoided.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bidsdeid import __version__
from bidsdeid.bids import schema
from bidsdeid.config import RunConfig
from bidsdeid.utils.atomic import TMP_PREFIX, dumps_json, write_text
from bidsdeid.utils.locks import file_lock

FRAGMENT = "participants.json"
LOCK = ".shared-files.lock"

README = """\
De-identified with bidsdeid {version}.

Identifying metadata were removed from headers, sidecars and tables, and dates were
{dates}. Each sidecar's DeidentificationMethod says what was done to that image.
"""
BIDSIGNORE = "derivatives/\n"
COLUMNS = {
    "age": {"Description": "age at the first session, in whole years; ages above 89 are "
                           "given as 89", "Units": "year"},
    "sex": {"Description": "sex recorded by the scanner",
            "Levels": {"M": "male", "F": "female", "O": "other"}},
}


def _marker(config: RunConfig, state: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state / "complete.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _published(config: RunConfig, output_label: str) -> bool:
    folder = config.output_dir / f"sub-{output_label}"
    if not folder.is_dir():
        return False
    return any(p.is_file() for p in folder.rglob("*"))


def completed_rows(config: RunConfig) -> list[dict[str, Any]]:
    """participants.tsv rows of participants whose files are in OUTPUT_DIR."""
    rows: list[dict[str, Any]] = []
    if not config.state_dir.is_dir():
        return rows
    for state in sorted(config.state_dir.glob("sub-*")):
        try:
            frag = json.loads((state / FRAGMENT).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        row = frag.get("row") if isinstance(frag, dict) else None
        if not isinstance(row, dict) or not str(row.get("participant_id", "")).startswith("sub-"):
            continue
        marker = _marker(config, state)
        label = (marker or {}).get("output_label") or row["participant_id"][4:]
        if f"sub-{label}" != row["participant_id"]:
            continue  # a fragment of an earlier run with other labels
        # complete (marker written by publish.py before it calls this) and its files are
        # in OUTPUT_DIR (a failed participant's files are withdrawn)
        if marker is not None and _published(config, label):
            rows.append(row)
    return sorted(rows, key=lambda r: r["participant_id"])


def participants_tsv(rows: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    columns = [c for c in ("age", "sex") if any(c in r for r in rows)]
    lines = ["\t".join(["participant_id", *columns])]
    for r in rows:
        lines.append("\t".join([r["participant_id"], *[str(r.get(c, "n/a")) for c in columns]]))
    sidecar: dict[str, Any] = {"participant_id": {"Description": "pseudonymous participant "
                                                                 "label"}}
    sidecar.update({c: COLUMNS[c] for c in columns})
    return "\n".join(lines) + "\n", sidecar


_LEGACY_LICENSES = frozenset({"CC0", "PD", "PDDL"})
"""Short names the BIDS specification listed before it asked for SPDX identifiers."""


def spdx_license(value: object) -> str | None:
    """The input's License if it is an SPDX license expression of licenses on the SPDX
    list (``CC0-1.0``, ``CC-BY-4.0 OR ODbL-1.0``; as BIDS asks) or a short name BIDS
    used to list, in canonical form; else None. Any other text (a name, a date, a
    ``LicenseRef-`` of one's own) could identify someone and is not copied: this file
    is written after the participants' leak scans."""
    from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        return None
    text = value.strip()
    if text in _LEGACY_LICENSES:
        return text
    try:
        canonical = str(canonicalize_license_expression(text))
    except InvalidLicenseExpression:
        return None
    return None if re.search(r"(?:License|Document|Addition)Ref-", canonical) else canonical


def dataset_description(config: RunConfig) -> dict[str, Any]:
    desc: dict[str, Any] = {
        "Name": "De-identified dataset",
        "BIDSVersion": schema.bids_version(),
        "DatasetType": "raw",
        "GeneratedBy": [{"Name": "bidsdeid", "Version": __version__,
                         "Description": "conversion and de-identification"}],
    }
    try:
        source = json.loads((config.bids_dir / "dataset_description.json").read_text("utf-8"))
        license_text = source.get("License") if isinstance(source, dict) else None
        spdx = spdx_license(license_text)
        if spdx is not None:
            desc["License"] = spdx
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        pass
    return desc


def _write_if_changed(path: Path, text: str) -> None:
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    write_text(path, text)


SHARED = ("README", ".bidsignore", "dataset_description.json", "participants.tsv",
          "participants.json")


def _remove_strays(out: Path) -> None:
    """Temporary files of the shared files that a killed writer left (the caller holds
    the lock, so no one else is writing them)."""
    for entry in out.glob(TMP_PREFIX + "*"):
        if any(entry.name.endswith("-" + name) for name in SHARED):
            entry.unlink(missing_ok=True)


def update_shared_files(config: RunConfig) -> None:
    """Rebuild the dataset-wide files of OUTPUT_DIR from the completed fragments."""
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    with file_lock(config.state_dir / LOCK):
        _remove_strays(out)
        rows = completed_rows(config)
        dates = {"modified": "shifted by one offset per participant",
                 "full": "kept", "off": "removed"}[config.deid.retain_longitudinal]
        _write_if_changed(out / "README", README.format(version=__version__, dates=dates))
        _write_if_changed(out / ".bidsignore", BIDSIGNORE)
        _write_if_changed(out / "dataset_description.json",
                          dumps_json(dataset_description(config)))
        if rows:
            tsv, side = participants_tsv(rows)
            _write_if_changed(out / "participants.tsv", tsv)
            _write_if_changed(out / "participants.json", dumps_json(side))
        else:
            for name in ("participants.tsv", "participants.json"):
                (out / name).unlink(missing_ok=True)
