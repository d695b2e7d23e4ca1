"""Roles of the images dcm2niix makes from one series, and unique names per session."""

from __future__ import annotations

from pathlib import Path

from test_convert_heuristic import facts

from bidsdeid.convert.dcm2niix import Output
from bidsdeid.convert.heuristic import GRE_FIELDMAP, Decision
from bidsdeid.convert.naming import Named, number_repeats, roles


def out(postfix: str = "", echo: int | None = None, part: str = "mag", hz: bool = False,
        understood: bool = True) -> Output:
    return Output(nii=Path(f"series{postfix}.nii"), sidecar={}, postfix=postfix,
                  shape=(64, 64, 30), echo=echo, part=part, fieldmap_hz=hz,
                  understood=understood)


FMAP = Decision("convert", "fmap", "fmap", GRE_FIELDMAP)


def _suffixes(result: object) -> list[tuple[str, dict[str, str]]]:
    assert not isinstance(result, str), result
    return [(s, e) for _o, s, e in result]  # type: ignore[union-attr]


def test_gre_fieldmap_roles() -> None:
    siemens_mag = [out("_e1", 1), out("_e2", 2)]
    assert _suffixes(roles(FMAP, siemens_mag)) == [("magnitude1", {}), ("magnitude2", {})]
    assert _suffixes(roles(FMAP, [out("_e2_ph", 2, "phase")])) == [("phasediff", {})]
    philips = [out("_e1", 1), out("_e2", 2), out("_e1_ph", 1, "phase"), out("_e2_ph", 2, "phase")]
    assert [s for s, _e in _suffixes(roles(FMAP, philips))] == [
        "magnitude1", "magnitude2", "phase1", "phase2"]
    ge = [out("_fieldmaphz", hz=True), out("")]
    assert [s for s, _e in _suffixes(roles(FMAP, ge))] == ["fieldmap", "magnitude"]
    assert isinstance(roles(FMAP, [out("_e1", 1), out("_e1", 1)]), str)  # same echo twice
    assert isinstance(roles(FMAP, [out("_e1", 1, "real")]), str)


def test_echo_and_part_entities_where_the_schema_allows() -> None:
    bold = Decision("convert", "bold", "func", "bold", {"task": "rest"})
    me = _suffixes(roles(bold, [out("_e1", 1), out("_e2", 2), out("_e3", 3)]))
    assert me == [("bold", {"echo": "1"}), ("bold", {"echo": "2"}), ("bold", {"echo": "3"})]
    mp = _suffixes(roles(bold, [out(""), out("_ph", part="phase")]))
    assert mp == [("bold", {"part": "mag"}), ("bold", {"part": "phase"})]
    dwi = Decision("convert", "dwi", "dwi", "dwi")
    assert "no echo entity" in roles(dwi, [out("_e1", 1), out("_e2", 2)])  # type: ignore[operator]
    t1 = Decision("convert", "T1w", "anat", "T1w")
    assert "unclear role" in roles(t1, [out(""), out("_i00002", understood=False)])  # type: ignore[operator]


def _named(series: int, suffix: str, datatype: str = "anat", **kw: object) -> Named:
    return Named(out(), datatype, suffix, {}, series, None, facts(series_number=series, **kw),
                 Decision("convert", "x", datatype, suffix))


def test_repeats_get_runs_in_series_order_and_acq_for_different_acquisitions() -> None:
    t1 = [_named(9, "T1w"), _named(3, "T1w")]
    fmaps = [_named(5, "magnitude1", "fmap"), _named(6, "phasediff", "fmap"),
             _named(15, "magnitude1", "fmap"), _named(16, "phasediff", "fmap")]
    t2 = [_named(7, "T2w", mr_acquisition_type="2D"), _named(8, "T2w", mr_acquisition_type="3D")]
    single = [_named(11, "FLAIR")]
    number_repeats(t1 + fmaps + t2 + single)
    assert [n.entities for n in t1] == [{"run": "2"}, {"run": "1"}]
    assert [n.entities.get("run") for n in fmaps] == ["1", "1", "2", "2"]
    assert [n.entities for n in t2] == [{"acq": "2D"}, {"acq": "3D"}]
    assert single[0].entities == {}


def test_labels_from_descriptions_must_not_hide_a_name() -> None:
    from types import SimpleNamespace

    from bidsdeid.convert.stage import _hides_identifier
    from bidsdeid.privacy.identifiers import Identifiers

    ids = Identifiers()
    ids.add_name("Smith^John")
    ctx = SimpleNamespace(identifiers=ids)
    assert _hides_identifier(ctx, {"task": "johnsmith"})  # type: ignore[arg-type]
    assert _hides_identifier(ctx, {"acq": "smithpilot"})  # type: ignore[arg-type]
    assert not _hides_identifier(ctx, {"task": "rest", "run": "smith"})  # type: ignore[arg-type]
