"""Site rules file (--rules): validation, the engines' site actions, and whole runs on
the shared sessions (a rule does what it says and nothing more; vocabularies; the leak
scan still catches what a rule would let through)."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pydicom
import pytest
from conftest import run_cli, tree_digest
from dicom_support import KEY
from site_support import TOKENS, all_elements, copy_session, dicom_files

from bidsdeid.config import DeidOptions
from bidsdeid.dicom import profile as P
from bidsdeid.dicom.deidentify import Deidentifier
from bidsdeid.dicom.writer import FileDeidentifier
from bidsdeid.errors import UsageError
from bidsdeid.privacy.keys import ProjectKey
from bidsdeid.site import rules

# -- the file -----------------------------------------------------------------------------
GOOD = """\
version: 1
attributes:
  PatientWeight: keep
  InstitutionName: {replace: SITE-A}
  AccessionNumber: hash
  "(0008,0020)": shift
  ImageComments: empty
vocabularies:
  SeriesDescription: [DWI_dir80_PA]
  StudyDescription: {patterns: ["BRAIN.*"]}
private:
  - {creator: GEMS_PARM_01, group: "0043", element: "39", action: keep}
"""


def _write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_becomes_overrides_and_warnings(tmp_path: Path) -> None:
    site = rules.load(_write(tmp_path, GOOD))
    tags = site.overrides()["tags"]
    assert tags[P.tag_of("PatientWeight")] == "K"
    assert tags[P.tag_of("InstitutionName")] == P.SiteAction(P.REPLACE, value="SITE-A")
    assert tags[P.tag_of("AccessionNumber")] == P.SiteAction(P.HASH)
    assert tags[P.tag_of("StudyDate")] == "C" and tags[P.tag_of("ImageComments")] == "Z"
    vocab = tags[P.tag_of("SeriesDescription")]
    assert isinstance(vocab, P.SiteAction) and vocab.allows([" dwi_DIR80_pa "])
    assert not vocab.allows(["DWI_dir80_AP"])
    assert site.overrides()["private"] == {("GEMS_PARM_01", 0x0043, 0x39): "K"}
    warned = "\n".join(site.warnings(DeidOptions()))
    for name in ("PatientWeight", "SeriesDescription", "(0043,xx39) GEMS_PARM_01"):
        assert name in warned
    assert "InstitutionName" not in warned  # replaced: nothing original is kept
    # under Retain Patient Characteristics the profile keeps the weight itself
    assert "PatientWeight" not in "\n".join(
        site.warnings(DeidOptions(retain_patient_characteristics=True)))
    assert site.method_note().startswith("site rules rules.yaml sha256 ")
    assert len(site.method_note()) <= 64


@pytest.mark.parametrize("text,line,words", [
    ("attributes:\n  PatientWieght: keep\n", 2, ["attributes.PatientWieght",
                                                 "did you mean PatientWeight"]),
    ("attributes:\n  PatientWeight: keep\n  StudyDate: {replace: '2020-01-01'}\n", 3,
     ["StudyDate", "not a valid DA value"]),
    ("attributes:\n  StudyDate: {replace: 2020-01-01}\n", 2, ["in quotes"]),
    ("attributes:\n  PatientName: keep\n", 2, ["--id-map"]),
    ("attributes:\n  StudyInstanceUID: remove\n", 2, ["UIDs follow the project key"]),
    ("attributes:\n  PixelData: remove\n", 2, ["pixel data"]),
    ("attributes:\n  PatientWeight: shift\n", 2, ["'shift' is for dates"]),
    ("attributes:\n  PatientWeight: destroy\n", 2, ["unknown action"]),
    ("attributes:\n  InstitutionName: replace\n", 2, ["needs its value"]),
    ("attributes:\n  StationName: {replace: ABCDEFGHIJKLMNOPQ}\n", 2, ["longer than SH"]),
    ("attributes:\n  (0009,0010): keep\n", 2, ["'private' list"]),
    ("vocabularies:\n  SeriesDescription: {patterns: ['(unclosed']}\n", 2,
     ["patterns[1]", "not a regular expression"]),
    ("vocabularies:\n  SeriesDescription: {}\n", 2, ["vocabulary"]),
    ("attributes:\n  PatientWeight: keep\n  (0010,1030): remove\n", 3,
     ["a second rule", "line 2"]),
    ("private:\n  - {creator: X, group: 0011, element: '10', action: keep}\n", 2,
     ["private[1].group", "quoted"]),
    ("private:\n  - {creator: X, group: '0010', element: '10', action: keep}\n", 2,
     ["odd"]),
    ("colours: red\n", 1, ["unknown section"]),
    ("attributes: [1, 2\n", 2, ["not valid YAML"]),
])
def test_mistakes_name_the_file_the_line_and_the_key(tmp_path: Path, text: str, line: int,
                                                     words: list[str]) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(UsageError) as err:
        rules.load(path)
    message = err.value.message
    assert str(path) in message and f"line {line}" in message, message
    for word in words:
        assert word in message, message
    assert err.value.exit_code == 64


def test_json_is_located_too(tmp_path: Path) -> None:
    path = _write(tmp_path, '{"attributes": {"PatientWeight": "keep",\n'
                            '  "SeriesDescription": "nonsense"}}\n', "rules.json")
    with pytest.raises(UsageError, match=r"line 2, attributes.SeriesDescription"):
        rules.load(path)
    broken = _write(tmp_path, '{"attributes": {\n  "PatientWeight": keep}}\n', "broken.json")
    with pytest.raises(UsageError, match=r"line 2: not valid JSON"):
        rules.load(broken)


# -- the engines ---------------------------------------------------------------------------
@pytest.mark.needs_shared
def test_both_engines_apply_site_actions_alike(shared_data: Path, tmp_path: Path) -> None:
    """replace, hash, vocabulary (kept and not), keep and private keep, on a real GE file
    through the byte engine and the pydicom engine: the same dataset."""
    src = min((shared_data / "dicom/ge_mr750_fmri").glob("*.dcm"))
    site = rules.load(_write(tmp_path, GOOD + "  - {creator: GEMS_IDEN_01, group: '0009', "
                                              "element: '02', action: {replace: SCANNER-1}}\n"))
    vocab_miss = P.SiteAction(P.VOCAB, allowed=("something else",))
    overrides = {**site.overrides()["tags"], P.tag_of("ProtocolName"): vocab_miss,
                 P.tag_of("StationName"): P.SiteAction(P.HASH)}
    profile = P.Profile(DeidOptions(site_rules=site.method_note()), overrides,
                        site.overrides()["private"])

    def deid() -> Deidentifier:
        return Deidentifier(profile, KEY, KEY.date_offset("g"), "g")

    descriptors = {"SeriesDescription": "task-rest_bold", "ProtocolName": "task-rest_bold"}
    raw = FileDeidentifier(deid(), None).run(src, tmp_path / "raw.dcm", "f", descriptors)
    ds = pydicom.dcmread(src)
    py = deid().dataset(ds, descriptors)
    ds.save_as(tmp_path / "py.dcm", enforce_file_format=True)
    out = pydicom.dcmread(tmp_path / "raw.dcm")
    assert raw.engine == "raw" and py.engine == "pydicom"
    assert dict(all_elements(out)) == dict(all_elements(pydicom.dcmread(tmp_path / "py.dcm")))
    assert sorted(raw.actions) == sorted(py.actions)
    original = pydicom.dcmread(src)
    assert out.InstitutionName == "SITE-A"
    assert str(out.PatientWeight) == str(original.PatientWeight)
    assert out.StationName == KEY.token("site-rule-hash", str(original.StationName))
    assert out.SeriesDescription == "task-rest_bold"  # not on the vocabulary: cleaned (C)
    assert out.ProtocolName == "task-rest_bold"
    assert out.private_block(0x0043, "GEMS_PARM_01")[0x39].value == \
        original.private_block(0x0043, "GEMS_PARM_01")[0x39].value
    assert out.private_block(0x0009, "GEMS_IDEN_01")[0x02].value == "SCANNER-1"
    assert site.method_note() in list(out.DeidentificationMethod)


# -- whole runs ------------------------------------------------------------------------------
def _run(study: Path, out: Path, *extra: str, key_from: Path | None = None,
         check: int = 0) -> str:
    if key_from is not None:  # the same key: the same UIDs, dates and labels
        private = out.with_name(out.name + "_private")
        private.mkdir(mode=0o700)
        shutil.copy(key_from, private / "key")
    proc = run_cli(study, out, "participant", "--deface-modalities", "none", "--dicom-out",
                   *extra, check=check)
    return proc.stderr


@pytest.fixture(scope="module")
def ge_runs(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rules")
    study = root / "study"
    copy_session(shared_data, "ge", study / "sourcedata" / "sub-ge")
    rules_file = root / "site.yaml"
    rules_file.write_text("attributes:\n  PatientWeight: keep\n"
                          "  InstitutionName: {replace: SITE-A}\n", encoding="utf-8")
    before = tree_digest(study)
    plain = root / "plain"
    _run(study, plain)
    ruled = root / "ruled"
    stderr = _run(study, ruled, "--rules", str(rules_file),
                  key_from=root / "plain_private" / "key")
    assert tree_digest(study) == before
    (root / "stderr.txt").write_text(stderr)
    return {"study": study, "plain": plain, "ruled": ruled, "rules": rules_file,
            "stderr": root / "stderr.txt"}


@pytest.mark.needs_shared
@pytest.mark.slow
def test_keep_weight_and_replace_institution_does_that_and_nothing_more(
        ge_runs: dict[str, Path]) -> None:
    plain, ruled = ge_runs["plain"], ge_runs["ruled"]
    a_files = sorted((plain / "sourcedata").rglob("*.dcm"))
    b_files = sorted((ruled / "sourcedata").rglob("*.dcm"))
    assert [p.relative_to(plain) for p in a_files] == [p.relative_to(ruled) for p in b_files]
    assert len(a_files) == 150
    weight, institution, method = (P.tag_of(k) for k in (
        "PatientWeight", "InstitutionName", "DeidentificationMethod"))
    sources = dicom_files(ge_runs["study"])
    source_weight = pydicom.dcmread(sources[0], stop_before_pixels=True).PatientWeight
    assert {pydicom.dcmread(p, stop_before_pixels=True).PatientWeight for p in sources} == {
        source_weight}
    for a, b in zip(a_files, b_files):
        da, db = pydicom.dcmread(a), pydicom.dcmread(b)
        ea, eb = dict(all_elements(da)), dict(all_elements(db))
        assert (weight,) not in ea and (institution,) not in ea  # the profile removes both
        assert eb.pop((weight,)) == ("DS", source_weight)
        assert eb.pop((institution,)) == ("LO", "SITE-A")
        ma, mb = list(ea.pop((method,))[1]), list(eb.pop((method,))[1])
        assert mb == [*ma, f"site rules site.yaml sha256 {_sha(ge_runs['rules'])[:16]}"]
        assert ea == eb  # every other attribute, at every depth, identical
        assert da.file_meta == db.file_meta
        assert da.PixelData == db.PixelData
    # sidecars: InstitutionName is a BIDS field, so the rule applies there too; the
    # weight is not (PatientWeight is no BIDS field: it stays out of sidecars)
    for side in sorted(plain.rglob("*.json")):
        rel = side.relative_to(plain)
        if "derivatives" in rel.parts:
            continue
        ja, jb = (json.loads(p.read_text()) for p in (side, ruled / rel))
        if "DeidentificationMethod" in ja:
            assert jb.pop("InstitutionName") == "SITE-A"
            assert jb["DeidentificationMethod"][-1].startswith("site rules site.yaml")
            jb["DeidentificationMethod"].pop()
        assert "PatientWeight" not in jb
        assert ja == jb, rel
    for image in sorted(plain.rglob("*.nii.gz")):
        assert image.read_bytes() == (ruled / image.relative_to(plain)).read_bytes()


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.needs_shared
@pytest.mark.slow
def test_rules_are_audited_and_the_kept_attribute_is_named(ge_runs: dict[str, Path]) -> None:
    stderr = ge_runs["stderr"].read_text()
    assert "PatientWeight" in stderr and "would not keep" in stderr
    audit = json.loads((ge_runs["ruled"].with_name("ruled_private") / "audit/sub-ge/"
                        "site_rules.json").read_text())
    assert audit["sha256"] == _sha(ge_runs["rules"]) and audit["name"] == "site.yaml"
    assert [(r["target"], r["action"]) for r in audit["rules"]] == [
        ("PatientWeight", "keep"), ("InstitutionName", "replace")]
    assert audit["kept_on_purpose"]["PatientWeight"]["occurrences_kept"] == 150
    series = json.loads(next((ge_runs["ruled"].with_name("ruled_private") / "audit/sub-ge/"
                              "dicom").glob("*.json")).read_text())
    assert series["attributes"]["InstitutionName"] == {"site rule: fixed value": 150}


@pytest.mark.needs_shared
@pytest.mark.slow
def test_vocabulary_keeps_listed_descriptions_and_cleans_the_rest(
        shared_data: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    copy_session(shared_data, "xa30", study / "sourcedata" / "sub-xa30")
    rules_file = _write(tmp_path, "vocabularies:\n  SeriesDescription: [DWI_dir80_PA]\n"
                                  "  ProtocolName: {patterns: ['gre_field_mapping.*']}\n")
    out = tmp_path / "out"
    _run(study, out, "--rules", str(rules_file), "--nprocs", "2")  # actions reach workers
    found = {}
    for folder in sorted((out / "sourcedata" / "sub-xa30").iterdir()):
        ds = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True)
        found[folder.name] = (ds.get("SeriesDescription"), ds.get("ProtocolName"))
    assert found["10"][0] == "DWI_dir80_PA"  # on the vocabulary: kept
    assert found["10"][1] == "dir-PA_dwi"  # the same text as ProtocolName: no rule, cleaned
    assert found["5"] == ("acq-tfl_T1w", "acq-tfl_T1w")  # not on it: the BIDS name
    assert found["8"][1] == found["9"][1] == "gre_field_mapping"  # matches the pattern
    assert "11" not in found  # derived, not converted: --dicom-out does not write it


@pytest.mark.needs_shared
@pytest.mark.slow
def test_a_rule_cannot_smuggle_a_name_past_the_checks(shared_data: Path,
                                                      tmp_path: Path) -> None:
    """A vocabulary that allows any ImageComments keeps a planted comment holding the
    patient's name: the name is still an identifier, so the participant fails and
    nothing is published."""
    study = tmp_path / "study"
    copy_session(shared_data, "ge", study / "sourcedata" / "sub-ge", planted=True)
    rules_file = _write(tmp_path, "vocabularies:\n  ImageComments: {patterns: ['.*']}\n")
    out = tmp_path / "out"
    stderr = _run(study, out, "--rules", str(rules_file), check=1)
    assert "identifier" in stderr and "name" in stderr
    assert not (out / "sourcedata").exists() and not (out / "sub-ge").exists()
    for token in TOKENS:
        assert token not in stderr


def test_a_bad_rules_file_stops_the_run_before_anything(tmp_path: Path) -> None:
    study = tmp_path / "study"
    (study / "sourcedata" / "sub-01").mkdir(parents=True)
    bad = _write(tmp_path, "attributes:\n  PatientWeight: keep\n  Nonsense: keep\n")
    proc = run_cli(study, tmp_path / "out", "participant", "--rules", bad, check=64)
    assert f"{bad}: line 3, attributes.Nonsense" in proc.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "out_private").exists()


@pytest.mark.needs_shared
@pytest.mark.slow
def test_rules_apply_to_the_sidecars_of_bids_inputs(shared_data: Path, tmp_path: Path) -> None:
    """A NIfTI input whose sidecar names the institution and station: 'keep' keeps the
    institution (the leak scan accepts it: it is kept on purpose), 'hash' writes the same
    keyed token the DICOM output would get, and a field no rule names is still dropped."""
    src = shared_data / "nifti" / "ds000031"
    anat = tmp_path / "study" / "sub-n1" / "anat"
    anat.mkdir(parents=True)
    shutil.copy(src / "ds000031_sub-01_ses-006_run-001_T1w.nii.gz", anat / "sub-n1_T1w.nii.gz")
    meta = json.loads((src / "ds000031_sub-01_ses-006_run-001_T1w.json").read_text())
    meta.update(InstitutionName="Glimmerdale Infirmary", StationName="STATZORK7",
                DeviceSerialNumber="SER5501Q")
    (anat / "sub-n1_T1w.json").write_text(json.dumps(meta))
    rules_file = _write(tmp_path, "attributes:\n  InstitutionName: keep\n"
                                  "  StationName: hash\n")
    out = tmp_path / "out"
    run_cli(tmp_path / "study", out, "participant", "--deface-modalities", "none",
            "--rules", rules_file, check=0)
    side = json.loads((out / "sub-n1" / "anat" / "sub-n1_T1w.json").read_text())
    key = ProjectKey.load_or_create(tmp_path / "out_private")
    assert side["InstitutionName"] == "Glimmerdale Infirmary"
    assert side["StationName"] == key.token("site-rule-hash", "STATZORK7")
    assert "DeviceSerialNumber" not in side  # no rule: the allow-list drops it
    run_cli(tmp_path / "study", out, "group", check=0)  # the whole-dataset scan agrees


def test_site_actions_reach_worker_processes() -> None:
    """Worker settings with site actions survive pickling (spawned workers)."""
    import pickle

    from bidsdeid.dicom.worker import WorkerSettings

    overrides = {P.tag_of("InstitutionName"): P.SiteAction(P.REPLACE, value="SITE-A"),
                 P.tag_of("SeriesDescription"): P.SiteAction(P.VOCAB, patterns=("T1.*",))}
    settings = WorkerSettings(DeidOptions(), KEY, KEY.date_offset("w"), "w",
                              overrides=overrides)  # type: ignore[arg-type]
    again = pickle.loads(pickle.dumps(settings))
    profile = P.Profile(again.options, again.overrides)
    d = profile.decide(P.tag_of("SeriesDescription"), "LO")
    assert d.op == P.VOCAB and d.arg is not None and d.arg.allows(["T1 mprage"])


@pytest.mark.needs_shared
@pytest.mark.slow
def test_the_group_level_accepts_what_the_rules_keep(ge_runs: dict[str, Path]) -> None:
    """The whole-dataset leak scan and validation pass on the ruled output (the kept
    weight and the SITE-A institution are no leaks)."""
    run_cli(ge_runs["study"], ge_runs["ruled"], "group", check=0)


def test_the_documented_example_is_a_valid_rules_file(tmp_path: Path) -> None:
    doc = rules.__doc__ or ""
    example = doc.split("A YAML or JSON file::", 1)[1].split("\n\nActions:", 1)[0]
    site = rules.load(_write(tmp_path, textwrap.dedent(example).strip() + "\n"))
    assert {r.action for r in site.rules} == {"keep", "replace", "hash", "shift", "empty",
                                              "vocabulary"}
