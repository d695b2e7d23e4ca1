"""The group level: dataset files, whole-dataset leak scan, validation, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import make_dicom_study, run_cli

from bidsdeid.bids import dataset
from bidsdeid.cli.run import main
from bidsdeid.config import RunConfig

pytestmark = [pytest.mark.needs_shared, pytest.mark.xdist_group("group")]


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("group")
    study = make_dicom_study(shared_data, root / "study", {"ge": "ge"})
    (study / "sourcedata" / "sub-bad").mkdir()
    (study / "sourcedata" / "sub-bad" / "notes.txt").write_text("not DICOM")
    out = root / "out"
    proc = run_cli(study, out, "participant", "--deface-modalities", "none")
    assert proc.returncode == 65 and "sub-bad FAILED" in proc.stderr  # bad input
    return SimpleNamespace(root=root, study=study, out=out)


def _copy(done: SimpleNamespace, tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "out"
    shutil.copytree(done.out, out)
    shutil.copytree(done.root / "out_private", tmp_path / "out_private")
    return done.study, out


def _group(study: Path, out: Path, *extra: str) -> int:
    return main([str(study), str(out), "group", *extra])


def test_failed_participant_is_named_and_fails_the_group(done: SimpleNamespace, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    study, out = _copy(done, tmp_path)
    assert _group(study, out) == 1
    err = capsys.readouterr().err
    assert "sub-bad failed at the participant level" in err
    summary = json.loads((tmp_path / "out_private/reports/group_summary.json").read_text())
    assert summary["participants_failed"] == ["sub-bad"] and summary["leak_hits"] == 0
    assert summary["validator"]["errors"] == []
    report = json.loads((tmp_path / "out_private/reports/bids_validator.json").read_text())
    assert report["n_errors"] == 0 and report["n_warnings"] > 0
    assert (out / "participants.tsv").read_text().splitlines()[1:] == ["sub-ge\tn/a"]


def test_validator_errors_exit_16_unless_skipped(done: SimpleNamespace, tmp_path: Path) -> None:
    study, out = _copy(done, tmp_path)
    shutil.rmtree(tmp_path / "out_private" / "state" / "sub-bad")  # only the BIDS problem
    side = out / "sub-ge/func/sub-ge_task-unknown_bold.json"
    data = json.loads(side.read_text())
    del data["TaskName"]
    side.write_text(json.dumps(data))
    assert _group(study, out) == 16
    report = json.loads((tmp_path / "out_private/reports/bids_validator.json").read_text())
    assert report["n_errors"] >= 1
    assert _group(study, out, "--skip-bids-validation") == 0


def test_whole_dataset_leak_scan_fails_the_group(done: SimpleNamespace, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    study, out = _copy(done, tmp_path)
    shutil.rmtree(tmp_path / "out_private" / "state" / "sub-bad")
    (out / "sub-ge" / "notes.txt").write_text("scanned by Regression")
    assert _group(study, out, "--skip-bids-validation") == 1
    err = capsys.readouterr().err
    assert "sub-ge/notes.txt: leak scan found a name identifier" in err
    assert "Regression" not in err
    audit = json.loads((tmp_path / "out_private/audit/group_leakscan.json").read_text())
    assert audit["hits"][0]["text"] == "Regression"


def test_group_without_participants_is_missing_input(tmp_path: Path) -> None:
    (tmp_path / "study").mkdir()
    assert _group(tmp_path / "study", tmp_path / "out") == 66


def test_shared_files_are_rebuilt_from_completed_fragments(done: SimpleNamespace,
                                                           tmp_path: Path) -> None:
    study, out = _copy(done, tmp_path)
    cfg = RunConfig(bids_dir=study, output_dir=out, analysis_level="group",
                    private_dir=tmp_path / "out_private", work_dir=tmp_path / "work")
    before = {p: (out / p).read_bytes() for p in ("README", "dataset_description.json",
                                                  "participants.tsv", ".bidsignore")}
    dataset.update_shared_files(cfg)
    after = {p: (out / p).read_bytes() for p in before}
    assert before == after  # same fragments, same bytes
    desc = json.loads(after["dataset_description.json"])
    assert desc["DatasetType"] == "raw" and desc["GeneratedBy"][0]["Name"] == "bidsdeid"
    shutil.rmtree(out / "sub-ge")  # no longer published: no longer listed
    dataset.update_shared_files(cfg)
    assert not (out / "participants.tsv").exists()
