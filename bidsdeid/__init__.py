"""bidsdeid: de-identify and deface MRI studies for public sharing (a BIDS App).

The package mirrors the pipeline: ``dicom`` (read and de-identify headers),
``convert`` (series to BIDS names, dcm2niix), ``bids`` (scrub sidecars, NIfTI
headers, tables, labels), ``deface`` (templates, registration, gates), ``qc``
(renders, face check, reports), ``privacy`` (keys, identifiers, leak scan) and
``cli`` (parser, run, demo). ``participant`` and ``group`` hold the two levels.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
