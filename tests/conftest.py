"""Shared fixtures: the real data in ../shared/data, temporary studies, the CLI.

Tests that need ../shared/data are marked ``needs_shared`` and skip with a clear
reason when it is absent (a user's clone has no ../shared). ``BIDSDEID_SHARED_DATA``
points elsewhere if needed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BIDSDEID_SHARED_DATA", REPO.parent / "shared" / "data"))
HAVE_SHARED = (SHARED_DATA / "dicom").is_dir()
SKIP_REASON = (f"real test data not found at {SHARED_DATA} (clone the project next to "
               "../shared, or set BIDSDEID_SHARED_DATA)")

# The DICOM sessions of ../shared/data/dicom, by a participant label for tests.
DICOM_SESSIONS = {
    "philips": "dicom/philips_elition_r571",
    "xa30": "dicom/siemens_xa30_enhanced",
    "ge": "dicom/ge_mr750_fmri",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAVE_SHARED:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if "needs_shared" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not HAVE_SHARED:
        pytest.skip(SKIP_REASON)
    return SHARED_DATA


def copy_dicom_session(shared: Path, name: str, dest: Path) -> Path:
    """Copy one shared DICOM session (README-Series.txt and the like are copied too: the
    tool must skip non-DICOM files itself)."""
    src = shared / DICOM_SESSIONS.get(name, name)
    shutil.copytree(src, dest)
    return dest


def make_dicom_study(shared: Path, root: Path, participants: dict[str, str]) -> Path:
    """A BIDS_DIR with ``sourcedata/sub-<label>/`` copied from shared sessions."""
    for label, name in participants.items():
        copy_dicom_session(shared, name, root / "sourcedata" / f"sub-{label}")
    return root


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 and mode of every file under ``root`` (to prove the input is unchanged)."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if p.is_symlink():
                out[str(p.relative_to(root))] = "symlink:" + os.readlink(p)
                continue
            if not p.is_file():  # a FIFO or device: reading it could block forever
                out[str(p.relative_to(root))] = f"special:{p.lstat().st_mode:o}"
                continue
            try:
                data = p.read_bytes()
            except OSError:
                out[str(p.relative_to(root))] = "unreadable"
                continue
            out[str(p.relative_to(root))] = (hashlib.sha256(data).hexdigest()
                                             + f":{p.stat().st_mode:o}")
    return out


def run_cli(*args: str | os.PathLike[str], env: dict[str, str] | None = None,
            timeout: float = 1800, check: int | None = None,
            cwd: str | os.PathLike[str] | None = None,
            prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bidsdeid ARGS``; with ``check`` assert that exit code.

    ``prefix`` wraps the command (``setpriv ...``, ``prlimit ...``, ``unshare ...``)."""
    full_env = dict(os.environ)
    full_env.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
    full_env.setdefault("NIPYPE_NO_ET", "1")
    if env:
        full_env.update(env)
    proc = subprocess.run([*(prefix or []), sys.executable, "-m", "bidsdeid", *map(str, args)],
                          capture_output=True, text=True, env=full_env, timeout=timeout,
                          cwd=cwd)
    if check is not None and proc.returncode != check:
        raise AssertionError(f"bidsdeid exited {proc.returncode}, expected {check}\n"
                             f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
    return proc


# -- templates (added for the deface tests) ---------------------------------------------
# ../shared/data/templates stands in for TemplateFlow: the 0-2 month infant T1/T2 play
# MNIInfant cohort 1, the MNI152 2009 head plays MNI152NLin2009cAsym (T1w only).
TEMPLATEFLOW_STANDINS = {
    "tpl-MNIInfant/cohort-1/tpl-MNIInfant_cohort-1_res-1_T1w.nii.gz":
        "templates/infant_dcan/INFANT_MNI_T1_2mm.nii.gz",
    "tpl-MNIInfant/cohort-1/tpl-MNIInfant_cohort-1_res-1_T2w.nii.gz":
        "templates/infant_dcan/INFANT_MNI_T2_2mm.nii.gz",
    "tpl-MNIInfant/cohort-1/tpl-MNIInfant_cohort-1_res-1_desc-brain_mask.nii.gz":
        "templates/infant_dcan/INFANT_MNI_T1_1mm_brain_mask.nii.gz",
    "tpl-MNI152NLin2009cAsym/tpl-MNI152NLin2009cAsym_res-01_T1w.nii.gz":
        "templates/niivue_deface/MNI152_2009_SSW.nii.gz",
}


def _shared_tmp(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder shared by every xdist worker of this test session."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    return base / name


@pytest.fixture(scope="session")
def templateflow_home(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TEMPLATEFLOW_HOME filled from ../shared/data/templates (no network)."""
    from bidsdeid.utils.locks import file_lock

    root = _shared_tmp(tmp_path_factory, "templateflow")
    with file_lock(str(root) + ".lock"):
        if not (root / ".complete").exists():
            for rel, src in TEMPLATEFLOW_STANDINS.items():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shared_data / src, root / rel)
            (root / ".complete").write_text("ok\n")
    return root


@pytest.fixture(scope="session")
def deface_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BIDSDEID_CACHE shared by the workers, so a derived face mask is made once."""
    root = _shared_tmp(tmp_path_factory, "bidsdeid-cache")
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture()
def template_env(templateflow_home: Path, deface_cache: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Path:
    """TEMPLATEFLOW_HOME and BIDSDEID_CACHE set for one test."""
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(templateflow_home))
    monkeypatch.setenv("BIDSDEID_CACHE", str(deface_cache))
    return templateflow_home
