"""Progress for long work: a live line on a terminal, plain log lines elsewhere.

On a terminal (``stderr.isatty()``) the current step is redrawn in place; under SLURM
or with output redirected, each step is one plain line so logs stay readable.
Messages never contain header values: only labels, stage names and counts.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

log = logging.getLogger("bidsdeid")


class Progress:
    """Report ``participant -> stage -> item i/n`` progress."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_len = 0
        self._last_time = 0.0
        self.prefix = ""

    def set_prefix(self, prefix: str) -> None:
        self.prefix = prefix

    def stage(self, name: str) -> None:
        """A new stage starts (always a log line)."""
        self._clear()
        log.info("%s%s", self._pfx(), name)

    def item(self, what: str, i: int, n: int) -> None:
        """Item ``i`` of ``n`` done within the current stage."""
        if not self.enabled:
            return
        text = f"{self._pfx()}{what} {i}/{n}"
        if self.tty:
            now = time.monotonic()
            if i < n and now - self._last_time < 0.1:
                return
            self._last_time = now
            pad = max(self._last_len - len(text), 0)
            self.stream.write("\r" + text + " " * pad)
            self.stream.flush()
            self._last_len = len(text)
            if i >= n:
                self._clear()
        elif i == n or i == 1 or (n >= 20 and i % max(n // 10, 1) == 0):
            log.info("%s", text)

    def _pfx(self) -> str:
        return f"[{self.prefix}] " if self.prefix else ""

    def _clear(self) -> None:
        if self.tty and self._last_len:
            self.stream.write("\r" + " " * self._last_len + "\r")
            self.stream.flush()
            self._last_len = 0


NULL_PROGRESS = Progress(enabled=False)
