"""The project key: keyed UIDs, pseudonyms and date offsets (DESIGN.md section 4)."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest

from bidsdeid.errors import DataError
from bidsdeid.privacy import dates
from bidsdeid.privacy.keys import ProjectKey


def test_key_is_created_owner_only_and_reused(tmp_path: Path) -> None:
    priv = tmp_path / "private"
    k1 = ProjectKey.load_or_create(priv)
    assert stat.S_IMODE(os.stat(priv / "key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(priv).st_mode) == 0o700
    k2 = ProjectKey.load_or_create(priv)
    assert k1.uid("1.2.3") == k2.uid("1.2.3")
    assert k1.fingerprint == k2.fingerprint


def test_damaged_key_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("not hex")
    with pytest.raises(DataError, match="damaged"):
        ProjectKey.load_or_create(tmp_path)


def test_uids_are_2_25_repeatable_and_differ_by_key() -> None:
    a, b = ProjectKey(b"a" * 32), ProjectKey(b"b" * 32)
    u = a.uid("1.3.12.2.1107.5.2.43.67093.2022071112080825794102791")
    assert u.startswith("2.25.") and len(u) <= 64 and u[5:].isdigit()
    assert u == a.uid("1.3.12.2.1107.5.2.43.67093.2022071112080825794102791")
    assert u != b.uid("1.3.12.2.1107.5.2.43.67093.2022071112080825794102791")
    many = {a.uid(f"1.2.840.{i}") for i in range(20000)}
    assert len(many) == 20000


def test_date_offset_lands_before_1926_and_keeps_intervals() -> None:
    key = ProjectKey(os.urandom(32))
    for subject in ("01", "02", "patient"):
        off = key.date_offset(subject)
        assert off == key.date_offset(subject)
        for year in (1990, 2022, 2100):
            assert off.apply(dt.datetime(year, 6, 1)).year <= 1925
        first, second = dt.datetime(2022, 1, 1, 9), dt.datetime(2022, 3, 5, 17, 30)
        assert off.apply(second) - off.apply(first) == second - first
    assert key.date_offset("01") != key.date_offset("02")


def test_shift_da_tm_dt_keep_precision_and_pairing() -> None:
    off = ProjectKey(b"k" * 32).date_offset("x")
    assert len(dates.shift_da("20220711", off)) == 8
    assert len(dates.shift_da("2022", off)) == 4
    d, t = dates.shift_date_and_time("20220711", "235959.123456", off)
    moved = dt.datetime(2022, 7, 11, 23, 59, 59, 123456) + off.delta
    assert d == moved.strftime("%Y%m%d") and t == moved.strftime("%H%M%S.%f")
    assert dates.shift_dt("20220711120000.5+0100", off).endswith("+0100")
    assert dates.shift_iso_datetime("2022-07-11T12:00:00", off).startswith(
        f"{(dt.datetime(2022, 7, 11, 12) + off.delta).year:04d}-")
    with pytest.raises(ValueError):
        dates.shift_da("yesterday", off)


def test_pseudonyms_are_bids_labels() -> None:
    key = ProjectKey(b"z" * 32)
    p = key.pseudonym("subject", "01")
    assert p.isalnum() and len(p) == 8 and p == key.pseudonym("subject", "01")
    assert p != key.pseudonym("subject", "02")


def test_ages_cap_at_89() -> None:
    assert dates.parse_dicom_age("093Y") == 93
    assert dates.cap_age(93) == 89
    assert dates.parse_dicom_age("006M") == 0.5
    assert dates.age_in_years(dt.date(1930, 5, 2), dt.date(2023, 5, 1)) == 92
