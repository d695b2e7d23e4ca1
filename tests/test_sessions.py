"""``--session-label``: a run of some sessions leaves the other published sessions as
they are (files, sessions.tsv rows, completion record)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import DICOM_SESSIONS, tree_digest

from bidsdeid.cli.run import main

pytestmark = [pytest.mark.needs_shared]


def _files(root: Path) -> dict[str, str]:
    return {k: v for k, v in tree_digest(root).items() if "/ses-" in k or "sessions" in k}


@pytest.mark.parametrize("relabel", ["keep", "sequential"])
def test_a_run_of_one_session_keeps_the_others(shared_data: Path, tmp_path: Path,
                                               relabel: str) -> None:
    study = tmp_path / "study"
    for ses in ("a", "b"):
        shutil.copytree(shared_data / DICOM_SESSIONS["ge"],
                        study / "sourcedata" / "sub-01" / f"ses-{ses}")
    out = tmp_path / "out"
    common = [str(study), str(out), "participant", "--deface-modalities", "none",
              "--relabel", relabel]
    assert main(common) == 0
    whole = _files(out)
    sessions_tsv = next(out.glob("sub-*/sub-*_sessions.tsv")).read_text()
    assert len(sessions_tsv.splitlines()) == 3 and len({k.split("/")[1] for k in whole
                                                        if "/ses-" in k}) == 2

    # redo ses-b alone (forced: new settings anyway), then ses-a alone
    assert main([*common, "--session-label", "b", "--force"]) == 0
    assert _files(out) == whole
    assert main([*common, "--session-label", "ses-a"]) == 0
    assert _files(out) == whole

    # a session removed from the input and redone alone leaves the other intact
    shutil.rmtree(study / "sourcedata" / "sub-01" / "ses-b")
    assert main([*common, "--session-label", "a", "--force"]) == 0
    assert _files(out) == whole
