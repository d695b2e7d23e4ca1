"""The participant index read by worker processes (``--nprocs`` > 1) must give exactly
what one serial read gives: the same series, files, kept headers, skipped files in the
same order, identifiers (with the same source attribute for each) and file facts,
for classic files with oddities mixed in and for streamed large enhanced files."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import DICOM_SESSIONS

from bidsdeid.bids.stage import InputCollector
from bidsdeid.dicom import index
from bidsdeid.privacy.identifiers import Identifiers

pytestmark = [pytest.mark.needs_shared]


def _read(study: Path, label: str, nprocs: int, monkeypatch: pytest.MonkeyPatch
          ) -> tuple[dict[str, Any], int]:
    """Index ``study`` with an :class:`InputCollector`; (everything it found, how many
    worker collectors were folded back)."""
    collector = InputCollector(Identifiers(), [])
    merged = []
    real_merge = collector.merge
    monkeypatch.setattr(collector, "merge", lambda other: (merged.append(1), real_merge(other)))
    found = index.index_participant(study, label, collector=collector, nprocs=nprocs)
    return {
        "series": [(s.session, s.study_uid, s.series_uid, s.series_number, s.modality,
                    s.sop_class_uid, [vars(f) for f in s.files]) for s in found.series],
        "headers": [s.header for s in found.series],
        "metas": [s.header.file_meta for s in found.series],
        "skipped": [(s.path, s.reason, s.harmless) for s in found.skipped],
        "identifiers": collector.identifiers.to_json(),
        "facts": collector.facts.by_path,
    }, len(merged)


def _assert_same(serial: dict[str, Any], parallel: dict[str, Any]) -> None:
    for key, value in serial.items():
        assert parallel[key] == value, key


def test_parallel_index_equals_serial_with_sessions_and_oddities(
        shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "study" / "sourcedata" / "sub-x"
    for ses in ("a", "b"):
        shutil.copytree(shared_data / DICOM_SESSIONS["ge"], root / f"ses-{ses}")
    files = sorted(p for p in (root / "ses-a").rglob("*") if p.is_file()
                   and p.suffix.lower() != ".txt")
    # oddities in the middle of the walk: each must keep its place among the skipped
    victim = files[len(files) // 2]
    (victim.parent / "zz_truncated.dcm").write_bytes(victim.read_bytes()[:3000])
    (victim.parent / "notes.txt").write_text("scan notes\n")
    (root / "ses-a" / ".hidden").mkdir()
    os.symlink(tmp_path / "nowhere", root / "ses-b" / "broken_link")
    (root / "stray.dcm").write_bytes(b"not here")

    serial, merged_serial = _read(tmp_path / "study", "x", 1, monkeypatch)
    parallel, merged = _read(tmp_path / "study", "x", 2, monkeypatch)
    assert merged_serial == 0
    assert merged >= 4  # the parallel path was taken, in several batches
    _assert_same(serial, parallel)
    reasons = {Path(p).name: r for p, r, _ in serial["skipped"]}
    assert "truncated" in reasons["zz_truncated.dcm"]
    assert {"notes.txt", ".hidden", "broken_link", "stray.dcm"} <= set(reasons)
    assert sum(len(s[6]) for s in serial["series"]) == 2 * len(files)


def test_parallel_index_equals_serial_for_streamed_enhanced_files(
        shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # every enhanced file streamed (forked workers inherit the lowered threshold)
    monkeypatch.setattr(index, "STREAM_FRAMES_ABOVE", 0)
    monkeypatch.setattr(index, "PARALLEL_FROM", 8)
    monkeypatch.setattr(index, "pool_context", lambda: multiprocessing.get_context("fork"))
    study = tmp_path / "study"
    shutil.copytree(shared_data / DICOM_SESSIONS["xa30"], study / "sourcedata" / "sub-x")
    serial, _ = _read(study, "x", 1, monkeypatch)
    parallel, merged = _read(study, "x", 2, monkeypatch)
    assert merged >= 2
    _assert_same(serial, parallel)
    multi = [f for f in serial["facts"].values() if f.n_frames > 1 and len(f.b_values) > 1
             or len(f.positions) > 1]
    assert multi, "no enhanced file had its per-frame facts collected"


def test_header_hooks_keep_the_read_in_this_process() -> None:
    """A site rule's hook changes state here; a worker's copy would be lost."""
    assert InputCollector(Identifiers(), []).fresh() is not None
    assert InputCollector(Identifiers(), [lambda ds: None]).fresh() is None
