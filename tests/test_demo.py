"""bidsdeid-demo: a DICOM study made from the pydeface template head, with fake
identifiers; it converts to the template's geometry and de-identifies cleanly. No
shared data needed (this is what runs in a user's clone)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_support import dcm2niix_bin, run_dcm2niix, stage_dicom, staged_files

from bidsdeid.cli import demo
from bidsdeid.privacy.dates import age_in_years


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo.synthesize(tmp_path_factory.mktemp("demo"))


def _series(study: Path) -> list[Path]:
    return sorted((study / "sourcedata" / f"sub-{demo.LABEL}").rglob("IM*"))


def test_study_has_fake_identifiers_everywhere(study: Path) -> None:
    files = _series(study)
    data, _affine = demo.demo_volume()
    assert len(files) == data.shape[0]
    ds = pydicom.dcmread(files[0])
    assert ds.SOPClassUID == pydicom.uid.MRImageStorage and "NumberOfFrames" not in ds
    for keyword, value in demo.FAKE.items():
        assert str(ds.data_element(keyword).value) == value
    birth = dt.datetime.strptime(ds.PatientBirthDate, "%Y%m%d").date()
    study_date = dt.datetime.strptime(ds.StudyDate, "%Y%m%d").date()
    assert age_in_years(birth, study_date) == 93
    raw = files[0].read_bytes()
    assert demo.PRIVATE_TOKEN.encode() in raw and str(ds.SOPInstanceUID).encode() in raw[
        raw.index(b"CSA-like"):]


def test_template_head_is_the_pydeface_one() -> None:
    head = demo.template_head()
    data, affine = demo.demo_volume()
    assert data.shape == tuple((s + 1) // 2 for s in head.shape)
    assert np.allclose(affine[:3, :3], head.affine[:3, :3] * 2)
    assert data.max() > 100


@pytest.mark.skipif(dcm2niix_bin() is None, reason="dcm2niix not installed")
def test_series_converts_to_the_template_geometry(study: Path, tmp_path: Path) -> None:
    out = run_dcm2niix(_series(study)[0].parent, tmp_path / "nii")
    assert len(out) == 1
    got = nib.as_closest_canonical(nib.load(out[0]))
    data, affine = demo.demo_volume()
    want = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
    assert got.shape == want.shape
    assert np.allclose(got.affine, want.affine, atol=1e-3)
    assert np.array_equal(np.asanyarray(got.dataobj), np.asanyarray(want.dataobj))


def test_dicom_out_removes_every_fake_identifier(study: Path, tmp_path: Path) -> None:
    ctx = stage_dicom(study, tmp_path / "run", demo.LABEL, nprocs=2)
    outputs = staged_files(ctx)
    assert len(outputs) == len(_series(study))
    originals = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
                 for f in _series(study)}
    for out in outputs:
        raw = out.read_bytes().lower()
        for value in [*demo.FAKE.values(), demo.PRIVATE_TOKEN]:
            if value in ("F", "61", "093Y", "t1_mprage_sag", ""):
                continue
            assert value.lower().encode() not in raw, value
        for part in ("demoperson", "alice", "operator", "referrer", "fictional"):
            assert part.encode() not in raw
        assert not any(uid.encode() in raw for uid in originals)
        ds = pydicom.dcmread(out)
        assert "PatientAge" not in ds and ds.PatientBirthDate == ""
        assert int(ds.StudyDate[:4]) <= 1925
    names = [p.relative_to(ctx.staging).as_posix() for p in outputs]
    assert names[0] == f"sourcedata/sub-{demo.LABEL}/3/1.dcm"


def test_demo_prints_the_exit_code_of_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from bidsdeid.cli import run

    seen: list[int] = []
    real_main = run.main

    def recording_main(argv: list[str] | None = None) -> int:
        code = real_main(argv)
        seen.append(code)
        return code

    monkeypatch.setattr(run, "main", recording_main)
    code = demo.main([str(tmp_path), "--", "--deface-modalities", "none"])
    printed = capsys.readouterr().out
    assert seen == [code]
    assert f"bidsdeid exited with code {code}" in printed
    assert str(tmp_path / "output") in printed
    if code == 0:  # the whole pipeline is in place: the shared DICOM must be clean
        shared = sorted((tmp_path / "output" / "sourcedata").rglob("*.dcm"))
        assert shared and all(demo.PRIVATE_TOKEN.encode() not in p.read_bytes() for p in shared)
