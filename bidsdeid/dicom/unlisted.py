"""What happens to a standard attribute that Table E.1-1 does not list (fail closed).

Table E.1-1 lists the attributes the standard knows can identify. Scanners write many
more, and any text attribute can carry a name. The rule, by value representation:

==================  ===============================================================
VR                  action
==================  ===============================================================
(any, in the        emptied (binary data removed), whatever the VR, except sequences
patient, visit or   (cleaned), UIDs (mapped) and dates (shifted): these groups
request groups      describe the person, and a code string there (e.g. Patient
0010 0032 0038      Alternative Calendar) can carry a planted name
4008)
SQ                  kept, and every item is cleaned by the same rules (recursion)
UI                  mapped through the project key (``2.25.<int>``), except public
                    UIDs (pydicom's UID dictionary, or the DICOM root
                    ``1.2.840.10008.``: SOP classes, transfer syntaxes, coding
                    schemes, context groups); kept as is under Retain UIDs
DA, DT, TM          shifted by the subject's offset (Retain Longitudinal ... Modified
                    Dates, the default); kept under Full Dates; emptied otherwise
US SS UL SL UV SV   kept: numbers cannot spell a name
FL FD DS IS AT
OF OD OL OV
CS                  kept: code strings are enumerations (16 upper-case characters)
AS                  kept, ages above 89 years written as ``089Y``
AE LO LT PN SH ST   emptied (zero length, so Type 2 attributes stay present), unless
UC UT UR            the keyword is on :data:`SAFE_TEXT_KEYWORDS` (equipment model,
                    software version, sequence and coil names, coded vocabulary);
                    person names (PN) are never kept
OB OW UN            removed, unless the keyword is on :data:`SAFE_BINARY_KEYWORDS`
                    (pixel data and lookup tables)
anything else       removed
==================  ===============================================================

Group-length elements (gggg,0000) and file-meta elements found inside a dataset are
removed (they would be wrong after the changes). An even-group tag that pydicom's
dictionary does not know is treated by its explicit VR with no keyword (so text is
emptied); with VR UN or no VR it is removed.
"""

from __future__ import annotations

PERSON_GROUPS = frozenset({0x0010, 0x0032, 0x0038, 0x4008})
"""Groups of the Patient, Study scheduling, Visit and Results modules."""

NUMERIC_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "DS", "IS", "AT",
                         "OF", "OD", "OL", "OV"})
TEXT_VRS = frozenset({"AE", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"})
BINARY_VRS = frozenset({"OB", "OW", "UN"})
DATE_VRS = frozenset({"DA", "DT", "TM"})

SAFE_TEXT_KEYWORDS = frozenset({
    # equipment and software: name a product, not a person or a site
    "Manufacturer", "ManufacturerModelName", "SoftwareVersions",
    # sequence, coil and nucleus names: acquisition parameters
    "SequenceName", "PulseSequenceName", "ReceiveCoilName", "TransmitCoilName",
    "ReceiveCoilManufacturerName", "TransmitCoilManufacturerName", "MultiCoilElementName",
    "MultiCoilConfiguration", "ImagedNucleus", "ContrastBolusRoute",
    "ApplicableSafetyStandardDescription", "ConvolutionKernel", "FilterType",
    # display and value mapping vocabulary
    "WindowCenterWidthExplanation", "RescaleType", "LUTExplanation", "ModalityLUTType",
    "LUTLabel",
    # coded vocabulary (the identifying code sequences are in Table E.1-1 themselves)
    "CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning",
    "LongCodeValue", "URNCodeValue", "CodingSchemeName", "MappingResourceName",
    # enhanced multi-frame dimension organisation
    "StackID", "DimensionDescriptionLabel",
})
"""Text attributes outside Table E.1-1 that are kept: acquisition and equipment
parameters and coded vocabulary, which BIDS conversion and validity need and which
do not identify a person or site. Everything else with a text VR is emptied."""

SAFE_BINARY_KEYWORDS = frozenset({
    "PixelData", "FloatPixelData", "DoubleFloatPixelData", "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths", "ICCProfile", "LUTData", "BlendingLookupTableData",
    "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData", "AlphaPaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData", "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData", "SegmentedAlphaPaletteColorLookupTableData",
})
"""Binary attributes outside Table E.1-1 that are kept (image and lookup-table data)."""


def normalise_vr(vr: str | None) -> str:
    """One VR for decisions: ``"US or SS"`` -> ``"US"``, ``"OB or OW"`` -> ``"OB"``."""
    if not vr:
        return "UN"
    return vr.split(" or ")[0].strip()[:2] if " or " in vr else vr
