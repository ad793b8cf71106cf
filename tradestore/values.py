"""Value rules: the one place that decides what a number, a time, an id, a symbol or a text is.

Every public entry point coerces its input through these functions, so the same value is
accepted or refused the same way everywhere, and a value that was accepted cannot break a
later computation.

Guarantees:

- :func:`to_float` accepts every Python numeric kind (``int`` of any size, ``float``,
  ``Decimal``, ``Fraction``, numpy-like scalars through ``numbers.Real``, ``__index__`` or
  ``__float__``) whose value is a finite double, and refuses booleans, text, complex numbers,
  NaN, infinities, values outside the double range and anything else with one exception type,
  :class:`NumberRefused` (a ValueError) carrying the reason. It never lets an OverflowError,
  TypeError or a conversion method's own exception escape.
- :func:`trade_number` / :func:`trade_text` raise :class:`InvalidTrade` naming the field;
  :func:`limit_number` / :func:`limit_count` raise ValueError naming the limit.
- Error messages show values through :func:`describe`, which never raises (a ``__repr__`` that
  raises, an int too long to print).
- Times: naive means UTC, aware ones are converted; arithmetic saturates at the calendar's
  ends instead of raising OverflowError.
- Standard library only; imports nothing from the rest of the package but :mod:`.errors`.
"""

from __future__ import annotations

import math
import numbers
import operator
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from .errors import InvalidTrade, describe

__all__ = [
    "DIRECTIONS", "MAX_AMOUNT", "MAX_ID_NUMBER", "MAX_TEXT", "MONEY_DECIMALS", "RATIO_DECIMALS",
    "NumberRefused", "add_hours", "describe", "format_id", "id_number", "is_finite_number",
    "limit_count", "limit_number", "normalize_direction", "normalize_symbol", "parse_id", "parse_time", "ratio",
    "round_money",
    "round_ratio", "symbol_key", "time_key", "to_float", "trade_number", "trade_text", "utc",
    "utc_iso",
]

MONEY_DECIMALS = 8  # USD amounts are rounded to this many decimal places
RATIO_DECIMALS = 4  # percentages, ratios and R multiples
MAX_TEXT = 10_000  # characters of a free-text field
# Every price, size and capital given as input is at most this in magnitude. Products of two
# (a notional, a P&L) then stay below 1e36, and a sum of such amounts cannot overflow a double
# in any number of trades a log can hold: equity and every risk sum stay finite.
MAX_AMOUNT = 1e15
# Trade ids are ``T`` + a number up to this (15 digits): exact in a double, so every reader of
# the log, in any language, sees the same id numbers.
MAX_ID_NUMBER = 10**15 - 1

# numpy's boolean scalar is no subclass of bool but converts to 0.0 / 1.0: refused by name.
_BOOL_TYPE_NAMES = frozenset({"bool", "bool_"})


class NumberRefused(ValueError):
    """A value that is not a finite number in the double range; ``reason`` says why."""

    def __init__(self, value: object, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(f"{describe(value)}: {reason}")


def _convert(value: object) -> float:
    """``value`` as a float, possibly inf or nan; raises NumberRefused for non-numbers."""
    kind = type(value)
    if isinstance(value, bool) or kind.__name__ in _BOOL_TYPE_NAMES:
        raise NumberRefused(value, "is a boolean, not a number")
    if isinstance(value, (str, bytes, bytearray)):
        raise NumberRefused(value, "is text, not a number (pass 1.5, not '1.5')")
    if isinstance(value, float):
        return float.__float__(value)  # the stored double, whatever a subclass overrides
    if isinstance(value, int):
        return int.__float__(value)  # OverflowError beyond the double range: caught below
    if isinstance(value, Decimal):
        if not value.is_finite():  # float() of a signalling NaN raises; NaN/Infinity refused
            raise NumberRefused(value, "is not finite (NaN or Infinity)")
        return float(value)
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        raise NumberRefused(value, "is a complex number, not a real one")
    if hasattr(kind, "__index__"):  # numpy integers and other exact integer kinds
        return int.__float__(operator.index(value))
    if isinstance(value, numbers.Real) or hasattr(kind, "__float__"):  # Fraction, numpy floats
        result = float(value)  # type: ignore[arg-type]
        return float.__float__(result)
    raise NumberRefused(value, f"is a {kind.__name__}, not a number")


def to_float(value: object) -> float:
    """``value`` as a finite float; NumberRefused (a ValueError) with the reason otherwise."""
    try:
        result = _convert(value)
    except NumberRefused:
        raise
    except OverflowError:
        raise NumberRefused(value, "is outside the range of a double (about ±1.8e308)") from None
    except Exception as exc:  # a conversion method of the value's own type failed
        raise NumberRefused(value, f"cannot be converted to a number ({type(exc).__name__})") from None
    if not math.isfinite(result):
        if isinstance(value, float) or math.isnan(result):
            raise NumberRefused(value, "is not finite (NaN or Infinity)")
        raise NumberRefused(value, "is outside the range of a double (about ±1.8e308)")
    return result


def is_finite_number(value: object) -> bool:
    """True for a value :func:`to_float` accepts."""
    try:
        to_float(value)
    except NumberRefused:
        return False
    return True


def _range_problem(number: float, *, positive: bool, above: float | None, below: float | None,
                   at_most: float | None) -> str | None:
    if positive and not number > 0:
        return "must be greater than 0"
    if above is not None and not number > above:
        return f"must be greater than {above:g}"
    if below is not None and not number < below:
        return f"must be less than {below:g}"
    if at_most is not None and number > at_most:
        return f"must be at most {at_most:g}"
    return None


def trade_number(field: str, value: object, *, positive: bool = True, above: float | None = None,
                 below: float | None = None, at_most: float | None = MAX_AMOUNT) -> float:
    """A finite float for trade input ``field``; InvalidTrade naming the field otherwise.

    By default the value must be > 0 and at most :data:`MAX_AMOUNT` (prices and sizes).
    """
    try:
        number = to_float(value)
    except NumberRefused as exc:
        raise InvalidTrade(field, value, f"must be a finite number; it {exc.reason}") from None
    problem = _range_problem(number, positive=positive, above=above, below=below, at_most=at_most)
    if problem:
        raise InvalidTrade(field, value, problem)
    return number


def limit_number(name: str, value: object, *, optional: bool = False, positive: bool = False,
                 at_most: float | None = None) -> float | None:
    """A finite float >= 0 (> 0 with ``positive``) for the limit ``name``; ValueError naming it.

    ``None`` passes through when ``optional``.
    """
    if value is None and optional:
        return None
    try:
        number = to_float(value)
    except NumberRefused as exc:
        raise ValueError(f"{name}={describe(value)}: must be a finite number"
                         + (" or None" if optional else "") + f"; it {exc.reason}") from None
    if number < 0 or (positive and number == 0):
        raise ValueError(f"{name}={describe(value)}: must be {'> 0' if positive else '>= 0'}")
    if at_most is not None and number > at_most:
        raise ValueError(f"{name}={describe(value)}: must be at most {at_most:g}")
    return number + 0.0  # no negative zero


def limit_count(name: str, value: object, *, optional: bool = False, positive: bool = False,
                at_most: int = MAX_ID_NUMBER) -> int | None:
    """A whole number >= 0 (> 0 with ``positive``) for the limit ``name``; ValueError naming it.

    Any exact integer kind is taken (int, numpy integers, ``__index__``); so are floats,
    Decimals and Fractions with a whole value (``7.0``). Booleans and fractions are refused.
    """
    if value is None and optional:
        return None
    kind = "a whole number" + (" or None" if optional else "")
    try:
        number = to_float(value)
    except NumberRefused as exc:
        raise ValueError(f"{name}={describe(value)}: must be {kind}; it {exc.reason}") from None
    if not number.is_integer():
        raise ValueError(f"{name}={describe(value)}: must be {kind}")
    if number < 0 or (positive and number == 0):
        raise ValueError(f"{name}={describe(value)}: must be {'> 0' if positive else '>= 0'}")
    if number > at_most:
        raise ValueError(f"{name}={describe(value)}: must be at most {at_most}")
    return int(number)


def trade_text(field: str, value: object, max_length: int = MAX_TEXT) -> str:
    """A plain ``str`` of at most ``max_length`` characters that UTF-8 can encode.

    Lone surrogates are refused: they cannot be written to a UTF-8 file (the derived files)
    and the log reader refuses them.
    """
    if not isinstance(value, str):
        raise InvalidTrade(field, value, "must be a string")
    text = str.__str__(value)  # a plain str, whatever a subclass overrides
    if len(text) > max_length:
        raise InvalidTrade(field, text[:20] + "...", f"must be at most {max_length} characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidTrade(field, text[max(0, exc.start - 10):exc.end + 10],
                           "must be text UTF-8 can encode (no lone surrogate characters)") from None
    return text


# --------------------------------------------------------------------------- symbols


def symbol_key(symbol: str) -> str:
    """The comparison key of a stored symbol: surrounding whitespace stripped, upper-cased."""
    return symbol.strip().upper()


def normalize_symbol(symbol: object) -> str:
    """Strip surrounding whitespace and upper-case; the key for the duplicate-symbol rule."""
    if not isinstance(symbol, str):
        raise InvalidTrade("symbol", symbol, "must be a string such as 'BTC'")
    norm = symbol_key(str.__str__(symbol))
    if not norm:
        raise InvalidTrade("symbol", symbol, "must not be empty")
    if len(norm) > 32 or not norm.isprintable() or any(c.isspace() for c in norm):
        raise InvalidTrade("symbol", symbol, "must be at most 32 printable characters without spaces")
    return norm


DIRECTIONS = ("LONG", "SHORT")


def normalize_direction(direction: object) -> str:
    """``"LONG"`` or ``"SHORT"`` from any spelling of them (``" long"``); InvalidTrade otherwise."""
    if isinstance(direction, str):
        key = symbol_key(str.__str__(direction))
        if key in DIRECTIONS:
            return key
    raise InvalidTrade("direction", direction, "must be 'LONG' or 'SHORT'")


# --------------------------------------------------------------------------- ids


def format_id(number: int) -> str:
    """``T001`` ... ``T999``, ``T1000``: the seed's ids, never reused."""
    return f"T{number:03d}"


def id_number(trade_id: object) -> int | None:
    """The number of an id ``T`` + 1 to 15 digits; None for anything else."""
    # The pattern T[0-9]{1,15} with str methods, cheaper than a regex match (a whole-log scan
    # reads every id several times): isascii() and isdigit() together accept exactly 0-9.
    if isinstance(trade_id, str) and 1 < len(trade_id) <= 16 and trade_id[0] == "T":
        digits = trade_id[1:]
        if digits.isascii() and digits.isdigit():
            return int(digits)
    return None


def parse_id(trade_id: object) -> object:
    """The stored id a caller's ``trade_id`` names: ids are matched as symbols are, whatever
    the case and surrounding whitespace (``" t002 "`` names ``T002``); the digits are compared
    as written (``T2`` is not ``T002``). Ids are only ever written by :func:`format_id`, in upper
    case. Anything but a ``str`` is returned unchanged, so its lookup fails naming it."""
    return str.__str__(trade_id).strip().upper() if isinstance(trade_id, str) else trade_id


# --------------------------------------------------------------------------- times

_UTC_MIN = datetime.min.replace(tzinfo=timezone.utc)
_UTC_MAX = datetime.max.replace(tzinfo=timezone.utc)


def utc(moment: object, field: str = "clock") -> datetime:
    """``moment`` as an aware UTC datetime: naive is taken as UTC, aware is converted.

    ValueError naming ``field`` if it is not a datetime or its UTC time is outside the calendar.
    """
    if not isinstance(moment, datetime):
        raise ValueError(f"{field} returned {describe(moment)}: expected a datetime")
    try:
        if moment.tzinfo is None or moment.utcoffset() is None:
            return moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)
    except Exception as exc:  # OverflowError at the calendar's ends; a tzinfo's own failure
        raise ValueError(f"{field} returned {describe(moment)}: not a time UTC can express "
                         f"({type(exc).__name__})") from None


def utc_iso(moment: datetime) -> str:
    """The log's one timestamp form: ``YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00``."""
    return utc(moment, "time").isoformat()


def parse_time(text: object) -> datetime | None:
    """An aware UTC datetime from an ISO-8601 string (naive taken as UTC); None if unreadable.

    Times whose conversion to UTC leaves the calendar are clamped to its first or last moment.
    """
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        return _UTC_MIN if moment.year == 1 else _UTC_MAX


def time_key(text: object) -> datetime:
    """A timestamp as an aware UTC datetime for ordering; missing or unreadable sorts first.

    Parsed rather than compared as text, so logs written by other tools ("Z" suffix, other
    offsets) order the same way here as in the reconciler.
    """
    moment = parse_time(text)
    return _UTC_MIN if moment is None else moment


def add_hours(moment: datetime, hours: float) -> datetime:
    """``moment + hours`` hours, saturating at the calendar's first or last moment."""
    try:
        return moment + timedelta(hours=hours)
    except OverflowError:
        return _UTC_MAX.replace(tzinfo=moment.tzinfo) if hours > 0 else _UTC_MIN.replace(tzinfo=moment.tzinfo)


# --------------------------------------------------------------------------- rounding


def round_money(amount: float) -> float:
    """A USD amount rounded to :data:`MONEY_DECIMALS` places (Python's round, ties to even)."""
    return round(amount, MONEY_DECIMALS)


def round_ratio(value: float) -> float:
    """A percentage, ratio or R multiple rounded to :data:`RATIO_DECIMALS` places."""
    return round(value, RATIO_DECIMALS)


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator`` rounded, or None where it is undefined or not finite."""
    try:
        value = numerator / denominator
    except ZeroDivisionError:
        return None
    return round_ratio(value) if math.isfinite(value) else None
