"""A run writes only to OUTPUT_DIR, the private dir and the work dir.

In a container the image is read-only, HOME may be read-only or someone else's, and
TEMPLATEFLOW_HOME / BIDSDEID_CACHE are baked-in read-only folders (BIDSonym's image broke
under Singularity on exactly this). Here the tool runs in a sandbox whose whole root
filesystem is read-only except those three folders, with HOME, TMPDIR and the caches in
read-only places: any stray write fails the run, and listings taken before and after
show nothing changed. The throwaway-venv version (an arbitrary UID, caches precomputed
by the recipe's own commands) is tests/test_ops_install.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tree_digest
from ops_support import listing, make_study, sandbox_problem, sandboxed

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow]


def test_participant_and_group_write_nothing_outside_their_folders(
        shared_data: Path, tmp_path: Path) -> None:
    problem = sandbox_problem()
    if problem:
        pytest.skip(problem)
    study = make_study(shared_data, tmp_path / "study", {"nv": "t1", "ge": "ge"})
    home, tmpdir = tmp_path / "home", tmp_path / "tmp"
    tf_home, cache = tmp_path / "templateflow", tmp_path / "cache"
    for place in (home / ".config", tmpdir, tf_home, cache):
        place.mkdir(parents=True)
    (home / ".bashrc").write_text("# a user's file\n")
    run = tmp_path / "run"
    out, private, work = run / "out", run / "out_private", run / "work"
    for place in (out, private, work):
        place.mkdir(parents=True)
    watched = {p: listing(p) for p in (home, tmpdir, tf_home, cache)}
    before_input = tree_digest(study)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "TMPDIR": str(tmpdir),
           "TEMPLATEFLOW_HOME": str(tf_home), "BIDSDEID_CACHE": str(cache),
           "LANG": "C.UTF-8"}
    for level, extra in (("participant", ["--sloppy"]), ("group", [])):
        cmd = [sys.executable, "-m", "bidsdeid", str(study), str(out), level,
               "--private-dir", str(private), "-w", str(work), *extra]
        proc = subprocess.run(sandboxed(cmd, [out, private, work]), capture_output=True,
                              text=True, env=env, cwd=work)
        assert proc.returncode == 0, proc.stderr[-3000:]
        # no library fell back to a temporary folder of its own; the template cache's
        # fallback (BIDSDEID_CACHE is read-only and holds nothing yet) is in the work dir
        assert "Matplotlib created" not in proc.stderr
        for line in proc.stderr.splitlines():
            if "not writable" in line:
                assert f"writing to {work}/tmp/" in line, line
    assert (out / "sub-nv/anat/sub-nv_T1w.nii.gz").is_file()
    assert (out / "sub-ge/func/sub-ge_task-unknown_bold.nii.gz").is_file()
    assert (private / "reports/group.html").is_file()
    for place, seen in watched.items():
        assert listing(place) == seen, f"{place.name} changed"
    assert tree_digest(study) == before_input
    # the cache BIDSDEID_CACHE could not take went to the work dir, as did matplotlib's
    assert any((work / "tmp").glob("bidsdeid-cache-*/prepared/*.npz"))
    assert (work / "mplconfig").is_dir()
