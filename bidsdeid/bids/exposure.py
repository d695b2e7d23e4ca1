"""Heads that would be published with their face outside ``anat/``.

Only anatomical images are defaced (DESIGN.md section 5): field maps, EPI and ASL are
published as they are, as every BIDS defacing tool does, since at their resolution
(2 mm and coarser, EPI's distortion and dark face) a face is not recognisable. A
high-resolution, non-EPI head outside ``anat/`` is another matter: a 1 mm MPRAGE whose
description says "fieldmap", a 3D multi-echo gradient echo (QSM, SWI) that has the
shape of a field map, a mapping rule that matches too much, or a BIDS input filed under
``fmap/``. Such an image would be published with its face, unchecked, so it is left out
and reported (:func:`face_exposed`); mapped to an anatomical suffix it is defaced.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from nibabel.loadsave import load as load_image

FACE_VOXEL_MM = 1.6
"""Voxels at most this big on every side show a face that can be recognised (a 1.6 mm
T1w head does; field maps are 2 to 3.5 mm)."""
HEAD_FOV_MM = 100.0
"""A field of view at least this wide on two axes holds a face (not a thin slab)."""
TIME_SERIES_SUFFIXES = frozenset({"bold", "dwi", "cbv", "phase", "asl"})
"""BIDS suffixes of echo-planar time series: one of them with two volumes or more is
taken for EPI (BIDS inputs carry no DICOM to tell)."""
_EPI_FIELDS = ("EffectiveEchoSpacing", "TotalReadoutTime", "MultibandAccelerationFactor")


def sidecar_says_epi(suffix: str, meta: dict[str, object], volumes: int) -> bool:
    """Whether a BIDS input is echo-planar, as far as its sidecar and shape tell: EPI
    readout fields, an EPI sequence type, or a time series of an EPI suffix. A 1 mm T1w
    copied to ``func/sub-01_task-rest_bold.nii.gz`` (one volume, its own sidecar) is not."""
    if any(key in meta for key in _EPI_FIELDS):
        return True
    words = " ".join(str(meta.get(key, "")) for key in ("PulseSequenceType",
                                                         "ScanningSequence")).upper()
    if "EPI" in words or "ECHO PLANAR" in words or "EP" in words.replace("_", " ").split():
        return True
    return suffix in TIME_SERIES_SUFFIXES and volumes >= 2


def volumes_of(path: Path) -> int:
    """Volumes of a NIfTI image (header only; 1 when it cannot be read)."""
    try:
        shape = load_image(str(path)).header.get_data_shape()
    except Exception:  # noqa: BLE001 - an unreadable image fails elsewhere, with a reason
        return 1
    return int(np.prod(shape[3:])) if len(shape) > 3 else 1


def face_exposed(path: Path, datatype: str, *, echo_planar: bool) -> str | None:
    """Why the image at ``path`` (NIfTI, header read only) would publish a face without
    defacing, or None. Anatomical images are defaced and EPI is exempt."""
    if datatype == "anat" or echo_planar:
        return None
    try:
        header = load_image(str(path)).header
        shape = header.get_data_shape()[:3]
        zooms = header.get_zooms()[:3]
    except Exception:  # noqa: BLE001 - an unreadable image fails elsewhere, with a reason
        return None
    if len(shape) < 3 or len(zooms) < 3:
        return None
    voxels = np.abs(np.asarray(zooms, float))
    fov = voxels * np.asarray(shape, float)
    if voxels.max() <= FACE_VOXEL_MM and int((fov >= HEAD_FOV_MM).sum()) >= 2:
        return (f"a {voxels.max():.1f} mm head image outside anat/ would be published with "
                "its face, since only anatomical images are defaced")
    return None
