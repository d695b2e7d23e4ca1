"""The real heads of ``../shared/data`` used by the deface tests and benchmark.

Not used at run time. DICOM T1w series are converted here with the dcm2niix binary of
the ``dcm2niix`` PyPI package directly (the convert stage is another module's job).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

NIFTI_HEADS = {
    "ds000031_T1w": "nifti/ds000031/ds000031_sub-01_ses-006_run-001_T1w.nii.gz",
    "niivue_T1w": "nifti/niivue_register/T1_head_ext2.nii.gz",
    "niivue_T2w": "nifti/niivue_register/T2w.nii.gz",
}
DICOM_T1W = {
    "philips_T1w": ("dicom/philips_elition_r571", "1301_*"),
    "xa30_T1w": ("dicom/siemens_xa30_enhanced/5_anat-T1w_acq-tfl", "*"),
}
INFANT = {
    "infant_T1w": "templates/infant_dcan/INFANT_MNI_T1_2mm.nii.gz",
    "infant_T2w": "templates/infant_dcan/INFANT_MNI_T2_2mm.nii.gz",
}


def dcm2niix_binary() -> str:
    exe = Path(sys.executable).parent / "dcm2niix"
    return str(exe) if exe.exists() else (shutil.which("dcm2niix") or "dcm2niix")


def convert_t1w(shared: Path, name: str, out_dir: Path) -> Path:
    """Convert one DICOM T1w series of ``../shared/data`` to ``out_dir/<name>.nii.gz``."""
    folder, pattern = DICOM_T1W[name]
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bidsdeid-dcm-") as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        for f in sorted((shared / folder).glob(pattern)):
            if f.is_file():
                (src / f.name).symlink_to(f)
        work = Path(tmp) / "out"
        work.mkdir()
        proc = subprocess.run([dcm2niix_binary(), "-z", "y", "-b", "n", "-f", "img", "-o",
                               str(work), str(src)], capture_output=True, text=True,
                              check=False)
        made = sorted(work.glob("*.nii.gz"), key=lambda p: p.stat().st_size)
        if proc.returncode != 0 or not made:
            raise RuntimeError(f"dcm2niix failed on {name} ({proc.returncode})")
        target = out_dir / f"{name}.nii.gz"
        shutil.copyfile(made[-1], target)
    return target
