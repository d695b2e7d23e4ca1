"""The bad-input corpus (``tests/badinput.py``) through the CLI, one case per test.

Each case is built from copies of ../shared/data in a tmp dir and run as a user runs
it (``python -m bidsdeid BIDS_DIR OUTPUT_DIR participant``). The rules every case must
keep (DESIGN.md section 8): the exit code of the case; never a traceback, only
``bidsdeid:`` lines, with the details in the private log; every expected message
naming the file, series or participant; the good files still published and the bad
ones not; the input byte-identical afterwards; no temporary file left in OUTPUT_DIR;
nothing written outside OUTPUT_DIR and the private dir; no identifier of the inputs on
the terminal. Some cases check more (``EXTRA``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import badinput
import nibabel as nib
import numpy as np
import pytest
from badinput import CASES, Built, Case
from conftest import REPO, run_cli, tree_digest

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow]

# values of the inputs that must never reach the terminal (GE and XA30 headers)
TERMINAL_NEVER = ("Regression", "Axial EPI", "XAtest", "hucheng", "Résumé", "passwd",
                  "etc/shadow", "Hospital of X", "line1")
TMP_PREFIX = ".bidsdeid-tmp-"


def _skip_unless_possible(case: Case, built: Built) -> None:
    tool = built.prefix[0] if built.prefix else None
    if tool and shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    if case.needs_root and os.geteuid() != 0:
        pytest.skip("needs root (a tmpfs in a private mount namespace)")


def _run(case: Case, shared: Path, root: Path) -> tuple[Built, object]:
    built = case.build(shared, root)
    _skip_unless_possible(case, built)
    before = tree_digest(built.bids_dir)
    common = ["--skip-bids-validation", "-v"]
    common += ["--sloppy"] if case.deface else ["--deface-modalities", "none"]
    proc = run_cli(built.bids_dir, built.output_dir, "participant", *common, *built.args,
                   prefix=built.prefix, timeout=600)
    assert tree_digest(built.bids_dir) == before, "the input changed"
    return built, proc


def _output_files(built: Built) -> list[str]:
    if built.listing is not None:  # OUTPUT_DIR lived in a mount namespace: its listing
        return [line.rsplit(" ", 1)[0] for line in built.listing.read_text().splitlines()
                if line.strip()]
    if not built.output_dir.is_dir():
        return []
    return sorted(str(p.relative_to(built.output_dir)) for p in built.output_dir.rglob("*"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_case(case: Case, shared_data: Path, tmp_path: Path, template_env: Path) -> None:
    built, proc = _run(case, shared_data, tmp_path)
    out, err = proc.stdout, proc.stderr  # type: ignore[attr-defined]
    exp = case.expect
    assert proc.returncode == exp.exit_code, (  # type: ignore[attr-defined]
        f"exit {proc.returncode}, expected {exp.exit_code}\n{err[-3000:]}")  # type: ignore[attr-defined]
    # never a traceback: one "bidsdeid:" line per problem
    assert "Traceback" not in out + err and "internal error" not in err, err[-3000:]
    assert all(line.startswith("bidsdeid: ") for line in err.splitlines() if line), err
    for message in exp.messages:
        assert message in err, f"{message!r} not on the terminal:\n{err[-3000:]}"
    for label in exp.failed:
        assert f"sub-{label} FAILED" in err
    for value in TERMINAL_NEVER:
        assert value.lower() not in (out + err).lower(), value
    # the details are in the private log (no log: the command line was refused)
    if exp.exit_code != 64:
        logs = list((tmp_path / "out_private" / "logs").glob("*/bidsdeid.log"))
        assert len(logs) == 1
        text = logs[0].read_text(encoding="utf-8")
        assert all(m in text for m in exp.messages)
    files = _output_files(built)
    for rel in exp.published:
        assert rel in files, f"{rel} not published; output: {files}"
    for pattern in exp.absent:
        hits = ([f for f in files if Path(f).match(pattern) or f.startswith(pattern + "/")]
                if pattern != "*" else files)
        assert not hits, f"{pattern} should not be in the output: {hits}"
    for label in exp.failed:
        assert not any(f.startswith(f"sub-{label}") for f in files), files
    assert not [f for f in files if Path(f).name.startswith(TMP_PREFIX)], files
    # nothing written outside OUTPUT_DIR and the private dir
    assert {p.name for p in tmp_path.iterdir()} <= {"in", "out", "out_private", "fileset",
                                                   "listing.txt"}
    if case.name in EXTRA:
        EXTRA[case.name](built, tmp_path)


# -- checks beyond the common rules --------------------------------------------------
def _nifti(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(str(path)).dataobj)


def _check_nans(built: Built, tmp: Path) -> None:
    src = _nifti(built.bids_dir / "sub-bad" / "anat" / "sub-bad_T1w.nii.gz")
    got = _nifti(built.output_dir / "sub-bad" / "anat" / "sub-bad_T1w.nii.gz")
    changed = ~((src == got) | (np.isnan(src) & np.isnan(got)))
    assert changed.sum() > 1000, "nothing was defaced"
    assert np.all(got[changed] == 0), "defacing wrote something other than zeros"
    finite = np.isfinite(got)
    assert np.all(np.isnan(src[~finite]) | np.isinf(src[~finite])), "new NaN/Inf appeared"


def _check_4d(built: Built, tmp: Path) -> None:
    got = _nifti(built.output_dir / "sub-bad" / "anat" / "sub-bad_T1w.nii.gz")
    src = _nifti(built.bids_dir / "sub-bad" / "anat" / "sub-bad_T1w.nii.gz")
    assert got.shape == src.shape and got.ndim == 4
    removed = [(got[..., v] != src[..., v]) for v in range(2)]
    assert removed[0].sum() > 1000 and np.array_equal(removed[0], removed[1])


def _check_text(built: Built, tmp: Path) -> None:
    for p in built.output_dir.rglob("*.json"):
        text = p.read_text(encoding="utf-8")
        json.loads(text)  # strict: valid JSON
        assert not any(ord(ch) < 32 and ch not in "\n" for ch in text), p
        assert "résumé" not in text.lower() and "line1" not in text, p


def _check_paths(built: Built, tmp: Path) -> None:
    for p in built.output_dir.rglob("*"):
        rel = p.relative_to(built.output_dir)
        assert ".." not in rel.parts and not p.is_symlink(), rel
        assert p.resolve().is_relative_to(built.output_dir.resolve()), rel
        if p.is_file():
            assert b"passwd" not in p.read_bytes() and b"shadow" not in p.read_bytes(), rel
    assert not list(tmp.rglob("passwd")) and not list(Path("/").glob("x/y"))


def _check_disk_full(built: Built, tmp: Path) -> None:
    files = _output_files(built)
    assert not [f for f in files if f.startswith(("sub-good", "derivatives/bidsdeid/sub-"))]
    state = tmp / "out_private" / "state" / "sub-good"
    assert (state / "failed.json").is_file() and not (state / "complete.json").exists()


def _check_two_patients(built: Built, tmp: Path) -> None:
    state = tmp / "out_private" / "state" / "sub-bad"
    assert not (state / "complete.json").exists()


EXTRA: dict[str, Callable[[Built, Path], None]] = {
    "nifti_nans": _check_nans, "nifti_4d": _check_4d, "odd_description": _check_text,
    "path_in_header": _check_paths, "disk_full": _check_disk_full,
    "two_patients": _check_two_patients,
}


def test_corpus_covers_every_kind_of_the_issue() -> None:
    """Issue 7 names these kinds; each has at least one case."""
    kinds = " | ".join(c.kind for c in CASES).lower()
    for word in ("truncated", "zero-byte", "random bytes", "text file and a jpeg",
                 "dicomdir", "without pixeldata", "missing slice", "two orientations",
                 "two patients", "only localizers", "no t1w but a t2w", "non-ascii",
                 "../../etc/passwd", "symlink loop", "unreadable", "not gzip", "nan",
                 "2d nifti", "4d t1w", "not valid json", "output_dir inside bids_dir",
                 "full disk", "file size limit"):
        assert word in kinds, word
    assert len({c.name for c in CASES}) == len(CASES)


def test_corpus_table_is_current() -> None:
    """tests/CORPUS.md is the table of the cases (BIDSDEID_WRITE_CORPUS=1 rewrites it)."""
    path = REPO / "tests" / "CORPUS.md"
    table = badinput.corpus_table()
    if os.environ.get("BIDSDEID_WRITE_CORPUS") == "1":
        path.write_text(table, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == table, (
        "tests/CORPUS.md is out of date: rerun with BIDSDEID_WRITE_CORPUS=1")


def test_readme_corpus_table_is_current() -> None:
    """README.md shows the same cases (input kind, exit, outcome) between its markers."""
    path = REPO / "README.md"
    readme = path.read_text(encoding="utf-8")
    if os.environ.get("BIDSDEID_WRITE_CORPUS") == "1":
        path.write_text(badinput.with_readme_table(readme), encoding="utf-8")
        readme = path.read_text(encoding="utf-8")
    assert badinput.readme_table() in readme, (
        "README.md's corpus table is out of date: rerun with BIDSDEID_WRITE_CORPUS=1")
