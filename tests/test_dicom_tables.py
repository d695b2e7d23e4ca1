"""The packaged PS3.15 tables: complete, traceable to their sources, regenerable."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from importlib import resources
from pathlib import Path

import pytest
from conftest import REPO

from bidsdeid.dicom import tables

SCRIPT = REPO / "scripts" / "make_deid_tables.py"


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_deid_tables", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_row_counts() -> None:
    assert len(tables.e1_1()) == 657
    assert len(tables.e3_10_1()) == 479
    assert len(tables.cid_7050()) == 13


def test_e1_1_codes_and_special_rows() -> None:
    rows = tables.e1_1()
    codes = {r.basic for r in rows}
    assert codes <= {"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}
    assert sum(r.is_private_row for r in rows) == 1
    assert sorted(r.tag_text for r in rows if r.repeating_group) == [
        "(50XX,XXXX)", "(60XX,3000)", "(60XX,4000)"]
    by_tag = {r.tag: r for r in rows if r.tag is not None}
    assert by_tag[0x00100010].basic == "Z"  # Patient's Name
    assert by_tag[0x00080018].basic == "U"  # SOP Instance UID
    assert by_tag[0x00080080].basic == "X/Z/D"  # Institution Name
    assert by_tag[0x00080080].options == {"rtnInstIdOpt": "K"}
    counts = {}
    for r in rows:
        counts[r.basic] = counts.get(r.basic, 0) + 1
    assert counts == {"X": 417, "D": 93, "U": 55, "Z": 42, "X/D": 23, "X/Z": 11, "X/Z/D": 8,
                      "Z/D": 6, "X/Z/U*": 2}
    column_counts: dict[str, int] = {}
    for r in rows:
        for col in r.options:
            column_counts[col] = column_counts.get(col, 0) + 1
    assert column_counts["cleanDescOpt"] == 140
    assert column_counts["rtnLongModifDatesOpt"] == 169
    assert column_counts["rtnUIDsOpt"] == 60


def test_safe_private_keys_are_normalised() -> None:
    safe = tables.e3_10_1()
    assert safe[("Philips Imaging DD 001", 0x2001, 0x5F)].vr == "SQ"  # (2001,xx5f)
    assert safe[("Philips Imaging DD 001", 0x2001, 0x5A)].vr == "ST"  # (2001,xx5a)
    assert sum(k[0] == "Philips Imaging DD 001" for k in safe) == 184
    assert all(0 <= off <= 0xFF and group & 1 for (_c, group, off) in safe)


def test_provenance_records_edition_and_input_hashes() -> None:
    prov = tables.provenance()
    assert set(prov) == {"ps3.15_e1_1.json", "ps3.15_e3_10_1.json", "cid_7050.json"}
    for p in prov.values():
        assert p["edition"] == "2026d"
        assert p["inputs"] and all(len(h) == 64 for h in p["inputs"].values())


@pytest.mark.needs_shared
def test_package_copies_match_a_regeneration(shared_data: Path) -> None:
    standards = shared_data / "standards"
    built = _script().build_all(standards)
    for name, data in built.items():
        packaged = resources.files("bidsdeid.data").joinpath(name).read_bytes()
        assert packaged == data, f"{name} differs from scripts/make_deid_tables.py output"
    for name, p in tables.provenance().items():
        for source, digest in p["inputs"].items():
            assert hashlib.sha256((standards / source).read_bytes()).hexdigest() == digest


@pytest.mark.needs_shared
def test_check_mode_detects_a_stale_copy(shared_data: Path, tmp_path: Path) -> None:
    script = _script()
    out = tmp_path / "data"
    assert script.main(["--standards", str(shared_data / "standards"), "--out", str(out)]) == 0
    assert script.main(["--standards", str(shared_data / "standards"), "--out", str(out),
                        "--check"]) == 0
    data = json.loads((out / "cid_7050.json").read_text())
    data["rows"] = data["rows"][:-1]
    (out / "cid_7050.json").write_text(json.dumps(data))
    assert script.main(["--standards", str(shared_data / "standards"), "--out", str(out),
                        "--check"]) == 1
