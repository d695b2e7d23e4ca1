"""QC time per anatomical image (renders + face check + metrics + reports) on the real
heads of ../shared/data, with 2 threads.

    .venv/bin/python benchmarks/qc.py [--repeat 3] [--threads 2]

Defacing is the geometric stand-in of the QC tests (tests/test_qc_support.py) until
the defacing stage lands; it is done once per head and not timed. Each timed run is
the QC stage (``bidsdeid.qc.stage.run``) on a participant holding that one image:
load, resample, render 2 x 5 views, both face checks, metrics, slices, PNGs, the
private and the shareable page and the JSON files. Prints one row per head and the
target (<= 5 s per image).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

TARGET_S = 5.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    shared = Path(os.environ.get("BIDSDEID_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not (shared / "nifti").is_dir():
        print(f"real data not found at {shared}", file=sys.stderr)
        return 66

    import nibabel as nib
    from test_qc_support import DICOM_T1W, NIFTI_HEADS, add_image, convert_dicom_t1w, make_ctx

    from bidsdeid.qc import stage

    rows = []
    with tempfile.TemporaryDirectory(prefix="bidsdeid-bench-qc-") as tmp:
        heads = {name: shared / rel for name, rel in NIFTI_HEADS.items()}
        for name in DICOM_T1W:
            heads[name] = convert_dicom_t1w(shared, name, Path(tmp) / "dicom")
        for name, head in heads.items():
            root = Path(tmp) / name
            ctx = make_ctx(root, "01")
            ctx.config.omp_nthreads = args.threads
            add_image(ctx, "T2w" if "T2w" in name else "T1w", head)
            times, cpu = [], []
            for _ in range(args.repeat):
                ctx.problems.clear()
                start, start_cpu = time.perf_counter(), time.process_time()
                stage.run(ctx)
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            img = nib.load(str(head))
            sizes = ctx.results["qc"]["reports"]
            rows.append((name, "x".join(map(str, img.shape[:3])),
                         "x".join(f"{z:.2g}" for z in img.header.get_zooms()[:3]),
                         min(times), statistics.median(times), statistics.median(cpu),
                         sizes["private"].stat().st_size / 1e6,
                         sizes["html"].stat().st_size / 1e6,
                         ctx.results["qc"]["images"]))
    load = os.getloadavg()[0]
    print(f"QC per anatomical image, {args.threads} threads, wall time best and median of "
          f"{args.repeat} runs, CPU time (all threads) median; {os.cpu_count()} CPUs, "
          f"load average {load:.1f} at the end (other work on the machine slows wall time)")
    print(f"{'head':<14} {'matrix':<12} {'voxel mm':<14} {'best s':>7} {'median s':>9} "
          f"{'cpu s':>6} {'private MB':>11} {'shared MB':>10}  status")
    for name, shape, zooms, best, med, cpu_s, priv, shared_mb, status in rows:
        print(f"{name:<14} {shape:<12} {zooms:<14} {best:7.2f} {med:9.2f} {cpu_s:6.2f} "
              f"{priv:11.2f} {shared_mb:10.2f}  {', '.join(status.values())}")
    worst = max(r[3] for r in rows)
    print(f"slowest image, best run: {worst:.2f} s; target <= {TARGET_S:.0f} s per image: "
          f"{'met' if worst <= TARGET_S else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
