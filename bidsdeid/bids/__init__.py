"""BIDS side: find participants (``discover``), read BIDS inputs (``inputs``), scrub
sidecars and NIfTI headers (``sidecar``, ``nifti``), labels and pseudonyms
(``labels``), tables (``tables``), dataset files and validation (``dataset``)."""
