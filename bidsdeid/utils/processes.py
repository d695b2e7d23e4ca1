"""Worker processes: how to start them.

``fork`` is fast (no re-import, no pickled set-up) and safe while the parent runs one
thread; with more threads (a progress reporter, a library's pool) a forked child can
inherit a held lock and hang, so ``spawn`` is used then.
"""

from __future__ import annotations

import multiprocessing
import threading
from multiprocessing.context import BaseContext


def pool_context() -> BaseContext:
    """fork when this process has one thread (fast, safe), else spawn."""
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")
