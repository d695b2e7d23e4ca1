"""Atomic file writes: write to a temporary name in the same folder, then rename.

A crash (even SIGKILL) therefore never leaves a half-written file under its final
name. Temporary names start with ``.bidsdeid-tmp-`` so a rerun can find and remove
strays (:func:`remove_stray_temporaries`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

TMP_PREFIX = ".bidsdeid-tmp-"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", *, perms: int | None = None,
                encoding: str | None = None, durable: bool = True) -> Iterator[IO[Any]]:
    """Open ``path`` for writing under a temporary name; rename it into place on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    ``perms`` sets the file mode (e.g. ``0o600`` for secrets) before any byte is written.
    ``durable=False`` skips the fsyncs (the rename is still atomic): for scratch files
    such as the staging area, which a crashed run rebuilds from scratch anyway.
    """
    if "w" not in mode:
        raise ValueError("atomic_open is for writing")
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix="-" + final.name[:40], dir=final.parent)
    tmp_path = Path(tmp)
    try:
        os.fchmod(fd, perms if perms is not None else 0o666 & ~_umask())
        if "b" in mode:
            fh: IO[Any] = os.fdopen(fd, mode)
        else:
            fh = os.fdopen(fd, mode, encoding=encoding or "utf-8", newline="")
        with fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp_path, final)
        if durable:
            _fsync_dir(final.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


_UMASK: int | None = None


def _umask() -> int:
    global _UMASK
    if _UMASK is None:
        current = os.umask(0)
        os.umask(current)
        _UMASK = current
    return _UMASK


def write_bytes(path: str | os.PathLike[str], data: bytes, *, perms: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb", perms=perms) as fh:
        fh.write(data)


def write_text(path: str | os.PathLike[str], text: str, *, perms: int | None = None) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (newlines as given)."""
    write_bytes(path, text.encode("utf-8"), perms=perms)


def dumps_json(obj: Any) -> str:
    """The one JSON style of bidsdeid outputs: sorted keys, 2-space indent, final newline.

    Sorted keys make outputs byte-identical between runs.
    """
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any, *, perms: int | None = None) -> None:
    """Write ``obj`` as JSON (see :func:`dumps_json`) atomically."""
    write_text(path, dumps_json(obj), perms=perms)


def copy_file(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
              perms: int | None = None) -> None:
    """Copy ``src`` to ``dst`` atomically (works across file systems)."""
    with open(src, "rb") as fin, atomic_open(dst, "wb", perms=perms) as fout:
        shutil.copyfileobj(fin, fout, length=1 << 20)


def remove_stray_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove temporary files a killed run left under ``folder``; return what was removed."""
    removed: list[Path] = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            if name.startswith(TMP_PREFIX):
                p = Path(dirpath) / name
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed.append(p)
    return removed
