#!/usr/bin/env python3
"""Deface benchmark: wall time, CPU time and peak memory per real head, 2 threads.

Each image runs in a fresh process (peak RSS is per image, and the ~2 s ``import ants``
is counted once, outside the timing, like in a participant run where it is paid once).
Timed: read the staged .nii.gz, pick + load the template, register, build the masks,
gates, write the defaced .nii.gz and the mask. Co-registration of a second modality (the
niivue T2w to its T1w) is timed on its own.

    .venv/bin/python benchmarks/deface.py            # table
    .venv/bin/python benchmarks/deface.py --sloppy   # the test preset
    .venv/bin/python benchmarks/deface.py --calibrate  # + broken registrations' similarity

Targets: <= 10 s for a 1 mm T1w including I/O, <= 1.5 GB peak; second modality <= 5 s.
Registration itself uses one ITK thread (multi-threaded ANTs does not repeat bit for bit,
see bidsdeid/deface/backend.py); cpu_s is the time the image would take on an idle core.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BIDSDEID_SHARED_DATA", REPO.parent / "shared" / "data"))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def one(name: str, path: str, age: float | None, sloppy: bool, calibrate: bool,
        t2w: str | None) -> dict[str, object]:
    """Deface one head in this process (called in a child process)."""
    import numpy as np

    from bidsdeid.deface import backend, library, register, registry, session

    backend.ants()
    base = _peak_mb()
    out_dir = Path(tempfile.mkdtemp(prefix="bidsdeid-bench-"))
    cpu0 = _cpu()
    t0 = time.perf_counter()
    im = session.load_image(f"{name}.nii.gz", "T1w", Path(path))
    images = [im]
    anchor, contrast = session.choose_anchor(images, age)
    choice = registry.select(registry.load_registry(), age, contrast)
    tpl = library.load(choice)
    t_load = time.perf_counter()
    outcomes = session.deface_session(images, tpl, anchor, sloppy=sloppy)
    out = outcomes[0]
    out.image.nifti.write(out_dir / "defaced.nii.gz", out.defaced)
    from bidsdeid.deface.nifti_io import write_mask

    write_mask(out_dir / "mask.nii.gz", out.removed, out.image.nifti)
    total = time.perf_counter() - t0
    cpu = _cpu() - cpu0
    row: dict[str, object] = {
        "image": name, "shape": "x".join(map(str, im.nifti.shape)),
        "mm": round(float(im.volume.zooms.mean()), 2), "template": choice.id,
        "seconds": round(total, 2), "cpu_s": round(cpu, 2),
        "template_load_s": round(t_load - t0, 2),
        "peak_mb": round(_peak_mb(), 0), "peak_above_import_mb": round(_peak_mb() - base, 0),
        "similarity": out.metrics["similarity"], "passed": out.passed,
        "removed_ml": out.metrics["removed_ml"],
        "brain_distance_mm": out.metrics["brain_distance_mm"],
    }
    if t2w:
        second = session.load_image("t2w.nii.gz", "T2w", Path(t2w))
        t1, c1 = time.perf_counter(), _cpu()
        rigid = register.register(anchor.volume, second.volume, kind="Rigid", sloppy=sloppy,
                                  extra_candidates=[np.eye(4)])
        row["coreg_s"] = round(time.perf_counter() - t1, 2)
        row["coreg_cpu_s"] = round(_cpu() - c1, 2)
        row["coreg_similarity"] = round(rigid.similarity, 4)
    if calibrate:
        from bidsdeid.deface.volume import matrix, rotation

        good = register.register(anchor.volume, tpl.head, sloppy=sloppy)
        wrong = matrix(rotation(90, 0, 0), np.zeros(3))
        bad = register.register(anchor.volume, tpl.head, sloppy=sloppy,
                                init=good.matrix @ wrong)
        row["sim_90deg_start"] = round(bad.similarity, 4)
        other_age = 1.0 if (age is None or age > 24) else None
        other = library.load(registry.select(registry.load_registry(), other_age, contrast))
        wrong_tpl = register.register(anchor.volume, other.head, sloppy=sloppy)
        row["sim_wrong_age_template"] = round(wrong_tpl.similarity, 4)
    return row


def heads(tmp: Path) -> list[tuple[str, str, float | None, str | None]]:
    from bidsdeid.deface.heads import DICOM_T1W, INFANT, NIFTI_HEADS, convert_t1w

    rows: list[tuple[str, str, float | None, str | None]] = [
        ("ds000031_T1w", str(SHARED / NIFTI_HEADS["ds000031_T1w"]), None, None),
        ("niivue_T1w", str(SHARED / NIFTI_HEADS["niivue_T1w"]), None,
         str(SHARED / NIFTI_HEADS["niivue_T2w"])),
    ]
    for name in DICOM_T1W:
        rows.append((name, str(convert_t1w(SHARED, name, tmp)), None, None))
    if os.environ.get("TEMPLATEFLOW_HOME"):
        rows.append(("infant_T2w", str(SHARED / INFANT["infant_T2w"]), 1.0, None))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sloppy", action="store_true")
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--one", nargs=4, metavar=("NAME", "PATH", "AGE", "T2W"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        name, path, age, t2w = args.one
        row = one(name, path, None if age == "-" else float(age), args.sloppy,
                  args.calibrate, None if t2w == "-" else t2w)
        print("ROW " + json.dumps(row))
        return 0
    if not SHARED.is_dir():
        print(f"benchmark data not found at {SHARED}", file=sys.stderr)
        return 66
    env = dict(os.environ, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS="2", OMP_NUM_THREADS="2",
               OPENBLAS_NUM_THREADS="2", NIPYPE_NO_ET="1")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bidsdeid-bench-") as tmp:
        for name, path, age, t2w in heads(Path(tmp)):
            cmd = [sys.executable, __file__, "--one", name, path,
                   "-" if age is None else str(age), t2w or "-"]
            cmd += ["--sloppy"] * args.sloppy + ["--calibrate"] * args.calibrate
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("ROW ")]
            if not line:
                print(f"{name}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(line[0][4:]))
    cols = ["image", "shape", "mm", "template", "seconds", "cpu_s", "peak_mb", "similarity",
            "passed", "removed_ml", "brain_distance_mm", "coreg_s", "coreg_cpu_s",
            "coreg_similarity"]
    if args.calibrate:
        cols += ["sim_90deg_start", "sim_wrong_age_template"]
    print(f"# bidsdeid deface benchmark ({'sloppy' if args.sloppy else 'default'} preset; "
          "2 threads for numpy/BLAS, 1 ITK thread (deterministic registration); seconds "
          "(wall) and cpu_s include reading and writing; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r.get(c, "")) for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
