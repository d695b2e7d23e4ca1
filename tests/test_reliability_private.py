"""The private side stays private: permissions, places, and what reaches a terminal.

* PRIVATE_DIR is created 0700 and the key 0600, also under ``umask 000`` and when the
  folder already existed with looser modes; the linkage, mappings and logs are 0600.
* A PRIVATE_DIR inside OUTPUT_DIR (or the same folder, or OUTPUT_DIR inside it, or a
  symlink that leads inside) is refused with exit 64 before anything is written.
* OUTPUT_DIR holds no symlink and no byte that names the private dir, the work dir or
  any absolute path of the run (NIfTI headers, DICOM, JSON, TSV, HTML all read).
* What a terminal or a SLURM log shows (stdout and stderr at ``-vv``) holds none of the
  identifiers planted in every PS3.15 Annex E attribute of the input, nor any
  identifier the tool itself collected from the participant's headers.
"""

from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path

import pytest
from conftest import run_cli, tree_digest
from dicom_support import Planter, all_uids, copy_set, dicom_inputs, plant_files

from bidsdeid.privacy.identifiers import Identifiers
from bidsdeid.privacy.leakscan import Matcher

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow,
              pytest.mark.xdist_group("reliability_private")]  # one planted run, not two

UMASK_0 = ["sh", "-c", 'umask 000; exec "$@"', "sh"]


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture(scope="module")
def planted(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One participant (the GE session) with identifiers planted everywhere, run at
    -vv with --dicom-out under umask 000, into a private dir that existed as 0755."""
    root = tmp_path_factory.mktemp("private")
    bids = root / "in"
    files = dicom_inputs(copy_set(shared_data, "ge", bids / "sourcedata" / "sub-01"))
    planter = Planter("prv")
    uids = all_uids(files)
    plant_files(files, planter)
    out, private = root / "out", root / "secret_private"
    private.mkdir(mode=0o755)
    os.chmod(private, 0o755)
    before = tree_digest(bids)
    proc = run_cli(bids, out, "participant", "--dicom-out", "--deface-modalities", "none",
                   "--skip-bids-validation", "-vv", "--private-dir", private,
                   "-w", root / "scratch_work", prefix=UMASK_0, check=0)
    assert tree_digest(bids) == before
    return root, out, private, planter, uids | planter.uids, proc


def test_private_dir_and_key_are_owner_only(planted) -> None:  # type: ignore[no-untyped-def]
    root, _out, private, *_ = planted
    assert _mode(private) == 0o700
    assert _mode(private / "key") == 0o600
    for name in ("linkage.tsv", "uid_mapping.csv", "patid_mapping.csv"):
        assert _mode(private / name) == 0o600, name
    logs = list(private.glob("logs/*/bidsdeid.log"))
    assert logs and all(_mode(p) == 0o600 for p in logs)
    assert _mode(root / "scratch_work") == 0o700  # the work dir holds PHI too


def test_output_never_names_or_points_to_the_private_side(planted) -> None:  # type: ignore[no-untyped-def]
    root, out, private, *_ = planted
    needles = [str(root).encode(), private.name.encode(), b"scratch_work", b"/tmp/"]
    files = [p for p in out.rglob("*")]
    assert not [p for p in files if p.is_symlink()]
    assert any(p.name.endswith(".nii.gz") for p in files)
    assert any(p.name.endswith(".dcm") for p in files)
    for p in files:
        if not p.is_file():
            continue
        data = p.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        for needle in needles:
            assert needle.lower() not in data.lower(), (p, needle)


def test_terminal_shows_no_identifier_at_debug_level(planted) -> None:  # type: ignore[no-untyped-def]
    _root, _out, private, planter, uids, proc = planted
    text = proc.stdout + proc.stderr
    assert "de-identify DICOM" in text and len(text.splitlines()) > 20  # -vv did print
    low = text.lower()
    for token in planter.tokens:
        assert token.lower() not in low, f"planted {planter.tokens[token]} on the terminal"
    for date in planter.dates:
        for form in (date, f"{date[:4]}-{date[4:6]}-{date[6:]}"):
            assert form not in text, form
    for uid in uids:
        assert uid not in text, uid
    # and nothing the tool itself collected from the headers (names, IDs, UIDs, dates,
    # institution, device, free text)
    ids = Identifiers.load(private / "state" / "sub-01" / "identifiers.json")
    matcher = Matcher(ids)
    assert len(ids) > 50 and len(list(matcher.finditer(" ".join(planter.tokens).encode()))) > 50
    hits = [(tok.kind, tok.source) for tok, _pos, _found in matcher.finditer(
        text.encode())]
    assert hits == []


@pytest.mark.parametrize("layout", ["inside", "same", "output_inside", "symlink"])
def test_private_dir_inside_output_is_refused(tmp_path: Path, layout: str) -> None:
    bids = tmp_path / "in"
    (bids / "sub-01" / "anat").mkdir(parents=True)
    out = tmp_path / "out"
    if layout == "inside":
        private = out / "private"
    elif layout == "same":
        private = out
    elif layout == "output_inside":
        private, out = tmp_path / "priv", tmp_path / "priv" / "out"
    else:  # a path outside that is a symlink into OUTPUT_DIR
        (out / "hidden").mkdir(parents=True)
        private = tmp_path / "link"
        private.symlink_to(out / "hidden")
    proc = run_cli(bids, out, "participant", "--private-dir", private)
    assert proc.returncode == 64, proc.stderr
    assert "must be separate" in proc.stderr and "Traceback" not in proc.stderr
    assert not (private / "key").exists() and not (out / "hidden" / "key").exists()
    assert not list(tmp_path.rglob("key")) and not list(tmp_path.rglob("*.log"))
