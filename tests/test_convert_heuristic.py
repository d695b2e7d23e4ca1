"""The series -> BIDS heuristic: general rules on synthetic series, and the expected
decisions on every series of the real sessions in ../shared/data/dicom."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import DICOM_SESSIONS

from bidsdeid.convert.facts import FactsCollector, SeriesFacts, series_facts
from bidsdeid.convert.heuristic import GRE_FIELDMAP, classify
from bidsdeid.dicom.index import index_participant

MR = "1.2.840.10008.5.1.4.1.1.4"


def facts(**kw: object) -> SeriesFacts:
    base = SeriesFacts(
        series_uid="1.2.3", series_number=1, session=None, modality="MR", sop_class_uid=MR,
        manufacturer="other", image_type=("ORIGINAL", "PRIMARY", "M"),
        image_types=frozenset({"ORIGINAL", "PRIMARY", "M"}), scanning_sequence=frozenset(),
        sequence_variant=frozenset(), scan_options=frozenset(), sequence_name="",
        mr_acquisition_type="3D", echo_pulse_sequence="", echo_planar=False,
        inversion_recovery=False, acquisition_contrast="", asl_labeling="", echo_times=(3.0,),
        echo_numbers=(1,), repetition_time=2000.0, inversion_time=None, flip_angle=9.0,
        b_values=(0,), n_diffusion_weighted=0, complex_components=frozenset({"MAGNITUDE"}),
        asl_contexts=(), n_files=176, n_frames=176, n_positions=176, n_groups=1, n_volumes=1,
        description="", protocol="", burned_in="", has_pixels=True, orientation="sag")
    if "image_type" in kw and "image_types" not in kw:
        kw["image_types"] = frozenset(kw["image_type"])  # type: ignore[arg-type]
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kw,expected", [
    # anatomical contrasts from acquisition parameters, whatever the description says
    (dict(scanning_sequence=frozenset({"GR", "IR"}), inversion_recovery=True, echo_times=(2.5,),
          repetition_time=2300.0, inversion_time=900.0, description="sag 3d"), "anat/T1w"),
    (dict(scanning_sequence=frozenset({"SE"}), echo_times=(95.0,), repetition_time=6000.0,
          mr_acquisition_type="2D"), "anat/T2w"),
    (dict(scanning_sequence=frozenset({"SE", "IR"}), inversion_recovery=True,
          echo_times=(120.0,), repetition_time=9000.0, inversion_time=2500.0), "anat/FLAIR"),
    (dict(scanning_sequence=frozenset({"SE"}), echo_times=(12.0,), repetition_time=3000.0),
     "anat/PDw"),
    (dict(scanning_sequence=frozenset({"GR"}), echo_times=(20.0,), repetition_time=30.0,
          mr_acquisition_type="3D"), "anat/T2starw"),
    (dict(scanning_sequence=frozenset({"GR"}), sequence_variant=frozenset({"SP"}),
          echo_times=(3.0,), repetition_time=8.0), "anat/T1w"),
    (dict(acquisition_contrast="T2", echo_times=(80.0,)), "anat/T2w"),
    (dict(acquisition_contrast="FLUID_ATTENUATED"), "anat/FLAIR"),
    # functional
    (dict(echo_planar=True, scanning_sequence=frozenset({"EP", "GR"}), echo_times=(30.0,),
          n_volumes=200, mr_acquisition_type="2D", description="fMRI resting state"),
     "func/task-rest_bold"),
    (dict(echo_planar=True, scanning_sequence=frozenset({"EP", "GR"}), echo_times=(30.0,),
          n_volumes=1, description="func-bold_task-nback_SBRef"), "func/task-nback_sbref"),
    (dict(echo_planar=True, scanning_sequence=frozenset({"EP", "GR"}), echo_times=(33.0,),
          n_volumes=400, description="tfMRI_WM_LR"), "func/task-wm_dir-LR_bold"),
    (dict(sequence_name="haste", scanning_sequence=frozenset({"SE"}), echo_times=(90.0,),
          repetition_time=4.4, mr_acquisition_type="2D"), "anat/T2w"),
    # diffusion and EPI field maps
    (dict(echo_planar=True, scanning_sequence=frozenset({"EP", "SE"}), echo_times=(80.0,),
          b_values=(0, 1000.0), n_diffusion_weighted=600, n_volumes=33), "dwi/dwi"),
    (dict(echo_planar=True, scanning_sequence=frozenset({"EP", "SE"}), echo_times=(60.0,),
          n_volumes=3, description="fmap_topup_AP"), "fmap/dir-AP_epi"),
    # gradient-echo field maps: dual echo with phase, no helpful description
    (dict(scanning_sequence=frozenset({"GR"}), echo_times=(4.9, 7.4), n_volumes=1,
          complex_components=frozenset({"MAGNITUDE", "PHASE"}), repetition_time=500.0),
     "fmap/fieldmap (gradient echo)"),
    # ASL with per-frame context
    (dict(echo_planar=True, image_type=("ORIGINAL", "PRIMARY", "ASL"), n_volumes=3,
          asl_contexts=("M_ZERO_SCAN", "LABEL", "CONTROL"), asl_labeling="PSEUDOCONTINUOUS"),
     "perf/asl"),
    # MP2RAGE parts
    (dict(description="mp2rage_INV1", inversion_time=700.0), "anat/inv-1_MP2RAGE"),
    (dict(description="MP2RAGE_UNI", image_type=("DERIVED", "PRIMARY", "M", "UNI")),
     "anat/UNIT1"),
])
def test_general_rules(kw: dict[str, object], expected: str) -> None:
    assert classify(facts(**kw)).short() == expected


@pytest.mark.parametrize("kw,reason", [
    (dict(image_type=("ORIGINAL", "PRIMARY", "LOCALIZER")), "localizer"),
    (dict(description="AAHead_Scout_32ch-head-coil"), "localizer"),
    (dict(image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC")), "derived"),
    (dict(image_type=("ORIGINAL", "PRIMARY", "M", "MOCO")), "derived"),
    (dict(image_type=("DERIVED", "SECONDARY", "OTHER")), "secondary capture"),
    (dict(sop_class_uid="1.2.840.10008.5.1.4.1.1.7"), "secondary capture"),
    (dict(burned_in="YES"), "BurnedInAnnotation"),
    (dict(modality="SR", sop_class_uid="1.2.840.10008.5.1.4.1.1.88.22"), "report"),
    (dict(modality="CT", sop_class_uid="1.2.840.10008.5.1.4.1.1.2"), "not MR"),
    (dict(has_pixels=False), "no pixel data"),
    (dict(echo_times=(), repetition_time=None), "not understood"),
    (dict(echo_planar=True, image_type=("ORIGINAL", "PRIMARY", "ASL"), n_volumes=6,
          description="pcasl"), ""),  # classified asl; context checked at conversion
])
def test_exclusions_give_a_reason(kw: dict[str, object], reason: str) -> None:
    d = classify(facts(**kw))
    if not reason:
        assert d.converts and d.suffix == "asl"
        return
    assert not d.converts
    assert reason in d.reason


def test_reason_never_holds_the_description() -> None:
    secret = "Zorbulon Fernwhistle clinic"
    for kw in (dict(description=secret + " localizer"), dict(description=secret),
               dict(description=secret + " t1", echo_times=(), repetition_time=None)):
        d = classify(facts(**kw))  # type: ignore[arg-type]
        assert "Zorbulon" not in d.reason and "Zorbulon" not in d.short()


def test_unknown_task_is_flagged() -> None:
    d = classify(facts(echo_planar=True, scanning_sequence=frozenset({"EP", "GR"}),
                       echo_times=(30.0,), n_volumes=100, description="Axial EPI"))
    assert d.short() == "func/task-unknown_bold"
    assert "task-unknown" in d.flags


def _real_decisions(shared: Path, name: str, tmp_path: Path) -> dict[int, str]:
    study = tmp_path / name
    (study / "sourcedata").mkdir(parents=True)
    os.symlink(shared / DICOM_SESSIONS[name], study / "sourcedata" / "sub-x")
    collector = FactsCollector()
    index = index_participant(study, "x", on_header=collector)
    out = {}
    for series in index.series:
        d = classify(series_facts(series, collector.by_path))
        assert series.series_number is not None
        out[series.series_number] = d.short() if d.converts else f"exclude: {d.reason}"
    return out


@pytest.mark.needs_shared
def test_real_sessions(shared_data: Path, tmp_path: Path) -> None:
    philips = _real_decisions(shared_data, "philips", tmp_path)
    assert philips[1301] == "anat/T1w"
    assert philips[2001] == "fmap/fieldmap (gradient echo)"
    assert philips[1901] == "perf/asl" and philips[1903] == "perf/asl"  # excluded later
    assert philips[2301] == "dwi/dwi"
    xa30 = _real_decisions(shared_data, "xa30", tmp_path)
    assert xa30[5] == "anat/acq-tfl_T1w"
    assert xa30[7] == "func/task-fa_bold"
    assert xa30[8] == xa30[9] == "fmap/fieldmap (gradient echo)"
    assert xa30[10] == "dwi/dir-PA_dwi"
    for n in (11, 12, 13, 14, 16):
        assert xa30[n].startswith("exclude: derived"), (n, xa30[n])
    assert xa30[25] == "perf/asl"
    assert xa30[99].startswith("exclude: report")
    ge = _real_decisions(shared_data, "ge", tmp_path)
    assert ge == {4: "func/task-unknown_bold"}


def test_gre_fieldmap_placeholder_is_not_a_bids_suffix() -> None:
    assert not GRE_FIELDMAP.isalnum()
