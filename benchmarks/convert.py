"""Benchmark: ``bidsdeid ... participant --deface-modalities none`` against plain dcm2niix.

Both run on the same DICOM session (copied to a temp dir), one after the other, in one
invocation. Wall time and peak memory (RSS of the process and all its children,
sampled every 20 ms with psutil) are measured for each; bidsdeid's own stage times come
from its log. The target (issue 3): bidsdeid within 1.5x of dcm2niix plus the header
de-identification time (reading every header and collecting identifiers, and the
leak scan), peak memory under 1 GB.

    python benchmarks/convert.py [--session ../shared/data/dicom/philips_elition_r571]
                                 [--nprocs 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SESSION = REPO.parent / "shared" / "data" / "dicom" / "philips_elition_r571"
_STAGE_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO \[sub-\w+\] (.+)$")
_STAGES = ("load inputs", "assign labels", "convert DICOM", "copy BIDS inputs", "deface",
           "de-identify DICOM", "write tables", "QC reports", "leak scan", "publish")


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB of the process tree, exit code)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss
                                             for c in ps.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    return time.monotonic() - start, peak / 2**20, proc.returncode


def stage_times(private: Path) -> dict[str, float]:
    logs = sorted(private.glob("logs/*/bidsdeid.log"))
    marks: list[tuple[str, dt.datetime]] = []
    for line in logs[-1].read_text().splitlines():
        m = _STAGE_RE.match(line)
        if m and m.group(2) in _STAGES:
            marks.append((m.group(2), dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")))
        elif marks and " complete (" in line:
            when = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            marks.append(("end", when))
    return {name: (marks[i + 1][1] - when).total_seconds()
            for i, (name, when) in enumerate(marks[:-1])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--session", type=Path, default=DEFAULT_SESSION)
    ap.add_argument("--nprocs", type=int, default=2)
    args = ap.parse_args()
    if not args.session.is_dir():
        print(f"session not found: {args.session}", file=sys.stderr)
        return 66
    import dcm2niix

    with tempfile.TemporaryDirectory(prefix="bidsdeid-bench-") as tmp:
        root = Path(tmp)
        src = root / "study" / "sourcedata" / "sub-bench"
        shutil.copytree(args.session, src)
        n_files = sum(1 for p in src.rglob("*") if p.is_file())
        size_mb = sum(p.stat().st_size for p in src.rglob("*") if p.is_file()) / 2**20
        (root / "plain").mkdir()
        # warm the page cache once so neither run pays for the first read
        measure([dcm2niix.bin, "-z", "n", "-o", str(root / "plain"), str(src)])
        shutil.rmtree(root / "plain")
        results = {}
        for name, z in (("dcm2niix -z y (gzip, as BIDS)", "y"), ("dcm2niix -z n", "n")):
            out = root / f"plain-{z}"
            out.mkdir()
            results[name] = measure([dcm2niix.bin, "-z", z, "-o", str(out), str(src)])
        env = dict(os.environ, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS="1", NIPYPE_NO_ET="1")
        cmd = [sys.executable, "-m", "bidsdeid", str(root / "study"), str(root / "out"),
               "participant", "--deface-modalities", "none", "--nprocs", str(args.nprocs), "-v"]
        results["bidsdeid participant"] = measure(cmd, env)
        stages = stage_times(root / "out_private")
    print(f"session: {args.session.name} ({n_files} files, {size_mb:.0f} MB), "
          f"--nprocs {args.nprocs}")
    print(f"{'run':34s} {'wall s':>8s} {'peak MB':>8s} {'exit':>5s}")
    for name, (wall, peak, code) in results.items():
        print(f"{name:34s} {wall:8.2f} {peak:8.0f} {code:5d}")
    print("\nbidsdeid stages (s): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    d2n = results["dcm2niix -z y (gzip, as BIDS)"][0]
    ours, peak = results["bidsdeid participant"][0], results["bidsdeid participant"][1]
    header = stages.get("load inputs", 0.0) + stages.get("leak scan", 0.0)
    budget = 1.5 * d2n + header
    print(f"\nratio bidsdeid / dcm2niix (gzip): {ours / d2n:.1f}x")
    print(f"header de-identification time (read headers + collect identifiers + leak scan): "
          f"{header:.2f} s")
    print(f"target 1.5 x dcm2niix + header time = {budget:.2f} s: "
          f"{'MET' if ours <= budget else 'NOT MET'} (bidsdeid {ours:.2f} s, "
          f"{ours - budget:+.2f} s)")
    qc = stages.get("QC reports", 0.0)
    print(f"  without the QC stage (renders of the published anatomical images, which "
          f"dcm2niix does not make; {qc:.2f} s): {ours - qc:.2f} s: "
          f"{'MET' if ours - qc <= budget else 'NOT MET'} ({ours - qc - budget:+.2f} s)")
    print(f"peak memory {peak:.0f} MB: {'MET' if peak < 1024 else 'NOT MET'} (target < 1024 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
