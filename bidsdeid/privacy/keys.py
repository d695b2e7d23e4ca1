"""The project key and everything derived from it.

The key is a random secret made on first use in ``PRIVATE_DIR/key`` (mode 0600).
Everything pseudonymous is an HMAC-SHA256 of the original value under the key, so:

* the same key gives the same UIDs, pseudonyms and date offsets on every rerun and
  on every SLURM task (no shared state needed);
* a different key changes all of them;
* without the key nothing can be reversed (the linkage lives in PRIVATE_DIR only).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from bidsdeid.errors import CannotCreateOutput, DataError
from bidsdeid.utils.atomic import write_text

KEY_FILE_NAME = "key"
_KEY_HEX_LEN = 64  # 32 random bytes
_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o/1/l: pseudonyms read aloud safely

# Dates shift back by 200 to 210 years (whole weeks, so weekdays survive) plus a
# time-of-day offset: any date up to 2125 lands at or before 1925 (BIDS recommends 1925
# or earlier for shifted dates) and intervals between sessions are kept exactly.
_MIN_SHIFT_DAYS = 200 * 365
_SHIFT_SPAN_WEEKS = 10 * 52


@dataclass(frozen=True)
class DateOffset:
    """A per-subject shift: add ``delta`` to every date, date-time and time."""

    delta: dt.timedelta

    @property
    def days(self) -> int:
        return self.delta.days

    def apply(self, value: dt.datetime) -> dt.datetime:
        return value + self.delta


class ProjectKey:
    """The secret of a project (a site); see the module docstring."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("key too short")
        self._secret = secret

    # -- persistence ---------------------------------------------------------------
    @classmethod
    def load_or_create(cls, private_dir: str | os.PathLike[str]) -> ProjectKey:
        """Read ``PRIVATE_DIR/key``, or create it (0600, in a 0700 folder) on first use."""
        folder = Path(private_dir)
        path = folder / KEY_FILE_NAME
        if path.exists():
            return cls._read(path)
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(folder, 0o700)
            # O_EXCL: two SLURM tasks racing on a first run agree on one key.
            fd = os.open(path.with_name(".key-creating"), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                         0o600)
        except FileExistsError:
            return cls._wait_and_read(path)
        except OSError as exc:
            raise CannotCreateOutput(f"cannot create the key in {folder}: {exc.strerror}") from exc
        try:
            write_text(path, secrets.token_hex(_KEY_HEX_LEN // 2) + "\n", perms=0o600)
        finally:
            os.close(fd)
            os.unlink(path.with_name(".key-creating"))
        return cls._read(path)

    @classmethod
    def _wait_and_read(cls, path: Path) -> ProjectKey:
        import time

        for _ in range(200):
            if path.exists():
                return cls._read(path)
            time.sleep(0.05)
        raise CannotCreateOutput(
            f"another process is creating {path} and did not finish; "
            f"remove {path.with_name('.key-creating')} if no run is active")

    @classmethod
    def _read(cls, path: Path) -> ProjectKey:
        text = path.read_text(encoding="ascii", errors="replace").strip()
        try:
            secret = bytes.fromhex(text)
        except ValueError:
            secret = b""
        if len(secret) < 16:
            raise DataError(f"the key file {path} is damaged (expected {_KEY_HEX_LEN} hex digits)")
        return cls(secret)

    # -- derivations ---------------------------------------------------------------
    def digest(self, purpose: str, value: str) -> bytes:
        """HMAC-SHA256 of ``value`` for one ``purpose`` (purposes never collide)."""
        msg = purpose.encode("utf-8") + b"\x00" + value.encode("utf-8", "surrogateescape")
        return hmac.new(self._secret, msg, hashlib.sha256).digest()

    @property
    def fingerprint(self) -> str:
        """A short public name of the key, for audits and configs (not the secret)."""
        return self.digest("fingerprint", "").hex()[:12]

    def uid(self, original: str) -> str:
        """Map a DICOM UID to ``2.25.<int>``: keyed, repeatable, one-to-one in practice.

        128 bits of the HMAC give a UUID-sized integer (PS3.5 B.2), so the result is at
        most 44 characters and collisions are as unlikely as for random UUIDs.
        """
        number = int.from_bytes(self.digest("uid", original.strip().rstrip("\x00"))[:16], "big")
        return f"2.25.{number}"

    def date_offset(self, subject: str) -> DateOffset:
        """The one date shift of a subject (identified by its original label)."""
        d = self.digest("date-offset", subject)
        weeks = int.from_bytes(d[:4], "big") % _SHIFT_SPAN_WEEKS
        seconds = int.from_bytes(d[4:8], "big") % 86400
        days = _MIN_SHIFT_DAYS + 7 * weeks
        # round the minimum up to a whole number of weeks
        days += (-days) % 7
        return DateOffset(dt.timedelta(days=-days, seconds=seconds))

    def pseudonym(self, kind: str, original: str, length: int = 8) -> str:
        """A keyed label (letters and digits, BIDS-safe) for ``original`` of ``kind``."""
        d = self.digest("pseudonym:" + kind, original)
        number = int.from_bytes(d, "big")
        chars = []
        for _ in range(length):
            number, rem = divmod(number, len(_ALPHABET))
            chars.append(_ALPHABET[rem])
        return "".join(chars)

    def token(self, purpose: str, original: str, length: int = 16) -> str:
        """A keyed hex token (e.g. for a site rule that hashes a value)."""
        return self.digest(purpose, original).hex()[:length]
