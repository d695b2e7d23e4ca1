"""Refused objects are quarantined, not shared; mapping files merge safely."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pydicom
import pytest
from dicom_support import KEY, copy_set, dicom_inputs, stage_dicom, staged_files
from pydicom.dataset import Dataset

from bidsdeid.config import RunConfig
from bidsdeid.context import ParticipantContext
from bidsdeid.dicom import stage as dicom_stage
from bidsdeid.dicom.mappings import merge_mapping, read_mapping
from bidsdeid.dicom.quarantine import quarantine_reason
from bidsdeid.participant import make_context
from bidsdeid.progress import NULL_PROGRESS

MR = "1.2.840.10008.5.1.4.1.1.4"


def header(**kw: object) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = kw.pop("SOPClassUID", MR)
    ds.Rows = ds.Columns = 4
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


@pytest.mark.parametrize("ds,expected", [
    (header(), None),
    (header(BurnedInAnnotation="YES"), "BurnedInAnnotation"),
    (header(BurnedInAnnotation="NO"), None),
    (header(RecognizableVisualFeatures="YES"), "RecognizableVisualFeatures"),
    (header(SOPClassUID="1.2.840.10008.5.1.4.1.1.7"), "secondary capture"),
    (header(SOPClassUID="1.2.840.10008.5.1.4.1.1.7.4"), "secondary capture"),
    (header(SOPClassUID="1.2.840.10008.5.1.4.1.1.104.1"), "encapsulated document"),
    (header(SOPClassUID="1.2.840.10008.5.1.4.1.1.104.2"), "encapsulated document"),
    (header(SOPClassUID="1.2.840.10008.5.1.4.1.1.88.22"), "structured report"),
    (header(SOPClassUID="1.2.840.10008.5.1.4.1.1.11.1"), "presentation state"),
    (header(SOPClassUID="1.2.840.10008.5.1.4.1.1.66"), "raw data"),
    (header(SOPClassUID="1.2.840.10008.5.1.4.1.1.4.2"), "spectroscopy"),
    (header(SOPClassUID="1.2.840.10008.5.1.4.1.1.77.1.4"), "does not share"),
    (header(SOPClassUID="1.3.12.2.1107.5.9.1"), "private or unknown"),
    (header(ImageType=["DERIVED", "SECONDARY", "SCREEN SAVE"]), "SCREEN SAVE"),
    (header(ImageType="ORIGINAL\\PRIMARY\\SCREENSHOT"), "SCREEN SAVE"),
    (header(ImageType=["DERIVED", "SECONDARY", "MPR"]), None),
    (header(SOPClassUID="1.2.840.10008.5.1.4.1.1.4.1"), None),
])
def test_quarantine_reason(ds: Dataset, expected: str | None) -> None:
    reason = quarantine_reason(ds)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason


def test_no_pixel_data_is_refused() -> None:
    ds = Dataset()
    ds.SOPClassUID = MR
    assert quarantine_reason(ds) == "no pixel data"
    assert quarantine_reason(header(), has_pixels=False) == "no pixel data"
    assert quarantine_reason(header(), has_pixels=True) is None


@pytest.mark.needs_shared
def test_secondary_captures_are_quarantined(shared_data: Path, tmp_path: Path) -> None:
    bids = tmp_path / "in"
    copy_set(shared_data, "ctbrain", bids / "sourcedata" / "sub-c1")
    ctx = stage_dicom(bids, tmp_path / "run", "c1")
    assert staged_files(ctx) == []
    q = sorted((ctx.config.quarantine_dir / "sub-c1").rglob("*.dcm"))
    assert [p.name for p in q] == ["ctbrain1.dcm", "ctbrain2.dcm"]
    assert any("secondary capture" in p.message for p in ctx.problems)
    assert ctx.results["quarantined"]


@pytest.mark.needs_shared
def test_one_refused_file_in_a_shared_series(shared_data: Path, tmp_path: Path) -> None:
    """A file flagged BurnedInAnnotation=YES inside a good series is quarantined on its
    own; the others are written and numbered without a gap."""
    bids = tmp_path / "in"
    src = copy_set(shared_data, "ge", bids / "sourcedata" / "sub-b1", 5)
    files = dicom_inputs(src)
    bad = files[2]
    ds = pydicom.dcmread(bad)
    ds.BurnedInAnnotation = "YES"
    ds.save_as(bad)
    ctx = stage_dicom(bids, tmp_path / "run", "b1", nprocs=2)
    out = staged_files(ctx)
    assert [p.name for p in out] == ["1.dcm", "2.dcm", "3.dcm", "4.dcm"]
    kept = [int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber) for p in out]
    assert kept == sorted(kept) and int(ds.InstanceNumber) not in kept
    q = list((ctx.config.quarantine_dir / "sub-b1").rglob("*.dcm"))
    assert len(q) == 1 and q[0].read_bytes() == bad.read_bytes()
    audit = next((ctx.audit_dir / "dicom").glob("*.json")).read_text()
    assert "BurnedInAnnotation" in audit and '"files_written": 4' in audit


def test_stage_does_nothing_without_dicom_out(tmp_path: Path) -> None:
    cfg = RunConfig(bids_dir=tmp_path, output_dir=tmp_path / "o", analysis_level="participant",
                    private_dir=tmp_path / "p", work_dir=tmp_path / "w", dicom_out=False)
    ctx = make_context(cfg, KEY, "x1", NULL_PROGRESS)
    dicom_stage.run(ctx)
    assert not (ctx.staging / "sourcedata").exists()
    assert "dicom_out" not in ctx.results


def _merge(args: tuple[str, int]) -> None:
    path, n = args
    merge_mapping(Path(path), {f"1.2.3.{n}.{i}": f"2.25.{n}{i}" for i in range(50)})


def test_mapping_merges_from_parallel_tasks(tmp_path: Path) -> None:
    path = tmp_path / "uid_mapping.csv"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_merge, [(str(path), n) for n in range(8)])
    rows = read_mapping(path)
    assert len(rows) == 8 * 50
    assert path.read_text().splitlines()[0] == "id_old,id_new"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


@pytest.mark.needs_shared
def test_profile_overrides_reach_the_workers(shared_data: Path, tmp_path: Path) -> None:
    """The site-rules hook: overrides in ctx.results change the output, nothing else."""
    bids = tmp_path / "in"
    copy_set(shared_data, "ge", bids / "sourcedata" / "sub-o1", 2)

    def overrides(ctx: ParticipantContext) -> None:
        ctx.results[dicom_stage.OVERRIDES] = {"tags": {0x00081090: "X", 0x00180020: "X"}}

    ctx = stage_dicom(bids, tmp_path / "run", "o1", nprocs=2, prepare=overrides)
    out = staged_files(ctx)
    assert out
    for p in out:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        assert "ManufacturerModelName" not in ds and "ScanningSequence" not in ds
        assert ds.Manufacturer  # not overridden: kept
