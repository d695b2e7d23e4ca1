"""DICOM side: index the input (``index``), the PS3.15 Annex E profile (``profile``),
apply it (``deidentify``), write de-identified files (``writer``)."""
