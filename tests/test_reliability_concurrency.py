"""Several participant processes writing into one OUTPUT_DIR at once (SLURM arrays).

1. Real runs: two CLI processes started together, each with its own participants,
   into one OUTPUT_DIR and one private dir (one key); then the group level. The result
   equals a sequential run with the same key, byte for byte, shared files included
   (dataset_description.json, participants.tsv/.json, README, .bidsignore) and the
   private ones (linkage.tsv, uid_mapping.csv, patid_mapping.csv).
2. Forced contention, without timing luck: writer processes rebuild the shared files
   and merge mapping rows in tight loops while a reader checks, the whole time, that
   every file it opens is whole; at the end no row is lost.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from conftest import run_cli
from reliability_support import GE, differences, tree

from bidsdeid.bids import dataset
from bidsdeid.config import RunConfig
from bidsdeid.dicom.mappings import merge_mapping, read_mapping

ARGS = ["--dicom-out", "--relabel", "random", "--deface-modalities", "none",
        "--skip-bids-validation"]
PRIVATE_SHARED = ("linkage.tsv", "uid_mapping.csv", "patid_mapping.csv")


def _patient(folder: Path, n: int) -> None:
    """Make a copy of the GE session another patient (IDs and name)."""
    for p in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(p)
        ds.PatientID = f"CONC{n:04d}"
        ds.PatientName = f"Parallel^Person{n}"
        ds.save_as(p)


def _study(shared: Path, root: Path) -> Path:
    bids = root / "in"
    for n, label in enumerate(("a", "b", "c", "d"), 1):
        folder = bids / "sourcedata" / f"sub-{label}"
        shutil.copytree(shared / GE, folder)
        for p in folder.rglob("*"):
            p.chmod(0o644)
        _patient(folder, n)
    return bids


def _cli(study: Path, out: Path, private: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bidsdeid", str(study), str(out), "participant", *ARGS,
            "--private-dir", str(private), *extra]


@pytest.mark.needs_shared
@pytest.mark.slow
def test_parallel_tasks_equal_a_sequential_run(shared_data: Path, tmp_path: Path) -> None:
    study = _study(shared_data, tmp_path)
    seq_out, seq_private = tmp_path / "seq" / "out", tmp_path / "seq" / "private"
    run_cli(study, seq_out, "participant", *ARGS, "--private-dir", seq_private, check=0)
    par_out, par_private = tmp_path / "par" / "out", tmp_path / "par" / "private"
    par_private.mkdir(parents=True, mode=0o700)
    shutil.copyfile(seq_private / "key", par_private / "key")
    env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1"}
    tasks = [subprocess.Popen(_cli(study, par_out, par_private, "--participant-label", *labels),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for labels in (("a", "c"), ("b", "d"))]
    outputs = [t.communicate(timeout=900) for t in tasks]
    assert [t.returncode for t in tasks] == [0, 0], outputs
    # without the group level: the last writer left whole, complete shared files
    assert differences(tree(par_out), tree(seq_out)) == []
    for name in PRIVATE_SHARED:
        assert (par_private / name).read_bytes() == (seq_private / name).read_bytes(), name
    rows = (par_out / "participants.tsv").read_text().splitlines()
    assert len(rows) == 5 and rows[0] == "participant_id\tage"
    # the group level assembles the shared files the same way
    for out in (seq_out, par_out):
        run_cli(study, out, "group", "--skip-bids-validation", "--private-dir",
                out.parent / "private", check=0)
    assert differences(tree(par_out), tree(seq_out)) == []


# -- forced contention -------------------------------------------------------------
LABELS = [f"p{i:02d}" for i in range(12)]


def _config(root: Path) -> RunConfig:
    return RunConfig(bids_dir=root / "in", output_dir=root / "out",
                     analysis_level="participant", private_dir=root / "private",
                     work_dir=root / "private" / "work")


def _complete(config: RunConfig, label: str) -> None:
    """What publish.py leaves for a participant: its files, fragment and marker."""
    image = config.output_dir / f"sub-{label}" / "anat" / f"sub-{label}_T1w.nii.gz"
    image.parent.mkdir(parents=True, exist_ok=True)
    image.write_bytes(b"x")
    state = config.state_dir / f"sub-{label}"
    state.mkdir(parents=True, exist_ok=True)
    (state / dataset.FRAGMENT).write_text(json.dumps(
        {"row": {"participant_id": f"sub-{label}", "age": 30}}))
    (state / "complete.json").write_text(json.dumps({"output_label": label, "files": {}}))


def _writer(root: str, labels: list[str], rounds: int) -> None:
    config = _config(Path(root))
    for label in labels:
        _complete(config, label)
        for _ in range(rounds):
            dataset.update_shared_files(config)
        merge_mapping(config.private_dir / "uid_mapping.csv",
                      {f"1.2.3.{label}.{i}": f"2.25.{i}" for i in range(50)})


def _reader(root: str, stop: object, errors: object) -> None:
    out = Path(root) / "out"
    mapping = Path(root) / "private" / "uid_mapping.csv"
    while not stop.is_set():  # type: ignore[attr-defined]
        try:
            for name in ("dataset_description.json", "participants.json"):
                p = out / name
                if p.exists():
                    json.loads(p.read_text(encoding="utf-8"))
            p = out / "participants.tsv"
            if p.exists():
                rows = list(csv.reader(io.StringIO(p.read_text()), delimiter="\t"))
                assert rows[0] == ["participant_id", "age"]
                assert all(len(r) == 2 and r[0].startswith("sub-p") for r in rows[1:])
            if mapping.exists():
                lines = mapping.read_text().splitlines()
                assert lines[0] == "id_old,id_new" and len(lines) % 50 == 1
        except FileNotFoundError:
            continue
        except Exception as exc:  # noqa: BLE001 - report any torn read
            errors.put(repr(exc))  # type: ignore[attr-defined]
            return


def test_shared_files_are_never_torn_under_contention(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    stop, errors = ctx.Event(), ctx.Queue()
    reader = ctx.Process(target=_reader, args=(str(tmp_path), stop, errors))
    reader.start()
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), LABELS[i::3], 8))
               for i in range(3)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
    stop.set()
    reader.join(30)
    assert [w.exitcode for w in writers] == [0, 0, 0]
    assert errors.empty(), errors.get()
    rows = (tmp_path / "out" / "participants.tsv").read_text().splitlines()
    assert rows[1:] == [f"sub-{label}\t30" for label in LABELS]
    assert len(read_mapping(tmp_path / "private" / "uid_mapping.csv")) == 50 * len(LABELS)
    assert not list((tmp_path / "out").glob(".bidsdeid-tmp-*"))
