#!/usr/bin/env python3
"""Derive the brain mask of the pydeface adult template, shipped as package data.

pydeface ships a head template (``mean_reg2mean.nii.gz``) and a face mask, but no
brain mask; the brain-protection gate needs one. This script makes it once, offline,
and writes ``templates/pydeface_desc-brain_mask.nii.gz`` (about 20 kB), which ships in
the package (``bidsdeid.registry``), so a user's clone needs no TemplateFlow download
and no ``../shared`` to deface adults.

How (antspyx with a fixed seed):

1. MNI152 2009 head (``--mni-head``; TemplateFlow
   ``tpl-MNI152NLin2009cAsym_res-01_T1w.nii.gz`` or the same template as
   ``../shared/data/templates/niivue_deface/MNI152_2009_SSW.nii.gz``) is registered to
   the pydeface head: affine then SyN (antspyx, mutual information), with pydeface's
   face region and the moving template's blank voxels masked out of the metric.
2. The MNI152 2009 brain mask (``--mni-brain``: TemplateFlow
   ``..._res-01_desc-brain_mask.nii.gz``, or by default nilearn's brain-extracted ICBM152
   2009a template thresholded at 20 % as ``nilearn.datasets.load_mni152_brain_mask``
   does; ``pip install nilearn`` to run this script) is warped through that transform
   (nearest neighbour), holes are filled, and it is dilated by ``--dilate-mm`` (2 mm by
   default): a slightly generous brain mask only makes the gate stricter.

Usage::

    .venv/bin/python scripts/derive_pydeface_brain_mask.py \
        --mni-head ../shared/data/templates/niivue_deface/MNI152_2009_SSW.nii.gz
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "templates" / "pydeface_desc-brain_mask.nii.gz"
PROVENANCE = REPO / "templates" / "pydeface_desc-brain_mask.json"


def _nilearn_brain_mask() -> Path:
    try:
        import nilearn
    except ImportError:
        sys.exit("derive_pydeface_brain_mask: give --mni-brain or `pip install nilearn` "
                 "(its ICBM152 2009a brain template is the default source)")
    import nilearn.datasets

    return Path(nilearn.datasets.__file__).parent / "data" / \
        "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mni-head", required=True, type=Path,
                    help="MNI152 2009 head template with skull and face (1 mm)")
    ap.add_argument("--mni-brain", type=Path, default=None,
                    help="MNI152 2009 brain mask or brain-extracted template, same space")
    ap.add_argument("--dilate-mm", type=float, default=2.0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    from importlib import resources

    import nibabel as nib
    import numpy as np
    from scipy import ndimage

    from bidsdeid.deface import backend
    from bidsdeid.utils.atomic import write_bytes, write_json

    ants = backend.ants()
    brain_src = args.mni_brain or _nilearn_brain_mask()
    head = Path(str(resources.files("pydeface").joinpath("data", "mean_reg2mean.nii.gz")))
    fixed = ants.image_read(str(head))
    moving = ants.image_read(str(args.mni_head))
    # the metric ignores pydeface's face region and the moving template's blank voxels:
    # MNI152_2009_SSW has no face, and SyN would otherwise pull the frontal lobes into
    # the orbits
    face = ants.image_read(str(head.with_name("facemask.nii.gz")))
    keep = fixed.new_image_like(((face.numpy() > 0.5) & (fixed.numpy() > 0)).astype("float32"))
    moving_mask = moving.new_image_like((moving.numpy() > 0).astype("float32"))
    reg = ants.registration(fixed, moving, type_of_transform="SyN", mask=keep,
                            moving_mask=moving_mask, mask_all_stages=True,
                            aff_iterations=(1000, 500, 250), aff_shrink_factors=(4, 2, 1),
                            aff_smoothing_sigmas=(2, 1, 0), reg_iterations=(60, 30, 0),
                            aff_random_sampling_rate=0.25)
    brain_img = ants.image_read(str(brain_src))
    arr = brain_img.numpy()
    brain_img = brain_img.new_image_like((arr > 0.2 * float(arr.max())).astype("float32"))
    warped = ants.apply_transforms(fixed, brain_img, reg["fwdtransforms"],
                                   interpolator="nearestNeighbor").numpy() > 0.5
    zooms = np.array(nib.load(str(head)).header.get_zooms()[:3], float)
    warped = ndimage.binary_fill_holes(warped)
    if args.dilate_mm > 0:
        outside = ndimage.distance_transform_edt(~warped, sampling=zooms)
        warped = outside <= args.dilate_mm
    ref = nib.load(str(head))
    out = nib.Nifti1Image(warped.astype(np.uint8), ref.affine)
    out.header.set_xyzt_units("mm")
    write_bytes(args.out, gzip.compress(out.to_bytes(), 9, mtime=0))
    write_json(PROVENANCE if args.out == OUT else args.out.with_suffix("").with_suffix(".json"), {
        "Description": "brain mask of the pydeface template mean_reg2mean.nii.gz "
                       "(pydeface 2.1.0), for the brain-protection gate",
        "Script": "scripts/derive_pydeface_brain_mask.py",
        "Sources": {
            "head_registered": args.mni_head.name,
            "brain_mask": brain_src.name,
            "registration": "antspyx SyN (affine 4/2/1 + SyN 60/30 at 4/2 mm), MI, "
                            "face region and blank voxels masked out",
        },
        "DilationMM": args.dilate_mm,
        "Voxels": int(warped.sum()),
        "VolumeML": round(float(warped.sum() * np.prod(zooms)) / 1000.0, 1),
        "SHA256": hashlib.sha256(args.out.read_bytes()).hexdigest(),
        "Licence": "derived from the ICBM 2009 templates (c) McConnell Brain Imaging Centre "
                   "(MNI copyright notice: free use with acknowledgement) and pydeface (MIT)",
    })
    print(f"wrote {args.out} ({int(warped.sum())} voxels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
