"""The command line: exit codes, refusals, --version, --help (DESIGN.md section 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli, tree_digest

from bidsdeid import __version__
from bidsdeid.cli.run import NOT_IMPLEMENTED, main
from bidsdeid.errors import ExitCode


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    root = tmp_path / "study"
    (root / "sourcedata" / "sub-01").mkdir(parents=True)
    (root / "sourcedata" / "sub-01" / "notes.txt").write_text("not DICOM")
    return root


def test_version_is_printed() -> None:
    proc = run_cli("--version", check=0)
    assert proc.stdout.strip() == f"bidsdeid {__version__}"


def test_help_explains_exit_codes_and_private_dir() -> None:
    proc = run_cli("--help", check=0)
    for text in ("exit codes:", "--private-dir", "--participant-label", "--dicom-out",
                 "--relabel", "--deface-modalities", "--sloppy", "Never share the private dir"):
        assert text in proc.stdout


def test_usage_error_is_64(study: Path, tmp_path: Path) -> None:
    assert main([str(study), str(tmp_path / "out"), "nonsense"]) == ExitCode.USAGE
    assert main([str(study), str(tmp_path / "out"), "participant", "--nprocs", "0"]) == 64


def test_missing_input_is_66(tmp_path: Path) -> None:
    assert main([str(tmp_path / "absent"), str(tmp_path / "out"), "participant"]) == 66
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("label", ["a/b", "../x", "sub-0_1", "01 2"])
def test_participant_label_with_path_characters_is_refused(study: Path, tmp_path: Path,
                                                           label: str) -> None:
    proc = run_cli(study, tmp_path / "out", "participant", "--participant-label", label, check=64)
    assert "not a BIDS label" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_participant_label_accepts_prefix(study: Path, tmp_path: Path) -> None:
    proc = run_cli(study, tmp_path / "out", "participant", "--participant-label", "sub-02")
    assert proc.returncode == ExitCode.NOTHING_SELECTED
    assert "sub-02" in proc.stderr and "sub-sub-02" not in proc.stderr


@pytest.mark.parametrize("where", ["output_in_input", "input_in_output", "private_in_output",
                                   "output_in_private", "private_in_input", "work_in_output"])
def test_nested_places_are_refused(study: Path, tmp_path: Path, where: str) -> None:
    before = tree_digest(study)
    out, extra = tmp_path / "out", []
    if where == "output_in_input":
        out = study / "derivatives" / "deid"
    elif where == "input_in_output":
        out = tmp_path
    elif where == "private_in_output":
        extra = ["--private-dir", str(out / "private")]
    elif where == "output_in_private":
        extra = ["--private-dir", str(tmp_path)]
    elif where == "private_in_input":
        extra = ["--private-dir", str(study / "private")]
    elif where == "work_in_output":
        extra = ["-w", str(out / "work")]
    proc = run_cli(study, out, "participant", *extra, check=64)
    assert "must not" in proc.stderr or "must be separate" in proc.stderr
    assert tree_digest(study) == before


def test_unimplemented_option_exits_64_and_says_so(study: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The mechanism for options a version knows but does not do (none in this one)."""
    monkeypatch.setitem(NOT_IMPLEMENTED, "remove_ears", "--remove-ears")
    assert main([str(study), str(tmp_path / "out"), "participant", "--remove-ears"]) == 64
    assert "--remove-ears is not implemented" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
