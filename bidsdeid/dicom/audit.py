"""Per-series audit of the DICOM de-identification (PRIVATE_DIR/audit/sub-<label>/dicom/).

One JSON file per series lists every attribute that was touched (as a path of
keywords through the sequences, private tags with their block byte hidden), the
action and why (the E.1-1 code and option, or the rule for attributes in no table),
and in how many places, and what happened to its pixels (unchanged, defaced with the
method and the number of pixels removed, or written with the face because defacing
was turned off; the BIDS images the series became). It records tags, keywords,
actions and counts only: never a value.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bidsdeid.dicom import tables
from bidsdeid.dicom.deidentify import FileReport
from bidsdeid.utils.atomic import write_json


@dataclass
class SeriesAudit:
    """Accumulates the file reports of one series."""

    series: str  # output folder name (series number)
    session: str | None  # input session label (the audit is private)
    output: str  # OUTPUT_DIR-relative folder
    files: int = 0
    engines: Counter[str] = field(default_factory=Counter)
    actions: Counter[tuple[str, str]] = field(default_factory=Counter)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (file number, reason)
    pixels: dict[str, Any] = field(default_factory=dict)  # action, images, method, counts

    def add(self, engine: str, actions: Counter[tuple[str, str]]) -> None:
        self.files += 1
        self.engines[engine] += 1
        self.actions.update(actions)

    def add_pixels(self, report: FileReport) -> None:
        """Add one file's pixel counts (defaced series)."""
        if not report.pixels_total:
            return
        for key, value in (("removed", report.pixels_removed), ("total", report.pixels_total),
                           ("zeroed_not_refaced", report.pixels_zeroed_not_refaced)):
            self.pixels[key] = int(self.pixels.get(key, 0)) + value
        if report.decoded_from:
            decoded = self.pixels.setdefault("decoded_from", {})
            decoded[report.decoded_from] = decoded.get(report.decoded_from, 0) + 1

    def to_json(self, settings: dict[str, Any]) -> dict[str, Any]:
        touched: dict[str, dict[str, int]] = {}
        for (path, why), count in sorted(self.actions.items()):
            touched.setdefault(path, {})[why] = count
        return {
            "series": self.series,
            "session": self.session,
            "output": self.output,
            "files_written": self.files,
            "files_refused": [{"file": n, "reason": r} for n, r in self.refused],
            "engines": dict(sorted(self.engines.items())),
            "pixels": self.pixels,
            "profile": settings,
            "attributes": touched,
        }

    def write(self, folder: Path, name: str, settings: dict[str, Any]) -> Path:
        path = folder / f"{name}.json"
        write_json(path, self.to_json(settings), perms=0o600)
        return path


def profile_settings(method: list[tuple[str, str]], option_columns: list[str],
                     key_fingerprint: str) -> dict[str, Any]:
    """The profile description every series audit repeats (PHI-free)."""
    prov = tables.provenance()
    return {
        "method_codes": [{"code": c, "meaning": m} for c, m in method],
        "option_columns": option_columns,
        "key": key_fingerprint,
        "tables": {name: {"edition": p["edition"], "inputs": p["inputs"]}
                   for name, p in sorted(prov.items())},
    }
