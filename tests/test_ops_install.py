"""The container recipe, step by step, in a throwaway venv (no Docker engine here).

The Dockerfile and singularity.def run (tests/test_recipes.py pins them to it):
``bash scripts/install.sh --system`` -> ``python scripts/fetch_templates.py`` ->
``bidsdeid-templates precompute``. This test runs the same commands with a fresh venv's
Python (the TemplateFlow fetch from a local mirror made of ../shared/data/templates, as
there is no network), makes the templates and the cache read-only as in the image, and
runs the installed tool as an arbitrary UID without a passwd entry, in a sandbox with a
read-only root filesystem, a read-only HOME and no network: it must work, use the baked
cache instead of deriving masks again, and write nothing outside its three folders.

Measured here: about 1 minute to install (pip's cache), 50 s to precompute the one
infant template the mirror has, 15 s to run; so the test stays in the default suite
(marked slow). It skips with the reason when pip cannot reach a package index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TEMPLATEFLOW_STANDINS, tree_digest
from ops_support import (
    REPO,
    SANDBOX_UID,
    listing,
    make_study,
    sandbox_problem,
    sandboxed,
    world_usable,
)

from bidsdeid import __version__
from bidsdeid.deface import registry, templates

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow]


def _base_python() -> str:
    """A Python any UID can run (the image's is /usr/local/bin/python3): Debian's when
    this one lives under a private home (pyenv in /root)."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        if Path(candidate).exists() and world_usable(Path(candidate)):
            probe = subprocess.run([candidate, "-c", "import sys, venv, ensurepip; "
                                    "print(sys.version_info >= (3, 10))"],
                                   capture_output=True, text=True)
            if probe.stdout.strip() == "True":
                return candidate
    return sys.executable


@pytest.fixture()
def box() -> Iterator[Path]:
    """A folder any UID can reach (pytest's tmp_path is owner-only), removed after."""
    root = Path(tempfile.mkdtemp(prefix="bidsdeid-ops-install-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(root)], check=False)
        shutil.rmtree(root, ignore_errors=True)


def _pip_index_problem(python: str, where: Path) -> str | None:
    probe = subprocess.run([python, "-m", "pip", "download", "-q", "--no-deps",
                            "--only-binary=:all:", "-d", str(where), "antspyx==0.6.3"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else ("pip cannot reach a package index: "
                                               + probe.stderr.strip()[-300:])


def test_recipe_steps_in_a_fresh_venv_then_a_read_only_run(shared_data: Path,
                                                            box: Path) -> None:
    base = _base_python()
    venv = box / "venv"
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    problem = _pip_index_problem(str(py), box / "probe")
    if problem:
        pytest.skip(problem)

    # 1. the install stage: the very script, with this venv's Python as the "system" one
    env = {**os.environ, "PYTHON": str(py), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(["bash", "scripts/install.sh", "--system"], cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"bidsdeid installed ({__version__})" in proc.stdout
    site = subprocess.run([str(py), "-c", "import bidsdeid; print(bidsdeid.__file__)"],
                          capture_output=True, text=True, check=True, cwd=box).stdout
    assert site.startswith(str(venv))  # installed, not the source tree

    # 2. the templates stage: fetch (from a local mirror: no network) then precompute
    mirror, tf_home, cache = box / "mirror", box / "templateflow", box / "cache"
    for rel, src in TEMPLATEFLOW_STANDINS.items():
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / src, mirror / rel)
    tpl_env = {**env, "TEMPLATEFLOW_HOME": str(tf_home), "BIDSDEID_CACHE": str(cache)}
    fetch = subprocess.run([str(py), "scripts/fetch_templates.py", "--mirror", str(mirror)],
                           cwd=REPO, env=tpl_env, capture_output=True, text=True)
    needed = [rel for *_x, rel in templates.templateflow_files(registry.load_registry())]
    in_mirror = [rel for rel in needed if rel in TEMPLATEFLOW_STANDINS]
    assert in_mirror and fetch.stdout.split() == [w for rel in in_mirror for w in ("ok", rel)]
    failed = [ln.split()[1].rstrip(":") for ln in fetch.stderr.splitlines()
              if ln.startswith("FAILED")]
    assert fetch.returncode == 1 and sorted(failed) == sorted(set(needed) - set(in_mirror))
    for rel in in_mirror:
        assert (tf_home / rel).read_bytes() == (mirror / rel).read_bytes()
    pre = subprocess.run([str(venv / "bin" / "bidsdeid-templates"), "precompute"], cwd=box,
                         env=tpl_env, capture_output=True, text=True)
    assert pre.returncode == 0, pre.stderr[-3000:]
    assert "MNIInfant:cohort-1           derived (affine+syn) from pydeface" in pre.stdout
    assert any((cache / "facemasks").glob("MNIInfant_cohort-1_*_desc-face_mask.nii.gz"))

    # 3. the final stage: everything baked in is read-only; run as any UID
    problem = sandbox_problem()
    if problem:
        pytest.skip(f"installed and precomputed; the read-only run needs: {problem}")
    home, tmpdir = box / "home", box / "tmp"
    (home / ".config").mkdir(parents=True)
    tmpdir.mkdir()
    study = make_study(shared_data, box / "study", {"nv": "t1"})
    run = box / "run"
    run.mkdir()
    uid = SANDBOX_UID if world_usable(py) else None
    if uid is not None:
        os.chown(run, uid, uid)
        os.chown(tmpdir, uid, uid)  # writable, so a stray temporary file would show up
    subprocess.run(["chmod", "-R", "a+rX,a-w", str(home), str(tf_home), str(cache),
                    str(study)], check=True)
    watched = {p: listing(p) for p in (home, tmpdir, tf_home, cache)}
    before_input = tree_digest(study)
    run_env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(tmpdir),
               "TEMPLATEFLOW_HOME": str(tf_home), "BIDSDEID_CACHE": str(cache),
               "LANG": "C.UTF-8"}
    out, private, work = run / "out", run / "out_private", run / "work"

    def in_box(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(sandboxed(cmd, [run, tmpdir], network=False, uid=uid),
                              capture_output=True, text=True, env=run_env, cwd=run)

    version = in_box(venv / "bin" / "bidsdeid", "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"bidsdeid {__version__}"
    part = in_box(venv / "bin" / "bidsdeid", study, out, "participant", "--private-dir",
                  private, "-w", work)
    assert part.returncode == 0, part.stderr[-3000:]
    assert (out / "sub-nv/anat/sub-nv_T1w.nii.gz").is_file()
    if uid is not None:
        assert (out / "sub-nv/anat/sub-nv_T1w.nii.gz").stat().st_uid == uid
    # the masks made at build time were read, not made again
    assert "not writable" not in part.stderr and "Matplotlib created" not in part.stderr
    assert not list((work / "tmp").glob("bidsdeid-cache-*"))
    # precompute again, as the run's UID: all read from the read-only cache
    again = in_box(venv / "bin" / "bidsdeid-templates", "precompute")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "derived (affine+syn) from pydeface" in again.stdout
    for place, seen in watched.items():
        assert listing(place) == seen, f"{place.name} changed"
    assert tree_digest(study) == before_input
