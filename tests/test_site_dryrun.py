"""--dry-run: everything decided, only a plan written (privately), no OUTPUT_DIR; and the
plan says what the real run then does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli, tree_digest
from site_support import PLANTED, TOKENS, copy_session

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow]


@pytest.fixture(scope="module")
def study(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    study = tmp_path_factory.mktemp("dryrun") / "study"
    copy_session(shared_data, "ge", study / "sourcedata" / "sub-ge", planted=True)
    copy_session(shared_data, "xa30", study / "sourcedata" / "sub-xa30")
    return study


def test_a_dry_run_writes_only_a_plan(study: Path, tmp_path: Path) -> None:
    before = tree_digest(study)
    rules = tmp_path / "rules.yaml"
    rules.write_text("attributes:\n  PatientWeight: keep\n"
                     "vocabularies:\n  SeriesDescription: [DWI_dir80_PA]\n")
    out, private, work = tmp_path / "out", tmp_path / "out_private", tmp_path / "work"
    proc = run_cli(study, out, "participant", "--dry-run", "--relabel", "random",
                   "--rules", rules, "--dicom-out", "-w", work, check=0)
    assert not out.exists() and not work.exists()
    assert tree_digest(study) == before
    assert sorted(p.name for p in (private / "plan").iterdir()) == [
        "attributes.tsv", "plan.json", "plan.txt"]
    assert {p.name for p in private.iterdir()} <= {"plan", "key", "logs"}
    # the terminal: a summary with counts, and no identifier
    assert "dry run: sub-ge -> sub-" in proc.stdout and "identifiers: name" in proc.stdout
    for token in TOKENS + [PLANTED["PatientName"], "XAtest"]:
        assert token not in proc.stdout + proc.stderr
    plan = json.loads((private / "plan" / "plan.json").read_text())
    parts = {p["input_label"]: p for p in plan["participants"]}
    xa30 = parts["xa30"]
    by_number = {s["series_number"]: s for s in xa30["series"]}
    assert by_number[5]["bids"] == "anat/acq-tfl_T1w"
    assert by_number[99]["decision"] == "quarantine"
    assert by_number[11]["decision"] == "exclude"
    actions = {a["attribute"]: a["action"] for a in by_number[10]["attributes"]}
    assert actions["SeriesDescription"] == "keep (on the site vocabulary)"
    assert actions["PatientName"] == "participant label"
    actions5 = {a["attribute"]: a["action"] for a in by_number[5]["attributes"]}
    assert actions5["SeriesDescription"].startswith("series' BIDS name")
    assert actions5["PatientWeight"] == "keep"
    assert actions5["InstitutionName"] == "remove"
    [deface] = xa30["deface"]
    assert deface["anchor"].endswith("(T1w)") and deface["template"]
    assert deface["age_source"] == "DICOM PatientAge" and deface["age_months"] > 12 * 18
    assert parts["ge"]["deface"] == []  # no anatomical image
    assert parts["ge"]["identifiers"]["name"] >= 4 and parts["ge"]["identifiers"]["id"] >= 2
    assert plan["rules"]["name"] == "rules.yaml" and plan["rule_warnings"]
    text = (private / "plan" / "plan.txt").read_text()
    assert "series 5: convert anat/acq-tfl_T1w" in text
    rows = (private / "plan" / "attributes.tsv").read_text().splitlines()
    assert rows[0] == "participant\tseries\tattribute\ttag\taction\twhy" and len(rows) > 100


def test_the_plan_is_what_the_run_does(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ("participant", "--relabel", "random", "--deface-modalities", "none",
            "--participant-label", "ge")
    run_cli(study, out, *args, "--dry-run", check=0)
    plan = json.loads((tmp_path / "out_private" / "plan" / "plan.json").read_text())
    [ge] = plan["participants"]
    assert not out.exists()
    run_cli(study, out, *args, check=0)
    assert [p.name for p in out.glob("sub-*")] == [f"sub-{ge['output_label']}"]
    [series] = ge["series"]
    suffix = series["bids"].split("/")[-1]
    assert list(out.glob(f"sub-*/func/*{suffix}.nii.gz"))


def test_a_dry_run_reports_a_missing_id_map_entry(study: Path, tmp_path: Path) -> None:
    ids = tmp_path / "ids.tsv"
    ids.write_text("original\tnew\nsub-ge\tg1\n")
    out = tmp_path / "out"
    proc = run_cli(study, out, "participant", "--dry-run", "--id-map", ids, check=1)
    assert "sub-xa30 -> (no label)" in proc.stdout and "ERROR" in proc.stdout
    assert "sub-ge -> sub-g1" in proc.stdout
    assert not out.exists()
    text = (tmp_path / "out_private" / "plan" / "plan.txt").read_text()
    assert "sub-xa30 has no entry in the id map ids.tsv" in text
