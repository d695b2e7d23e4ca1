"""One participant per SLURM array task, then the group level (scripts/bidsdeid-slurm.sh).

The real test starts a one-node SLURM cluster on this machine
(scripts/slurm-local-cluster.sh), submits an array over five participants (one bad on
purpose, one cancelled before it runs), waits for the array and the group job, and
checks that OUTPUT_DIR is byte for byte what a plain local run of the same participants
makes, and that the failed and the cancelled participant are named in the group report
and make the group job exit 1. The script logic (participant list, quoting, Apptainer
command line, scratch clean-up) is checked without a cluster through stand-in
sbatch/scontrol/apptainer commands.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tree_digest
from ops_support import REPO, make_study

from bidsdeid.privacy.keys import KEY_FILE_NAME, ProjectKey

SUBMIT = REPO / "scripts" / "bidsdeid-slurm.sh"
SBATCH = REPO / "scripts" / "bidsdeid.sbatch"
CLUSTER = REPO / "scripts" / "slurm-local-cluster.sh"
BIDSDEID_BIN = Path(sys.executable).parent / "bidsdeid"


# -- the scripts' logic, with stand-in commands ----------------------------------------------
def _stand_ins(bin_dir: Path, record: Path) -> dict[str, str]:
    """sbatch, scontrol and apptainer that record their arguments (one JSON per line)."""
    bin_dir.mkdir()
    recorder = (f"#!{sys.executable}\nimport json, os, sys\n"
                f"with open({str(record)!r}, 'a') as fh:\n"
                "    fh.write(json.dumps({'cmd': os.path.basename(sys.argv[0]), "
                "'argv': sys.argv[1:], 'env': {k: v for k, v in os.environ.items() "
                "if k.startswith('BIDSDEID_')}}) + '\\n')\n")
    scripts = {
        "sbatch": recorder + "n = open(%r).read().count('\"cmd\": \"sbatch\"')\n"
                             "print(f'{100 + n};cluster')\n" % str(record),
        "scontrol": recorder + "print('MaxArraySize            = 1001')\n",
        "apptainer": recorder + "sys.exit(int(os.environ.get('FAKE_EXIT', '0')))\n",
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def _records(record: Path, cmd: str) -> list[dict]:
    return [r for r in map(json.loads, record.read_text().splitlines()) if r["cmd"] == cmd]


def test_submit_script_lists_participants_quotes_options_and_chains_the_group(
        tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    env = {**os.environ, **_stand_ins(tmp_path / "bin", record), "BIDSDEID_EXEC": "local",
           "BIDSDEID_BIN": "true", "SBATCH_ARGS": "--partition=short --cpus-per-task=1"}
    study = tmp_path / "study"
    for folder in ("sourcedata/sub-01", "sourcedata/sub-02", "sub-03", "sub-x_y"):
        (study / folder).mkdir(parents=True)
    # participants.tsv (written on Windows: CRLF) wins over the folders
    (study / "participants.tsv").write_bytes(b"participant_id\tage\r\nsub-02\t30\r\n"
                                             b"sub-01\t40\r\n")
    odd = "/data/my map.json"
    proc = subprocess.run([str(SUBMIT), str(study), str(tmp_path / "out"), "--mapping-file",
                           odd, "--relabel", "sequential", "-w", str(tmp_path / "scratch")],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"array 101 \(2 participants\) group 102; logs in .*\n", proc.stdout)
    array, group = _records(record, "sbatch")
    assert array["argv"][:2] == ["--parsable", "--partition=short"]
    assert "--array=1-2" in array["argv"] and array["argv"][-1] == str(SBATCH)
    listed = Path(array["env"]["BIDSDEID_LIST"]).read_text().split()
    assert listed == ["01", "02"]
    assert array["env"]["BIDSDEID_WORK_ROOT"] == str(tmp_path / "scratch")
    # the options survive the trip through the environment word for word
    words = subprocess.run(["bash", "-c", 'eval "a=($BIDSDEID_ARGS)"; printf "%s\\n" "${a[@]}"'],
                           env={**env, **array["env"]}, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert words == ["--mapping-file", odd, "--relabel", "sequential"]
    assert "--dependency=afterany:101" in group["argv"]
    group_script = Path(group["argv"][-1]).read_text()
    assert "group --private-dir" in group_script
    assert "--participant-label 01 02 --mapping-file /data/my\\ map.json" in group_script

    # no participants.tsv: the folders, without the invalid label
    (study / "participants.tsv").unlink()
    record.unlink()
    subprocess.run([str(SUBMIT), str(study), str(tmp_path / "out2")], env=env, check=True,
                   capture_output=True)
    array = _records(record, "sbatch")[0]
    assert Path(array["env"]["BIDSDEID_LIST"]).read_text().split() == ["01", "02", "03"]
    assert "--array=1-3" in array["argv"]


def test_task_runs_apptainer_clean_with_binds_and_removes_its_scratch(tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (tmp_path / "list.txt").write_text("01\n02\n")
    env = {**os.environ, **_stand_ins(tmp_path / "bin", record),
           "BIDSDEID_BIDS_DIR": "/data/in", "BIDSDEID_OUTPUT_DIR": str(tmp_path / "out"),
           "BIDSDEID_LIST": str(tmp_path / "list.txt"), "BIDSDEID_IMAGE": "/images/b.sif",
           "BIDSDEID_ARGS": "--sloppy", "BIDSDEID_WORK_ROOT": str(scratch),
           "SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_JOB_ID": "7", "SLURM_CPUS_PER_TASK": "3",
           "FAKE_EXIT": "3"}
    env.pop("BIDSDEID_EXEC", None)
    proc = subprocess.run(["bash", str(SBATCH)], env=env, capture_output=True, text=True)
    assert proc.returncode == 3 and "sub-02 exit code 3" in proc.stdout
    argv = _records(record, "apptainer")[0]["argv"]
    private = f"{tmp_path}/out_private"
    work = argv[argv.index("-w") + 1]
    assert argv[:3] == ["run", "--cleanenv", "--containall"]
    assert argv[3:11] == ["-B", "/data/in:/data/in:ro", "-B", str(tmp_path / "out"),
                          "-B", private, "-B", work]
    assert argv[11:] == ["/images/b.sif", "/data/in", str(tmp_path / "out"), "participant",
                         "--participant-label", "02", "--private-dir", private, "-w", work,
                         "--nprocs", "3", "--omp-nthreads", "3", "--sloppy"]
    assert work.startswith(f"{scratch}/bidsdeid-7-2-")
    assert list(scratch.iterdir()) == []  # removed, though the run failed


# -- a real cluster -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("a local SLURM cluster needs root")
    missing = [b for b in ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "munged")
               if shutil.which(b) is None]
    if missing:
        pytest.skip(f"SLURM not installed ({', '.join(missing)}): bash scripts/install.sh --dev")
    state = tmp_path_factory.mktemp("slurm-state")
    proc = subprocess.run([str(CLUSTER), "start", str(state)], capture_output=True, text=True)
    if proc.returncode != 0:
        if Path("/.dockerenv").exists():
            pytest.skip(f"no SLURM cluster inside this container: {proc.stderr.strip()}")
        pytest.fail(f"the local cluster did not start: {proc.stderr}")
    yield state
    subprocess.run([str(CLUSTER), "stop", str(state)], capture_output=True, text=True)


def _wait(job_ids: list[str]) -> None:
    """Poll squeue until the jobs are gone (accounting is off, so no sacct). The deadline
    only turns a broken scheduler into a failure instead of a hang."""
    deadline = time.monotonic() + 1800
    while subprocess.run(["squeue", "-h", "-j", ",".join(job_ids)], capture_output=True,
                         text=True).stdout.strip():
        assert time.monotonic() < deadline, "SLURM jobs never finished"
        time.sleep(0.5)


def _job_states(job_id: str) -> dict[str, tuple[str, str]]:
    """``{array task id or job id: (JobState, ExitCode)}`` from scontrol (kept 5 min)."""
    text = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True,
                          text=True, check=True).stdout
    out = {}
    for line in text.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        out[fields.get("ArrayTaskId", fields["JobId"])] = (fields["JobState"],
                                                            fields["ExitCode"])
    return out


PARTICIPANTS = {"bad": "bad", "ge": "ge", "gone": "ge", "nv": "t1", "xa": "xa30small"}


@pytest.mark.slow
@pytest.mark.needs_shared
@pytest.mark.xdist_group("slurm")
def test_array_then_group_equals_a_local_run_and_names_the_failures(
        cluster: Path, shared_data: Path, tmp_path: Path, templateflow_home: Path,
        deface_cache: Path) -> None:
    study = make_study(shared_data, tmp_path / "study", PARTICIPANTS)
    before = tree_digest(study)
    out, private = tmp_path / "slurm_out", tmp_path / "slurm_out_private"
    local_out, local_private = tmp_path / "local_out", tmp_path / "local_out_private"
    ProjectKey.load_or_create(private)  # one key for both runs: same pseudonyms and offsets
    local_private.mkdir(mode=0o700)
    shutil.copy2(private / KEY_FILE_NAME, local_private / KEY_FILE_NAME)
    scratch = tmp_path / "scratch"
    env = {**os.environ, "BIDSDEID_EXEC": "local", "BIDSDEID_BIN": str(BIDSDEID_BIN),
           "SBATCH_ARGS": "--cpus-per-task=1 --mem=2G --hold",
           "TEMPLATEFLOW_HOME": str(templateflow_home), "BIDSDEID_CACHE": str(deface_cache)}

    proc = subprocess.run([str(SUBMIT), str(study), str(out), "--sloppy", "-w", str(scratch)],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    m = re.match(r"array (\d+) \(5 participants\) group (\d+);", proc.stdout)
    assert m, proc.stdout
    array, group = m.groups()
    gone_task = str(sorted(PARTICIPANTS).index("gone") + 1)
    subprocess.run(["scancel", f"{array}_{gone_task}"], check=True)  # cancelled before it ran
    subprocess.run(["scontrol", "release", array, group], check=True, capture_output=True)
    _wait([array, group])

    tasks, group_state = _job_states(array), _job_states(group)[group]
    assert gone_task not in tasks  # a pending task cancelled leaves no record at all
    by_label = {label: tasks[str(i + 1)] for i, label in enumerate(sorted(PARTICIPANTS))
                if label != "gone"}
    assert by_label["bad"] == ("FAILED", "65:0")  # bad input data: exit 65
    assert all(by_label[lab] == ("COMPLETED", "0:0") for lab in ("ge", "nv", "xa")), by_label
    assert group_state == ("FAILED", "1:0")
    logs = private / "slurm"
    for i, label in enumerate(sorted(PARTICIPANTS)):
        if label != "gone":
            log = (logs / f"bidsdeid-{array}_{i + 1}.log").read_text()
            assert f"-> sub-{label} " in log and f"sub-{label} exit code" in log
    assert "bidsdeid group: exit code 1" in (logs / f"bidsdeid-group-{group}.log").read_text()
    assert list(scratch.iterdir()) == []  # every task removed its work dir

    # the failure and the cancelled task are in the group report, first
    summary = json.loads((private / "reports/group_summary.json").read_text())
    assert summary["participants_failed"] == ["sub-bad"]
    assert summary["participants_missing"] == ["sub-gone"]
    rows = [ln.split("\t") for ln in (private / "reports/group_qc.tsv").read_text().splitlines()]
    outcome = {r[0]: r[2] for r in rows[1:]}
    assert outcome == {"sub-bad": "failed", "sub-gone": "not run", "sub-ge": "published",
                       "sub-nv": "published", "sub-xa": "published"}
    assert {rows[1][0], rows[2][0]} == {"sub-bad", "sub-gone"}
    html = (private / "reports/group.html").read_text()
    assert "sub-gone" in html and "not run" in html and "sub-bad" in html

    # a plain local run of the same participants, same options, makes the same bytes
    done = [lab for lab in sorted(PARTICIPANTS) if lab != "gone"]
    common = ["--private-dir", str(local_private), "--participant-label", *done]
    local = subprocess.run([str(BIDSDEID_BIN), str(study), str(local_out), "participant",
                            *common, "--sloppy", "--nprocs", "1", "--omp-nthreads", "1"],
                           env=env, capture_output=True, text=True)
    assert local.returncode == 65 and "sub-bad FAILED" in local.stderr
    assert subprocess.run([str(BIDSDEID_BIN), str(study), str(local_out), "group", *common],
                          env=env, capture_output=True, text=True).returncode == 1
    slurm_tree, local_tree = tree_digest(out), tree_digest(local_out)
    assert any(k.endswith("sub-nv_T1w.nii.gz") for k in slurm_tree)
    assert slurm_tree == local_tree
    assert tree_digest(study) == before


@pytest.mark.needs_shared
def test_group_names_expected_participants_that_left_no_result(shared_data: Path,
                                                               tmp_path: Path) -> None:
    """What the SLURM group job relies on, without a cluster: --participant-label at the
    group level lists who must be done; one with no result at all is "not run"."""
    from bidsdeid.cli.run import main

    study = make_study(shared_data, tmp_path / "study", {"ge": "ge", "gone": "ge"})
    out = tmp_path / "out"
    assert main([str(study), str(out), "participant", "--participant-label", "ge",
                 "--deface-modalities", "none"]) == 0
    group = [str(study), str(out), "group", "--skip-bids-validation"]
    assert main([*group, "--participant-label", "ge"]) == 0
    assert main([*group, "--participant-label", "ge", "gone"]) == 1
    reports = tmp_path / "out_private" / "reports"
    summary = json.loads((reports / "group_summary.json").read_text())
    assert summary["participants_missing"] == ["sub-gone"]
    rows = [ln.split("\t") for ln in (reports / "group_qc.tsv").read_text().splitlines()]
    assert [r[:3] for r in rows[1:]] == [["sub-gone", "", "not run"],
                                         ["sub-ge", "sub-ge", "published"]]
    assert main(group) == 0  # without the list: only what ran is judged, as before
