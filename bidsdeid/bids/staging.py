"""Write a participant's shareable files into ``ctx.staging`` (a private mirror of
OUTPUT_DIR), atomically. Nothing here reaches OUTPUT_DIR before the leak scan."""

from __future__ import annotations

from pathlib import Path

from bidsdeid.bids import nifti
from bidsdeid.context import BidsImage, ParticipantContext
from bidsdeid.utils.atomic import copy_file, write_json, write_text


def sidecar_rel(image_rel: str) -> str:
    for ext in (".nii.gz", ".nii"):
        if image_rel.endswith(ext):
            return image_rel[: -len(ext)] + ".json"
    raise ValueError("not a NIfTI path")


def companion_rel(image_rel: str, extension: str) -> str:
    return sidecar_rel(image_rel)[: -len(".json")] + extension


def stage_nifti(ctx: ParticipantContext, src: Path, rel: str) -> None:
    """The image with cleared header text, no extensions, gzipped with mtime 0."""
    nifti.write_scrubbed(src, ctx.stage_path(rel))


def write_sidecar(ctx: ParticipantContext, image: BidsImage) -> None:
    write_json(ctx.stage_path(sidecar_rel(image.rel_path)), image.sidecar)


def stage_copy(ctx: ParticipantContext, src: Path, rel: str) -> None:
    copy_file(src, ctx.stage_path(rel))


def stage_text(ctx: ParticipantContext, rel: str, text: str) -> None:
    write_text(ctx.stage_path(rel), text)


def numbers_only(path: Path) -> bool:
    """True if a .bval/.bvec file holds only numbers (safe to copy as it is)."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return False
    for token in text.split():
        try:
            float(token)
        except ValueError:
            return False
    return True
