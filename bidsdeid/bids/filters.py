"""``--bids-filter-file``: PyBIDS-style queries that select which images are published.

The file maps query names to entity filters, as fmriprep's does::

    {"t1w": {"datatype": "anat", "suffix": "T1w", "acquisition": "mprage"},
     "bold": {"task": ["rest", "nback"]}}

A query applies to an image when its ``datatype``/``suffix`` (given, or implied by the
query name: ``t1w`` -> T1w, ``bold`` -> bold, ``fmap`` -> the fmap datatype, ...) fit
the image; the image is kept only if it matches every other entity of every query
that applies (a list means any of; ``null`` means the entity must be absent). Images
no query applies to are kept. The same rule selects DICOM series (by the BIDS name
they would get) and BIDS NIfTI inputs.
"""

from __future__ import annotations

from typing import Any

LONG_TO_SHORT = {"subject": "sub", "session": "ses", "task": "task", "acquisition": "acq",
                 "ceagent": "ce", "reconstruction": "rec", "direction": "dir", "run": "run",
                 "echo": "echo", "part": "part", "inversion": "inv", "flip": "flip",
                 "mtransfer": "mt", "chunk": "chunk", "modality": "mod"}
_NAME_SUFFIX = {"t1w": "T1w", "t2w": "T2w", "flair": "FLAIR", "pdw": "PDw", "t2starw": "T2starw",
                "bold": "bold", "sbref": "sbref", "dwi": "dwi", "asl": "asl", "m0scan": "m0scan",
                "epi": "epi", "mp2rage": "MP2RAGE", "unit1": "UNIT1", "t1map": "T1map"}
_NAME_DATATYPE = {"fmap": "fmap", "anat": "anat", "func": "func", "perf": "perf"}


def _fits(value: str | None, wanted: Any) -> bool:
    if wanted is None:
        return value is None
    if isinstance(wanted, list):
        return any(_fits(value, w) for w in wanted)
    if value is None:
        return False
    if isinstance(wanted, bool):
        return wanted
    have, want = str(value), str(wanted)
    if have.isdigit() and want.isdigit():
        return int(have) == int(want)  # run-01 fits {"run": 1}
    return have == want


def _applies(name: str, query: dict[str, Any], datatype: str, suffix: str) -> bool:
    if "suffix" in query:
        if not _fits(suffix, query["suffix"]):
            return False
    elif name.lower() in _NAME_SUFFIX and _NAME_SUFFIX[name.lower()] != suffix:
        return False
    if "datatype" in query:
        if not _fits(datatype, query["datatype"]):
            return False
    elif name.lower() in _NAME_DATATYPE and _NAME_DATATYPE[name.lower()] != datatype:
        return False
    return ("suffix" in query or "datatype" in query or name.lower() in _NAME_SUFFIX
            or name.lower() in _NAME_DATATYPE)


def keep(filters: dict[str, Any] | None, datatype: str, suffix: str,
         entities: dict[str, str]) -> bool:
    """True if the image passes every query that applies to it."""
    if not filters:
        return True
    for name, query in filters.items():
        if not isinstance(query, dict) or not _applies(name, query, datatype, suffix):
            continue
        for key, wanted in query.items():
            if key in ("suffix", "datatype", "extension", "scope", "return_type"):
                continue
            short = LONG_TO_SHORT.get(str(key), str(key))
            if short in ("sub", "ses"):
                continue  # participants and sessions are chosen by their own options
            if not _fits(entities.get(short), wanted):
                return False
    return True
