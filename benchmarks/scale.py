#!/usr/bin/env python3
"""Scale benchmark: N = 1, 2, 4, 8 copies of a participant, one per SLURM array task.

Runs through the local one-node SLURM cluster (scripts/slurm-local-cluster.sh, as root)
with scripts/bidsdeid-slurm.sh and BIDSDEID_EXEC=local, or, where SLURM cannot run, a
pool running one bidsdeid process per participant with as many workers as the cluster
would have slots (the output says which).
Each task gets --cpus-per-task CPUs (default 1, so a 2-core machine runs two at once).

Prints, per N: the wall time of the whole array (submit to last task done), the mean
wall time of one participant (measured by each task around the bidsdeid call), the
array time per "wave" of tasks (N / slots, rounded up) and the group job's time. The
check: the per-participant time stays within 20 % of its value at N = 1, i.e. the total
grows linearly with N at a fixed number of slots (printed PASS/FAIL; exit 1 on FAIL).

    sudo .venv/bin/python benchmarks/scale.py                   # the niivue T1, defaced
    .venv/bin/python benchmarks/scale.py --pool --kind ge       # no SLURM; GE fMRI DICOM

The participant is a copy of a ../shared/data session (tests/ops_support.py kinds: t1 =
the niivue T1 head as BIDS NIfTI, defaced; ge = 150-file GE fMRI DICOM series).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from ops_support import make_study

SHARED = Path(os.environ.get("BIDSDEID_SHARED_DATA", REPO.parent / "shared" / "data"))
BIDSDEID = Path(sys.executable).parent / "bidsdeid"
CLUSTER = REPO / "scripts" / "slurm-local-cluster.sh"
SUBMIT = REPO / "scripts" / "bidsdeid-slurm.sh"
TOLERANCE = 0.20


def _squeue_empty(ids: list[str]) -> bool:
    out = subprocess.run(["squeue", "-h", "-j", ",".join(ids)], capture_output=True,
                         text=True).stdout
    return not out.strip()


def run_slurm(study: Path, labels: list[str], out: Path, cpus: int,
              extra: list[str]) -> tuple[float, list[float], float]:
    """Array wall time, per-task wall times (from the task logs), group job wall time."""
    env = {**os.environ, "BIDSDEID_EXEC": "local", "BIDSDEID_BIN": str(BIDSDEID),
           "SBATCH_ARGS": f"--cpus-per-task={cpus} --mem=3G"}
    t0 = time.monotonic()
    proc = subprocess.run([str(SUBMIT), str(study), str(out), "--participant-label", *labels,
                           *extra], env=env, capture_output=True, text=True, check=True)
    array, group = re.match(r"array (\d+) .* group (\d+);", proc.stdout).groups()
    while not _squeue_empty([array]):
        time.sleep(0.2)
    t_array = time.monotonic() - t0
    while not _squeue_empty([group]):
        time.sleep(0.2)
    t_group = time.monotonic() - t0 - t_array
    logs = (out.parent / f"{out.name}_private" / "slurm").glob(f"bidsdeid-{array}_*.log")
    per_task = []
    for log in logs:
        m = re.search(r"exit code (\d+) after ([\d.]+) s", log.read_text())
        if not m or m.group(1) != "0":
            raise SystemExit(f"{log.name}: the task failed; see the log")
        per_task.append(float(m.group(2)))
    return t_array, per_task, t_group


def run_pool(study: Path, labels: list[str], out: Path, cpus: int, slots: int,
             extra: list[str]) -> tuple[float, list[float], float]:
    """The same with a pool of ``slots`` workers, one bidsdeid process per participant."""
    def one(label: str) -> float:
        work = Path(tempfile.mkdtemp(prefix=f"bidsdeid-scale-{label}-"))
        t = time.monotonic()
        subprocess.run([str(BIDSDEID), str(study), str(out), "participant",
                        "--participant-label", label, "-w", str(work), "--nprocs", str(cpus),
                        "--omp-nthreads", str(cpus), *extra], check=True,
                       capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
        return time.monotonic() - t

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=slots) as pool:
        per_task = list(pool.map(one, labels))
    t_array = time.monotonic() - t0
    t = time.monotonic()
    subprocess.run([str(BIDSDEID), str(study), str(out), "group"], check=True,
                   capture_output=True)
    return t_array, per_task, time.monotonic() - t


def slurm_problem() -> str | None:
    if os.geteuid() != 0:
        return "not root"
    missing = [b for b in ("slurmctld", "slurmd", "sbatch", "munged") if not shutil.which(b)]
    return f"{', '.join(missing)} not installed" if missing else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--kind", default="t1", choices=["t1", "ge", "xa30small"])
    ap.add_argument("--cpus-per-task", type=int, default=1)
    ap.add_argument("--pool", action="store_true", help="a process pool even if SLURM works")
    ap.add_argument("--sloppy", action="store_true", help="fast registration preset")
    ap.add_argument("--no-warmup", action="store_true",
                    help="measure N=1 cold (no warm-up run first)")
    args = ap.parse_args(argv)
    if not (SHARED / "nifti").is_dir():
        print(f"real data not found at {SHARED} (set BIDSDEID_SHARED_DATA)", file=sys.stderr)
        return 66
    slots = max(1, (os.cpu_count() or 1) // args.cpus_per_task)
    extra = ["--sloppy"] if args.sloppy else []
    problem = None if args.pool else slurm_problem()
    mode = "process pool" if args.pool or problem else "SLURM (local one-node cluster)"
    root = Path(tempfile.mkdtemp(prefix="bidsdeid-scale-"))
    state = root / "slurm-state"
    try:
        labels_all = [f"s{i:03d}" for i in range(1, max(args.n) + 1)]
        study = make_study(SHARED, root / "study", {lab: args.kind for lab in labels_all})
        if mode.startswith("SLURM"):
            subprocess.run([str(CLUSTER), "start", str(state)], check=True)
        print(f"bidsdeid scale benchmark: {mode}"
              + (f" (SLURM not used: {problem})" if problem and not args.pool else ""))
        print(f"participant: {args.kind}{' --sloppy' if args.sloppy else ''}; "
              f"{args.cpus_per_task} CPU per task, {slots} task(s) at once "
              f"on {os.cpu_count()} CPUs")
        print(f"{'N':>3} {'total s':>8} {'per participant s':>18} {'total/N s':>10} "
              f"{'per wave s':>11} {'group s':>8}")
        if not args.no_warmup:  # a first run pays for cold disk caches and imports
            warm = labels_all[:1]
            if mode.startswith("SLURM"):
                run_slurm(study, warm, root / "warmup", args.cpus_per_task, extra)
            else:
                run_pool(study, warm, root / "warmup", args.cpus_per_task, slots, extra)
            print("(one warm-up participant run first, not counted)")
        rows = []
        for n in args.n:
            out = root / f"out{n}"
            if mode.startswith("SLURM"):
                total, per_task, group = run_slurm(study, labels_all[:n], out,
                                                   args.cpus_per_task, extra)
            else:
                total, per_task, group = run_pool(study, labels_all[:n], out,
                                                  args.cpus_per_task, slots, extra)
            per = statistics.mean(per_task)
            waves = math.ceil(n / slots)
            rows.append((n, total, per, waves))
            print(f"{n:>3} {total:>8.1f} {per:>18.1f} {total / n:>10.1f} "
                  f"{total / waves:>11.1f} {group:>8.1f}", flush=True)
        base = rows[0][2]
        worst = max(abs(per / base - 1) for _n, _t, per, _w in rows)
        ok = worst <= TOLERANCE
        print(f"check: per-participant time within {TOLERANCE:.0%} of N={rows[0][0]} for "
              f"every N (largest deviation {worst:.0%}): {'PASS' if ok else 'FAIL'}")
        wave_times = [t / w for _n, t, _p, w in rows]
        spread = max(wave_times) / min(wave_times) - 1
        print(f"       total / waves spread {spread:.0%} "
              f"(total grows linearly with N at {slots} slot(s))")
        return 0 if ok else 1
    finally:
        if state.exists():
            subprocess.run([str(CLUSTER), "stop", str(state)], check=False)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
