"""Vendor private hints, read from the ORIGINAL headers before anything is scrubbed.

Standard attributes come first everywhere; these are the fall-backs for what classic
(single-frame) DICOM of each vendor keeps only in private tags:

* diffusion b-value: Siemens ``(0019,xx0C)`` of ``SIEMENS MR HEADER``, GE
  ``(0043,xx39)`` of ``GEMS_PARM_01`` (first value, sometimes offset by 10^9),
  Philips ``(2001,xx03)`` of ``Philips Imaging DD 001``;
* Siemens protocol parameters from the ASCII ``MrPhoenixProtocol`` block that the CSA
  series header (classic) or the ``SIEMENS MR SDS 01`` sequence (XA enhanced) carries,
  e.g. ``sAsl.ulSuppressionMode`` (1 = no background suppression, 2+ = on).

Nothing here is written to the output; values only steer the series heuristic and
fill required BIDS fields that the standard attributes lack.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pydicom.dataset import Dataset

_PRIVATE_B_VALUE = (
    (0x0019, "SIEMENS MR HEADER", 0x0C),
    (0x0043, "GEMS_PARM_01", 0x39),
    (0x2001, "Philips Imaging DD 001", 0x03),
)

PHOENIX_KEYS = ("sAsl.ulSuppressionMode", "sAsl.ulMode", "lInvContrasts")
_PHOENIX_RE = re.compile(rb"(sAsl\.ulSuppressionMode|sAsl\.ulMode|lInvContrasts)\s*=\s*(-?\d+)")


def private_b_value(ds: Dataset) -> float | None:
    """The diffusion b-value from a vendor private tag, if one is present."""
    for group, creator, offset in _PRIVATE_B_VALUE:
        try:
            block = ds.private_block(group, creator)
            elem = block[offset]
        except (KeyError, ValueError):
            continue
        value = elem.value
        if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
            value = value[0] if len(value) else None
        if isinstance(value, bytes | bytearray):
            try:
                value = value.decode("ascii", "ignore").split("\\")[0]
            except (UnicodeDecodeError, AttributeError):
                continue
        try:
            b = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if group == 0x0043 and b >= 1e9:
            b = b % 1e9  # GE stores b + 10^9 on some releases
        if 0 <= b < 1e6:
            return b
    return None


def _private_blobs(ds: Dataset, depth: int = 0) -> Iterator[bytes]:
    """Byte values of private elements (and of private sequences, two levels deep)."""
    for elem in ds:
        if elem.VR == "SQ":
            if depth < 3 and (elem.tag.is_private or elem.keyword in (
                    "SharedFunctionalGroupsSequence",)):
                for item in elem.value:
                    yield from _private_blobs(item, depth + 1)
            continue
        if not elem.tag.is_private:
            continue
        value = elem.value
        if isinstance(value, bytes | bytearray) and len(value) > 64:
            yield bytes(value)
        elif isinstance(value, str) and len(value) > 64:
            yield value.encode("latin-1", "replace")


def siemens_protocol(ds: Dataset) -> dict[str, int]:
    """Selected integer parameters of the Siemens Phoenix protocol (empty if absent)."""
    manufacturer = str(ds.get("Manufacturer", "") or "").upper()
    if "SIEMENS" not in manufacturer:
        return {}
    found: dict[str, int] = {}
    for blob in _private_blobs(ds):
        if b"ASCCONV" not in blob and b"sAsl" not in blob and b"lInvContrasts" not in blob:
            continue
        for m in _PHOENIX_RE.finditer(blob):
            found.setdefault(m.group(1).decode(), int(m.group(2)))
        if found:
            break
    return found
