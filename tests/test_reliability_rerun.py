"""Crash safety, idempotence and determinism of the participant level.

Two uninterrupted reference runs of a two-participant study (``sub-ge``: raw DICOM;
``sub-t1``: a BIDS T1w), both with ``--dicom-out`` and ``--relabel random``: one without
defacing (fast) and one with defacing on (``--sloppy``). Every other run here starts
with a reference's key, so it must reproduce that reference byte for byte.

Crash tests SIGKILL the participant process at known points (``tests/crash_driver.py``
monkeypatches the spot in a subprocess: no timing, no polling), check that nothing
half-done is visible under a final name, rerun normally, and compare the whole
OUTPUT_DIR with the reference: same files, same bytes, no ``.bidsdeid-tmp-*`` left.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pydicom
import pytest
from reliability_support import (
    SHARED_FILES,
    Run,
    bidsdeid,
    differences,
    killed,
    make_study,
    places,
    temporaries,
    tree,
)

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow,
              pytest.mark.xdist_group("reliability_rerun")]

COMMON = ["--dicom-out", "--relabel", "random", "--skip-bids-validation", "-v"]
FAST = [*COMMON, "--deface-modalities", "none"]
DEFACE = [*COMMON, "--sloppy"]


@pytest.fixture(scope="module")
def world(shared_data: Path, tmp_path_factory: pytest.TempPathFactory,
          templateflow_home: Path, deface_cache: Path) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("rerun")
    study = make_study(shared_data, root)
    env = {"TEMPLATEFLOW_HOME": str(templateflow_home), "BIDSDEID_CACHE": str(deface_cache)}
    fast = bidsdeid(study, places(root / "fast"), FAST, env)
    deface = bidsdeid(study, places(root / "deface"), DEFACE, env)
    return SimpleNamespace(study=study, env=env, fast=fast, deface=deface,
                           fast_tree=tree(fast.out), deface_tree=tree(deface.out))


def _after_kill(run: Run, reference: dict[str, str]) -> None:
    """What a killed run left: no file under a final name differs from the reference
    (shared files may list fewer participants, but are whole), and every participant
    marked complete is wholly published."""
    now = tree(run.out)
    for rel, digest in now.items():
        name = Path(rel).name
        if name.startswith(".bidsdeid-tmp-"):
            continue
        if name in SHARED_FILES and "/" not in rel:
            text = (run.out / rel).read_text(encoding="utf-8")
            if name.endswith(".json"):
                json.loads(text)
            continue
        assert reference.get(rel) == digest, f"{rel} is visible but not final"
    for marker in run.private.glob("state/sub-*/complete.json"):
        for rel in json.loads(marker.read_text())["files"]:
            assert now.get(rel) == reference.get(rel), rel


POINTS = {
    "dicom-files:20": "during DICOM de-identification (--dicom-out) of sub-ge",
    "before:copy BIDS inputs": "right after the DICOM of sub-ge was converted",
    "publish-half:3": "during publication: the 3rd file of sub-ge half written",
    "shared-files:1": "after sub-ge's completion marker, before the dataset files",
}


@pytest.mark.parametrize("point", list(POINTS), ids=list(POINTS.values()))
def test_killed_run_resumes_to_identical_output(world: SimpleNamespace, tmp_path: Path,
                                                point: str) -> None:
    run = killed(world.study, places(tmp_path, key_from=world.fast.private), FAST,
                 world.env, point)
    assert run.returncode == -9, run.stderr[-2000:]
    _after_kill(run, world.fast_tree)
    if point.startswith("publish-half"):
        assert temporaries(run.out), "the half-written file should sit under a temp name"
    bidsdeid(world.study, run, FAST, world.env)
    assert differences(tree(run.out), world.fast_tree) == []
    assert temporaries(run.out) == []
    assert "Traceback" not in run.stderr


def test_killed_while_defacing_resumes_to_identical_output(world: SimpleNamespace,
                                                           tmp_path: Path) -> None:
    """sub-ge is complete, sub-t1 dies after its defaced T1w was staged."""
    run = killed(world.study, places(tmp_path, key_from=world.deface.private), DEFACE,
                 world.env, "deface-write:1")
    assert run.returncode == -9, run.stderr[-2000:]
    _after_kill(run, world.deface_tree)
    assert not (run.private / "state" / "sub-t1" / "complete.json").exists()
    bidsdeid(world.study, run, DEFACE, world.env)
    assert "sub-ge" in run.stderr and "already complete" in run.stderr  # -v: skipped
    assert differences(tree(run.out), world.deface_tree) == []
    assert temporaries(run.out) == []


def test_same_key_gives_byte_identical_output_with_defacing(world: SimpleNamespace,
                                                            tmp_path: Path) -> None:
    again = bidsdeid(world.study, places(tmp_path, key_from=world.deface.private), DEFACE,
                     world.env)
    got = tree(again.out)
    assert differences(got, world.deface_tree) == []
    kinds = {Path(rel).suffix for rel in got} | {"".join(Path(r).suffixes[-2:]) for r in got}
    for kind in (".nii.gz", ".json", ".tsv", ".dcm", ".html"):  # every kind was compared
        assert kind in kinds, kind
    assert any(rel.startswith("derivatives/bidsdeid/sub-") and "deface_mask" in rel
               for rel in got)


def test_rerun_of_complete_participants_does_no_work_unless_forced(world: SimpleNamespace,
                                                                   tmp_path: Path) -> None:
    run = places(tmp_path)
    shutil.copytree(world.fast.out, run.out, symlinks=True)
    shutil.copytree(world.fast.private, run.private, symlinks=True)
    before = {p: p.stat() for p in run.out.rglob("*") if p.is_file()}
    bidsdeid(world.study, run, FAST, world.env)
    for label in ("ge", "t1"):
        assert f"[sub-{label}] already complete" in run.stderr
    assert "convert DICOM" not in run.stderr and "published" not in run.stderr
    for p, st in before.items():  # not rewritten: same inode, same mtime
        now = p.stat()
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), p
    bidsdeid(world.study, run, [*FAST, "--force"], world.env)
    assert "already complete" not in run.stderr and "published" in run.stderr
    rewritten = [p for p, st in before.items() if p.stat().st_ino != st.st_ino]
    assert any("sub-" in p.name and p.name.endswith(".nii.gz") for p in rewritten)
    assert differences(tree(run.out), world.fast_tree) == []


def _linkage(private: Path) -> dict[str, tuple[str, str]]:
    rows = csv.DictReader(io.StringIO((private / "linkage.tsv").read_text()), delimiter="\t")
    return {r["original_participant_id"]: (r["participant_id"], r["date_offset_days"])
            for r in rows}


def _uids(out: Path) -> set[str]:
    found = set()
    for p in sorted(out.rglob("*.dcm"))[:5]:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        for kw in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID",
                   "FrameOfReferenceUID"):
            if kw in ds:
                found.add(str(ds.get(kw)))
    return found


def _acq_times(out: Path) -> set[str]:
    times = set()
    for p in out.rglob("*_scans.tsv"):
        for row in csv.DictReader(io.StringIO(p.read_text()), delimiter="\t"):
            times.add(row["acq_time"])
    return times - {"n/a"}


def test_another_key_changes_every_pseudonym_uid_and_date_offset(world: SimpleNamespace,
                                                                tmp_path: Path) -> None:
    other = bidsdeid(world.study, places(tmp_path), FAST, world.env)  # a new key is made
    assert (other.private / "key").read_bytes() != (world.fast.private / "key").read_bytes()
    a, b = _linkage(world.fast.private), _linkage(other.private)
    assert set(a) == set(b) == {"sub-ge", "sub-t1"}
    for label in a:
        assert a[label][0] != b[label][0], f"{label}: same pseudonym with another key"
        assert a[label][1] != b[label][1], f"{label}: same date offset with another key"
    assert not {p.name for p in world.fast.out.glob("sub-*")} & {
        p.name for p in other.out.glob("sub-*")}
    ua, ub = _uids(world.fast.out), _uids(other.out)
    assert ua and ub and not ua & ub, "a UID is the same under two keys"
    ta, tb = _acq_times(world.fast.out), _acq_times(other.out)
    assert ta and tb and not ta & tb, "an acquisition time is the same under two keys"
