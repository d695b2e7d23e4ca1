"""The built-in series -> BIDS heuristic (DESIGN.md section 2).

Each DICOM series gets a :class:`Decision`: convert it as a BIDS datatype/suffix (with
entities such as ``task``, ``acq``, ``dir``, ``inv``), or exclude it with a reason.
Rules look at attributes that mean the same thing on every scanner first
(SOP class, ImageType/FrameType, the enhanced-MR AcquisitionContrast, ASL context,
diffusion b-values, ScanningSequence/SequenceVariant, echo planar flags, TE/TR/TI and
flip angle, number of volumes), then at vendor sequence names, and only then at
SeriesDescription/ProtocolName patterns (ReproIn-style ``task-``/``acq-``/``dir-``
labels are honoured). Anything no rule understands is excluded and reported, never
guessed.

Reasons name rules and attributes, never header values, so they may be printed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bidsdeid.convert.facts import SeriesFacts

GRE_FIELDMAP = "<gre-fieldmap>"
"""Suffix placeholder for a gradient-echo field map series: its outputs become
magnitude1/magnitude2/phasediff/phase1/phase2/fieldmap/magnitude once dcm2niix shows
which echoes and parts the series holds."""

MR_IMAGE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image
    "1.2.840.10008.5.1.4.1.1.4.3",  # Enhanced MR Color Image
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR Image
}
_NON_IMAGE_MODALITIES = {"SR", "PR", "KO", "DOC", "REG", "SEG", "RWV", "RTSTRUCT", "AU", "ECG"}
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"

_DERIVED_TOKENS = {"ADC", "EADC", "FA", "TRACEW", "TRACE", "COLFA", "COL_FA", "TENSOR",
                   "TENSOR_B0", "EXP", "MD", "CALC_BVALUE", "MOCO", "MPR", "MIP", "MINIP",
                   "MNIP", "PROJECTION IMAGE", "REFORMATTED", "SUBTRACTION", "CBF", "RELCBF",
                   "TTP", "MTT", "RCBV", "RCBF", "TMAP", "T-MAP", "STDEV", "MEAN", "MIN IP",
                   "MAX IP", "CPR", "CURVED", "3D_REND", "VRT", "FUSION"}
_LOCALIZER_TOKENS = {"LOCALIZER", "SCOUT", "LOCALISER"}
_SC_TOKENS = {"SECONDARY", "SCREEN SAVE", "SCREENSHOT", "CSAPARALLEL", "CSA REPORT"}

_WORD = r"(?<![a-z0-9]){}(?![a-z0-9])"


def _has(text: str, *words: str) -> bool:
    return any(re.search(_WORD.format(w), text) for w in words)


_LOCALIZER_TEXT = ("localizer", "localiser", "scout", "survey", "aahead_scout", "3plane",
                   "3-plane", "3 plane", "tri-pilot", "tripilot", "plane loc", "loc")
_CALIBRATION_TEXT = (r"sense[-_ ]?ref", r"coil[-_ ]?survey", r"ref[-_ ]?scan", "calibration",
                     "prescan", r"asset[-_ ]?cal", r"pure[-_ ]?cal", r"cal[-_ ]?scan",
                     "bodycoil", "headcoil")
_DERIVED_TEXT = ("adc", "eadc", "colfa", "col_fa", "tracew", "trace", "tensor", "moco",
                 "mocoseries", "mip", "minip", "reformat", "dreg")
# not "mpr": Siemens names its original MPRAGE protocols t1_mpr_* (reformats say MPR in
# ImageType, which the ImageType rule catches)


@dataclass
class Decision:
    """What to do with one series. ``reason`` is PHI-free (rule and attribute names)."""

    action: str  # "convert" | "exclude"
    reason: str
    datatype: str | None = None
    suffix: str | None = None  # BIDS suffix, or GRE_FIELDMAP
    entities: dict[str, str] = field(default_factory=dict)  # task, acq, dir, inv, ...
    metadata: dict[str, Any] = field(default_factory=dict)  # extra sidecar fields
    flags: list[str] = field(default_factory=list)  # e.g. "task-unknown"
    source: str = "heuristic"
    aslcontext: list[str] | None = None

    @property
    def converts(self) -> bool:
        return self.action == "convert"

    def short(self) -> str:
        """A PHI-free label of the decision, e.g. ``anat/T1w`` or ``exclude``."""
        if not self.converts:
            return "exclude"
        suffix = "fieldmap (gradient echo)" if self.suffix == GRE_FIELDMAP else self.suffix
        ents = "_".join(f"{k}-{v}" for k, v in self.entities.items())
        return f"{self.datatype}/{ents + '_' if ents else ''}{suffix}"


def exclude(reason: str, *, unclear: bool = False) -> Decision:
    """Leave a series out. ``unclear``: it may be wanted data the rules do not understand
    (the user gets a warning, not just a log line)."""
    return Decision("exclude", reason, flags=["unclear"] if unclear else [])


def _convert(datatype: str, suffix: str, reason: str, f: SeriesFacts,
             **entities: str) -> Decision:
    ents = {k: v for k, v in entities.items() if v}
    return Decision("convert", reason, datatype, suffix, ents)


# -- description labels (ReproIn and common words) ---------------------------------------
def reproin_entity(text: str, name: str) -> str | None:
    """``<name>-<label>`` written in the description (ReproIn convention), if any."""
    m = re.search(rf"(?<![a-z0-9]){name}-([a-z0-9]+)", text)
    return m.group(1) if m else None


def task_label(f: SeriesFacts) -> str | None:
    """The task, from ``task-<label>`` in the description or well-known words."""
    label = reproin_entity(f.text, "task")
    if label:
        return label
    if (_has(f.text, "rs", "rsfmri", "rs-fmri", "rfmri", "restingstate", "resting_state",
             "resting-state") or "resting" in f.text
            or re.search(r"(?<![a-z0-9])rest(?:ing)?\d*(?![a-z])", f.text)):
        return "rest"
    m = re.search(r"(?<![a-z0-9])tfmri_([a-z0-9]+)", f.text)  # HCP: tfMRI_<TASK>_<dir>
    if m:
        return m.group(1)
    return None


def direction_label(f: SeriesFacts) -> str | None:
    """Phase-encoding direction label (``dir-``) from the description, if written."""
    label = reproin_entity(f.text, "dir")
    if label:
        return label.upper() if len(label) == 2 else label
    for token in ("ap", "pa", "lr", "rl"):  # not si/is: "is" is an English word
        if _has(f.text, token):
            return token.upper()
    return None


# -- rule groups ---------------------------------------------------------------------------
def _refused(f: SeriesFacts) -> Decision | None:
    sop = f.sop_class_uid
    if f.modality in _NON_IMAGE_MODALITIES or sop.startswith("1.2.840.10008.5.1.4.1.1.88."):
        return exclude(f"report or other non-image object (modality {f.modality or '?'})")
    if sop.startswith(_SECONDARY_CAPTURE) or f.image_types & _SC_TOKENS:
        return exclude("secondary capture or screen save (may hold burned-in text)")
    if f.burned_in == "YES":
        return exclude("BurnedInAnnotation is YES (burned-in text in the pixels)")
    if not f.has_pixels:
        return exclude("no pixel data (not an image)")
    if f.modality != "MR":
        return exclude(f"modality {f.modality or '?'} is not MR")
    if sop not in MR_IMAGE_CLASSES:
        return exclude("not an MR image storage object (SOP class)")
    return None


def _localizer(f: SeriesFacts) -> Decision | None:
    if f.image_types & _LOCALIZER_TOKENS:
        return exclude("localizer (ImageType)")
    if _has(f.text, *_LOCALIZER_TEXT):
        return exclude("localizer or scout (description)")
    if any(re.search(_WORD.format(p), f.text) for p in _CALIBRATION_TEXT):
        return exclude("coil calibration or reference scan (description)")
    return None


def _mp2rage(f: SeriesFacts) -> Decision | None:
    hint = ("mp2rage" in f.text or "mp2rage" in f.sequence_name.lower()
            or f.phoenix.get("lInvContrasts") == 2)
    if not hint:
        return None
    if f.image_types & {"UNI", "UNIFORM"} or _has(f.text, "uni", "uni_images", "unit1"):
        return _convert("anat", "UNIT1", "MP2RAGE uniform image", f,
                        acq=reproin_entity(f.text, "acq") or "")
    if f.image_types & {"T1 MAP", "T1MAP", "T1_MAP"} or _has(f.text, "t1map", "t1_map",
                                                                "t1_images", "t1 map"):
        return _convert("anat", "T1map", "MP2RAGE T1 map", f,
                        acq=reproin_entity(f.text, "acq") or "")
    for n in ("1", "2"):
        if re.search(rf"(?<![a-z0-9])inv[-_ ]?{n}(?![0-9])", f.text):
            if f.is_derived:
                return exclude("derived MP2RAGE inversion image")
            return _convert("anat", "MP2RAGE", f"MP2RAGE inversion {n}", f,
                            acq=reproin_entity(f.text, "acq") or "", inv=n)
    return None


def _derived(f: SeriesFacts) -> Decision | None:
    tokens = set(f.image_types)
    for t in list(tokens):
        tokens.update(t.split("_"))
    hit = sorted(tokens & _DERIVED_TOKENS)
    if hit and (f.is_derived or len(f.image_type) < 3 or set(hit) & set(f.image_type[2:])):
        return exclude(f"derived map (ImageType {hit[0]})")
    if f.is_derived:
        return exclude("derived image (ImageType DERIVED)")
    if _has(f.text, *_DERIVED_TEXT) and f.n_volumes <= 1:
        return exclude("derived map (description)")
    return None


def _diffusion_like(f: SeriesFacts) -> bool:
    return bool(f.image_types & {"DIFFUSION", "DWI", "DTI"} or f.acquisition_contrast == "DIFFUSION"
                or _has(f.text, "dwi", "dti", "diff", "diffusion", "hardi", "dsi", "multishell",
                        "noddi", "dmri", "tensor") or "dwi" in f.text or "dti" in f.text)


def _diffusion(f: SeriesFacts) -> Decision | None:
    weighted = f.n_diffusion_weighted > 0 and f.n_volumes > 1
    spin_echo = "SE" in f.scanning_sequence or f.echo_pulse_sequence == "SPIN"
    if not (_diffusion_like(f) or (weighted and (f.echo_planar or spin_echo))):
        return None
    direction = reproin_entity(f.text, "dir") and direction_label(f)
    acq = reproin_entity(f.text, "acq") or ""
    if _has(f.text, "sbref") and f.n_volumes == 1:
        return _convert("dwi", "sbref", "diffusion single-band reference (description)", f,
                        acq=acq, dir=direction_label(f) or "")
    if f.n_volumes == 1 and f.max_b <= 50 and _has(f.text, "b0", "topup", "pepolar",
                                                    "fmap", "reverse", "rpe", "blipup",
                                                    "blipdown"):
        return _convert("fmap", "epi", "b=0 spin-echo EPI for distortion correction", f,
                        acq=acq, dir=direction_label(f) or "unknown")
    if f.n_volumes == 1 and not weighted and f.max_b <= 50:
        return exclude("single b=0 volume of unclear role (no diffusion weighting)", unclear=True)
    why = ("ImageType DIFFUSION" if f.image_types & {"DIFFUSION"} else
           "AcquisitionContrast DIFFUSION" if f.acquisition_contrast == "DIFFUSION" else
           "diffusion-weighted volumes (b-values)" if weighted else "description")
    return _convert("dwi", "dwi", f"diffusion ({why})", f, acq=acq,
                    dir=direction or direction_label(f) or "")


def _asl_evidence(f: SeriesFacts) -> bool:
    return bool(f.image_types & {"ASL"} or f.asl_labeling or f.asl_contexts
                or _has(f.text, "asl", "pcasl", "pasl", "casl", "3dpcasl", "2dpcasl",
                        "pseudocontinuous") or "pcasl" in f.text or "asl_" in f.text)


def _perfusion(f: SeriesFacts) -> Decision | None:
    perfusion = (f.image_types & {"PERFUSION", "PERF"} or f.acquisition_contrast == "PERFUSION"
                 or _has(f.text, "perfusion"))
    if not (perfusion or _asl_evidence(f)):
        return None
    if not _asl_evidence(f):
        return exclude("perfusion without arterial spin labelling (e.g. DSC): not supported", unclear=True)
    acq = reproin_entity(f.text, "acq") or ""
    contexts = set(f.asl_contexts)
    if (contexts == {"M_ZERO_SCAN"} or (not contexts and _has(f.text, "m0", "m0scan"))):
        return _convert("perf", "m0scan", "ASL M0 calibration scan", f, acq=acq,
                        dir=direction_label(f) or "" if f.echo_planar else "")
    d = _convert("perf", "asl", "arterial spin labelling", f, acq=acq)
    return d


def _fieldmap(f: SeriesFacts) -> Decision | None:
    name = f.sequence_name.lower().lstrip("*")
    named = (name.startswith(("fm2d", "fm3d", "fmap", "b0map", "fieldmap"))
             or f.image_types & {"FIELDMAP", "B0 MAP", "B0MAP", "FIELD_MAP"}
             or _has(f.text, "fieldmap", "field map", "field_map", "field mapping", "fmap",
                     "b0map", "b0 map", "b0_map", "gre_field_mapping", "grefieldmap",
                     "field_mapping") or "field map" in f.text or "fieldmap" in f.text)
    gradient = "GR" in f.scanning_sequence or f.echo_pulse_sequence == "GRADIENT"
    dual_echo_phase = (gradient and not f.echo_planar and len(f.echo_times) == 2
                       and "PHASE" in f.complex_components and f.n_volumes == 1
                       and max(f.echo_times) < 15)
    if f.echo_planar:
        if named or _has(f.text, "topup", "pepolar", "se_epi", "sefm", "spinecho", "spin_echo"):
            spin_echo = ("SE" in f.scanning_sequence or f.echo_pulse_sequence == "SPIN"
                         or name.startswith("epse"))
            if f.n_volumes <= 10 and (spin_echo or _has(f.text, "topup", "pepolar", "se_epi",
                                                         "sefm", "spinecho", "spin_echo")):
                return _convert("fmap", "epi", "spin-echo EPI field map (description)", f,
                                acq=reproin_entity(f.text, "acq") or "",
                                dir=direction_label(f) or "unknown")
        return None
    if named and f.n_volumes == 1 or dual_echo_phase:
        why = "sequence name" if name.startswith(("fm2d", "fm3d", "fmap", "b0map", "fieldmap")) \
            else "ImageType" if f.image_types & {"FIELDMAP", "B0 MAP", "B0MAP", "FIELD_MAP"} \
            else "dual-echo gradient echo with phase" if dual_echo_phase else "description"
        return _convert("fmap", GRE_FIELDMAP, f"gradient-echo field map ({why})", f,
                        acq=reproin_entity(f.text, "acq") or "")
    return None


def _functional(f: SeriesFacts) -> Decision | None:
    spin_echo = "SE" in f.scanning_sequence or f.echo_pulse_sequence == "SPIN"
    fmri_type = bool(f.image_types & {"FMRI"})
    if not (f.echo_planar or fmri_type):
        return None
    if spin_echo and not fmri_type and not _has(f.text, "bold", "fmri", "func", "task", "rest"):
        return None
    task = task_label(f)
    acq = reproin_entity(f.text, "acq") or ""
    direction = direction_label(f)
    if _has(f.text, "sbref") or (f.n_volumes == 1 and _has(f.text, "sbref", "sb_ref",
                                                            "singleband", "single_band")):
        d = _convert("func", "sbref", "single-band reference (description)", f, task=task or
                     "unknown", acq=acq, dir=direction or "")
    elif f.n_volumes >= 2 and (fmri_type or (f.echo_times and 10 <= max(f.echo_times) <= 80)):
        why = "ImageType FMRI" if fmri_type else "gradient-echo EPI time series"
        d = _convert("func", "bold", f"BOLD ({why}, {f.n_volumes} volumes)", f,
                     task=task or "unknown", acq=acq, dir=direction or "")
    elif f.n_volumes < 2:
        return exclude("single-volume EPI of unclear role (not a time series)", unclear=True)
    else:
        return None
    if task is None:
        d.flags.append("task-unknown")
    return d


_CONTRAST_SUFFIX = {"T1": "T1w", "T2": "T2w", "PROTON_DENSITY": "PDw",
                    "FLUID_ATTENUATED": "FLAIR", "T2_STAR": "T2starw"}


def _anatomical(f: SeriesFacts) -> Decision | None:
    acq = reproin_entity(f.text, "acq") or ""
    if f.acquisition_contrast in _CONTRAST_SUFFIX:
        return _convert("anat", _CONTRAST_SUFFIX[f.acquisition_contrast],
                        f"AcquisitionContrast {f.acquisition_contrast}", f, acq=acq)
    te = max(f.echo_times) if f.echo_times else None
    tr = f.repetition_time
    ti = f.inversion_time
    name = f.sequence_name.lower().lstrip("*")
    spin = ("SE" in f.scanning_sequence or f.echo_pulse_sequence == "SPIN"
            or name.startswith(("tse", "spc", "fse", "se", "tir", "cube", "space", "haste")))
    gradient = ("GR" in f.scanning_sequence or f.echo_pulse_sequence == "GRADIENT"
                or name.startswith(("tfl", "fl", "gre", "efgre", "fspgr", "spgr", "ffe", "t1ffe",
                                    "t1tfe", "tfe", "bravo", "swi")))
    prepared = f.inversion_recovery or "MP" in f.sequence_variant or name.startswith(
        ("tfl", "t1tfe", "tfe", "efgre3d", "bravo", "irfspgr"))
    if te is None or tr is None:
        return _anat_from_text(f, acq, "no echo or repetition time")
    if ti is not None and ti >= 1500 and (spin or te >= 60):
        return _convert("anat", "FLAIR", "inversion recovery with long TI (fluid attenuated)",
                        f, acq=acq)
    if gradient and not f.echo_planar:
        if prepared and te < 10 and (ti is None or ti < 1500):
            return _convert("anat", "T1w", "magnetization-prepared gradient echo, short TE",
                            f, acq=acq)
        if te >= 15 and not f.inversion_recovery:
            return _convert("anat", "T2starw", "gradient echo with long TE (T2*)", f, acq=acq)
        if te < 10 and tr < 50 and f.mr_acquisition_type == "3D":
            return _convert("anat", "T1w", "3D spoiled gradient echo, short TR and TE", f,
                            acq=acq)
    single_shot = name.startswith(("haste", "ssfse", "sshfse")) or _has(
        f.text, "haste", "ssfse", "ss-fse", "ss_tse", "single-shot")
    if spin and not f.echo_planar:
        if te >= 60 and (tr >= 1500 or single_shot):
            why = "single-shot turbo spin echo, long TE" if single_shot and tr < 1500 else \
                "spin echo with long TR and long TE"
            return _convert("anat", "T2w", why, f, acq=acq)
        if tr >= 1500 and te < 40 and not f.inversion_recovery:
            return _convert("anat", "PDw", "spin echo with long TR and short TE", f, acq=acq)
        if tr < 1000 and te < 30:
            return _convert("anat", "T1w", "spin echo with short TR and short TE", f, acq=acq)
    return _anat_from_text(f, acq, "acquisition parameters fit no contrast rule")


def _anat_from_text(f: SeriesFacts, acq: str, why_not: str) -> Decision | None:
    if f.echo_planar or f.n_volumes > 1:
        return None
    t = f.text
    if _has(t, "flair", "darkfluid", "dark_fluid"):
        return _convert("anat", "FLAIR", f"description ({why_not})", f, acq=acq)
    if _has(t, "t2star", "t2starw", "swi", "t2\\*", "gre") or "t2*" in t:
        return _convert("anat", "T2starw", f"description ({why_not})", f, acq=acq)
    if _has(t, "t1", "t1w", "mprage", "mp-rage", "spgr", "bravo", "tfl", "t1_mprage", "mpr"):
        return _convert("anat", "T1w", f"description ({why_not})", f, acq=acq)
    if _has(t, "t2", "t2w", "t2_tse", "t2_space", "cube_t2"):
        return _convert("anat", "T2w", f"description ({why_not})", f, acq=acq)
    if _has(t, "pd", "pdw", "proton_density"):
        return _convert("anat", "PDw", f"description ({why_not})", f, acq=acq)
    return None


_RULES = (_refused, _localizer, _mp2rage, _derived, _diffusion, _perfusion, _fieldmap,
          _functional, _anatomical)


def classify(f: SeriesFacts) -> Decision:
    """The built-in decision for one series (first rule group that decides wins)."""
    for rule in _RULES:
        decision = rule(f)
        if decision is not None:
            return decision
    return exclude("not understood by the built-in rules (add a --mapping-file rule)", unclear=True)
