"""Run dcm2niix (the binary of the ``dcm2niix`` PyPI package) on one series.

The ORIGINAL DICOM files of the series are symlinked under neutral names into a
private per-series folder of the work dir and converted with a neutral output name
(``-f series``): vendor private tags carry what BIDS needs (SliceTiming,
PhaseEncodingDirection, TotalReadoutTime), so dcm2niix must see them; its outputs are
scrubbed afterwards. ``-g i`` ignores any user defaults file, ``-z n`` leaves
compression to bidsdeid (reproducible gzip), ``-ba y`` keeps the least PHI.

Success is judged from the exit code and the files produced, never by searching the
log for "Error": every NIfTI must parse, and the image frames converted are counted
against the frames of the series (fewer means data were lost).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from nibabel.nifti1 import Nifti1Header

from bidsdeid.dicom.index import DicomSeries

# dcm2niix exit codes (nii_dicom_batch.h)
EXIT_CODES = {0: "success", 1: "unspecified error", 2: "no valid DICOM found",
              3: "version report", 4: "corrupt DICOM file", 5: "input folder invalid",
              6: "output folder invalid", 7: "output folder read-only",
              8: "some but not all images converted", 9: "rename error",
              10: "incomplete volumes found", 11: "nominal (nothing to do)"}
PARTIAL_CODES = {8, 10}
BASENAME = "series"
_POSTFIX_RE = re.compile(r"^(?:_e(?P<echo>\d+))?(?P<part>_ph|_real|_imaginary)?"
                         r"(?P<hz>_fieldmaphz)?$")


def binary() -> str:
    import dcm2niix

    return str(dcm2niix.bin)


@dataclass
class Output:
    """One image dcm2niix produced (in the private work dir)."""

    nii: Path
    sidecar: dict[str, Any]
    postfix: str  # what dcm2niix appended to the neutral name ("", "_e2", "_e1_ph", ...)
    shape: tuple[int, ...]
    bval: Path | None = None
    bvec: Path | None = None
    echo: int | None = None
    part: str = "mag"  # mag | phase | real | imag
    fieldmap_hz: bool = False
    understood: bool = True

    @property
    def frames(self) -> int:
        """2D image frames in the file (z * t * ...)."""
        return int(np.prod(self.shape[2:], dtype=np.int64)) if len(self.shape) > 2 else 1

    @property
    def volumes(self) -> int:
        return int(np.prod(self.shape[3:], dtype=np.int64)) if len(self.shape) > 3 else 1


@dataclass
class Conversion:
    """The result of converting one series."""

    workdir: Path
    returncode: int
    outputs: list[Output] = field(default_factory=list)
    failure: str | None = None  # PHI-free; set when nothing usable was produced
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None


def _shape(nii: Path) -> tuple[int, ...]:
    with open(nii, "rb") as fh:
        head = fh.read(352)
    hdr = Nifti1Header.from_fileobj(io.BytesIO(head), check=False)
    return tuple(int(d) for d in hdr.get_data_shape())


def _describe(path: Path, stem: str) -> Output:
    postfix = stem[len(BASENAME):]
    sidecar_path = path.with_suffix(".json")
    try:
        # strict=False: dcm2niix copies control characters of a description into the
        # JSON strings unescaped; strict parsing would lose the whole sidecar
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8", errors="replace"),
                             strict=False)
    except (OSError, json.JSONDecodeError):
        sidecar = {}
    out = Output(nii=path, sidecar=sidecar if isinstance(sidecar, dict) else {},
                 postfix=postfix, shape=_shape(path))
    for ext in ("bval", "bvec"):
        p = path.with_suffix("." + ext)
        if p.is_file():
            setattr(out, ext, p)
    m = _POSTFIX_RE.match(postfix)
    out.understood = m is not None
    image_type = {str(t).upper() for t in out.sidecar.get("ImageType", []) or []}
    echo = out.sidecar.get("EchoNumber")
    if m and m.group("echo"):
        out.echo = int(m.group("echo"))
    elif isinstance(echo, int):
        out.echo = echo
    if (m and m.group("part") == "_ph") or image_type & {"PHASE", "P"}:
        out.part = "phase"
    elif (m and m.group("part") == "_real") or "REAL" in image_type:
        out.part = "real"
    elif (m and m.group("part") == "_imaginary") or "IMAGINARY" in image_type:
        out.part = "imag"
    out.fieldmap_hz = bool(m and m.group("hz")) or bool(image_type & {"FIELDMAP", "B0MAP"})
    return out


def convert(series: DicomSeries, workdir: Path, expected_frames: int, *,
            mosaic: bool = False, timeout: float = 3600) -> Conversion:
    """Convert ``series`` into ``workdir/out`` (``workdir`` is private)."""
    start = time.monotonic()
    src, out = workdir / "in", workdir / "out"
    for d in (src, out):
        if d.exists():
            for p in d.iterdir():
                p.unlink()
        d.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(series.files, 1):
        os.symlink(os.path.abspath(f.path), src / f"{i:06d}.dcm")
    cmd = [binary(), "-g", "i", "-b", "y", "-ba", "y", "-z", "n", "-i", "n", "-v", "0",
           "-f", BASENAME, "-o", str(out), str(src)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False,
                              env={**os.environ, "HOME": str(workdir)})
    except subprocess.TimeoutExpired:
        return Conversion(workdir, -1, failure=f"dcm2niix did not finish in {timeout:.0f} s",
                          seconds=time.monotonic() - start)
    except OSError as exc:
        return Conversion(workdir, -1, failure=f"dcm2niix could not run ({exc.strerror})",
                          seconds=time.monotonic() - start)
    (workdir / "dcm2niix.log").write_bytes(proc.stdout + b"\n--- stderr ---\n" + proc.stderr)
    result = Conversion(workdir, proc.returncode)
    images = sorted(p for p in out.iterdir() if p.name.endswith(".nii"))
    for nii in images:
        try:
            result.outputs.append(_describe(nii, nii.name[:-4]))
        except Exception:  # noqa: BLE001 - a damaged output is a failure of this series
            result.warnings.append("dcm2niix wrote an image that cannot be read")
    result.seconds = time.monotonic() - start
    code = proc.returncode
    if code not in (0, *PARTIAL_CODES) or not result.outputs:
        what = EXIT_CODES.get(code, f"exit code {code}")
        result.failure = (f"dcm2niix failed ({what}, exit code {code})" if code
                          else "dcm2niix produced no image")
        return result
    if code in PARTIAL_CODES:
        result.warnings.append(f"dcm2niix reported: {EXIT_CODES[code]} (exit code {code})")
    if mosaic:
        got, want, unit = sum(o.volumes for o in result.outputs), expected_frames, "volumes"
    else:
        got, want, unit = sum(o.frames for o in result.outputs), expected_frames, "image frames"
    if got < want:
        result.warnings.append(f"dcm2niix converted {got} of {want} {unit}: data were lost")
    return result
