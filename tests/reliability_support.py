"""Helpers of the reliability tests: a small two-participant study, runs that share a
key, and byte-level comparisons of OUTPUT_DIR trees."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO, run_cli

GE = "dicom/ge_mr750_fmri"
NIFTI_T1 = "nifti/niivue_register/T1_head_ext2.nii.gz"
TMP_PREFIX = ".bidsdeid-tmp-"
SHARED_FILES = ("README", ".bidsignore", "dataset_description.json", "participants.tsv",
                "participants.json")
DRIVER = REPO / "tests" / "crash_driver.py"


def make_study(shared: Path, root: Path) -> Path:
    """``sub-ge``: the GE fMRI session as raw DICOM; ``sub-t1``: a T1w head as BIDS
    NIfTI with a sidecar (the two input kinds, one of them defaced)."""
    bids = root / "in"
    shutil.copytree(shared / GE, bids / "sourcedata" / "sub-ge")
    anat = bids / "sub-t1" / "anat"
    anat.mkdir(parents=True)
    shutil.copyfile(shared / NIFTI_T1, anat / "sub-t1_T1w.nii.gz")
    (anat / "sub-t1_T1w.json").write_text(json.dumps(
        {"RepetitionTime": 2.3, "EchoTime": 0.003, "AcquisitionDateTime":
         "2019-03-04T10:11:12", "InstitutionName": "Hospital Zwelnik"}) + "\n")
    (bids / "dataset_description.json").write_text(
        json.dumps({"Name": "rerun", "BIDSVersion": "1.9.0"}) + "\n")
    return bids


@dataclass
class Run:
    """One bidsdeid run: its places and what it printed."""

    out: Path
    private: Path
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""


def places(root: Path, key_from: Path | None = None) -> Run:
    """OUTPUT_DIR and private dir under ``root``; with ``key_from``, the private dir
    starts with that run's key (same key: same pseudonyms, UIDs, date offsets)."""
    run = Run(root / "out", root / "private")
    if key_from is not None:
        run.private.mkdir(parents=True, mode=0o700)
        shutil.copyfile(key_from / "key", run.private / "key")
        os.chmod(run.private / "key", 0o600)
    return run


def bidsdeid(study: Path, run: Run, args: list[str], env: dict[str, str],
             check: int | None = 0) -> Run:
    proc = run_cli(study, run.out, "participant", *args, "--private-dir", run.private,
                   env=env, check=check, timeout=900)
    run.returncode, run.stdout, run.stderr = proc.returncode, proc.stdout, proc.stderr
    return run


def killed(study: Path, run: Run, args: list[str], env: dict[str, str], point: str) -> Run:
    """Run the CLI through the crash driver, which SIGKILLs it at ``point``."""
    full_env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1",
                "NIPYPE_NO_ET": "1", **env}
    proc = subprocess.run([sys.executable, str(DRIVER), point, "--", str(study),
                           str(run.out), "participant", *args, "--private-dir",
                           str(run.private)], capture_output=True, text=True, env=full_env,
                          timeout=900)
    run.returncode, run.stdout, run.stderr = proc.returncode, proc.stdout, proc.stderr
    return run


def tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (symlinks recorded as such)."""
    out: dict[str, str] = {}
    if not root.is_dir():
        return out
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "symlink"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def temporaries(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(TMP_PREFIX + "*"))


def differences(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """Paths that are missing from one side or differ (empty: byte-identical trees)."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
