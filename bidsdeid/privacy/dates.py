"""Shift DICOM DA/DT/TM values and ISO date-times by a subject's :class:`DateOffset`.

Partial values keep their precision (``2019`` stays a year, ``201903`` a month);
values that do not parse raise :class:`ValueError` so callers can fail closed (remove
the value) instead of passing it through.
"""

from __future__ import annotations

import datetime as dt
import re

from bidsdeid.privacy.keys import DateOffset

_DA_RE = re.compile(r"^(\d{4})(\d{2})?(\d{2})?$")
_TM_RE = re.compile(r"^(\d{2})(?::?(\d{2}))?(?::?(\d{2}))?(\.\d{1,6})?$")
_DT_RE = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,6})?([+-]\d{4})?$")


def parse_da(value: str) -> tuple[dt.date, int]:
    """Parse a DICOM DA (also ``YYYY.MM.DD`` and ``YYYY-MM-DD``); return (date, precision)."""
    v = value.strip().replace(".", "").replace("-", "")
    m = _DA_RE.match(v)
    if not m:
        raise ValueError("not a DA value")
    year = int(m.group(1))
    month = int(m.group(2) or 1)
    day = int(m.group(3) or 1)
    precision = 1 + (m.group(2) is not None) + (m.group(3) is not None)
    return dt.date(year, month, day), precision


def shift_da(value: str, offset: DateOffset) -> str:
    """Shift a DA value by whole days (the time part of the offset is ignored)."""
    date, precision = parse_da(value)
    shifted = date + dt.timedelta(days=offset.delta.days)
    full = f"{_format_year(shifted)}{shifted.month:02d}{shifted.day:02d}"
    return full[: {1: 4, 2: 6, 3: 8}[precision]]


def _format_year(d: dt.datetime | dt.date) -> str:
    return f"{d.year:04d}"


def parse_tm(value: str) -> tuple[dt.time, int, str]:
    """Parse a DICOM TM (``HHMMSS.FFFFFF``, or the old ``HH:MM:SS``)."""
    v = value.strip()
    m = _TM_RE.match(v)
    if not m:
        raise ValueError("not a TM value")
    hh, mm, ss, frac = m.group(1), m.group(2), m.group(3), m.group(4) or ""
    precision = 1 + (mm is not None) + (ss is not None)
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    return dt.time(int(hh) % 24, int(mm or 0), min(int(ss or 0), 59), micro), precision, frac


def shift_tm(value: str, offset: DateOffset) -> str:
    """Shift a TM value by the time-of-day part of the offset (wrapping at midnight)."""
    t, precision, frac = parse_tm(value)
    base = dt.datetime(2000, 1, 1, t.hour, t.minute, t.second, t.microsecond)
    moved = base + dt.timedelta(seconds=offset.delta.seconds)
    out = moved.strftime("%H%M%S")[: 2 * precision]
    if frac and precision == 3:
        out += "." + f"{moved.microsecond:06d}"[: len(frac) - 1]
    return out


def shift_date_and_time(da: str, tm: str, offset: DateOffset) -> tuple[str, str]:
    """Shift a DA and its paired TM together, carrying midnight into the date."""
    date, _ = parse_da(da)
    t, precision, frac = parse_tm(tm)
    moved = offset.apply(dt.datetime.combine(date, t))
    out_tm = moved.strftime("%H%M%S")[: 2 * precision]
    if frac and precision == 3:
        out_tm += "." + f"{moved.microsecond:06d}"[: len(frac) - 1]
    return f"{_format_year(moved)}{moved.month:02d}{moved.day:02d}", out_tm


def shift_dt(value: str, offset: DateOffset) -> str:
    """Shift a DICOM DT value (keeps precision and any UTC offset suffix)."""
    v = value.strip()
    m = _DT_RE.match(v)
    if not m:
        raise ValueError("not a DT value")
    parts = [m.group(i) for i in range(1, 7)]
    frac, tz = m.group(7) or "", m.group(8) or ""
    n = sum(p is not None for p in parts)
    nums = [int(p) if p is not None else d for p, d in zip(parts, (1, 1, 1, 0, 0, 0))]
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    moved = offset.apply(dt.datetime(nums[0], nums[1], nums[2], nums[3], nums[4],
                                     min(nums[5], 59), micro))
    full = (f"{_format_year(moved)}{moved.month:02d}{moved.day:02d}"
            f"{moved.hour:02d}{moved.minute:02d}{moved.second:02d}")
    out = full[: [4, 6, 8, 10, 12, 14][n - 1]]
    if frac and n == 6:
        out += "." + f"{moved.microsecond:06d}"[: len(frac) - 1]
    return out + tz


def shift_iso_datetime(value: str, offset: DateOffset) -> str:
    """Shift an ISO 8601 date-time as BIDS writes it (``YYYY-MM-DDThh:mm:ss[.ffffff]``)."""
    v = value.strip()
    parsed = dt.datetime.fromisoformat(v)
    moved = offset.apply(parsed.replace(tzinfo=None))
    text = (f"{_format_year(moved)}-{moved.month:02d}-{moved.day:02d}"
            f"T{moved.hour:02d}:{moved.minute:02d}:{moved.second:02d}")
    if "." in v.split("T")[-1]:
        digits = len(v.split(".")[-1].split("+")[0].split("Z")[0])
        text += "." + f"{moved.microsecond:06d}"[: max(1, min(digits, 6))]
    return text


def age_in_years(birth: dt.date, when: dt.date) -> int:
    """Whole years between ``birth`` and ``when`` (birthday not yet reached counts down)."""
    years = when.year - birth.year - ((when.month, when.day) < (birth.month, birth.day))
    return max(years, 0)


def parse_dicom_age(value: str) -> float | None:
    """PatientAge (``nnnD``/``W``/``M``/``Y``) in years; None if absent or malformed."""
    m = re.match(r"^\s*(\d{1,3})\s*([DWMY])\s*$", value or "", re.IGNORECASE)
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2).upper()
    return {"D": n / 365.25, "W": n * 7 / 365.25, "M": n / 12.0, "Y": float(n)}[unit]


MAX_AGE_YEARS = 89
"""Ages above this are reported as 89 (HIPAA safe harbour; DESIGN.md section 4)."""


def cap_age(years: float) -> float:
    return min(years, float(MAX_AGE_YEARS))
