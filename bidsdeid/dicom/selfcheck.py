"""Fail-closed self-check of every de-identified file (heudiconv's habit).

Before a de-identified file is written, its bytes (file meta and dataset, everything
but the pixel data) are searched for every identifier collected from the
participant's inputs (:class:`~bidsdeid.privacy.identifiers.Identifiers`: names and
their parts, IDs, dates, institution, device, free text, original labels) and for
every original UID the file held. A hit raises :class:`~bidsdeid.errors.LeakError`
(the message names the kind and source attribute, never the value).

The search is one pass, fast enough to run on every file:

* tokens made of one alphanumeric run (``SMITH``, ``20180918``) are looked up in the
  set of alphanumeric runs of the data; a number must also not be part of a longer
  number (``0.67093`` is not the serial ``67093``);
* tokens of several runs (``NIH FMRIF``, ``2018-09-18``) are searched with their own
  regular expression, only when their first run occurs;
* UIDs: every dotted number in the data, and every dot-bounded window of it, is
  looked up in the set of original UIDs.

Tokens equal to a value the tool itself writes (the participant label, the safe
series names) are not searched; the values of allow-listed technical attributes the
file keeps (model name, software version, coding scheme designators) are masked
before the search, since free text often repeats them; kinds that an option keeps on purpose (dates under
Full Dates, UIDs under Retain UIDs, institution and device under their Retain
options) are skipped, and so are tokens that came from an attribute the options keep
(EthnicGroup under Retain Patient Characteristics).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bidsdeid.dicom.values import is_public_uid
from bidsdeid.errors import LeakError

_RUN = re.compile(rb"[a-z0-9]+")
_DOTTED = re.compile(rb"[0-9]+(?:\.[0-9]+)+")
_WORD = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True)
class Hit:
    kind: str
    source: str
    text: bytes = b""  # lower-case token (never shown in messages)


def _maskable(value: str) -> bool:
    return sum(c.isalpha() for c in value) >= 3


class LeakChecker:
    """Search bytes for a participant's identifiers (see module docstring)."""

    def __init__(self, tokens: Iterable[tuple[str, str, str]], *,
                 allowed: Iterable[str] = (), skip_kinds: Iterable[str] = (),
                 kept_on_purpose: Callable[[str], bool] | None = None) -> None:
        """``kept_on_purpose(source keyword)``: the options keep that attribute (tokens
        that came from it are not leaks)."""
        allow = {a.lower() for a in allowed if a}
        skip = set(skip_kinds)
        self.words: dict[bytes, tuple[Hit, re.Pattern[bytes] | None]] = {}
        self.multi: dict[bytes, list[tuple[Hit, re.Pattern[bytes]]]] = {}
        self.uids: set[bytes] = set()
        self.uid_parts: set[int] = set()
        for kind, text, source in tokens:
            if kind in skip or text.lower() in allow:
                continue
            if kept_on_purpose is not None and source and kept_on_purpose(source):
                continue
            hit = Hit(kind, source, text.lower().encode("utf-8", "replace"))
            if kind == "uid":
                self._add_uid(text)
                continue
            runs = _WORD.findall(text)
            if not runs:
                continue
            raw = text.encode("utf-8", "replace")
            if len(runs) == 1 and runs[0] == text:
                low = raw.lower()
                numeric = None
                if text.isdigit():
                    numeric = re.compile(rb"(?<![0-9A-Za-z.])" + re.escape(raw)
                                         + rb"(?![0-9A-Za-z]|\.[0-9])")
                self.words.setdefault(low, (hit, numeric))
                continue
            pattern = re.compile(rb"(?<![A-Za-z0-9])" + re.escape(raw) + rb"(?![A-Za-z0-9])",
                                 re.IGNORECASE)
            self.multi.setdefault(runs[0].lower().encode(), []).append((hit, pattern))

    def _add_uid(self, uid: str) -> None:
        u = uid.strip().rstrip("\x00")
        if u.count(".") >= 1 and not is_public_uid(u):
            self.uids.add(u.encode("ascii", "replace"))
            self.uid_parts.add(u.count(".") + 1)

    def find(self, data: bytes, extra_uids: Iterable[str] = (),
             kept_text: Iterable[str] = ()) -> Hit | None:
        """The first identifier found in ``data``, or None.

        ``kept_text``: values of allow-listed technical attributes this file keeps on
        purpose (model name, software version, coil names, coding scheme designators).
        Their occurrences are masked before the token search (not the UID search; and
        only values with three letters or more, so a short code never hides anything):
        a name part that is also part of ``SIEMENS_RIS`` or ``syngo MR XA30`` is
        explained by that attribute, while the same token anywhere else is found.
        """
        masked = data
        for value in sorted({v for v in kept_text if _maskable(v)}, key=len, reverse=True):
            raw = value.encode("latin-1", "replace")
            masked = masked.replace(raw, b" " * len(raw))
        low = masked.lower()
        runs = set(_RUN.findall(low))
        for run in runs.intersection(self.words):
            hit, numeric = self.words[run]
            if numeric is None or numeric.search(masked):
                return hit
        for run in runs.intersection(self.multi):
            for hit, pattern in self.multi[run]:
                if pattern.search(masked):
                    return hit
        uids = self.uids
        parts = self.uid_parts
        extra = {u.strip().encode("ascii", "replace") for u in extra_uids
                 if u and not is_public_uid(u)}
        if extra:
            uids = uids | extra
            parts = parts | {u.count(b".") + 1 for u in extra}
        if not uids:
            return None
        for dotted in set(_DOTTED.findall(data)):
            if dotted in uids:
                return Hit("uid", "original UID")
            pieces = dotted.split(b".")
            n = len(pieces)
            for k in parts:
                if k >= n:
                    continue
                for i in range(n - k + 1):
                    if b".".join(pieces[i:i + k]) in uids:
                        return Hit("uid", "original UID")
        return None

    def check(self, data: bytes, where: str, extra_uids: Iterable[str] = (),
              kept_text: Iterable[str] = ()) -> None:
        """Raise :class:`LeakError` naming ``where`` if an identifier is in ``data``."""
        hit = self.find(data, extra_uids, kept_text)
        if hit is not None:
            raise LeakError(f"{where}: an identifier ({hit.kind}, from {hit.source or 'input'})"
                            " survived de-identification; the file was not written")
