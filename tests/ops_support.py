"""Helpers for the ops tests (containers, CI, SLURM, no network, read-only places).

* small studies made of copies of ../shared/data sessions, each under its own label;
* a sandbox that runs a command the way a container does: root filesystem read-only
  except the folders named writable, optionally no network and another UID;
* listings of folders, to prove a run wrote nothing where it must not;
* the CI dataset and the bidsdeid commands of .circleci/config.yml, run locally.

``python tests/ops_support.py expected-outputs`` rewrites .circleci/expected_outputs.txt
from a local run of the CI commands (tests/test_ops_ci.py checks it stays in step).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CIRCLECI = REPO / ".circleci"
EXPECTED_OUTPUTS = CIRCLECI / "expected_outputs.txt"
SANDBOX_UID = 12345  # no passwd entry, like `docker run -u 12345`

# -- small studies ------------------------------------------------------------------------
XA30_SMALL_SERIES = ("8_gre_field_mapping", "9_gre_field_mapping", "99_Phoenix_Document")


def add_participant(shared: Path, study: Path, label: str, kind: str) -> None:
    """Add ``sub-<label>`` to ``study``. Kinds: ``ge`` (GE fMRI DICOM, 150 files, no
    anatomy), ``xa30small`` (Siemens XA30 enhanced DICOM: two field maps and an SR
    document, which is quarantined), ``t1`` (the niivue T1 head as BIDS NIfTI: defaced),
    ``bad`` (five truncated DICOM files: the participant fails, on purpose)."""
    dicom = study / "sourcedata" / f"sub-{label}"
    if kind == "ge":
        shutil.copytree(shared / "dicom/ge_mr750_fmri", dicom)
    elif kind == "xa30small":
        for series in XA30_SMALL_SERIES:
            shutil.copytree(shared / "dicom/siemens_xa30_enhanced" / series, dicom / series)
    elif kind == "t1":
        anat = study / f"sub-{label}" / "anat"
        anat.mkdir(parents=True)
        shutil.copyfile(shared / "nifti/niivue_register/T1_head_ext2.nii.gz",
                        anat / f"sub-{label}_T1w.nii.gz")
    elif kind == "bad":
        dicom.mkdir(parents=True)
        for src in sorted((shared / "dicom/ge_mr750_fmri").glob("*.dcm"))[:5]:
            (dicom / src.name).write_bytes(src.read_bytes()[:3000])
    else:
        raise ValueError(f"unknown participant kind {kind}")
    for path in [study, *study.rglob("*")]:  # shared files are read-only: copies are not
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def make_study(shared: Path, study: Path, participants: dict[str, str]) -> Path:
    """A BIDS_DIR with one participant per ``label: kind`` (see :func:`add_participant`)."""
    study.mkdir(parents=True, exist_ok=True)
    (study / "dataset_description.json").write_text(
        '{"Name": "bidsdeid ops test", "BIDSVersion": "1.9.0"}\n')
    for label, kind in participants.items():
        add_participant(shared, study, label, kind)
    return study


# -- sandbox ------------------------------------------------------------------------------
def sandbox_problem() -> str | None:
    """Why the sandbox cannot run here (None when it can): it needs root and util-linux
    ``unshare`` with mount and network namespaces (a plain Docker container has not)."""
    if os.geteuid() != 0:
        return "the sandbox needs root (mount namespaces)"
    for tool in ("unshare", "setpriv", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = subprocess.run(["unshare", "-m", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare -m -n does not work here: {probe.stderr.strip()[:200]}"
    return None


_SANDBOX_SCRIPT = """set -e
n=$1; shift
while [ "$n" -gt 0 ]; do mount --bind "$1" "$1"; shift; n=$((n - 1)); done
mount -o remount,bind,ro /
exec "$@"
"""


def sandboxed(cmd: Sequence[str | os.PathLike[str]], writable: Sequence[Path], *,
              network: bool = True, uid: int | None = None) -> list[str]:
    """``cmd`` run in a new mount namespace where the whole root filesystem is read-only
    except ``writable`` (like ``docker run --read-only`` with bind mounts; /dev/shm stays
    writable, as in Docker); ``network=False`` adds a network namespace with only a down
    loopback; ``uid`` runs it as that UID and GID with no groups."""
    ns = ["unshare", "-m"] + ([] if network else ["-n"])
    user = [] if uid is None else ["setpriv", f"--reuid={uid}", f"--regid={uid}",
                                   "--clear-groups"]
    return [*ns, "--", "/bin/sh", "-c", _SANDBOX_SCRIPT, "sandbox", str(len(writable)),
            *map(str, writable), *user, *map(str, cmd)]


def world_usable(path: Path) -> bool:
    """True when any UID can execute ``path`` (every folder on the way searchable)."""
    real = Path(os.path.realpath(path))
    if not real.exists() or not real.stat().st_mode & stat.S_IXOTH:
        return False
    return all(p.stat().st_mode & stat.S_IXOTH for p in real.parents)


def listing(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under ``root`` (folders too) with its size, mode and mtime."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mode, st.st_mtime_ns)
    return out


def files_under(root: Path) -> list[str]:
    """Sorted relative paths of the files under ``root`` (``find -type f | LC_ALL=C sort``)."""
    return sorted((str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()),
                  key=lambda s: s.encode())


# -- CI -----------------------------------------------------------------------------------
CI_MOUNTS = ("in", "out", "private", "work")  # -v $HOME/ci/X:/data/X in config.yml


def ci_run_commands() -> list[str]:
    """The ``docker run`` command lines of .circleci/config.yml (continuations joined)."""
    import yaml

    config = yaml.safe_load((CIRCLECI / "config.yml").read_text())
    lines = []
    for job in config["jobs"].values():
        for step in job["steps"]:
            if isinstance(step, dict) and "run" in step:
                text = re.sub(r"\\\n\s*", " ", step["run"]["command"])
                lines.extend(ln.strip() for ln in text.splitlines()
                             if ln.strip().startswith("docker run"))
    return lines


def ci_bidsdeid_args(level: str) -> list[str]:
    """The bidsdeid arguments (after the image) of CI's ``docker run`` for ``level``."""
    for line in ci_run_commands():
        words = shlex.split(line)
        if '"$IMAGE"' in line and level in words:
            after = words[words.index("$IMAGE") + 1:]
            if len(after) > 2 and after[2] == level:
                return after
    raise AssertionError(f"no docker run of the {level} level in .circleci/config.yml")


def ci_data_from_shared(shared: Path, dest: Path) -> Path:
    """The files .circleci/fetch_data.sh fetches, taken from ../shared/data instead."""
    shutil.copytree(shared / "dicom/ge_mr750_fmri", dest / "ge")
    (dest / "t1").mkdir(parents=True)
    for src in sorted((shared / "nifti/ds000031").iterdir()):
        shutil.copyfile(src, dest / "t1" / src.name)
    return dest


Runs = dict[str, "subprocess.CompletedProcess[str]"]


def run_ci_locally(shared: Path, root: Path, bidsdeid: Sequence[str],
                   env: dict[str, str] | None = None) -> Runs:
    """Build the CI dataset with .circleci/make_dataset.sh and run CI's participant and
    group commands with ``bidsdeid`` (a command list), /data/X mapped to ``root/X``."""
    data = ci_data_from_shared(shared, root / "ci-data")
    subprocess.run(["sha256sum", "--quiet", "-c", str(CIRCLECI / "data.sha256")], cwd=data,
                   check=True)
    subprocess.run([str(CIRCLECI / "make_dataset.sh"), str(data), str(root / "in")],
                   check=True)
    for name in CI_MOUNTS[1:]:
        (root / name).mkdir(exist_ok=True)
    results = {}
    for level in ("participant", "group"):
        args = [re.sub(r"^/data/(\w+)", lambda m: str(root / m.group(1)), a)
                for a in ci_bidsdeid_args(level)]
        results[level] = subprocess.run([*bidsdeid, *args], capture_output=True, text=True,
                                        env={**os.environ, **(env or {})})
    return results


def main(argv: list[str]) -> int:
    if argv != ["expected-outputs"]:
        print(__doc__)
        return 64
    import tempfile

    sys.path.insert(0, str(REPO / "tests"))
    from conftest import SHARED_DATA

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runs = run_ci_locally(SHARED_DATA, root, [sys.executable, "-m", "bidsdeid"])
        for level, proc in runs.items():
            if proc.returncode != 0:
                print(f"{level} exited {proc.returncode}:\n{proc.stderr}", file=sys.stderr)
                return 1
        EXPECTED_OUTPUTS.write_text("\n".join(files_under(root / "out")) + "\n")
    print(f"wrote {EXPECTED_OUTPUTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
