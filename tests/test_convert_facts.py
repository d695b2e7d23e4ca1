"""Facts the heuristic reads: vendor private hints, enhanced per-frame values, and the
quarantine of refused objects."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from bidsdeid.convert import vendor
from bidsdeid.convert.facts import file_facts


def _private(group: int, creator: str, offset: int, vr: str, value: object) -> Dataset:
    ds = Dataset()
    ds.private_block(group, creator, create=True).add_new(offset, vr, value)
    return ds


@pytest.mark.parametrize("ds,b", [
    (_private(0x0019, "SIEMENS MR HEADER", 0x0C, "IS", "1000"), 1000.0),
    (_private(0x0043, "GEMS_PARM_01", 0x39, "IS", ["1000002000", "0", "0", "0"]), 2000.0),
    (_private(0x2001, "Philips Imaging DD 001", 0x03, "FL", 700.0), 700.0),
    (Dataset(), None),
])
def test_private_b_values(ds: Dataset, b: float | None) -> None:
    assert vendor.private_b_value(ds) == b


def test_siemens_protocol_from_an_ascconv_block() -> None:
    text = b"### ASCCONV BEGIN ###\nsAsl.ulMode\t = \t32\nsAsl.ulSuppressionMode\t = \t2\n" * 4
    ds = _private(0x0029, "SIEMENS CSA HEADER", 0x20, "OB", text)
    ds.Manufacturer = "Siemens Healthineers"
    assert vendor.siemens_protocol(ds) == {"sAsl.ulMode": 32, "sAsl.ulSuppressionMode": 2}
    ds.Manufacturer = "GE MEDICAL SYSTEMS"
    assert vendor.siemens_protocol(ds) == {}


def _frame(b: float, context: str, temporal: int, z: float) -> Dataset:
    frame = Dataset()
    diff = Dataset()
    diff.DiffusionBValue = b
    frame.MRDiffusionSequence = Sequence([diff])
    asl = Dataset()
    asl.ASLContext = context
    frame.MRArterialSpinLabelingSequence = Sequence([asl])
    content = Dataset()
    content.TemporalPositionIndex = temporal
    frame.FrameContentSequence = Sequence([content])
    pos = Dataset()
    pos.ImagePositionPatient = [0, 0, z]
    frame.PlanePositionSequence = Sequence([pos])
    return frame


def test_enhanced_per_frame_values() -> None:
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "ASL", "NONE"]
    shared = Dataset()
    echo = Dataset()
    echo.EffectiveEchoTime = 11.0
    shared.MREchoSequence = Sequence([echo])
    timing = Dataset()
    timing.RepetitionTime = 4800
    timing.FlipAngle = 90
    shared.MRTimingAndRelatedParametersSequence = Sequence([timing])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.PerFrameFunctionalGroupsSequence = Sequence([
        _frame(0, "M_ZERO_SCAN", 1, 0), _frame(0, "M_ZERO_SCAN", 1, 5),
        _frame(1000, "LABEL", 2, 0), _frame(1000, "LABEL", 2, 5)])
    f = file_facts(ds)
    assert f.n_frames == 4 and f.echo_times == (11.0,) * 4
    assert f.repetition_time == 4800 and f.flip_angle == 90
    assert f.b_values == (0, 0, 1000, 1000)
    assert [c for _t, c in f.asl_contexts] == ["M_ZERO_SCAN"] * 2 + ["LABEL"] * 2
    assert len(set(f.positions)) == 2


@pytest.mark.needs_shared
def test_a_series_with_burned_in_annotation_is_quarantined_not_converted(
        shared_data: Path, tmp_path: Path) -> None:
    """The plan asks bidsdeid.dicom.quarantine first: a refused series is excluded and
    its files are copied to the private quarantine dir, never converted."""
    import pydicom
    from conftest import make_dicom_study

    from bidsdeid.bids.stage import load_inputs
    from bidsdeid.config import RunConfig
    from bidsdeid.context import ParticipantContext
    from bidsdeid.convert.plan import decide
    from bidsdeid.privacy.keys import ProjectKey

    study = make_dicom_study(shared_data, tmp_path / "study", {"ge": "ge"})
    files = sorted((study / "sourcedata" / "sub-ge").glob("*.dcm"))
    for f in files:
        ds = pydicom.dcmread(f)
        ds.BurnedInAnnotation = "YES"
        ds.save_as(f)
    cfg = RunConfig(bids_dir=study, output_dir=tmp_path / "out", analysis_level="participant",
                    private_dir=tmp_path / "private", work_dir=tmp_path / "work")
    key = ProjectKey(b"k" * 32)
    ctx = ParticipantContext(config=cfg, key=key, input_label="ge", output_label="ge",
                             offset=key.date_offset("ge"), work=tmp_path / "work",
                             staging=tmp_path / "work" / "staging")
    load_inputs(ctx)
    plans = decide(ctx)
    assert len(plans) == 1 and not plans[0].decision.converts
    assert plans[0].decision.reason.startswith("quarantined:")
    assert "burned" in plans[0].decision.reason.lower()
    kept = [p for p in (cfg.quarantine_dir / "sub-ge").rglob("*") if p.is_file()
            and p.suffix == ".dcm"]
    assert len(kept) == len(files)
