"""Helpers for the site tests (rules, id map, dry run, inventory, PACS)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom
from conftest import DICOM_SESSIONS
from pipeline_util import rewrite_dicom
from pydicom.dataset import Dataset
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.sequence import Sequence

PLANTED = {
    "PatientName": "Wobblethorp^Quintessa", "ReferringPhysicianName": "Dunkelmoor^Ezrabel",
    "OperatorsName": "Frimbleton^Oskarine", "InstitutionName": "Glimmerdale Infirmary",
    "StationName": "STATZORK7", "ImageComments": "scanned Wobblethorp today",
    "AccessionNumber": "ACC5501ZQ", "PatientID": "PIDWOB9931",
}
"""Made-up identifiers (not English words), planted into copies of the shared data."""
PLANTED_PRIVATE = ("PLANTED SITE CO", "PrivSiteTextGrumbleweed")
PLANTED_NESTED = "Snorkelbury request"
TOKENS = ["Wobblethorp", "Quintessa", "Dunkelmoor", "Ezrabel", "Frimbleton", "Oskarine",
          "Glimmerdale", "STATZORK7", "ACC5501ZQ", "PIDWOB9931", "Grumbleweed", "Snorkelbury"]


def plant(ds: Dataset) -> None:
    """Put :data:`PLANTED` (and a private block and a nested request) into ``ds``."""
    for keyword, value in PLANTED.items():
        setattr(ds, keyword, value)
    block = ds.private_block(0x0033, PLANTED_PRIVATE[0], create=True)
    block.add_new(0x01, "LO", PLANTED_PRIVATE[1])
    request = Dataset()
    request.RequestedProcedureDescription = PLANTED_NESTED
    ds.RequestAttributesSequence = Sequence([request])


def copy_session(shared: Path, name: str, dest: Path, *, planted: bool = False) -> Path:
    """A copy of one shared DICOM session (optionally with :data:`PLANTED` everywhere)."""
    shutil.copytree(shared / DICOM_SESSIONS[name], dest)
    if planted:
        assert rewrite_dicom(dest, plant) > 0
    return dest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dataset_bytes(path: Path) -> bytes:
    """The bytes of a DICOM file after its preamble and file meta (what C-STORE carries)."""
    with open(path, "rb") as fh:
        read_preamble(fh, False)
        _read_file_meta_info(fh)
        return fh.read()


def dicom_files(root: Path) -> list[Path]:
    """DICOM files under ``root`` (by content: names may have no extension)."""
    out = []
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        try:
            pydicom.dcmread(p, stop_before_pixels=True)
        except Exception:  # noqa: BLE001, S112 - README files and the like
            continue
        out.append(p)
    return out


def sop_uids(paths: list[Path]) -> list[str]:
    return sorted(str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                  for p in paths)


def python_module(*args: str | os.PathLike[str], **kwargs: object) -> subprocess.Popen[str]:
    """Start ``python -m ARGS`` (text pipes) for a command that runs in the background."""
    env = dict(os.environ)
    env.setdefault("NIPYPE_NO_ET", "1")
    return subprocess.Popen([sys.executable, "-m", *map(str, args)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            **kwargs)  # type: ignore[call-overload]


def all_elements(ds: Dataset, path: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...],
                                                                             object]]:
    """(path of tags and item numbers, value) of every element, at any depth."""
    for elem in ds:
        key = path + (int(elem.tag),)
        if elem.VR == "SQ":
            yield key, ("SQ", len(elem.value))
            for i, item in enumerate(elem.value):
                yield from all_elements(item, key + (i,))
        else:
            yield key, (elem.VR, elem.value)
