"""The argparse parser of ``bidsdeid`` and nothing else (fmriprep's split).

Arguments are checked by small typed converters bound to the parser, so a bad value
ends in ``parser.error`` (exit 64) with a message, never a traceback. Cross-option
checks that need the file system (output inside input, ...) live in
:mod:`bidsdeid.cli.run`.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from bidsdeid import __version__

LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")

EPILOG = """\
exit codes:
  0   success
  1   a participant failed (safety gate, leak found, conversion error); see the report
  16  the input (or, at group level, the output) is not valid BIDS
  18  the filters selected nothing
  64  usage error
  65  bad input data
  66  missing input
  73  cannot create the output, private or work dir

The shareable dataset goes to OUTPUT_DIR. Everything identifying (the key, the
linkage of labels to pseudonyms, audits, quarantined files, before/after reports)
goes to the private dir, by default a sibling of OUTPUT_DIR named <name>_private.
Never share the private dir. BIDS_DIR is only read.
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _label(value: str) -> str:
    """A BIDS label, with or without its ``sub-``/``ses-`` prefix."""
    v = value.strip()
    for prefix in ("sub-", "ses-"):
        v = v.removeprefix(prefix)
    if not LABEL_RE.match(v):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a BIDS label (letters and digits only, e.g. 01 or sub-01)")
    return v


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be 1 or more")
    return n


def _memory_gb(value: str) -> float:
    """``--mem`` in GB; accepts ``8``, ``8G``, ``8GB``, ``8000M``, ``8000MB``."""
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([GgMm]?)[Bb]?\s*$", value)
    if not m:
        raise argparse.ArgumentTypeError(f"{value!r} is not a memory size (e.g. 8G or 8000M)")
    n = float(m.group(1))
    return n / 1024 if m.group(2).lower() == "m" else n


def _age_months(value: str) -> float:
    try:
        n = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of months") from None
    if not 0 <= n <= 12 * 130:
        raise argparse.ArgumentTypeError(f"{value!r} is not a plausible age in months")
    return n


def _existing_dir(value: str) -> Path:
    return Path(value).expanduser()


def _existing_file(value: str) -> Path:
    p = Path(value).expanduser()
    if not p.is_file():
        raise argparse.ArgumentTypeError(f"{value} is not a file")
    return p.absolute()


def _bids_filter(value: str) -> dict[str, Any]:
    p = _existing_file(value)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"{value} is not a readable JSON file: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise argparse.ArgumentTypeError(
            f"{value}: a BIDS filter file maps a query name to a dict of entities, "
            'e.g. {"t1w": {"acquisition": "mprage"}}')
    return {"path": str(p), "filters": data}


def _send_to(value: str) -> str:
    if not re.match(r"^[^@\s]{1,16}@[A-Za-z0-9.\-]+:\d{1,5}$", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not AET@HOST:PORT")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The whole interface of DESIGN.md section 1."""
    p = argparse.ArgumentParser(
        prog="bidsdeid",
        description="De-identify and deface an MRI study (raw DICOM under sourcedata/, or "
                    "BIDS NIfTI) into a shareable BIDS dataset. Nothing identifying is "
                    "written to OUTPUT_DIR; the tool scans its own output and fails closed.",
        epilog=EPILOG,
        formatter_class=_HelpFormatter,
    )
    p.add_argument("bids_dir", type=_existing_dir, metavar="BIDS_DIR",
                   help="input BIDS dataset (read only): raw DICOM under "
                        "sourcedata/sub-<label>[/ses-<label>]/ and/or NIfTI in BIDS layout")
    p.add_argument("output_dir", type=_existing_dir, metavar="OUTPUT_DIR",
                   help="where the shareable, de-identified dataset is written")
    p.add_argument("analysis_level", choices=["participant", "group"],
                   help="participant: process participants; group: dataset files, group "
                        "QC report, whole-dataset leak scan and BIDS validation")
    p.add_argument("--version", action="version", version=f"bidsdeid {__version__}")

    g = p.add_argument_group("selecting what to process")
    g.add_argument("--participant-label", "--participant_label", nargs="+", type=_label,
                   metavar="LABEL", help="participants to process (01 or sub-01); default all")
    g.add_argument("--session-label", nargs="+", type=_label, metavar="LABEL",
                   help="sessions to process (ses- prefix optional); default all")
    g.add_argument("--bids-filter-file", type=_bids_filter, metavar="FILE",
                   help="JSON file of PyBIDS filters that select BIDS input files "
                        '(e.g. {"t1w": {"acquisition": "mprage"}})')
    g.add_argument("--skip-bids-validation", action="store_true",
                   help="do not validate the input (participant) or output (group) with "
                        "bids-validator")

    g = p.add_argument_group("places and resources")
    g.add_argument("--private-dir", type=_existing_dir, metavar="DIR",
                   help="private folder for the key, linkage, audit, quarantine and "
                        "before/after reports (default: sibling of OUTPUT_DIR named "
                        "<name>_private). Never share it.")
    g.add_argument("-w", "--work-dir", type=_existing_dir, metavar="DIR",
                   help="scratch folder (default: PRIVATE_DIR/work). Holds identifying "
                        "intermediate files: keep it private and local")
    g.add_argument("--nprocs", "--n-cpus", type=_positive_int, default=1, metavar="N",
                   help="processes within a participant: reading the DICOM headers, "
                   "converting series, de-identifying DICOM files")
    g.add_argument("--omp-nthreads", type=_positive_int, default=None, metavar="N",
                   help="threads per process for registration (default: --nprocs)")
    g.add_argument("--mem", "--mem-gb", type=_memory_gb, dest="mem_gb", metavar="SIZE",
                   help="memory limit, e.g. 8G; work is scheduled to stay under it")
    g.add_argument("-v", "--verbose", action="count", default=0,
                   help="more log output (-v info, -vv debug)")
    g.add_argument("--force", action="store_true",
                   help="redo participants that are already complete")

    g = p.add_argument_group("de-identification (DICOM PS3.15 Annex E options)")
    g.add_argument("--dicom-out", action="store_true",
                   help="also write de-identified DICOM to OUTPUT_DIR/sourcedata/")
    g.add_argument("--retain-dates", dest="retain_longitudinal",
                   choices=["modified", "full", "off"], default="modified",
                   help="Retain Longitudinal Temporal Information: 'modified' shifts every "
                        "date by one keyed offset per subject (before 1925); 'full' keeps "
                        "dates; 'off' removes them (Basic Profile)")
    g.add_argument("--clean-descriptors", action=argparse.BooleanOptionalAction, default=True,
                   help="Clean Descriptors option: replace free-text descriptions with safe "
                        "values instead of removing them")
    g.add_argument("--retain-patient-characteristics", action="store_true",
                   help="keep sex, age, size, weight and similar (Retain Patient "
                        "Characteristics option)")
    g.add_argument("--retain-device-identity", action="store_true",
                   help="keep station names and serial numbers (Retain Device Identity)")
    g.add_argument("--retain-institution-identity", action="store_true",
                   help="keep institution name and address (Retain Institution Identity)")
    g.add_argument("--retain-uids", action="store_true",
                   help="keep original UIDs (Retain UIDs option)")
    g.add_argument("--retain-safe-private", action="store_true",
                   help="keep the safe private attributes of PS3.15 Table E.3.10-1")
    g.add_argument("--clean-structured-content", action="store_true",
                   help="Clean Structured Content option: acquisition context and similar "
                        "coded sequences in images are kept with their free text removed "
                        "(Basic Profile: removed); SR documents are still quarantined")
    g.add_argument("--clean-graphics", action="store_true",
                   help="Clean Graphics option: graphic annotations are kept with their "
                        "text replaced; overlays and curves are removed all the same (a "
                        "bitmap may draw text that cannot be cleaned with certainty)")
    g.add_argument("--rules", dest="rules_file", type=_existing_file, metavar="FILE",
                   help="site rules file (YAML/JSON) overriding the profile per attribute, "
                        "with allowed vocabularies for descriptions")

    g = p.add_argument_group("labels and tables")
    g.add_argument("--relabel", choices=["keep", "sequential", "random"], default="keep",
                   help="replace participant and session labels by pseudonyms (kept in "
                        "PRIVATE_DIR/linkage.tsv): sequential numbers, or a keyed hash "
                        "that is stable across runs with the same key")
    g.add_argument("--id-map", type=_existing_file, metavar="FILE",
                   help="TSV/CSV mapping original participant label or PatientID to the "
                        "new label (optional age/sex columns); an alternative to --relabel")
    g.add_argument("--include-sex", action="store_true",
                   help="write sex to participants.tsv (left out by default)")
    g.add_argument("--drop-demographics", action="store_true",
                   help="write neither age nor sex to participants.tsv")
    g.add_argument("--mapping-file", type=_existing_file, metavar="FILE",
                   help="JSON/YAML rules that override the built-in series-to-BIDS heuristic")

    g = p.add_argument_group("defacing")
    g.add_argument("--deface-modalities", nargs="+", metavar="SUFFIX",
                   help="BIDS suffixes to deface (default: every anatomical image, e.g. "
                        "T1w T2w FLAIR PDw T2starw MP2RAGE UNIT1 ...)")
    g.add_argument("--age-months", type=_age_months, metavar="MONTHS",
                   help="age of the participants in months, to pick the template (else "
                        "sessions.tsv, participants.tsv, or the DICOM header)")
    g.add_argument("--template", nargs="+", metavar="FILE",
                   help="user template: HEAD [FACE_MASK [BRAIN_MASK]] NIfTI files")
    g.add_argument("--template-registry", type=_existing_file, metavar="FILE",
                   help="extra template registry file (same format as templates/registry.json)")
    g.add_argument("--remove-ears", action="store_true", help="also remove the ears")
    g.add_argument("--reface", action="store_true",
                   help="replace the face with template intensities instead of zeros")
    g.add_argument("--sloppy", action="store_true",
                   help="fast, low-accuracy registration (for tests only)")

    g = p.add_argument_group("site workflow")
    g.add_argument("--dry-run", action="store_true",
                   help="read and decide everything, write only a plan to the private dir; "
                        "OUTPUT_DIR is not created")
    g.add_argument("--inventory-only", action="store_true",
                   help="write a table of every distinct text value in the input headers to "
                        "the private dir, and stop")
    g.add_argument("--send-to", type=_send_to, metavar="AET@HOST:PORT",
                   help="after a participant completes, send its --dicom-out files to a "
                        "DICOM archive (C-STORE)")
    return p
