"""End to end: ``bidsdeid BIDS_DIR OUTPUT_DIR participant --dicom-out`` on real files
with planted identifiers, through the CLI in a subprocess.

"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from conftest import run_cli, tree_digest
from dicom_support import Planter, all_uids, copy_set, dicom_inputs, plant_files

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow]


def test_cli_dicom_out_end_to_end(shared_data: Path, tmp_path: Path) -> None:
    bids = tmp_path / "in"
    src = copy_set(shared_data, "ge", bids / "sourcedata" / "sub-01")
    files = dicom_inputs(src)
    planter = Planter("cli")
    plant_files(files, planter)
    uids = all_uids(files) | planter.uids
    before = tree_digest(bids)
    out, private = tmp_path / "out", tmp_path / "private"
    run_cli(bids, out, "participant", "--dicom-out", "--deface-modalities", "none",
            "--skip-bids-validation", "--private-dir", private, check=0)
    assert tree_digest(bids) == before
    shared = sorted((out / "sourcedata").rglob("*.dcm"))
    assert len(shared) == len(files)
    assert all(p.relative_to(out).as_posix().startswith("sourcedata/sub-01/4/") for p in shared)
    for p in shared:
        data = p.read_bytes()
        assert not any(t.lower().encode() in data.lower() for t in planter.tokens), p
        assert not any(u.encode() in data for u in uids), p
        assert pydicom.dcmread(p).PatientIdentityRemoved == "YES"
    assert (private / "uid_mapping.csv").is_file() and (private / "patid_mapping.csv").is_file()
    assert list((private / "audit" / "sub-01" / "dicom").glob("*.json"))
    # a rerun with the same key publishes byte-identical files
    first = [p.read_bytes() for p in shared]
    run_cli(bids, out, "participant", "--dicom-out", "--deface-modalities", "none", "--force",
            "--skip-bids-validation", "--private-dir", private, check=0)
    assert [p.read_bytes() for p in sorted((out / "sourcedata").rglob("*.dcm"))] == first
