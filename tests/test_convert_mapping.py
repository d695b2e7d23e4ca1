"""--mapping-file: rules that exclude, name or amend series, checked when loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_dicom_study, run_cli
from pydicom.dataset import Dataset

from bidsdeid.convert import mapping
from bidsdeid.convert.heuristic import GRE_FIELDMAP, Decision
from bidsdeid.errors import UsageError


def _header(**kw: object) -> Dataset:
    ds = Dataset()
    ds.SeriesDescription = "Axial EPI-FMRI"
    ds.SeriesNumber = 4
    ds.ImageType = ["ORIGINAL", "PRIMARY", "EPI", "NONE"]
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


BOLD = Decision("convert", "BOLD", "func", "bold", {"task": "unknown"}, flags=["task-unknown"])


def _rules(tmp_path: Path, rules: object, name: str = "map.json") -> list[mapping.Rule]:
    p = tmp_path / name
    if name.endswith(".json"):
        p.write_text(json.dumps(rules))
    else:
        import yaml

        p.write_text(yaml.safe_dump(rules))
    return mapping.load(p)


def test_amend_sets_the_task_and_clears_the_flag(tmp_path: Path) -> None:
    rules = _rules(tmp_path, {"series": [{"match": {"SeriesDescription": "*epi-fmri*"},
                                          "entities": {"task": "rest"}}]}, "m.yaml")
    d = mapping.apply(rules, _header(), None, BOLD)
    assert d.short() == "func/task-rest_bold" and d.flags == []
    assert d.source == "heuristic + mapping file rule 1"


def test_name_exclude_and_matching_forms(tmp_path: Path) -> None:
    rules = _rules(tmp_path, [
        {"match": {"SeriesNumber": 99}, "exclude": "vendor report"},
        {"match": {"ImageType": "EPI", "SeriesDescription": "re:^axial"},
         "datatype": "func", "suffix": "bold", "entities": {"task": "motor"},
         "metadata": {"TaskDescription": "finger tapping"}},
        {"match": {"session": ["pre", "post"]}, "datatype": "fmap", "suffix": "auto"},
    ])
    assert not mapping.apply(rules, _header(SeriesNumber=99), None, BOLD).converts
    named = mapping.apply(rules, _header(), None, BOLD)
    assert named.short() == "func/task-motor_bold"
    assert named.metadata == {"TaskDescription": "finger tapping"}
    other = _header(SeriesDescription="sagittal", ImageType=["ORIGINAL", "PRIMARY", "M"])
    assert mapping.apply(rules, other, "post", BOLD).suffix == GRE_FIELDMAP
    assert mapping.apply(rules, other, None, BOLD) is BOLD  # no rule fits


@pytest.mark.parametrize("rules,message", [
    ({"not": "a list"}, "expected a list"),
    ([{"match": {}}], "'match' must map"),
    ([{"match": {"SeriesNumber": 1}, "datatype": "anat"}], "both 'datatype' and 'suffix'"),
    ([{"match": {"SeriesNumber": 1}, "datatype": "xyz", "suffix": "T1w"}], "datatype must be"),
    ([{"match": {"SeriesNumber": 1}, "datatype": "anat", "suffix": "T1w",
       "entities": {"sub": "02"}}], "not a BIDS entity"),
    ([{"match": {"SeriesNumber": 1}, "datatype": "anat", "suffix": "T1w",
       "entities": {"acq": "a/b"}}], "letters and digits"),
    ([{"match": {"SeriesNumber": 1}, "aslcontext": ["tag"]}], "aslcontext"),
    ([{"match": {"SeriesNumber": 1}, "colour": "red"}], "unknown key"),
    ([{"match": {"SeriesNumber": 1}}], "give 'exclude'"),
])
def test_bad_rules_are_usage_errors_naming_the_rule(tmp_path: Path, rules: object,
                                                    message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _rules(tmp_path, rules)


def test_unreadable_file_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "m.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        mapping.load(bad)


@pytest.mark.needs_shared
def test_mapping_file_on_the_command_line(shared_data: Path, tmp_path: Path) -> None:
    study = make_dicom_study(shared_data, tmp_path / "study", {"ge": "ge"})
    rules = tmp_path / "map.yaml"
    rules.write_text("- match: {ProtocolName: '*regression*'}\n  entities: {task: rest}\n")
    out = tmp_path / "out"
    proc = run_cli(study, out, "participant", "--deface-modalities", "none", "--mapping-file",
                   rules, "-v", check=0)
    assert (out / "sub-ge/func/sub-ge_task-rest_bold.nii.gz").is_file()
    side = json.loads((out / "sub-ge/func/sub-ge_task-rest_bold.json").read_text())
    assert side["TaskName"] == "rest"
    assert "mapping file rule 1" in proc.stderr and "task-unknown" not in proc.stderr
