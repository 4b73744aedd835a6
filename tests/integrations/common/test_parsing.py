"""Tolerant readers: native or string forms in, exact values out, loud on nonsense."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from integrations.common.parsing import (
    from_unix_seconds,
    json_dumps,
    json_loads,
    to_bool,
    to_date,
    to_datetime,
    to_decimal,
    to_int,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("10.50"), Decimal("10.50")),
        (25, Decimal("25")),
        ("25.10", Decimal("25.10")),
        (" 1,234.56 ", Decimal("1234.56")),
        ("$5", Decimal("5")),
        (25.1, Decimal("25.1")),
        (None, None),
        ("", None),
    ],
)
def test_to_decimal(value, expected):
    result = to_decimal(value)
    assert result == expected
    assert result is None or type(result) is Decimal
    if isinstance(expected, Decimal):
        assert str(result) == str(expected)


@pytest.mark.parametrize("value", ["ten", True, "NaN", "Infinity", [1]])
def test_to_decimal_refuses_nonsense(value):
    with pytest.raises(ValueError):
        to_decimal(value)


@pytest.mark.parametrize(
    ("value", "expected"), [(7, 7), ("7", 7), ("7.0", 7), (Decimal("8"), 8), (None, None)]
)
def test_to_int(value, expected):
    assert to_int(value) == expected


@pytest.mark.parametrize("value", ["7.5", False, "x"])
def test_to_int_refuses_nonsense(value):
    with pytest.raises(ValueError):
        to_int(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("False", False),
        (" YES ", True),
        (1, True),
        (0, False),
        (None, None),
    ],
)
def test_to_bool(value, expected):
    assert to_bool(value) is expected


@pytest.mark.parametrize("value", ["maybe", 2])
def test_to_bool_refuses_nonsense(value):
    with pytest.raises(ValueError):
        to_bool(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-20T15:04:05Z", datetime(2026, 11, 20, 15, 4, 5, tzinfo=UTC)),
        ("2026-11-20T15:04:05.123Z", datetime(2026, 11, 20, 15, 4, 5, 123000, tzinfo=UTC)),
        ("2026-11-20T09:04:05-06:00", datetime(2026, 11, 20, 15, 4, 5, tzinfo=UTC)),
        ("2026-11-20T15:04:05", datetime(2026, 11, 20, 15, 4, 5, tzinfo=UTC)),
        ("11/20/2026", datetime(2026, 11, 20, tzinfo=UTC)),
        ("1/2/2026 3:04 PM", datetime(2026, 1, 2, 15, 4, tzinfo=UTC)),
        ("1/2/2026 12:30:10 am", datetime(2026, 1, 2, 0, 30, 10, tzinfo=UTC)),
        (date(2026, 11, 20), datetime(2026, 11, 20, tzinfo=UTC)),
        (None, None),
    ],
)
def test_to_datetime(value, expected):
    result = to_datetime(value)
    assert result == expected
    assert result is None or result.tzinfo == UTC


def test_to_datetime_reads_naive_values_in_the_organisation_zone():
    assert to_datetime("11/20/2026 9:00 AM", default_tz=ZoneInfo("America/Chicago")) == datetime(
        2026, 11, 20, 15, 0, tzinfo=UTC
    )


@pytest.mark.parametrize("value", ["yesterday", "13/45/2026", "2/30/2026", "1/2/2026 13:00 PM", 1700000000])
def test_to_datetime_refuses_nonsense(value):
    with pytest.raises(ValueError):
        to_datetime(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-20", date(2026, 11, 20)),
        ("11/20/2026", date(2026, 11, 20)),
        ("2026-11-20T23:30:00-06:00", date(2026, 11, 20)),
        (datetime(2026, 11, 20, 23, 0, tzinfo=UTC), date(2026, 11, 20)),
        ("", None),
    ],
)
def test_to_date(value, expected):
    assert to_date(value) == expected


def test_json_round_trip_keeps_amounts_exact():
    payload = {"amount": Decimal("0.30"), "items": [Decimal("-12.345")], "when": date(2026, 11, 20), "n": 3}
    text = json_dumps(payload)
    assert text == '{"amount": 0.30, "items": [-12.345], "when": "2026-11-20", "n": 3}'
    assert json_loads(text)["amount"] == Decimal("0.30")


def test_json_dumps_leaves_strings_that_look_like_markers_alone():
    assert json_dumps({"note": "amount: 5", "amount": Decimal("5")}) == '{"note": "amount: 5", "amount": 5}'


@pytest.mark.parametrize("payload", [{"amount": 1.5}, [{"nested": [0.1]}], {"amount": Decimal("NaN")}])
def test_json_dumps_refuses_floats_and_non_finite(payload):
    with pytest.raises((TypeError, ValueError)):
        json_dumps(payload)


@pytest.mark.parametrize("text", ["12,50", "1,23", "1,2345.00", ",100"])
def test_commas_that_are_not_thousands_separators_are_refused(text):
    with pytest.raises(ValueError, match="Ambiguous amount"):
        to_decimal(text)


@pytest.mark.parametrize(
    "text,expected", [("1,234.50", "1234.50"), ("12,345,678", "12345678"), ("-1,000", "-1000")]
)
def test_thousands_separators_in_place_are_accepted(text, expected):
    assert to_decimal(text) == Decimal(expected)


@pytest.mark.parametrize("value", ["1e400", Decimal("1E+15"), 10**13])
def test_absurdly_large_amounts_are_refused(value):
    with pytest.raises(ValueError, match="out of range"):
        to_decimal(value)


def test_unix_seconds_out_of_any_calendar_are_a_data_error_not_an_os_error():
    assert from_unix_seconds(1_700_000_000) == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    # Found by the parser property tests: a huge Stripe ``created`` raised OSError/OverflowError,
    # which the receiver does not treat as a malformed payload.
    for bad in (10**20, -5, 0, True, "1700000000", None, 1.5):
        with pytest.raises(ValueError):
            from_unix_seconds(bad)
