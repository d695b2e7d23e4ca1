"""Read a site YAML/JSON file and remember the line of every key, for clear errors.

:func:`read` returns the parsed data and a :class:`Locator` that turns a key path
(``("attributes", "PatientWeight")``) into ``line 4, attributes.PatientWeight``, so a
mistake in a rules file is reported as ``--rules FILE: line 4, attributes.PatientWeight:
unknown DICOM keyword``. Lines come from the YAML composer (JSON is read by ``json`` and
located by the same composer, since JSON is YAML); a file the composer cannot follow
is still read, only without line numbers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bidsdeid.errors import UsageError

Key = str | int
KeyPath = tuple[Key, ...]


@dataclass
class Locator:
    """Key path -> 1-based line of a parsed file; names places in messages."""

    option: str  # e.g. "--rules"
    path: Path
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def where(self, keys: KeyPath) -> str:
        """``line N, a.b[2].c`` (the line of the nearest located parent if needed)."""
        line = None
        for n in range(len(keys), -1, -1):
            line = self.lines.get(keys[:n])
            if line is not None:
                break
        name = ""
        for k in keys:
            name += f"[{k + 1}]" if isinstance(k, int) else (("." if name else "") + str(k))
        parts = [f"line {line}" if line is not None else "", name]
        return ", ".join(p for p in parts if p)

    def error(self, keys: KeyPath, problem: str) -> UsageError:
        """A :class:`UsageError` (exit 64) naming the file, the place and the problem."""
        place = self.where(keys)
        return UsageError(f"{self.option} {self.path}: {place + ': ' if place else ''}{problem}")


def _walk(node: Any, keys: KeyPath, lines: dict[KeyPath, int]) -> None:
    import yaml

    lines.setdefault(keys, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for knode, vnode in node.value:
            key = str(knode.value)
            lines[keys + (key,)] = knode.start_mark.line + 1
            _walk(vnode, keys + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, keys + (i,), lines)


def _locate(text: str) -> dict[KeyPath, int]:
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[KeyPath, int] = {}
    if root is not None:
        _walk(root, (), lines)
    return lines


def read(path: Path, option: str) -> tuple[Any, Locator, str]:
    """(data, locator, sha256 of the bytes) of a YAML (``.yaml``/``.yml``) or JSON file."""
    loc = Locator(option, path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot read ({exc.strerror})") from exc
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{option} {path}: not UTF-8 text (byte {exc.start})") from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f"line {mark.line + 1}: " if mark is not None else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise UsageError(f"{option} {path}: {at}not valid YAML ({problem})") from exc
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{option} {path}: line {exc.lineno}: not valid JSON "
                             f"({exc.msg})") from exc
    loc.lines = _locate(text)
    return data, loc, digest
