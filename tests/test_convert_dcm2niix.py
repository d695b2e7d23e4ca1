"""dcm2niix runs are judged by exit code and the files produced: a failing series is
reported and the others still convert; lost frames are a warning naming the series."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import make_dicom_study

from bidsdeid.cli.run import main
from bidsdeid.convert import dcm2niix
from bidsdeid.dicom.index import index_participant

pytestmark = [pytest.mark.needs_shared, pytest.mark.xdist_group("dcm2niix")]


def _wrapper(tmp_path: Path, body: str) -> str:
    """A stand-in dcm2niix: a shell script around the real binary."""
    script = tmp_path / "fake-dcm2niix"
    script.write_text("#!/bin/sh\n" f"REAL='{dcm2niix.binary()}'\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.fixture()
def xa30(shared_data: Path, tmp_path: Path) -> Path:
    return make_dicom_study(shared_data, tmp_path / "study", {"xa30": "xa30"})


def test_failing_series_is_an_error_and_the_others_convert(xa30: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # fail on the one series made of exactly 2 files (the field map magnitudes)
    fake = _wrapper(tmp_path, 'for last; do :; done\n'
                    'if [ "$(ls "$last" | wc -l)" -eq 2 ]; then echo "Error: x" >&2; exit 2; fi\n'
                    'exec "$REAL" "$@"\n')
    monkeypatch.setattr(dcm2niix, "binary", lambda: fake)
    out = tmp_path / "out"
    assert main([str(xa30), str(out), "participant", "--deface-modalities", "none"]) == 1
    err = capsys.readouterr().err
    assert "series 8: dcm2niix failed (no valid DICOM found, exit code 2)" in err
    assert not (out / "sub-xa30").exists()  # fail closed: nothing published
    table = json.loads((tmp_path / "out_private/audit/sub-xa30/series.json").read_text())
    outputs = {row["series_number"]: row["outputs"] for row in table}
    assert outputs[8] == ""
    assert outputs[5] and outputs[7] and outputs[9] and outputs[10]  # the others went on


def test_lost_frames_are_a_warning(xa30: Path, tmp_path: Path) -> None:
    fake = _wrapper(tmp_path, '"$REAL" "$@"; code=$?\n'
                    'for a; do case "$prev" in -o) out="$a";; esac; prev="$a"; done\n'
                    'rm -f "$out"/series_e2.nii "$out"/series_e2.json\nexit $code\n')
    index = index_participant(xa30, "xa30")
    series = next(s for s in index.series if s.series_number == 8)
    original = dcm2niix.binary
    try:
        dcm2niix.binary = lambda: fake  # type: ignore[assignment]
        result = dcm2niix.convert(series, tmp_path / "work", series.n_frames)
    finally:
        dcm2niix.binary = original  # type: ignore[assignment]
    assert result.ok and len(result.outputs) == 1
    assert result.warnings == ["dcm2niix converted 33 of 66 image frames: data were lost"]


def test_original_files_are_linked_under_neutral_names(xa30: Path, tmp_path: Path) -> None:
    index = index_participant(xa30, "xa30")
    series = next(s for s in index.series if s.series_number == 7)
    result = dcm2niix.convert(series, tmp_path / "work", series.n_frames)
    links = sorted((tmp_path / "work" / "in").iterdir())
    assert [p.name for p in links[:2]] == ["000001.dcm", "000002.dcm"]
    assert all(os.path.islink(p) for p in links)
    assert [o.nii.name for o in result.outputs] == ["series.nii"]
    assert result.outputs[0].shape == (64, 64, 33, 20)
    assert result.returncode == 0 and result.warnings == []
