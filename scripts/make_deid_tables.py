#!/usr/bin/env python3
"""Generate the package copies of the DICOM de-identification tables.

Reads the staging copies in ``../shared/data/standards`` (see its README) and writes
compact JSON into ``bidsdeid/data/``:

* ``ps3.15_e1_1.json``      Table E.1-1, all 657 rows with the 10 option columns
* ``ps3.15_e3_10_1.json``   Table E.3.10-1, the 479 safe private attributes
* ``cid_7050.json``         CID 7050, the 13 de-identification method codes

Each file records the DICOM edition and the sha256 of every input file, so a reader
can tell exactly which standard text the package was built from. The package loads
only these generated files (:mod:`bidsdeid.dicom.tables`), never the staging copies.
The output is deterministic: running the script twice gives identical bytes, which
``tests/test_dicom_tables.py`` checks against the committed files.

    python scripts/make_deid_tables.py [--standards DIR] [--out DIR] [--check]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STANDARDS = REPO.parent / "shared" / "data" / "standards"
DEFAULT_OUT = REPO / "bidsdeid" / "data"

E1_JSON = "ps3.15_E.1-1_2026d.json"
E1_CSV = "ps3.15_E.1-1_2026d.csv"
E3_JSON = "ps3.15_E.3.10-1_safe_private_2026d.json"
CID_TSV = "cid_7050_deid_method_codes.tsv"

EDITION = "2026d"
OPTION_COLUMNS = ["rtnSafePrivOpt", "rtnUIDsOpt", "rtnDevIdOpt", "rtnInstIdOpt",
                  "rtnPatCharsOpt", "rtnLongFullDatesOpt", "rtnLongModifDatesOpt",
                  "cleanDescOpt", "cleanStructContOpt", "cleanGraphOpt"]
EXPECTED_ROWS = {"e1_1": 657, "e3_10_1": 479, "cid_7050": 13}
OUTPUT_NAMES = {"e1_1": "ps3.15_e1_1.json", "e3_10_1": "ps3.15_e3_10_1.json",
                "cid_7050": "cid_7050.json"}
_CODES = {"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _provenance(inputs: list[Path], note: str) -> dict[str, Any]:
    return {
        "edition": EDITION,
        "generated_by": "scripts/make_deid_tables.py",
        "inputs": {p.name: sha256(p) for p in inputs},
        "note": note,
    }


def build_e1_1(standards: Path) -> dict[str, Any]:
    """Table E.1-1 from the JSON, cross-checked cell by cell against the CSV."""
    rows = json.loads((standards / E1_JSON).read_text(encoding="utf-8"))
    with open(standards / E1_CSV, newline="", encoding="utf-8") as fh:
        csv_rows = list(csv.DictReader(fh))
    if len(rows) != len(csv_rows):
        raise SystemExit(f"{E1_JSON} and {E1_CSV} disagree on the row count")
    out_rows = []
    for row, crow in zip(rows, csv_rows):
        if row["tag"] != crow["tag"] or row["basicProfile"] != crow["basicProfile"]:
            raise SystemExit(f"{E1_JSON} and {E1_CSV} disagree at {row['tag']}")
        if row["basicProfile"] not in _CODES:
            raise SystemExit(f"unknown action code {row['basicProfile']!r} at {row['tag']}")
        options = []
        for col in OPTION_COLUMNS:
            cell = row.get(col, "") or ""
            if cell != (crow.get(col) or ""):
                raise SystemExit(f"{E1_JSON} and {E1_CSV} disagree at {row['tag']} {col}")
            if cell not in ("", "K", "C"):
                raise SystemExit(f"unexpected option cell {cell!r} at {row['tag']} {col}")
            options.append(cell)
        out_rows.append([row["tag"], row["name"], row["stdCompIOD"], row["basicProfile"],
                         *options])
    return {
        "table": "PS3.15 Table E.1-1 Application Level Confidentiality Profile Attributes",
        "provenance": _provenance(
            [standards / E1_JSON, standards / E1_CSV],
            "621 rows from innolitics/dicom-standard (rev2024b), 36 rows transcribed from "
            "pymedphys (2026d); Basic Profile codes match 2026d; option columns of the "
            "2024b rows were not re-verified against 2026d. Content (c) NEMA."),
        "columns": ["tag", "name", "stdCompIOD", "basicProfile", *OPTION_COLUMNS],
        "rows": out_rows,
    }


def build_e3_10_1(standards: Path) -> dict[str, Any]:
    """Table E.3.10-1: (creator, group, element offset) with the VR, normalised."""
    data = json.loads((standards / E3_JSON).read_text(encoding="utf-8"))
    rows = data["rows"]
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, separators=(",", ":"))
                            .encode("utf-8")).hexdigest()
    if digest != data.get("content_sha256"):
        raise SystemExit(f"{E3_JSON}: rows do not hash to its content_sha256")
    out_rows = []
    seen = set()
    for r in rows:
        tag = r["tag"].strip().strip("()").replace(" ", "")
        group_text, elem_text = tag.split(",")
        if elem_text[:2].lower() != "xx":
            raise SystemExit(f"{E3_JSON}: unexpected private tag {r['tag']}")
        group, offset = int(group_text, 16), int(elem_text[2:], 16)
        creator = r["private_creator"].strip()
        key = (creator, group, offset)
        if key in seen:
            raise SystemExit(f"{E3_JSON}: duplicate {key}")
        seen.add(key)
        out_rows.append([creator, f"{group:04X}", f"{offset:02X}", r.get("vr", "") or "",
                         r.get("meaning", "") or ""])
    out_rows.sort(key=lambda x: (x[0], x[1], x[2]))
    return {
        "table": "PS3.15 Table E.3.10-1 Safe Private Attributes",
        "provenance": _provenance(
            [standards / E3_JSON],
            "from pymedphys e3_10_1.json (2026d); match on private creator, group and "
            "element offset. Content (c) NEMA."),
        "columns": ["private_creator", "group", "element_offset", "vr", "meaning"],
        "rows": out_rows,
    }


def build_cid_7050(standards: Path) -> dict[str, Any]:
    lines = (standards / CID_TSV).read_text(encoding="utf-8").splitlines()
    rows = []
    for line in lines[1:]:
        if not line.strip():
            continue
        code, scheme, meaning = line.split("\t")[:3]
        rows.append([code.strip(), scheme.strip(), meaning.strip()])
    return {
        "table": "PS3.16 CID 7050 De-identification Method",
        "provenance": _provenance([standards / CID_TSV],
                                  "transcribed from pymedphys cid_7050.json (2026d)."),
        "columns": ["code", "scheme", "meaning"],
        "rows": rows,
    }


def render(obj: dict[str, Any]) -> bytes:
    """Compact, sorted, deterministic JSON (one row per line for readable diffs)."""
    head = {k: v for k, v in obj.items() if k != "rows"}
    text = json.dumps(head, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    rows = ",\n".join(json.dumps(r, ensure_ascii=False, separators=(",", ":"))
                      for r in obj["rows"])
    return (text[:-1] + ',"rows":[\n' + rows + "\n]}\n").encode("utf-8")


def build_all(standards: Path) -> dict[str, bytes]:
    built = {"e1_1": build_e1_1(standards), "e3_10_1": build_e3_10_1(standards),
             "cid_7050": build_cid_7050(standards)}
    for name, obj in built.items():
        if len(obj["rows"]) != EXPECTED_ROWS[name]:
            raise SystemExit(f"{name}: {len(obj['rows'])} rows, expected {EXPECTED_ROWS[name]}")
    return {OUTPUT_NAMES[name]: render(obj) for name, obj in built.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--standards", type=Path, default=DEFAULT_STANDARDS,
                    help="folder with the staging copies (default: ../shared/data/standards)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="package data folder")
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 if the package copies differ from a rebuild")
    args = ap.parse_args(argv)
    if not args.standards.is_dir():
        print(f"make_deid_tables: {args.standards} not found", file=sys.stderr)
        return 66
    outputs = build_all(args.standards)
    if args.check:
        stale = [n for n, data in outputs.items()
                 if not (args.out / n).is_file() or (args.out / n).read_bytes() != data]
        for n in stale:
            print(f"make_deid_tables: {n} is out of date", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in outputs.items():
        (args.out / name).write_bytes(data)
        print(f"wrote {args.out / name} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
