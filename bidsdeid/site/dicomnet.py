"""Small pynetdicom helpers shared by the receiver and the sender.

* :class:`Destination`: ``AET@HOST:PORT`` (``--send-to``);
* :func:`storage_scp_contexts`: every storage SOP class with every transfer syntax,
  so a receiver never refuses an image for its encoding;
* :func:`quiet`: pynetdicom logs every association at INFO and failures at ERROR to
  the root logger; bidsdeid reports outcomes itself (one line, no header values), so
  pynetdicom's own lines go to bidsdeid's log file only.
"""

from __future__ import annotations

import logging
import re
import socket
from dataclasses import dataclass
from typing import Any

from bidsdeid.errors import UsageError

CALLING_AET = "BIDSDEID"
SUCCESS = 0x0000
WARNINGS = frozenset({0xB000, 0xB006, 0xB007})
"""C-STORE warning statuses: the instance was stored (with coercion or dropped
elements), so it counts as acknowledged."""
_DEST_RE = re.compile(r"^([^@\s\\]{1,16})@([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$")
_AET_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # no backslash, no control characters


@dataclass(frozen=True)
class Destination:
    aet: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Destination:
        m = _DEST_RE.match(text.strip())
        if not m or not 0 < int(m.group(3)) < 65536 or not m.group(1).strip():
            raise UsageError(f"{text!r} is not AET@HOST:PORT (AE title up to 16 characters, "
                             "port 1-65535)")
        return cls(m.group(1), m.group(2).strip("[]"), int(m.group(3)))

    def __str__(self) -> str:
        return f"{self.aet}@{self.host}:{self.port}"


def check_aet(aet: str) -> str:
    """An AE title (1-16 characters, no backslash or control characters)."""
    if not _AET_RE.match(aet) or not aet.strip():
        raise UsageError(f"{aet!r} is not an AE title (1 to 16 characters, no backslash)")
    return aet


def acknowledged(status: int | None) -> bool:
    return status == SUCCESS or status in WARNINGS


def storage_scp_contexts(ae: object) -> None:
    """Let ``ae`` accept every storage SOP class in every transfer syntax."""
    from pynetdicom import ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts

    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)  # type: ignore[attr-defined]


def no_delay(assoc: Any) -> None:
    """Switch Nagle's algorithm off on an association's socket: DIMSE messages are
    written in pieces, and Nagle's wait for the peer's delayed ACK would add up to
    ~40 ms to every C-STORE (halves the time per small file)."""
    sock = getattr(getattr(getattr(assoc, "dul", None), "socket", None), "socket", None)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def quiet() -> None:
    """Send pynetdicom's log lines to bidsdeid's handlers at DEBUG, not to the terminal."""
    logger = logging.getLogger("pynetdicom")
    logger.propagate = False
    if not any(isinstance(h, _ToBidsdeid) for h in logger.handlers):
        logger.addHandler(_ToBidsdeid())
    logger.setLevel(logging.INFO)


class _ToBidsdeid(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger("bidsdeid").debug("pynetdicom: %s", record.getMessage())
