"""Stage 9: prove the staged output holds none of the participant's identifiers.

Every staged file and every path is searched for every token of
:class:`~bidsdeid.privacy.identifiers.Identifiers` (case-insensitive, on alphanumeric
boundaries, as :meth:`Token.pattern` defines), by what each file is:

* ``.gz`` files are decompressed first;
* NIfTI: the header and its extensions (every byte before ``vox_offset``); voxel data
  are numbers, not text;
* DICOM: every byte except the value of the top-level PixelData element;
* PNG: every chunk except IDAT (compressed ``zTXt``/``iTXt`` text is inflated);
  JPEG: every segment before the entropy-coded scan;
* HTML/SVG/XML/JSON/TSV/text: the whole text, and every embedded base64 ``data:`` URI
  decoded and scanned by its media type (the base64 text itself is not matched: random
  base64 spells short words); for HTML/SVG/XML the text, attribute values, comments and
  scripts are scanned, not tag names or style sheets (markup of our own templates, where
  a ``<pre>`` tag would match a session called "pre");
* anything else: every byte.

A hit fails the participant (``ctx.error`` names the file, the KIND of identifier and
the attribute it came from, never the value), so :mod:`bidsdeid.publish` publishes
nothing. The values of the hits go only to the private audit dir. The group level
reuses :func:`scan_tree` over the whole OUTPUT_DIR.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from pathlib import Path

from bidsdeid.context import ParticipantContext
from bidsdeid.privacy.identifiers import DATE_KINDS, Identifiers, Token, ascii_spellings
from bidsdeid.utils import gz
from bidsdeid.utils.atomic import write_json

_BOUNDARY_BEFORE = rb"(?<![A-Za-z0-9])"
_BOUNDARY_AFTER = rb"(?![A-Za-z0-9])"
# A date is also found where a time follows it: 2018-09-18T10:00, 2018-09-18 10:00,
# 20180918104500(.123) (DICOM DT), which the strict boundary would miss.
_DATE_AFTER = (rb"(?:(?![A-Za-z0-9])|(?=T\d)|(?=[ _]\d{1,2}:)"
               rb"|(?=\d{2}(?:\d{2}){0,2}(?:\.\d+)?(?![A-Za-z0-9])))")
_TEXT_EXTENSIONS = {".json", ".tsv", ".txt", ".md", ".html", ".htm", ".svg", ".xml", ".csv",
                    ".bval", ".bvec", ".bidsignore", ".css", ".js", ".toml", ".yaml", ".yml",
                    ".log", ""}
_DATA_URI = re.compile(rb"data:([a-zA-Z0-9.+/-]+)?((?:;[a-zA-Z0-9=.-]+)*);base64,"
                       rb"([A-Za-z0-9+/=\s]+)")
_MAX_DEPTH = 4
_MARKUP_EXTENSIONS = {".html", ".htm", ".svg", ".xml", ".xhtml"}


class _MarkupContent(HTMLParser):
    """Collects what a page says (text, attribute values, comments, scripts), not its
    markup (tag and attribute names, style sheets)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._in_style = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "style":
            self._in_style += 1
        self.parts.extend(v for _k, v in attrs if v)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.parts.extend(v for _k, v in attrs if v)

    def handle_endtag(self, tag: str) -> None:
        if tag == "style" and self._in_style:
            self._in_style -= 1

    def handle_data(self, data: str) -> None:
        if not self._in_style:
            self.parts.append(data)

    def handle_comment(self, data: str) -> None:
        self.parts.append(data)


def _markup_content(raw: bytes) -> bytes:
    """The scannable content of an HTML/SVG/XML document (see :class:`_MarkupContent`);
    the raw bytes if it does not parse as markup."""
    parser = _MarkupContent()
    try:
        parser.feed(raw.decode("utf-8", "replace"))
        parser.close()
    except Exception:  # noqa: BLE001 - malformed markup: scan every byte instead
        return raw
    return "\n".join(parser.parts).encode("utf-8", "replace")


@dataclass(frozen=True)
class Hit:
    """One identifier found in the output. ``text`` is the value: private audit only."""

    rel_path: str
    kind: str
    source: str
    where: str
    offset: int
    text: str

    def public_line(self) -> str:
        """The PHI-free description of the hit (file, kind, attribute, part of file)."""
        article = "an" if self.kind[:1] in ("a", "e", "i", "o", "u") else "a"
        return (f"leak scan found {article} {self.kind} identifier (from "
                f"{self.source or 'input'}) in {self.where}")


# -- matching ------------------------------------------------------------------------
def _variants(text: str) -> set[bytes]:
    """Byte forms a token can take in files: UTF-8, Latin-1, ASCII spellings (Muller,
    Mueller), UTF-8 misread as Latin-1 and written again as UTF-8 (JÃ¶rg: a converter
    that ignores the character set), and ISO 2022 (Japanese DICOM)."""
    out: set[bytes] = set()
    for form in {text, text.lower(), text.upper()}:  # bytes regexes fold ASCII case only
        utf8 = form.encode("utf-8", "replace")
        out.add(utf8)
        if not form.isascii():
            out.add(utf8.decode("latin-1").encode("utf-8"))
            for codec in ("latin-1", "iso2022_jp"):
                try:
                    out.add(form.encode(codec))
                except UnicodeEncodeError:
                    pass
    out.update(s.encode("ascii") for s in ascii_spellings(text) if len(s) >= 3)
    return {v.lower() for v in out if v}


def _trie_pattern(words: Iterable[bytes]) -> bytes:
    """One regex for many literals, factored by common prefixes (longest first)."""
    trie: dict[int | None, dict] = {}
    for word in words:
        node = trie
        for byte in word:
            node = node.setdefault(byte, {})
        node[None] = {}

    def build(node: dict[int | None, dict]) -> bytes:
        chain = []
        while True:  # follow single-child chains without recursion (long tokens)
            keys = sorted(k for k in node if k is not None)
            end = None in node
            if len(keys) == 1 and not end:
                chain.append(re.escape(bytes([keys[0]])))
                node = node[keys[0]]
                continue
            break
        if not keys:
            return b"".join(chain)
        alts = [re.escape(bytes([k])) + build(node[k]) for k in keys]
        body = alts[0] if len(alts) == 1 and not end else b"(?:" + b"|".join(alts) + b")"
        if end:
            body = (b"(?:" + body + b")?") if len(alts) == 1 else body + b"?"
        return b"".join(chain) + body

    return build(trie)


class Matcher:
    """Finds every token of an :class:`Identifiers` in bytes, fast (one trie regex)."""

    def __init__(self, identifiers: Identifiers, skip_kinds: Iterable[str] = ()) -> None:
        skip = set(skip_kinds)
        self._identifiers, self._skip = identifiers, frozenset(skip)
        self.by_bytes: dict[bytes, Token] = {}
        for tok in identifiers.tokens():  # longest first: keep the most specific source
            if tok.kind in skip:
                continue
            for form in _variants(tok.text):
                self.by_bytes.setdefault(form, tok)
        self._regexes: list[re.Pattern[bytes]] = []
        if self.by_bytes:
            body = _trie_pattern(sorted(self.by_bytes))
            self._regexes.append(re.compile(_BOUNDARY_BEFORE + b"(?:" + body + b")"
                                            + _BOUNDARY_AFTER, re.IGNORECASE))
        dates = sorted(k for k, t in self.by_bytes.items() if t.kind in DATE_KINDS)
        if dates:
            self._regexes.append(re.compile(_BOUNDARY_BEFORE + b"(?:" + _trie_pattern(dates)
                                            + b")" + _DATE_AFTER, re.IGNORECASE))
        # In a path a date is found inside a label too (ses-visit20220711, sub-jd220711),
        # two-digit years included: labels are letters and digits, so only digits may
        # not touch it
        self._path_dates = {k: t for k, t in self.by_bytes.items() if t.kind in DATE_KINDS}
        short = [("birthdate", identifiers.short_birthdates)]
        if "date" not in skip:
            short.append(("date", identifiers.short_dates))
        for kind, forms in short:
            for text, src in forms.items():
                self._path_dates.setdefault(text.encode("ascii", "replace").lower(),
                                            Token(kind, text, src))
        self._path_regex = re.compile(rb"(?<![0-9])(?:" + _trie_pattern(
            sorted(self._path_dates)) + rb")(?![0-9])", re.IGNORECASE) \
            if self._path_dates else None

    def __bool__(self) -> bool:
        return bool(self._regexes) or self._path_regex is not None

    def finditer(self, data: bytes, *, path: bool = False
                 ) -> Iterator[tuple[Token, int, bytes]]:
        """Every token in ``data``; in a ``path`` also dates inside labels (``__init__``)."""
        if not data:
            return
        searches = [(regex, self.by_bytes) for regex in self._regexes]
        if path and self._path_regex is not None:
            searches.append((self._path_regex, self._path_dates))
        seen: set[int] = set()
        for regex, tokens in searches:
            for m in regex.finditer(data):
                found = m.group(0)
                tok = tokens.get(found.lower())
                if tok is not None and m.start() not in seen:
                    seen.add(m.start())
                    yield tok, m.start(), found

    def finditer_path(self, rel: str) -> Iterator[tuple[Token, int, bytes]]:
        """The tokens in a file or folder name relative to the output root, and the
        short IDs and replaced labels inside its entity labels
        (:meth:`Identifiers.numbers_in_labels`)."""
        yield from self.finditer(rel.encode("utf-8", "surrogateescape"), path=True)
        if self._identifiers.short_numbers:
            for pos, label in _entity_labels(rel):
                tok = self._identifiers.numbers_in_labels([label], skip=self._skip)
                if tok is not None:
                    yield tok, pos, label.encode("utf-8", "surrogateescape")

    def first(self, text: str | bytes) -> Token | None:
        """The first token found in ``text`` (for checking a value before keeping it)."""
        data = text.encode("utf-8", "replace") if isinstance(text, str) else text
        for tok, _pos, _found in self.finditer(data):
            return tok
        return None


INDEX_ENTITIES = frozenset({"sub", "ses", "run", "echo", "flip", "inv", "mt", "chunk",
                            "split"})
"""Entities whose labels bidsdeid writes itself (the output participant and session)
or that are plain index numbers: short numbers are not sought in them."""


def _entity_labels(rel: str) -> Iterator[tuple[int, str]]:
    """(offset, label) of every BIDS entity label in a relative path but those of
    :data:`INDEX_ENTITIES`."""
    for m in re.finditer(r"(?:(?<=[/_])|^)([a-zA-Z]+)-([a-zA-Z0-9]+)", rel):
        if m.group(1).lower() not in INDEX_ENTITIES:
            yield m.start(2), m.group(2)


# -- file types ------------------------------------------------------------------------
def _nifti_header_span(raw: bytes) -> int | None:
    for endian in ("<", ">"):
        if len(raw) >= 352 and struct.unpack(endian + "i", raw[:4])[0] == 348:
            return int(struct.unpack(endian + "f", raw[108:112])[0])
        if len(raw) >= 544 and struct.unpack(endian + "i", raw[:4])[0] == 540:
            return int(struct.unpack(endian + "q", raw[168:176])[0])
    return None


def _dicom_spans(raw: bytes) -> list[tuple[int, int]] | None:
    """Byte ranges of a DICOM file outside the top-level PixelData value."""
    if len(raw) < 132 or raw[128:132] != b"DICM":
        return None
    import io

    import pydicom

    fp = io.BytesIO(raw)
    try:
        ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
    except Exception:  # noqa: BLE001 - unparseable: scan every byte
        return [(0, len(raw))]
    start = fp.tell()
    head = raw[start:start + 12]
    if len(head) < 8 or head[:4] not in (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10"):
        return [(0, len(raw))]
    little = getattr(ds, "is_little_endian", True) is not False
    endian = "<" if little else ">"
    implicit = getattr(ds, "is_implicit_VR", False)
    if implicit:
        length, value_at = struct.unpack(endian + "I", head[4:8])[0], start + 8
    elif head[4:6] in (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN"):
        length, value_at = struct.unpack(endian + "I", head[8:12])[0], start + 12
    else:
        length, value_at = struct.unpack(endian + "H", head[6:8])[0], start + 8
    if length == 0xFFFFFFFF:  # encapsulated: items until the sequence delimiter
        pos = value_at
        while pos + 8 <= len(raw):
            tag = raw[pos:pos + 4]
            item_len = struct.unpack(endian + "I", raw[pos + 4:pos + 8])[0]
            pos += 8
            if tag in (b"\xfe\xff\xdd\xe0", b"\xff\xfe\xe0\xdd"):
                break
            pos += item_len
        end = pos
    else:
        end = value_at + length
    return [(0, value_at), (min(end, len(raw)), len(raw))]


def _png_parts(raw: bytes) -> Iterator[tuple[str, bytes]] | None:
    if not raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return None

    def parts() -> Iterator[tuple[str, bytes]]:
        pos = 8
        while pos + 8 <= len(raw):
            length = struct.unpack(">I", raw[pos:pos + 4])[0]
            ctype = raw[pos + 4:pos + 8]
            body = raw[pos + 8:pos + 8 + length]
            pos += 12 + length
            name = ctype.decode("latin-1", "replace")
            if ctype == b"IDAT":
                continue
            yield f"PNG {name} chunk", ctype + body
            if ctype == b"zTXt":
                _keyword, _, rest = body.partition(b"\x00")
                try:
                    yield f"PNG {name} chunk", zlib.decompress(rest[1:])
                except zlib.error:
                    pass
            elif ctype == b"iTXt":
                _keyword, _, rest = body.partition(b"\x00")
                if rest[:1] == b"\x01":
                    text = rest[2:].split(b"\x00", 2)[-1]
                    try:
                        yield f"PNG {name} chunk", zlib.decompress(text)
                    except zlib.error:
                        pass
        if pos < len(raw):
            yield "PNG trailing bytes", raw[pos:]

    return parts()


def _jpeg_parts(raw: bytes) -> Iterator[tuple[str, bytes]] | None:
    if not raw.startswith(b"\xff\xd8"):
        return None

    def parts() -> Iterator[tuple[str, bytes]]:
        pos = 2
        while pos + 4 <= len(raw):
            if raw[pos] != 0xFF:
                yield "JPEG bytes", raw[pos:]
                return
            marker = raw[pos + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                pos += 2
                continue
            length = struct.unpack(">H", raw[pos + 2:pos + 4])[0]
            yield f"JPEG segment FF{marker:02X}", raw[pos + 4:pos + 2 + length]
            pos += 2 + length
            if marker == 0xDA:  # start of scan: entropy-coded data follows
                end = raw.rfind(b"\xff\xd9")
                if end != -1 and end + 2 < len(raw):
                    yield "JPEG trailing bytes", raw[end + 2:]
                return

    return parts()


def _media_kind(mime: str) -> str:
    mime = mime.lower()
    if mime == "image/png":
        return ".png"
    if mime in ("image/jpeg", "image/jpg"):
        return ".jpg"
    if mime in ("image/svg+xml", "text/html", "text/plain", "application/json", "text/css",
                "text/xml", "application/xml"):
        return ".txt"
    if mime in ("application/gzip", "application/x-gzip"):
        return ".gz"
    return ".bin"


def _json_decoded(raw: bytes) -> bytes | None:
    """A JSON file's values with their escapes decoded (None if it does not parse)."""
    try:
        return json.dumps(json.loads(raw), ensure_ascii=False).encode("utf-8", "replace")
    except (ValueError, RecursionError):
        return None


def _parts(name: str, raw: bytes, depth: int = 0) -> Iterator[tuple[str, bytes]]:
    """(where, bytes to scan) pieces of one file, by its type."""
    lower = name.lower()
    if depth > _MAX_DEPTH:
        yield "nested content", raw
        return
    if gz.is_gzip(raw):
        try:
            inner = gz.decompress(raw)
        except gz.GzipError:
            yield "gzip bytes (not decompressible)", raw
            return
        inner_name = name[:-3] if lower.endswith(".gz") else name + ".inner"
        yield from _parts(inner_name, inner, depth + 1)
        return
    text_name = Path(lower).suffix in _TEXT_EXTENSIONS - {""}
    span = None if text_name else _nifti_header_span(raw)
    if span is not None and 348 <= span <= len(raw):
        yield "NIfTI header", raw[:span]  # header and extensions; voxels are numbers
        return
    spans = _dicom_spans(raw)
    if spans is not None:
        for a, b in spans:
            yield "DICOM header", raw[a:b]
        return
    png = _png_parts(raw)
    if png is not None:
        yield from png
        return
    jpeg = _jpeg_parts(raw)
    if jpeg is not None:
        yield from jpeg
        return
    markup = Path(lower).suffix in _MARKUP_EXTENSIONS
    without_payloads = _DATA_URI.sub(rb"data:\1\2;base64,", raw) if b"base64," in raw else raw
    yield "file content", (_markup_content(without_payloads) if markup else without_payloads)
    if lower.endswith(".json") and b"\\u" in raw:  # text written as \u00fc escapes
        decoded = _json_decoded(raw)
        if decoded is not None:
            yield "file content (JSON escapes decoded)", decoded
    if b"base64," in raw:
        for m in _DATA_URI.finditer(raw):
            try:
                payload = base64.b64decode(re.sub(rb"\s+", b"", m.group(3)), validate=False)
            except (binascii.Error, ValueError):
                continue
            kind = _media_kind((m.group(1) or b"").decode("ascii", "replace"))
            for where, piece in _parts("embedded" + kind, payload, depth + 1):
                yield f"embedded {(m.group(1) or b'data').decode('ascii', 'replace')} ({where})", \
                    piece


def scan_file(path: Path, rel: str, matcher: Matcher) -> list[Hit]:
    """Hits in one file (its path included)."""
    hits = [Hit(rel, tok.kind, tok.source, "the file path", pos, found.decode("utf-8", "replace"))
            for tok, pos, found in matcher.finditer_path(rel)]
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return hits + [Hit(rel, "unreadable", "", f"unreadable file ({exc.strerror})", 0, "")]
    for where, piece in _parts(path.name, raw):
        for tok, pos, found in matcher.finditer(piece):
            hits.append(Hit(rel, tok.kind, tok.source, where, pos,
                            found.decode("utf-8", "replace")))
    return hits


def scan_tree(root: Path, identifiers: Identifiers, *, skip_kinds: Iterable[str] = (),
              matcher: Matcher | None = None) -> list[Hit]:
    """Every hit of ``identifiers`` in every file and path under ``root``."""
    m = matcher or Matcher(identifiers, skip_kinds)
    hits: list[Hit] = []
    if not m:
        return hits
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        for d in dirnames:  # folder names are paths too (empty folders included)
            rel = str((here / d).relative_to(root))
            hits.extend(Hit(rel, tok.kind, tok.source, "a folder name", pos,
                            found.decode("utf-8", "replace"))
                        for tok, pos, found in m.finditer_path(rel))
        for name in sorted(filenames):
            p = here / name
            if p.is_symlink():
                hits.append(Hit(str(p.relative_to(root)), "symlink", "", "a symbolic link "
                                "(not allowed in the output)", 0, ""))
                continue
            hits.extend(scan_file(p, str(p.relative_to(root)), m))
    return _dedupe(hits)


def _dedupe(hits: list[Hit]) -> list[Hit]:
    seen: set[tuple[str, str, str, str]] = set()
    out = []
    for h in hits:
        key = (h.rel_path, h.where, h.kind, h.text.lower())
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out


def label_holds_identifier(identifiers: Identifiers, matcher: Matcher, key: str,
                           label: str) -> bool:
    """Whether publishing the BIDS label ``key-label`` would publish an identifier: as
    the leak scan searches a path (dates inside labels included), or inside the words
    of the label (:meth:`Identifiers.hidden_in_labels`; short numbers not in ``sub``
    and ``ses`` labels, as the leak scan does)."""
    return (identifiers.hidden_in_labels([label], numbers=key not in ("sub", "ses"))
            is not None or next(matcher.finditer_path(f"{key}-{label}"), None) is not None)


def skipped_kinds(config: object) -> list[str]:
    """Identifier kinds the user chose to keep (Annex E retain options)."""
    deid = getattr(config, "deid", None)
    return deid.kept_identifier_kinds() if deid is not None else []


def write_audit(path: Path, hits: list[Hit], scanned_files: int) -> None:
    write_json(path, {"files_scanned": scanned_files,
                      "hits": [asdict(h) for h in hits]}, perms=0o600)


def run(ctx: ParticipantContext) -> None:
    """Scan ``ctx.staging``; each hit is an error naming file, kind and attribute."""
    state = ctx.config.state_dir / f"sub-{ctx.input_label}"
    ctx.identifiers.save(state / "identifiers.json")  # the group level rescans with these
    matcher = Matcher(ctx.identifiers, skipped_kinds(ctx.config))
    ctx.results["leak_matcher_tokens"] = len(matcher.by_bytes)
    n_files = sum(len(files) for _d, _s, files in os.walk(ctx.staging))
    hits = scan_tree(ctx.staging, ctx.identifiers, matcher=matcher)
    write_audit(ctx.audit_dir / "leakscan.json", hits, n_files)
    for hit in hits:
        ctx.error("leak scan", hit.rel_path, hit.public_line())
    ctx.results["leak_hits"] = len(hits)
