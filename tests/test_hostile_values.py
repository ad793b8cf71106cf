"""The value rules (tradestore.values) and the strict reader (tradestore.document), directly.

Every numeric kind Python has, every way a value can fail to be a number, and every way a JSON
document can be read two ways: each is either taken as the one number / document it is, or
refused with the documented error (never OverflowError, TypeError, RecursionError).
"""

from __future__ import annotations

import json
import math
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import enum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradestore import values
from tradestore.document import MAX_DEPTH, DocumentError, loads_strict, parse_document
from tradestore.errors import CorruptTradeLog, InvalidTrade, TradeNotFound, describe


class FakeInt:
    """Behaves like a numpy integer scalar: no int subclass, but __index__ and __float__."""

    def __init__(self, n):
        self.n = n

    def __index__(self):
        return self.n

    def __float__(self):
        return float(self.n)


class FakeFloat:
    """Behaves like a numpy float32 scalar: only __float__."""

    def __init__(self, x):
        self.x = x

    def __float__(self):
        return self.x


class bool_:  # noqa: N801 - the name numpy gives its boolean scalar
    def __float__(self):
        return 1.0


class Three(enum.IntEnum):
    THREE = 3


class Hostile:
    """Every conversion and its repr raise."""

    def __repr__(self):
        raise RuntimeError("no repr")

    def __float__(self):
        raise RuntimeError("no float")


ACCEPTED = [
    (1, 1.0), (2**60, float(2**60)), (10**308, 1e308), (1.5, 1.5), (-0.0, -0.0), (5e-324, 5e-324),
    (Decimal("2.5"), 2.5), (Decimal("1e-400"), 0.0), (Fraction(1, 4), 0.25), (FakeInt(7), 7.0),
    (FakeFloat(0.5), 0.5), (Three.THREE, 3.0),
]
REFUSED = [
    True, False, bool_(), "1.5", b"1", None, [], {}, object(), Hostile(), complex(1, 0),
    float("nan"), float("inf"), -float("inf"), 10**400, -(10**400), 10**5000,
    Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("1e400"), Fraction(10**400, 3),
    FakeFloat(float("nan")), FakeFloat("x"), FakeInt(10**400),
]


@pytest.mark.parametrize("value,expected", ACCEPTED)
def test_every_numeric_kind_is_taken_as_its_double(value, expected):
    result = values.to_float(value)
    assert type(result) is float and result == expected and math.copysign(1, result) == math.copysign(1, expected)
    assert values.is_finite_number(value)


@pytest.mark.parametrize("value", REFUSED, ids=lambda v: type(v).__name__)
def test_what_is_no_finite_double_is_refused_with_one_error(value):
    with pytest.raises(values.NumberRefused) as caught:
        values.to_float(value)
    assert isinstance(caught.value, ValueError) and caught.value.reason
    assert not values.is_finite_number(value)
    with pytest.raises(InvalidTrade, match="^entry_price=") as invalid:
        values.trade_number("entry_price", value)
    assert invalid.value.field == "entry_price"
    with pytest.raises(ValueError, match="^starting_capital="):
        values.limit_number("starting_capital", value)
    with pytest.raises(ValueError, match="^max_positions="):
        values.limit_count("max_positions", value)


def test_describe_never_raises():
    assert describe(Hostile()) == "<Hostile object>"
    assert describe(10**5000) == f"<int of {(10**5000).bit_length()} bits>"
    assert describe("x" * 1000).endswith("...") and len(describe("x" * 1000)) == 80
    assert "Hostile" in str(InvalidTrade(Hostile(), Hostile(), "bad"))
    assert "Hostile" in str(TradeNotFound(Hostile()))


@pytest.mark.parametrize(
    "kwargs,value,message",
    [({}, 0, "greater than 0"), ({}, 2e15, "at most"), ({"positive": False, "above": 0.0, "below": 1.0}, 1, "less than 1"),
     ({"positive": False, "above": 0.0, "at_most": None}, 0.0, "greater than 0")],
)
def test_trade_number_ranges(kwargs, value, message):
    with pytest.raises(InvalidTrade, match=message):
        values.trade_number("x", value, **kwargs)


def test_limits():
    assert values.limit_number("p", None, optional=True) is None
    assert math.copysign(1, values.limit_number("p", -0.0)) == 1
    assert values.limit_count("n", None, optional=True) is None
    assert values.limit_count("n", Decimal("7")) == 7 and values.limit_count("n", FakeInt(3)) == 3
    for bad, message in ((-1, "> 0"), (2.5, "whole number"), (0, "> 0"), (10**16, "at most")):
        with pytest.raises(ValueError, match=message):
            values.limit_count("n", bad, positive=True)
    for bad, kw, message in ((-1, {}, ">= 0"), (0, {"positive": True}, "> 0"), (5, {"at_most": 1}, "at most")):
        with pytest.raises(ValueError, match=message):
            values.limit_number("p", bad, **kw)


def test_text():
    class Sub(str):
        def __str__(self):
            return "changed"

    assert type(values.trade_text("notes", Sub("kept"))) is str and values.trade_text("notes", Sub("kept")) == "kept"
    for bad, message in ((5, "string"), ("x" * 10_001, "at most"), ("a\ud800b", "UTF-8")):
        with pytest.raises(InvalidTrade, match=message):
            values.trade_text("notes", bad)


def test_symbols_and_ids():
    assert values.normalize_symbol(" btc ") == "BTC" and values.symbol_key(" eth") == "ETH"
    for bad in (None, "", "   ", "A B", "X" * 33, "\ud800"):
        with pytest.raises(InvalidTrade, match="symbol"):
            values.normalize_symbol(bad)
    assert values.format_id(1) == "T001" and values.format_id(1000) == "T1000"
    assert values.id_number("T007") == 7 and values.id_number("T" + "9" * 15) == values.MAX_ID_NUMBER
    for bad in ("T" + "1" * 16, "T" + "1" * 5000, "t001", "T", 7, None):
        assert values.id_number(bad) is None


def test_times():
    aware = datetime(2026, 1, 1, 5, tzinfo=timezone(timedelta(hours=5)))
    assert values.utc(aware) == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert values.utc(datetime(2026, 1, 1)).tzinfo is timezone.utc
    with pytest.raises(ValueError, match="clock returned"):
        values.utc("2026-01-01")
    with pytest.raises(ValueError, match="not a time UTC can express"):
        values.utc(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))))
    assert values.utc_iso(datetime(2026, 1, 1)) == "2026-01-01T00:00:00+00:00"
    assert values.parse_time("2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert values.parse_time("0001-01-01T00:00:00+05:00") == datetime.min.replace(tzinfo=timezone.utc)
    assert values.parse_time("9999-12-31T23:59:59-05:00") == datetime.max.replace(tzinfo=timezone.utc)
    assert values.parse_time(5) is None and values.parse_time("yesterday") is None
    assert values.time_key(None) == datetime.min.replace(tzinfo=timezone.utc)
    end = datetime(9999, 12, 31, 23, tzinfo=timezone.utc)
    assert values.add_hours(end, 5) == datetime.max.replace(tzinfo=timezone.utc)
    assert values.add_hours(end, 1e300) == datetime.max.replace(tzinfo=timezone.utc)
    assert values.add_hours(end, -1e300) == datetime.min.replace(tzinfo=timezone.utc)
    assert values.add_hours(end, 0.5) == end + timedelta(minutes=30)


def test_rounding():
    assert values.round_money(0.123456789) == 0.12345679 and values.round_ratio(1.23456) == 1.2346
    assert values.ratio(1, 0) is None and values.ratio(1e308, 1e-308) is None and values.ratio(1, 3) == 0.3333


# --------------------------------------------------------------------------- the reader


@pytest.mark.parametrize(
    "data,message",
    [
        (b'{"a":1,"a":2}', "more than once"),
        (b'{"trades":[],"x":[{"k":{"b":1,"b":2}}]}', "more than once"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested"),
        (b"[" * 100_000 + b"]" * 100_000, "nested"),
        (b"[" * 100_000, "do not match"),
        (b"[1e400]", "outside the range"), (b"[-1E+309]", "outside the range"),
        (b"[" + b"9" * 400 + b"]", "outside the range"), (b"[1" + b"0" * 300 + b"e10]", "outside the range"),
        (b"[1" + b"0" * 5000 + b"]", "outside the range"),
        (b'["\\ud800"]', "surrogate"), (b'{"\\udc00":1}', "surrogate"), (b'["\\ude00\\ud83d"]', "surrogate"),
        (b'\xef\xbb\xbf{"trades":[]}', "byte-order mark"),
        (b'["\xed\xa0\x80"]', "UTF-8"), (b'["\xff"]', "UTF-8"), ('["\ud800"]', "UTF-8"),
        (b"[NaN]", "NaN"), (b"[Infinity]", "Infinity"), (b"[1,]", "Expecting"), (b"[--1]", "Expecting"),
        (b"[1.2.3e400]", "valid number"),
    ],
)
def test_the_reader_refuses_what_it_could_misread(data, message):
    with pytest.raises(DocumentError, match=message):
        loads_strict(data)
    with pytest.raises(CorruptTradeLog):
        parse_document(data)


@settings(max_examples=600)
@given(sign=st.sampled_from(["", "-"]), digits=st.integers(1, 26), fraction=st.sampled_from(["", ".5", ".0001"]),
       marker=st.sampled_from(["", "e", "E"]), exp_sign=st.sampled_from(["", "+", "-"]),
       exponent=st.integers(0, 400), zeros=st.integers(0, 2), lead=st.sampled_from("123456789"))
def test_a_number_is_taken_exactly_when_it_is_a_finite_double(sign, digits, fraction, marker, exp_sign,
                                                              exponent, zeros, lead):
    """Every spelling of a number JSON allows (digits, fraction, e or E, +, - or no exponent
    sign, leading zeros in the exponent): taken as itself if it is a finite double, refused
    otherwise, inside an array and as a value of a trade log, wherever it is in the bytes."""
    token = sign + lead + "0" * (digits - 1) + fraction
    if marker:
        token += marker + exp_sign + "0" * zeros + str(exponent)
    finite, value = math.isfinite(float(token)), json.loads(token)  # an int stays an int
    for doc, taken in ((f"[{token}]", [value]), (f'{{"trades":[],"x":["E+",{token},"e"]}}',
                                                  {"trades": [], "x": ["E+", value, "e"]})):
        if finite:
            assert loads_strict(doc.encode()) == taken
        else:
            with pytest.raises(DocumentError, match="outside the range"):
                loads_strict(doc.encode())



@pytest.mark.parametrize(
    "data,expected",
    [
        (b'["\\ud83d\\ude00"]', ["\U0001F600"]), (b"[1e308, 1e-400, 12345678901234567890123]", [1e308, 0.0, 12345678901234567890123]),
        (b'["\\"[[[", "e100", "x]]]", "\\\\"]', ['"[[[', "e100", "x]]]", "\\"]),
        (b'["0000000000000000000000000"]', ["0" * 25]), ("[\"\u00e9\"]", ["\u00e9"]),
        (b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, eval("[" * MAX_DEPTH + "]" * MAX_DEPTH)),
    ],
)
def test_the_reader_reads_every_valid_document_as_json_does(data, expected):
    assert loads_strict(data) == expected


def test_shape_errors_name_the_problem():
    for data, message in ((b"  ", "empty"), (b"[]", "wrong shape"), (b'{"schema":99,"trades":[]}', "schema 99"),
                          (b'{"trades":[{"id":"T' + b"1" * 16 + b'","status":"OPEN","symbol":"A"}]}', "15 digits"),
                          (b'{"trades":[{"id":"T001","status":"X","symbol":"A"}]}', "status"),
                          (b'{"next_id":1000000000000001,"trades":[]}', "next_id")):
        with pytest.raises(CorruptTradeLog, match=message):
            parse_document(data)
    assert parse_document(b'{"next_id":1000000000000000,"trades":[]}')["next_id"] == 10**15


def test_reading_a_document_never_recurses_past_the_limit():
    depth_left = sys.getrecursionlimit() - 60  # a caller already deep in its own stack
    def nested(n):
        if n:
            return nested(n - 1)
        return loads_strict(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    assert nested(depth_left - MAX_DEPTH * 2)


def test_naive_times_are_utc():
    assert values.parse_time("2026-01-01T00:00:00") == datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_a_log_that_used_every_id_refuses_to_open_and_stays_readable(tmp_path):
    from tradestore import IntegrityError, TradeStore

    log = tmp_path / "t.json"
    data = b'{"schema":1,"next_id":1000000000000000,"trades":[]}'
    log.write_bytes(data)
    store = TradeStore(log, fsync=False)
    with pytest.raises(IntegrityError, match="every trade id up to T999999999999999 is used"):
        store.open_trade("BTC", "LONG", 100, 90, 120, 1)
    assert log.read_bytes() == data and store.get_next_id() == "T1000000000000000"
