"""Tolerant value readers shared by every provider: values arrive as native JSON or as strings
(Virtuous spec 4.9, and every source platform alike).

Amounts are ``Decimal`` and never pass through ``float``. Every reader returns None for a
missing or blank value and raises ``ValueError`` for a value it cannot read, so bad data is
loud instead of silently zero.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

_TRUE = {"true", "yes", "1", "y", "on"}
_FALSE = {"false", "no", "0", "n", "off"}
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?$")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# Thousands separators only in their proper places: "1,234.50" is an amount, "12,50" is ambiguous
# (a decimal comma?) and refused rather than read as 1250.
_THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")
# No donation is a trillion; bigger values are bad data, and refusing them keeps quantize() safe.
MAX_AMOUNT = Decimal(10) ** 12


def to_decimal(value: Any) -> Decimal | None:
    """A Decimal from a Decimal, int or numeric string ("1,234.50" and "$5" accepted)."""
    if _blank(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"Not an amount: {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        # A float here came from someone else's JSON parser; its repr is the shortest exact text.
        result = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip().lstrip("$")
        if "," in text:
            if not _THOUSANDS.match(text):
                raise ValueError(f"Ambiguous amount (comma not a thousands separator): {value!r}")
            text = text.replace(",", "")
        try:
            result = Decimal(text)
        except InvalidOperation as exc:
            raise ValueError(f"Not an amount: {value!r}") from exc
    else:
        raise ValueError(f"Not an amount: {value!r}")
    if not result.is_finite():
        raise ValueError(f"Not a finite amount: {value!r}")
    if abs(result) >= MAX_AMOUNT:
        raise ValueError(f"Amount out of range: {value!r}")
    return result


def to_int(value: Any) -> int | None:
    """An int from an int, an integral Decimal, or a string such as "42" or "42.0"."""
    if _blank(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"Not an integer: {value!r}")
    if isinstance(value, int):
        return value
    number = to_decimal(value)
    if number is None or number != number.to_integral_value():
        raise ValueError(f"Not an integer: {value!r}")
    return int(number)


def to_bool(value: Any) -> bool | None:
    """A bool from a bool, 0/1, or the usual words ("true", "False", "yes", ...)."""
    if _blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueError(f"Not a boolean: {value!r}")


def to_datetime(value: Any, *, default_tz: dt.tzinfo = dt.UTC) -> dt.datetime | None:
    """An aware UTC datetime from ISO 8601 (with or without Z/offset) or M/D/YYYY [h:mm[:ss] [AM|PM]].

    Values without an offset are read in ``default_tz`` (Virtuous dates are in the organisation's
    zone; pass it when known). A bare date means its midnight.
    """
    if _blank(value):
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime.combine(value, dt.time(), tzinfo=default_tz)
    elif isinstance(value, str):
        parsed = _parse_datetime_text(value.strip())
    else:
        raise ValueError(f"Not a date/time: {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=default_tz)
    return parsed.astimezone(dt.UTC)


def from_unix_seconds(value: Any) -> dt.datetime:
    """An aware UTC datetime from whole Unix seconds (Stripe's ``created``); anything else, or a
    number no calendar holds, is a ValueError (a data error, never an OSError from the platform)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"Not a Unix timestamp: {value!r}")
    try:
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError(f"Unix timestamp out of range: {value!r}") from exc


def to_date(value: Any) -> dt.date | None:
    """A date from a date, a datetime (its own calendar day), ISO text or M/D/YYYY."""
    if _blank(value):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        return _parse_datetime_text(value.strip()).date()
    raise ValueError(f"Not a date: {value!r}")


def _parse_datetime_text(text: str) -> dt.datetime:
    match = _US_DATE.match(text)
    if match:
        month, day, year, hour, minute, second, meridiem = match.groups()
        h = int(hour or 0)
        if meridiem:
            if not 1 <= h <= 12:
                raise ValueError(f"Not a date/time: {text!r}")
            h = h % 12 + (12 if meridiem.lower() == "pm" else 0)
        try:
            return dt.datetime(int(year), int(month), int(day), h, int(minute or 0), int(second or 0))  # noqa: DTZ001 - the caller attaches the zone
        except ValueError as exc:
            raise ValueError(f"Not a date/time: {text!r}") from exc
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"Not a date/time: {text!r}") from exc


def json_loads(text: str | bytes) -> Any:
    """Parse a JSON body with every non-integer number as a Decimal, never a float."""
    return json.loads(text, parse_float=Decimal)


def json_dumps(payload: Any) -> str:
    """Serialise a request body; Decimals become exact JSON numbers, floats are refused.

    The standard encoder can only turn a Decimal into a string, so each one is written as a
    per-call marker and then replaced by its exact digits.
    """
    _refuse_floats(payload)
    marker = uuid.uuid4().hex
    numbers: list[str] = []

    def default(value: Any) -> Any:
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError(f"Cannot send a non-finite amount: {value!r}")
            numbers.append(format(value, "f"))
            return f"{marker}:{len(numbers) - 1}"
        if isinstance(value, dt.datetime | dt.date):
            return value.isoformat()
        if isinstance(value, uuid.UUID):
            return str(value)
        raise TypeError(f"Cannot send {type(value).__name__} to Virtuous")

    text = json.dumps(payload, default=default, ensure_ascii=False)
    if not numbers:
        return text
    return re.sub(f'"{marker}:(\\d+)"', lambda m: numbers[int(m.group(1))], text)


def _refuse_floats(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("A float reached a Virtuous payload; amounts must be Decimal.")
    if isinstance(value, dict):
        for item in value.values():
            _refuse_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_floats(item)
