"""The template registry: data that loads, age/contrast selection, offline TemplateFlow."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, TEMPLATEFLOW_STANDINS

from bidsdeid.deface import registry, templates
from bidsdeid.errors import DataError, UsageError


@pytest.fixture()
def families() -> list[registry.Family]:
    return registry.load_registry()


def test_registry_lists_every_family_with_ages_and_contrasts(families) -> None:
    by_id = {f.id: f for f in families}
    assert set(by_id) == {"pydeface", "MNI152NLin2009cAsym", "MNIPediatricAsym",
                          "MNIInfant", "UNCInfant"}
    assert by_id["pydeface"].source["kind"] == "package"
    assert by_id["MNIInfant"].contrasts == ["T1w", "T2w"]
    assert by_id["UNCInfant"].contrasts == ["T1w"]
    assert len(by_id["MNIInfant"].cohorts) == 11
    assert by_id["MNIPediatricAsym"].cohorts["1"] == (54.0, 222.0)  # 4.5-18.5 years
    # a face mask ships only with pydeface; every other family derives one
    assert "face_mask" in by_id["pydeface"].files
    assert all(f.face_mask.get("derive") in ("affine", "syn") for f in families
               if f.id != "pydeface")
    assert by_id["MNIInfant"].face_mask["derive"] == "syn"


@pytest.mark.parametrize(("months", "contrast", "expected"), [
    (None, "T1w", "pydeface"),
    (None, "T2w", "MNI152NLin2009cAsym"),
    (0.5, "T2w", "MNIInfant:cohort-1"),
    (2.0, "T2w", "MNIInfant:cohort-1"),  # boundary: the narrower cohort (0-2 months)
    (3.0, "T1w", "MNIInfant:cohort-2"),
    (0.5, "T1w", "MNIInfant:cohort-1"),  # UNCInfant ranks after MNIInfant
    (50.0, "T1w", "MNIInfant:cohort-11"),
    (120.0, "T1w", "MNIPediatricAsym:cohort-3"),  # 10 y: 7-11 y, nearer centre than 10-14
    (200.0, "T2w", "MNIPediatricAsym:cohort-6"),
    (30 * 12.0, "T1w", "pydeface"),
    (30 * 12.0, "T2w", "MNI152NLin2009cAsym"),
])
def test_template_by_age_and_contrast(families, months, contrast, expected) -> None:
    choice = registry.select(families, months, contrast)
    assert choice.id == expected
    assert choice.contrast == contrast
    assert ("adult assumed" in choice.reason) == (months is None)


def test_user_template_wins_and_user_registry_ranks_first(families, tmp_path) -> None:
    head = tmp_path / "head.nii.gz"
    choice = registry.select(families, 1.0, "T2w", [str(head)])
    assert choice.id == "user:head" and choice.family.face_mask == {"derive": "affine"}
    reg = tmp_path / "mine.json"
    reg.write_text(json.dumps({"families": [{
        "id": "MyInfants", "role": "child", "source": {"kind": "files"},
        "cohorts": {"a": {"min": 0, "max": 3}},
        "files": {"T2w": {"file": "t2.nii.gz"}, "brain_mask": {"file": "brain.nii.gz"}},
        "face_mask": {"derive": "syn"}}]}))
    fams = registry.load_registry(reg)
    choice = registry.select(fams, 1.0, "T2w")
    assert choice.id == "MyInfants:cohort-a"
    with pytest.raises(templates.TemplateMissingError, match="t2.nii.gz"):
        templates.resolve_file(choice.family, choice.cohort, "T2w")
    reg.write_text(json.dumps({"families": [{"id": "x", "files": {}}]}))
    with pytest.raises(UsageError, match="bad family x"):
        registry.load_registry(reg)


def test_templateflow_names_follow_templateflow() -> None:
    assert templates.templateflow_name("MNIInfant", "1", {"res": "1", "suffix": "T2w"}) == \
        "tpl-MNIInfant/cohort-1/tpl-MNIInfant_cohort-1_res-1_T2w.nii.gz"
    assert templates.templateflow_name(
        "MNI152NLin2009cAsym", None, {"res": "01", "desc": "brain", "suffix": "mask"}) == \
        "tpl-MNI152NLin2009cAsym/tpl-MNI152NLin2009cAsym_res-01_desc-brain_mask.nii.gz"
    assert templates.templateflow_name("UNCInfant", "2", {"label": "brain", "suffix": "mask"}) \
        == "tpl-UNCInfant/cohort-2/tpl-UNCInfant_cohort-2_label-brain_mask.nii.gz"
    # the conftest stand-ins use exactly the names the registry asks for
    needed = {rel for *_x, rel in templates.templateflow_files(registry.load_registry())}
    assert set(TEMPLATEFLOW_STANDINS) <= needed


def test_missing_or_placeholder_template_is_a_clear_error(families, tmp_path,
                                                          monkeypatch) -> None:
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path))
    fam = next(f for f in families if f.id == "MNIInfant")
    with pytest.raises(templates.TemplateMissingError) as err:
        templates.resolve_file(fam, "3", "T2w")
    msg = str(err.value)
    assert "tpl-MNIInfant/cohort-3/tpl-MNIInfant_cohort-3_res-1_T2w.nii.gz" in msg
    assert "scripts/fetch_templates.py" in msg and str(tmp_path) in msg
    assert isinstance(err.value, DataError)
    # templateflow's skeleton: an empty file in the right place is not a template
    placeholder = tmp_path / "tpl-MNIInfant/cohort-3/tpl-MNIInfant_cohort-3_res-1_T2w.nii.gz"
    placeholder.parent.mkdir(parents=True)
    placeholder.write_bytes(b"")
    with pytest.raises(templates.TemplateMissingError, match="empty placeholder"):
        templates.resolve_file(fam, "3", "T2w")
    placeholder.write_bytes(gzip.compress(b"x" * 400))
    assert templates.resolve_file(fam, "3", "T2w") == placeholder


def test_pydeface_files_and_shipped_brain_mask_resolve(families) -> None:
    fam = next(f for f in families if f.id == "pydeface")
    for key in ("T1w", "face_mask", "brain_mask"):
        path = templates.resolve_file(fam, None, key)
        assert path is not None and path.is_file()
    prov = json.loads((REPO / "templates" / "pydeface_desc-brain_mask.json").read_text())
    assert prov["Script"] == "scripts/derive_pydeface_brain_mask.py"


def test_fetch_script_lists_exactly_the_registry_files_and_uses_a_mirror(
        templateflow_home, tmp_path) -> None:
    script = REPO / "scripts" / "fetch_templates.py"
    listed = subprocess.run([sys.executable, str(script), "--list"], capture_output=True,
                            text=True, check=True).stdout.split()
    needed = [rel for *_x, rel in templates.templateflow_files(registry.load_registry())]
    assert listed == needed
    # MNIInfant 33, UNCInfant 6, MNIPediatricAsym 18, MNI152NLin2009cAsym 3
    assert len(listed) == len(set(listed)) == 60
    home = tmp_path / "tf"
    proc = subprocess.run([sys.executable, str(script), "--mirror", str(templateflow_home)],
                          capture_output=True, text=True, check=False, env={"TEMPLATEFLOW_HOME": str(home),
                                                               "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1  # the stand-in mirror has only a few of the files
    for rel in TEMPLATEFLOW_STANDINS:
        if rel in needed:
            assert (home / rel).read_bytes() == (templateflow_home / rel).read_bytes()
    assert "FAILED tpl-UNCInfant/cohort-1" in proc.stderr


def test_templates_command_lists_what_is_here(template_env) -> None:
    exe = Path(sys.executable).parent / "bidsdeid-templates"
    out = subprocess.run([str(exe), "list"], capture_output=True, text=True, check=True).stdout
    lines = {ln.split()[0]: ln for ln in out.splitlines()}
    assert "T1w:here" in lines["pydeface"]
    assert "T1w:here T2w:here" in lines["MNIInfant:cohort-1"]
    assert "T2w:missing" in lines["MNIInfant:cohort-2"]
