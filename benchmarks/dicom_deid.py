#!/usr/bin/env python3
"""Speed and memory of bidsdeid's DICOM de-identification against dicognito.

Both tools get the same copies of ../shared/data/dicom in one run, split into classic
single-frame files (Philips Elition, GE MR750) and enhanced multi-frame files (Siemens
XA30, image objects only: its SR documents are quarantined by bidsdeid, so they are
left out of both runs). For each tool and set it prints wall time, files/s, MB/s and
the peak resident memory of the whole process tree (psutil, children included), and
bidsdeid's files/s as a multiple of dicognito's.

bidsdeid is timed as the pipeline runs it: stage 1 (``load_inputs``: index every
header and collect the identifiers, shown separately) and the --dicom-out stage
(read each file, apply the profile, self-check, write), in a fresh process.
dicognito runs as ``python -m dicognito SRC -o OUT``, its documented command line.
With ``--large MB`` one synthetic enhanced file of that size is added (its pixel
data is streamed, so memory must not grow with it); it is also de-identified by the
file engine alone in a fresh process (no stage 1), to show the engine's own memory.

bidsdeid runs each set twice. First with every series counted as converted to a
non-anatomical image (pixels streamed unchanged: the comparison with dicognito, which
does not touch pixels). Then "+ pixel defacing": the anatomical series (Philips 1301,
XA30 5, the large file) are defaced as --dicom-out defaces them, with a removed region
on their real grid (the anterior-inferior quarter of the field of view of dcm2niix's
image of the series, standing in for a registered face mask), so the figures show
what the pixel path (geometry, mask sampling, frame-by-frame patching) costs.

    python benchmarks/dicom_deid.py [--nprocs 2] [--repeat 1] [--large 600]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BIDSDEID_SHARED_DATA", REPO.parent / "shared" / "data"))
SETS = {
    "classic": ["dicom/philips_elition_r571", "dicom/ge_mr750_fmri"],
    "enhanced": ["dicom/siemens_xa30_enhanced"],
}


def _is_image(path: Path) -> bool:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # noqa: BLE001 - README files and the like
        return False
    return not str(ds.SOPClassUID).startswith("1.2.840.10008.5.1.4.1.1.88")


def prepare(root: Path, large_mb: int) -> dict[str, tuple[Path, int, int]]:
    """Copy each set to ``root/<set>/sourcedata/sub-<session>/`` (one participant per
    scanner session): {set: (BIDS dir, files, bytes)}."""
    out = {}
    for name, folders in SETS.items():
        n = size = 0
        for i, folder in enumerate(folders, 1):
            dest = root / name / "sourcedata" / f"sub-{name}{i}"
            for p in sorted((SHARED / folder).rglob("*")):
                if p.is_file() and _is_image(p):
                    target = dest / p.relative_to(SHARED / folder)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(p, target)
                    n, size = n + 1, size + p.stat().st_size
        out[name] = (root / name, n, size)
    if large_mb:
        dest = root / "large" / "sourcedata" / "sub-large1"
        path = _large_file(dest / "big.dcm", large_mb)
        out["large"] = (root / "large", 1, path.stat().st_size)
    return out


def _large_file(path: Path, mb: int) -> Path:
    """One enhanced MR file whose pixel data is ``mb`` MB (frames of the XA30 T1w)."""
    import pydicom

    src = min((SHARED / "dicom/siemens_xa30_enhanced").glob("5_*/*.dcm"))
    ds = pydicom.dcmread(src)
    have = int(ds.NumberOfFrames)
    frame = len(ds.PixelData) // have
    frames = max(1, mb * (1 << 20) // frame)
    per_frame = list(ds.PerFrameFunctionalGroupsSequence)
    ds.PerFrameFunctionalGroupsSequence = [per_frame[i % have] for i in range(frames)]
    ds.NumberOfFrames = frames
    ds.PixelData = (ds.PixelData * (frames // have + 1))[:frame * frames]
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)
    return path


def monitor(cmd: list[str], phase_file: Path | None = None
            ) -> tuple[float, dict[str, float], str]:
    """Run ``cmd``; return (seconds, peak RSS of the process tree in MB per phase, stdout).

    The phase is the content of ``phase_file`` (written by the bidsdeid worker), or
    "all"."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[str, int] = {}
    done = threading.Event()

    def poll() -> None:
        try:
            parent = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not done.is_set():
            try:
                procs = [parent, *parent.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs if p.is_running())
                phase = "all"
                if phase_file is not None and phase_file.exists():
                    phase = phase_file.read_text().strip() or "all"
                peaks[phase] = max(peaks.get(phase, 0), rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
            time.sleep(0.02)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    done.set()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed ({proc.returncode}):\n{err[-3000:]}")
    return seconds, {k: v / (1 << 20) for k, v in peaks.items()}, out


def run_bidsdeid(bids: Path, work: Path, nprocs: int, deface: bool = False
                 ) -> tuple[float, dict[str, float], dict]:
    work.mkdir(parents=True)
    phase = work / "phase"
    cmd = [sys.executable, __file__, "--worker", str(bids), str(phase), str(work), str(nprocs),
           str(int(deface))]
    seconds, peaks, out = monitor(cmd, phase)
    return seconds, peaks, json.loads(out.strip().splitlines()[-1])


def run_dicognito(src: Path, out: Path) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "dicognito", str(src), "-o", str(out), "--quiet"]
    seconds, peaks, _out = monitor(cmd)
    return seconds, max(peaks.values())


def engine_worker(src: str, dst: str, deface: bool = False) -> None:
    """In a fresh process: the file engine alone on one file (no stage 1); with
    ``deface``, its pixels defaced with a box on the XA30 T1w grid (its frames')."""
    from bidsdeid.dicom import facemask
    from bidsdeid.dicom.deidentify import Deidentifier
    from bidsdeid.dicom.profile import Profile
    from bidsdeid.dicom.selfcheck import LeakChecker
    from bidsdeid.dicom.writer import FileDeidentifier
    from bidsdeid.privacy.keys import ProjectKey

    key = ProjectKey(b"benchmark-key-0123456789abcdef")
    deid = Deidentifier(Profile(), key, key.date_offset("large1"), "large1")
    face = None
    if deface:
        t1w = sorted((SHARED / "dicom/siemens_xa30_enhanced").glob("5_*/*.dcm"))
        work = Path(dst).parent / "engine-mask"
        result = _box_deface(t1w, work, "sub-large1/anat/sub-large1_T1w.nii.gz")
        face = facemask.load(facemask.prepare([result], work / "face.npz", "zero"))
    t0 = time.perf_counter()
    report = FileDeidentifier(deid, LeakChecker([])).run(Path(src), Path(dst), "large file",
                                                         face=face)
    print(json.dumps({"deid": time.perf_counter() - t0, "load_inputs": 0.0, "files": 1,
                      "pixels_removed": report.pixels_removed}))


ANATOMICAL = (1301, 5)
"""Series numbers of the anatomical series of the shared sessions (and the large file)."""


def _box_deface(series_files: list[Path], work: Path, rel: str):  # type: ignore[no-untyped-def]
    """A DefaceResult for dcm2niix's image of ``series_files`` whose removed region is the
    anterior-inferior quarter of its field of view (a face-like region, no registration)."""
    import dcm2niix
    import nibabel as nib
    import numpy as np

    from bidsdeid.deface.result import DefaceResult

    src, out = work / "dicom", work / "nii"
    src.mkdir(parents=True)
    out.mkdir()
    for i, f in enumerate(series_files):
        (src / f"{i:05d}.dcm").symlink_to(f)
    subprocess.run([str(dcm2niix.bin), "-z", "y", "-b", "n", "-o", str(out), str(src)],
                   check=True, capture_output=True)
    nii = next(out.glob("*.nii.gz"))
    img = nib.load(nii)
    ijk = np.indices(img.shape[:3]).reshape(3, -1)
    ras = img.affine[:3, :3] @ ijk + img.affine[:3, 3:4]
    box = (ras[1] > ras[1].min() + 0.6 * np.ptp(ras[1])) & (
        ras[2] < ras[2].min() + 0.5 * np.ptp(ras[2]))
    removed = box.reshape(img.shape[:3])
    nib.save(nib.Nifti1Image(removed.astype(np.uint8), img.affine), work / "removed.nii.gz")
    stored = np.asanyarray(img.dataobj.get_unscaled()).copy()
    stored[removed] = 0
    nib.save(nib.Nifti1Image(stored, img.affine, img.header), work / "defaced.nii.gz")
    return DefaceResult(rel, "T1w", "anchor", nii, work / "defaced.nii.gz",
                        work / "removed.nii.gz", None, None)


def _as_converted(ctx, deface: bool, work: Path) -> None:  # type: ignore[no-untyped-def]
    """What the convert (and deface) stages would record: every series converted; with
    ``deface``, the anatomical ones as defaced anatomical images."""
    outputs = {s.series_uid: [f"{ctx.sub}/func/{ctx.sub}_task-s{i}_bold.nii.gz"]
               for i, s in enumerate(ctx.dicom.series)}
    ctx.results["series_outputs"] = outputs
    if not deface:
        return
    for s in ctx.dicom.series:
        if s.series_number not in ANATOMICAL:
            continue
        files = [f.path for f in s.files]
        if len(files) == 1 and files[0].name == "big.dcm":  # frames of the XA30 T1w
            files = sorted((SHARED / "dicom/siemens_xa30_enhanced").glob("5_*/*.dcm"))
        rel = f"{ctx.sub}/anat/{ctx.sub}_acq-s{s.series_number}_T1w.nii.gz"
        result = _box_deface(files, work / f"{ctx.sub}-{s.series_number}", rel)
        outputs[s.series_uid] = [rel]
        ctx.results.setdefault("deface", []).append(result)


def worker(bids: str, phase_file: str, work: str, nprocs: int, deface: bool) -> None:
    """In a fresh process, for each participant: load inputs (stage 1), then the
    --dicom-out stage."""
    from bidsdeid.bids.stage import load_inputs
    from bidsdeid.config import RunConfig
    from bidsdeid.dicom import stage
    from bidsdeid.participant import make_context
    from bidsdeid.privacy.keys import ProjectKey
    from bidsdeid.progress import NULL_PROGRESS

    root = Path(work)
    cfg = RunConfig(bids_dir=Path(bids), output_dir=root / "out", analysis_level="participant",
                    private_dir=root / "private", work_dir=root / "work", nprocs=nprocs,
                    dicom_out=True)
    key = ProjectKey(b"benchmark-key-0123456789abcdef")
    totals = {"load_inputs": 0.0, "deid": 0.0, "files": 0, "pixels_removed": 0}
    for sub in sorted((Path(bids) / "sourcedata").glob("sub-*")):
        ctx = make_context(cfg, key, sub.name[4:], NULL_PROGRESS)
        Path(phase_file).write_text("load")
        t0 = time.perf_counter()
        load_inputs(ctx)
        t1 = time.perf_counter()
        Path(phase_file).write_text("")
        _as_converted(ctx, deface, root / "masks")
        Path(phase_file).write_text("deid")
        t2 = time.perf_counter()
        stage.run(ctx)
        t3 = time.perf_counter()
        Path(phase_file).write_text("")
        assert not [p for p in ctx.problems if "not shared" in p.message and "pixels" in
                    p.message], [p.line() for p in ctx.problems]
        totals["load_inputs"] += t1 - t0
        totals["deid"] += t3 - t2
        totals["files"] += ctx.results["dicom_out"]["files"]
        totals["pixels_removed"] += sum(d["removed"] for d in
                                        ctx.results["dicom_out"]["defaced"].values())
    print(json.dumps(totals))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nprocs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool and set (best kept)")
    ap.add_argument("--large", type=int, default=0, metavar="MB",
                    help="add one synthetic enhanced file of this many MB")
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--engine-worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.engine_worker:
        engine_worker(args.engine_worker[0], args.engine_worker[1],
                      args.engine_worker[2] == "1")
        return 0
    if args.worker:
        worker(args.worker[0], args.worker[1], args.worker[2], int(args.worker[3]),
               args.worker[4] == "1")
        return 0
    if not (SHARED / "dicom").is_dir():
        print(f"benchmark needs {SHARED}/dicom", file=sys.stderr)
        return 66
    rows = []
    with tempfile.TemporaryDirectory(prefix="bidsdeid-bench-") as tmp:
        sets = prepare(Path(tmp) / "in", args.large)
        for name, (bids, n, size) in sets.items():
            mb = size / 1e6
            best_dg = best_bd = None
            for r in range(args.repeat):
                if name != "large":
                    dg = run_dicognito(bids / "sourcedata", Path(tmp) / f"dg-{name}-{r}")
                    best_dg = dg if best_dg is None or dg[0] < best_dg[0] else best_dg
                bd = run_bidsdeid(bids, Path(tmp) / f"bd-{name}-{r}", args.nprocs)
                assert bd[2]["files"] == n, (name, bd[2], n)
                best_bd = bd if best_bd is None or bd[2]["deid"] < best_bd[2]["deid"] else best_bd
            assert best_bd is not None
            if best_dg is not None:
                rows.append((name, n, mb, "dicognito (1 process)", best_dg[0], best_dg[1],
                             None, None, None))
            timing, peaks = best_bd[2], best_bd[1]
            ratio = (n / timing["deid"]) / (n / best_dg[0]) if best_dg else None
            rows.append((name, n, mb, f"bidsdeid (nprocs {args.nprocs})", timing["deid"],
                         peaks.get("deid", 0.0), ratio, timing["load_inputs"],
                         peaks.get("load", 0.0)))
            best_df = None
            for r in range(args.repeat):
                df = run_bidsdeid(bids, Path(tmp) / f"bf-{name}-{r}", args.nprocs, deface=True)
                assert df[2]["files"] == n and df[2]["pixels_removed"] > 0, (name, df[2])
                best_df = df if best_df is None or df[2]["deid"] < best_df[2]["deid"] \
                    else best_df
            assert best_df is not None
            rows.append((name, n, mb, "  + pixel defacing", best_df[2]["deid"],
                         best_df[1].get("deid", 0.0), None, None, None))
            if name == "large":
                src = next((bids / "sourcedata").rglob("*.dcm"))
                for deface in (False, True):
                    sec, peaks_e, out = monitor([sys.executable, __file__, "--engine-worker",
                                                 str(src), str(Path(tmp) / "engine.dcm"),
                                                 str(int(deface))])
                    result = json.loads(out.strip().splitlines()[-1])
                    assert not deface or result["pixels_removed"] > 0
                    rows.append((name, n, mb, "  + pixel defacing" if deface else
                                 "bidsdeid file engine", result["deid"],
                        max(peaks_e.values()), None, None, None))
    print(f"{'set':9} {'files':>5} {'MB':>6}  {'tool':22} {'seconds':>7} {'files/s':>8} "
          f"{'MB/s':>6} {'peak MB':>7} {'vs dicognito':>12} | {'stage 1 s':>9} {'peak MB':>7}")
    for name, n, mb, tool, sec, peak, ratio, load, load_peak in rows:
        print(f"{name:9} {n:5d} {mb:6.1f}  {tool:22} {sec:7.2f} {n / sec:8.1f} {mb / sec:6.1f} "
              f"{peak:7.0f} {(f'{ratio:.1f}x' if ratio else ''):>12} | "
              f"{(f'{load:.2f}' if load is not None else ''):>9} "
              f"{(f'{load_peak:.0f}' if load_peak is not None else ''):>7}")
    print("bidsdeid: seconds and peak MB of the --dicom-out stage (read, de-identify, "
          "self-check, write; the whole process tree, workers included); stage 1 (index "
          "every header and collect identifiers, not part of the comparison) after the bar. "
          "'+ pixel defacing': the same stage with the anatomical series defaced (Philips "
          "1301, XA30 5, the large file), removed region prepared in the stage.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
