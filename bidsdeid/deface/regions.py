"""Regions of a template, computed from its head and brain masks (template space, RAS).

* face features (:func:`face_features`): the head in front of the brain's frontal pole
  and below the floor of the frontal lobe: lower eyelids, nose, lips. The coverage gate
  requires the removed region to cover them; it is defined independently of any face
  mask, so it also checks derived face masks.
* ears (:func:`ear_region`): everything lateral to the widest point of the brain (plus a
  margin) in the band of heights and front-back positions of the auricles, relative to
  the brain's bounding box. Used by ``--remove-ears``; never closer to the brain than the
  margin by construction.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from bidsdeid.deface.volume import Volume

FEATURES_FRONT_MARGIN_MM = 2.0
FEATURES_FRONT_DEPTH_MM = 15.0  # the frontal lobe's floor is read this far behind the pole
FEATURES_BELOW_FLOOR = 0.11  # of the brain's height: from the orbit roof to mid-eye
EAR_MARGIN_MM = 4.0
EAR_Y_BAND = (0.25, 0.62)  # fraction of the brain's back-to-front extent
EAR_Z_BAND = (0.02, 0.55)  # fraction of the brain's bottom-to-top extent


def _world_axes(vol: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World x, y, z of every voxel, as three arrays of the volume's shape (float32)."""
    i, j, k = (np.arange(s, dtype=np.float32) for s in vol.shape)
    a = vol.affine.astype(np.float32)
    i, j, k = i[:, None, None], j[None, :, None], k[None, None, :]
    return tuple(a[r, 0] * i + a[r, 1] * j + a[r, 2] * k + a[r, 3]  # type: ignore[return-value]
                 for r in range(3))


def face_features(vol: Volume, head: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Head voxels in front of the frontal pole and below the floor of the frontal lobe
    there (the roof of the orbits) by 11 % of the brain's height (about mid-eye, at any
    age): lower eyelids, nose, lips. Brows and forehead are not included (pydeface's mask
    leaves them, and an infant's forehead is large)."""
    pts = vol.world(np.argwhere(brain).astype(float))
    if len(pts) == 0:
        return np.zeros(vol.shape, bool)
    y_front = float(np.percentile(pts[:, 1], 99.9))
    front = pts[pts[:, 1] >= y_front - FEATURES_FRONT_DEPTH_MM]
    height = float(np.percentile(pts[:, 2], 99.9) - np.percentile(pts[:, 2], 0.1))
    z_floor = float(np.percentile(front[:, 2], 5)) - FEATURES_BELOW_FLOOR * height
    _, y, z = _world_axes(vol)
    return head & (y > y_front + FEATURES_FRONT_MARGIN_MM) & (z < z_floor)


def ear_region(vol: Volume, brain: np.ndarray) -> np.ndarray:
    """Lateral to the brain's widest point + margin, in the band where auricles sit."""
    pts = vol.world(np.argwhere(brain).astype(float))
    if len(pts) == 0:
        return np.zeros(vol.shape, bool)
    lo = np.percentile(pts, 0.1, axis=0)
    hi = np.percentile(pts, 99.9, axis=0)
    x_mid = (lo[0] + hi[0]) / 2
    half = (hi[0] - lo[0]) / 2
    x, y, z = _world_axes(vol)
    ly, lz = hi[1] - lo[1], hi[2] - lo[2]
    band = ((y >= lo[1] + EAR_Y_BAND[0] * ly) & (y <= lo[1] + EAR_Y_BAND[1] * ly)
            & (z >= lo[2] + EAR_Z_BAND[0] * lz) & (z <= lo[2] + EAR_Z_BAND[1] * lz))
    region = band & (np.abs(x - x_mid) > half + EAR_MARGIN_MM)
    # never within the margin of the brain, whatever its shape
    dist = ndimage.distance_transform_edt(~brain, sampling=vol.zooms)
    return region & (dist > EAR_MARGIN_MM)


def face_from_mask(mask: np.ndarray, face_value: object) -> np.ndarray:
    """A face mask as float 0..1 with 1 = face, whatever the polarity of the file.

    ``face_value`` 0 is pydeface's convention (1 everywhere except 0 over the face);
    ``"auto"`` (user files) takes the smaller side as the face.
    """
    m = np.clip(mask.astype(np.float32), 0, 1)
    if face_value == "auto":
        face_value = 0 if float(m.mean()) > 0.5 else 1
    return 1.0 - m if int(face_value) == 0 else m  # type: ignore[call-overload]
